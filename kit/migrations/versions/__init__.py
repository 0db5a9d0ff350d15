"""Alembic revisions of kit's database schema, in order (0001, 0002, ...); each imports only alembic and sqlalchemy."""

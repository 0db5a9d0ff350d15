"""Alembic migrations of kit's database (see ``kit.rules.db``)."""

"""Alembic migrations of kit's database (see ``kit.storage.db``)."""

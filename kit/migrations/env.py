"""Alembic environment: runs on the connection kit passes (``kit db upgrade``, or the first start)."""

from alembic import context

from kit.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `kit db upgrade`, which passes the configured database.")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

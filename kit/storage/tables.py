"""The tables of kit's database (SQLAlchemy Core); their schema is versioned by the Alembic migrations under
``kit/migrations``. The audit log's tables are created by those migrations and written by ``kit.audit``."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
users = sa.Table(
    "users", metadata,
    sa.Column("name", sa.Text, primary_key=True), sa.Column("role", sa.Text, nullable=False),
    sa.Column("hash", sa.Text, nullable=False), sa.Column("created", sa.Text, nullable=False),
    sa.Column("updated", sa.Text, nullable=False), sa.Column("groups", sa.Text, nullable=False, server_default=""))
api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("sha256", sa.Text, primary_key=True), sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False), sa.Column("groups", sa.Text, nullable=False, server_default=""),
    sa.Column("created", sa.Text, nullable=False))
acks = sa.Table(
    "acks", metadata,
    sa.Column("user", sa.Text, primary_key=True), sa.Column("version", sa.Text, primary_key=True),
    sa.Column("time", sa.Text, nullable=False),
    sa.Column("quiz_passed", sa.Integer, nullable=False, server_default="1"))
feedback = sa.Table(
    "feedback", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True), sa.Column("time", sa.Text, nullable=False),
    sa.Column("user", sa.Text, nullable=False), sa.Column("kind", sa.Text, nullable=False),
    sa.Column("rating", sa.Integer), sa.Column("comment", sa.Text, nullable=False, server_default=""),
    sa.Column("meta", sa.Text, nullable=False, server_default="{}"),
    sa.Column("status", sa.Text, nullable=False, server_default="open"))
flags = sa.Table("flags", metadata, sa.Column("key", sa.Text, primary_key=True),
                 sa.Column("value", sa.Text, nullable=False))
conversations = sa.Table(
    "conversations", metadata,
    sa.Column("id", sa.Text, primary_key=True), sa.Column("user", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False), sa.Column("created", sa.Text, nullable=False),
    sa.Column("updated", sa.Text, nullable=False))
messages = sa.Table(
    "messages", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.Text, sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    sa.Column("role", sa.Text, nullable=False), sa.Column("content", sa.Text, nullable=False),
    sa.Column("time", sa.Text, nullable=False), sa.Column("meta", sa.Text, nullable=False))

"""The gateway's state in one database: users, API keys, acknowledgements, feedback, switches,
conversations and the audit log (the tables of the one-machine files that came before).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    text, pg = sa.Text, op.get_bind().dialect.name == "postgresql"
    op.create_table("users", sa.Column("name", text, primary_key=True), sa.Column("role", text, nullable=False),
                    sa.Column("hash", text, nullable=False), sa.Column("created", text, nullable=False),
                    sa.Column("updated", text, nullable=False),
                    sa.Column("groups", text, nullable=False, server_default=""))
    op.create_table("api_keys", sa.Column("sha256", text, primary_key=True),
                    sa.Column("name", text, nullable=False), sa.Column("role", text, nullable=False),
                    sa.Column("groups", text, nullable=False, server_default=""),
                    sa.Column("created", text, nullable=False))
    op.create_table("acks", sa.Column("user", text, primary_key=True), sa.Column("version", text, primary_key=True),
                    sa.Column("time", text, nullable=False),
                    sa.Column("quiz_passed", sa.Integer, nullable=False, server_default="1"))
    op.create_table("feedback", sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("time", text, nullable=False), sa.Column("user", text, nullable=False),
                    sa.Column("kind", text, nullable=False), sa.Column("rating", sa.Integer),
                    sa.Column("comment", text, nullable=False, server_default=""),
                    sa.Column("meta", text, nullable=False, server_default="{}"),
                    sa.Column("status", text, nullable=False, server_default="open"))
    op.create_table("flags", sa.Column("key", text, primary_key=True), sa.Column("value", text, nullable=False))
    op.create_table("conversations", sa.Column("id", text, primary_key=True), sa.Column("user", text, nullable=False),
                    sa.Column("title", text, nullable=False), sa.Column("created", text, nullable=False),
                    sa.Column("updated", text, nullable=False))
    op.create_index("conversations_user", "conversations", ["user", "updated"])
    op.create_index("conversations_updated", "conversations", ["updated"])
    op.create_table("messages", sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("conversation_id", text, sa.ForeignKey("conversations.id", ondelete="CASCADE"),
                              nullable=False),
                    sa.Column("role", text, nullable=False), sa.Column("content", text, nullable=False),
                    sa.Column("time", text, nullable=False), sa.Column("meta", text, nullable=False))
    op.create_index("messages_conversation", "messages", ["conversation_id", "id"])
    # The audit log: appended by kit.audit, one hash chain (appends serialized in the database).
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    for table in ("audit_anchor", "audit_head"):
        op.create_table(table, sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
                        sa.Column("last_id", sa.BigInteger, nullable=False),
                        sa.Column("last_hash", text, nullable=False))
    op.create_table("audit_log", sa.Column("id", big, primary_key=True, autoincrement=False),
                    sa.Column("ts", sa.Text(collation="C") if pg else text, nullable=False),
                    *[sa.Column(name, text, nullable=False) for name in ("pseudonym", "action", "model")],
                    *[sa.Column(name, sa.Integer, nullable=False)
                      for name in ("prompt_tokens", "completion_tokens", "latency_ms")],
                    *[sa.Column(name, text, nullable=False)
                      for name in ("pii_categories", "pii_action", "doc_ids", "status", "detail")],
                    sa.Column("body", text),
                    sa.Column("prev_hash", text, nullable=False), sa.Column("hash", text, nullable=False))
    op.create_index("audit_log_ts", "audit_log", ["ts"])
    op.create_index("audit_log_action", "audit_log", ["action"])
    op.create_table("audit_chain", sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column("scheme", text, nullable=False), sa.Column("keyed_from", sa.BigInteger, nullable=False),
                    sa.Column("legacy_hash", text, nullable=False), sa.Column("seal", text, nullable=False))

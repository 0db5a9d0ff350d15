"""Indexes for a user's access request (their feedback) and for the count of acknowledgements of a charter.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_index("feedback_user", "feedback", ["user", "id"])
    op.create_index("acks_version", "acks", ["version"])

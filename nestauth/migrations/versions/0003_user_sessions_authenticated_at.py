"""user_sessions.authenticated_at: the last sign-in or step-up proof of a session

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import nestauth.models.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    column_type = nestauth.models.base.UTCDateTime(timezone=True)
    with op.batch_alter_table("user_sessions") as batch_op:
        batch_op.add_column(sa.Column("authenticated_at", column_type, nullable=True))
    # Every existing session was opened by a sign-in, at its created_at.
    op.execute("UPDATE user_sessions SET authenticated_at = created_at")
    with op.batch_alter_table("user_sessions") as batch_op:
        batch_op.alter_column("authenticated_at", existing_type=column_type, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("user_sessions") as batch_op:
        batch_op.drop_column("authenticated_at")

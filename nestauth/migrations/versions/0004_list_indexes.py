"""Indexes for every list's order and filters; emails in byte order on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (name, table, columns): each list's sort key, alone and behind each of its filters.
NEW_INDEXES = (
    ("ix_users_created_at_id", "users", ["created_at", "id"]),
    ("ix_users_is_active_created_at_id", "users", ["is_active", "created_at", "id"]),
    ("ix_users_is_verified_created_at_id", "users", ["is_verified", "created_at", "id"]),
    ("ix_admins_created_at_id", "admins", ["created_at", "id"]),
    ("ix_audit_events_occurred_at_id", "audit_events", ["occurred_at", "id"]),
    ("ix_audit_events_user_id_occurred_at_id", "audit_events", ["user_id", "occurred_at", "id"]),
    ("ix_audit_events_actor_id_occurred_at_id", "audit_events", ["actor_id", "occurred_at", "id"]),
    ("ix_audit_events_action_occurred_at_id", "audit_events", ["action", "occurred_at", "id"]),
)
# Single-column audit indexes the composite ones above begin with.
OLD_AUDIT_INDEXES = (
    ("ix_audit_events_occurred_at", ["occurred_at"]),
    ("ix_audit_events_user_id", ["user_id"]),
    ("ix_audit_events_actor_id", ["actor_id"]),
    ("ix_audit_events_action", ["action"]),
)
UNREVOKED = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    for name, _columns in OLD_AUDIT_INDEXES:
        op.drop_index(name, table_name="audit_events")
    for name, table, columns in NEW_INDEXES:
        op.create_index(name, table, columns, unique=False)
    op.create_index(
        "ix_user_sessions_unrevoked", "user_sessions",
        ["user_id", "created_at", "id", "expires_at"],
        unique=False, sqlite_where=UNREVOKED, postgresql_where=UNREVOKED,
    )  # fmt: skip
    if op.get_bind().dialect.name == "postgresql":
        # SQLite compares text bytewise already; the unique index is rebuilt in byte order.
        op.alter_column("users", "email", type_=sa.String(254, collation="C"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("users", "email", type_=sa.String(254))
    op.drop_index("ix_user_sessions_unrevoked", table_name="user_sessions")
    for name, table, _columns in reversed(NEW_INDEXES):
        op.drop_index(name, table_name=table)
    for name, columns in OLD_AUDIT_INDEXES:
        op.create_index(name, "audit_events", columns, unique=False)

"""Approvals: stages, reminders, escalation and revisions on engagements; the cards sent about
each engagement; the revisions of a request and the comments that sent them back.

The new states (changes_requested, cancelled, expired) need no schema change: `state` is a plain
string column without a CHECK constraint or enum type (0001).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def _engagement_columns() -> tuple[sa.Column[Any], ...]:
    # New objects on every call: a Column belongs to one table, and a process (the tests) may
    # run this migration more than once.
    return (
        # Engagements from before it: one stage, in its first one, first revision, never
        # reminded nor escalated.
        sa.Column("approval_stage", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("stages", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("second_stage_group_id", sa.String(), nullable=True),
        sa.Column("stage_started_at", UTC_DATETIME, nullable=True),
        sa.Column("approval_reminders", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("escalated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("revision", sa.Integer(), nullable=False, server_default="1"),
    )


def upgrade() -> None:
    # Plain ADD COLUMN, as in 0002: a batch rebuild on SQLite could drop AUTOINCREMENT.
    for column in _engagement_columns():
        op.add_column("engagements", column)

    op.create_table(
        "engagement_cards",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "engagement_id",
            sa.Integer(),
            sa.ForeignKey(
                "engagements.id",
                name="fk_engagement_cards_engagement_id",
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("activity_id", sa.String(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ux_engagement_cards_conversation_id_activity_id",
        "engagement_cards",
        ["conversation_id", "activity_id"],
        unique=True,
    )
    op.create_index("ix_engagement_cards_engagement_id", "engagement_cards", ["engagement_id"])

    op.create_table(
        "engagement_revisions",
        sa.Column(
            "engagement_id",
            sa.Integer(),
            sa.ForeignKey(
                "engagements.id",
                name="fk_engagement_revisions_engagement_id",
                ondelete="CASCADE",
            ),
            primary_key=True,
        ),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("form_values", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("comment_by_id", sa.String(), nullable=True),
        sa.Column("comment_by_name", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("engagement_revisions")
    op.drop_index("ix_engagement_cards_engagement_id", table_name="engagement_cards")
    op.drop_index(
        "ux_engagement_cards_conversation_id_activity_id", table_name="engagement_cards"
    )
    op.drop_table("engagement_cards")
    # Plain DROP COLUMN (SQLite has it since 3.35; none of these columns is indexed), not a
    # batch rebuild, for the same reason as the ADD COLUMN above.
    for column in reversed(_engagement_columns()):
        op.drop_column("engagements", column.name)

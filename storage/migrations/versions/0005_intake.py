"""Intake: the form's new engagement fields, tenant policy settings, and intake drafts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def _engagement_columns() -> tuple[sa.Column[Any], ...]:
    # New objects on every call: a Column belongs to one table, and a process (the tests) may
    # run this migration more than once.
    return (
        # Engagements from before the form asked get an empty justification and the default
        # classification.
        sa.Column("justification", sa.Text(), nullable=False, server_default=""),
        sa.Column("freelancer_org", sa.Text(), nullable=True),
        sa.Column("profile_url", sa.Text(), nullable=True),
        sa.Column("data_classification", sa.String(), nullable=False, server_default="internal"),
        # A Decimal as fixed-point text: SQLite has no decimal type.
        sa.Column("budget", sa.String(), nullable=True),
        sa.Column("hours", sa.Integer(), nullable=True),
        sa.Column("time_zone", sa.String(), nullable=True),
    )


def upgrade() -> None:
    # Plain ADD COLUMN, as in 0002: a batch rebuild on SQLite could drop AUTOINCREMENT.
    for column in _engagement_columns():
        op.add_column("engagements", column)

    op.create_table(
        "tenant_policy_settings",
        sa.Column("tenant_id", sa.String(), primary_key=True),
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_by_id", sa.String(), nullable=False),
        sa.Column("updated_by_name", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
    )

    op.create_table(
        "intake_drafts",
        sa.Column("tenant_id", sa.String(), primary_key=True),
        sa.Column("user_id", sa.String(), primary_key=True),
        sa.Column("form_values", sa.Text(), nullable=False),
        sa.Column("time_zone", sa.String(), nullable=True),
        sa.Column("previewed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_intake_drafts_updated_at", "intake_drafts", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_intake_drafts_updated_at", table_name="intake_drafts")
    op.drop_table("intake_drafts")
    op.drop_table("tenant_policy_settings")
    # Plain DROP COLUMN (SQLite has it since 3.35; none of these columns is indexed), not a
    # batch rebuild, for the same reason as the ADD COLUMN above.
    for column in reversed(_engagement_columns()):
        op.drop_column("engagements", column.name)

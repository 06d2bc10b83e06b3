"""Handled activities: Teams re-delivers an activity after a slow turn; answer it once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "handled_activities",
        sa.Column("activity_key", sa.String(), primary_key=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_handled_activities_handled_at", "handled_activities", ["handled_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_handled_activities_handled_at", table_name="handled_activities")
    op.drop_table("handled_activities")

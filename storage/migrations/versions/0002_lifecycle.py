"""Lifecycle: sponsor, extension, end and offboarding progress on engagements.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Plain ADD COLUMN (constant defaults for the NOT NULL ones): SQLite does that in place,
    # where a batch table rebuild could drop the table's AUTOINCREMENT (ids must never repeat).
    for column in (
        sa.Column("sponsor_id", sa.String(), nullable=True),
        sa.Column("extension_end_date", sa.Date(), nullable=True),
        sa.Column("let_it_end", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("ended_by_id", sa.String(), nullable=True),
        sa.Column("ended_by_name", sa.Text(), nullable=True),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("offboarding_done", sa.JSON(), nullable=False, server_default="[]"),
        sa.Column("invitation_nudges", sa.Integer(), nullable=False, server_default="0"),
    ):
        op.add_column("engagements", column)
    op.create_index("ix_engagements_guest_user_id", "engagements", ["guest_user_id"])
    op.create_index("ix_engagements_freelancer_email", "engagements", ["freelancer_email"])


def downgrade() -> None:
    op.drop_index("ix_engagements_freelancer_email", table_name="engagements")
    op.drop_index("ix_engagements_guest_user_id", table_name="engagements")
    with op.batch_alter_table("engagements") as batch:
        for column in (
            "invitation_nudges",
            "offboarding_done",
            "ended_at",
            "ended_by_name",
            "ended_by_id",
            "end_reason",
            "let_it_end",
            "extension_end_date",
            "sponsor_id",
        ):
            batch.drop_column(column)

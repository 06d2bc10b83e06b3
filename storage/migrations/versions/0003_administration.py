"""Administration: when an engagement became active, and indexes for admin lists and the report.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The audit action provisioning records when an engagement becomes active.
PROVISIONING_COMPLETED = "provisioning.completed"


def upgrade() -> None:
    # Plain ADD COLUMN, as in 0002: a batch rebuild on SQLite could drop AUTOINCREMENT.
    op.add_column("engagements", sa.Column("provisioned_at", sa.DateTime(timezone=True)))
    # Engagements made active before this column existed: the audit log knows when.
    op.execute(
        sa.text(
            "UPDATE engagements SET provisioned_at = ("
            " SELECT min(audit_log.at) FROM audit_log"
            " WHERE audit_log.engagement_id = engagements.id"
            " AND audit_log.action = :action AND audit_log.outcome = 'ok')"
            " WHERE provisioned_at IS NULL"
        ).bindparams(action=PROVISIONING_COMPLETED)
    )
    # (state, created_at) serves everything the single-column index on state did.
    op.drop_index("ix_engagements_state", table_name="engagements")
    op.create_index("ix_engagements_state_created_at", "engagements", ["state", "created_at"])
    op.create_index("ix_engagements_state_team_id_id", "engagements", ["state", "team_id", "id"])
    op.create_index(
        "ix_engagements_state_end_date_id", "engagements", ["state", "end_date", "id"]
    )
    op.create_index(
        "ix_engagements_decided_at", "engagements", ["decided_at", "created_at", "state"]
    )
    op.create_index(
        "ix_engagements_provisioned_at", "engagements", ["provisioned_at", "decided_at"]
    )
    op.create_index(
        "ix_engagements_state_team_id_email",
        "engagements",
        ["state", "team_id", "freelancer_email"],
    )
    op.drop_index("ix_audit_log_engagement_id", table_name="audit_log")
    op.create_index("ix_audit_log_engagement_id_id", "audit_log", ["engagement_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_engagement_id_id", table_name="audit_log")
    op.create_index("ix_audit_log_engagement_id", "audit_log", ["engagement_id"])
    for name in (
        "ix_engagements_state_team_id_email",
        "ix_engagements_provisioned_at",
        "ix_engagements_decided_at",
        "ix_engagements_state_end_date_id",
        "ix_engagements_state_team_id_id",
        "ix_engagements_state_created_at",
    ):
        op.drop_index(name, table_name="engagements")
    op.create_index("ix_engagements_state", "engagements", ["state"])
    with op.batch_alter_table("engagements") as batch:
        batch.drop_column("provisioned_at")

"""Initial schema: engagements, conversations, team installations, audit log, jobs.

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of storage.tables' types: a migration must not change when that module does.
UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "engagements",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("requester_id", sa.String(), nullable=False),
        sa.Column("requester_name", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("project_title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("freelancer_name", sa.Text(), nullable=False),
        sa.Column("freelancer_email", sa.Text(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("team_name", sa.Text(), nullable=False),
        sa.Column("channel_name", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("approver_id", sa.String(), nullable=True),
        sa.Column("approver_name", sa.Text(), nullable=True),
        sa.Column("approval_conversation_id", sa.String(), nullable=True),
        sa.Column("approval_activity_id", sa.String(), nullable=True),
        sa.Column("approver_missing_notified", sa.Boolean(), nullable=False),
        sa.Column("decided_by_id", sa.String(), nullable=True),
        sa.Column("decided_by_name", sa.Text(), nullable=True),
        sa.Column("decided_at", UTC_DATETIME, nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("submission_key", sa.String(), nullable=True),
        sa.Column("guest_invitation_started", sa.Boolean(), nullable=False),
        sa.Column("channel_id", sa.String(), nullable=True),
        sa.Column("guest_user_id", sa.String(), nullable=True),
        sa.Column("guest_reused", sa.Boolean(), nullable=False),
        sa.Column("team_membership_id", sa.String(), nullable=True),
        sa.Column("channel_membership_id", sa.String(), nullable=True),
        sa.Column("welcome_message_id", sa.String(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_engagements_requester_id", "engagements", ["requester_id"])
    op.create_index("ix_engagements_state", "engagements", ["state"])
    op.create_index("ix_engagements_approver_id", "engagements", ["approver_id"])
    op.create_index(
        "ux_engagements_submission_key", "engagements", ["submission_key"], unique=True
    )
    op.create_index(
        "ix_engagements_team_id_lower_channel_name",
        "engagements",
        ["team_id", sa.text("lower(channel_name)")],
    )

    op.create_table(
        "user_conversations",
        sa.Column("aad_id", sa.String(), primary_key=True),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("service_url", sa.Text(), nullable=False),
        sa.Column("reference", JSON_DOCUMENT, nullable=False),
    )

    op.create_table(
        "team_installations",
        sa.Column("aad_group_id", sa.String(), primary_key=True),
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("service_url", sa.Text(), nullable=False),
        sa.Column("reference", JSON_DOCUMENT, nullable=False),
    )
    op.create_index(
        "ux_team_installations_team_id", "team_installations", ["team_id"], unique=True
    )
    op.create_index("ix_team_installations_tenant_id", "team_installations", ["tenant_id"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("actor_id", sa.String(), nullable=False),
        sa.Column("actor_name", sa.Text(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("engagement_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_log_engagement_id", "audit_log", ["engagement_id"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("engagement_id", sa.Integer(), nullable=True),
        sa.Column("payload", JSON_DOCUMENT, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_at", UTC_DATETIME, nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("dedupe_key", sa.String(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_jobs_engagement_id", "jobs", ["engagement_id"])
    op.create_index("ix_jobs_status_run_at", "jobs", ["status", "run_at"])
    op.create_index(
        "ux_jobs_dedupe_key_queued",
        "jobs",
        ["dedupe_key"],
        unique=True,
        sqlite_where=sa.text("status = 'queued'"),
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index("ix_jobs_dedupe_key", "jobs", ["dedupe_key"])


def downgrade() -> None:
    op.drop_table("jobs")
    op.drop_table("audit_log")
    op.drop_table("team_installations")
    op.drop_table("user_conversations")
    op.drop_table("engagements")

"""The schema, as SQLAlchemy Core tables. Migrations (storage/migrations) must create exactly this;
the contract tests compare the two."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    PostgreSQL stores `timestamptz`. SQLite has no time zones: values are stored as naive UTC in
    SQLAlchemy's fixed-width text format (so SQL comparisons stay correct) and get their UTC
    tzinfo back on the way out. Naive datetimes are refused: their meaning is a guess."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: storage needs aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (compact, indexable); JSON text elsewhere.
JSONDocument: sa.types.TypeEngine[Any] = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# Strings have no length limit: identifiers from Entra / Teams / Graph have no documented maximum
# (membership ids run to ~200 characters), and a limit only PostgreSQL enforces would make the
# two backends behave differently. sa.String marks machine values (ids, enum values), sa.Text
# what people wrote.

engagements = sa.Table(
    "engagements",
    metadata,
    # The human id FC-<id> is this number, so it must never be reused (hence AUTOINCREMENT on
    # SQLite, whose plain rowids can come back after a delete).
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("requester_id", sa.String, nullable=False),
    sa.Column("requester_name", sa.Text, nullable=False),
    sa.Column("tenant_id", sa.String, nullable=False),
    sa.Column("project_title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("freelancer_name", sa.Text, nullable=False),
    sa.Column("freelancer_email", sa.Text, nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=False),
    sa.Column("team_id", sa.String, nullable=False),
    sa.Column("team_name", sa.Text, nullable=False),
    sa.Column("channel_name", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("approver_id", sa.String, nullable=True),
    sa.Column("approver_name", sa.Text, nullable=True),
    # MessageRef of the approval card: both set or both NULL.
    sa.Column("approval_conversation_id", sa.String, nullable=True),
    sa.Column("approval_activity_id", sa.String, nullable=True),
    sa.Column("approver_missing_notified", sa.Boolean, nullable=False),
    sa.Column("decided_by_id", sa.String, nullable=True),
    sa.Column("decided_by_name", sa.Text, nullable=True),
    sa.Column("decided_at", UTCDateTime, nullable=True),
    sa.Column("decision_reason", sa.Text, nullable=True),
    sa.Column("failure_reason", sa.Text, nullable=True),
    # Which card submission created the engagement: a re-delivered Submit must not make another.
    # Unique; NULLs (engagements made otherwise) never collide.
    sa.Column("submission_key", sa.String, nullable=True),
    sa.Column("guest_invitation_started", sa.Boolean, nullable=False),
    sa.Column("channel_id", sa.String, nullable=True),
    sa.Column("guest_user_id", sa.String, nullable=True),
    sa.Column("guest_reused", sa.Boolean, nullable=False),
    sa.Column("team_membership_id", sa.String, nullable=True),
    sa.Column("channel_membership_id", sa.String, nullable=True),
    sa.Column("welcome_message_id", sa.String, nullable=True),
    # Lifecycle (migration 0002).
    sa.Column("sponsor_id", sa.String, nullable=True),
    sa.Column("extension_end_date", sa.Date, nullable=True),
    sa.Column("let_it_end", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("end_reason", sa.Text, nullable=True),
    sa.Column("ended_by_id", sa.String, nullable=True),
    sa.Column("ended_by_name", sa.Text, nullable=True),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    # The offboarding steps done so far, as a JSON list of their names.
    sa.Column("offboarding_done", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("invitation_nudges", sa.Integer, nullable=False, server_default="0"),
    # Administration (migration 0003).
    sa.Column("provisioned_at", UTCDateTime, nullable=True),
    # Intake (migration 0005). Engagements from before it get the defaults.
    sa.Column("justification", sa.Text, nullable=False, server_default=""),
    sa.Column("freelancer_org", sa.Text, nullable=True),
    sa.Column("profile_url", sa.Text, nullable=True),
    sa.Column("data_classification", sa.String, nullable=False, server_default="internal"),
    # A Decimal as fixed-point text ("1500.50"): SQLite has no decimal type (SQLAlchemy's
    # Numeric goes through float there). Text order is not numeric order; nothing sorts by it.
    sa.Column("budget", sa.String, nullable=True),
    sa.Column("hours", sa.Integer, nullable=True),
    sa.Column("time_zone", sa.String, nullable=True),
    # Approvals (migration 0006). Engagements from before it: one stage, in its first, first
    # revision, never reminded nor escalated.
    sa.Column("approval_stage", sa.Integer, nullable=False, server_default="1"),
    sa.Column("stages", sa.Integer, nullable=False, server_default="1"),
    sa.Column("second_stage_group_id", sa.String, nullable=True),
    sa.Column("stage_started_at", UTCDateTime, nullable=True),
    sa.Column("approval_reminders", sa.Integer, nullable=False, server_default="0"),
    sa.Column("escalated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    sa.Index("ix_engagements_requester_id", "requester_id"),
    sa.Index("ix_engagements_approver_id", "approver_id"),
    # Offboarding asks which other engagements need the same guest.
    sa.Index("ix_engagements_guest_user_id", "guest_user_id"),
    sa.Index("ix_engagements_freelancer_email", "freelancer_email"),
    sa.Index("ux_engagements_submission_key", "submission_key", unique=True),
    # Admin lists and the report (migration 0003): /active [TEAM], /expiring, the KPIs over a
    # window of decisions and of provisionings; the id orders each list.
    sa.Index("ix_engagements_state_team_id_id", "state", "team_id", "id"),
    # The report counts distinct freelancers per team among active engagements from this
    # alone (a plain column: PostgreSQL reads expression indexes only with their table).
    sa.Index("ix_engagements_state_team_id_email", "state", "team_id", "freelancer_email"),
    sa.Index("ix_engagements_state_end_date_id", "state", "end_date", "id"),
    sa.Index("ix_engagements_state_created_at", "state", "created_at"),
    # Covering: the report's medians read these columns from the index alone.
    sa.Index("ix_engagements_decided_at", "decided_at", "created_at", "state"),
    sa.Index("ix_engagements_provisioned_at", "provisioned_at", "decided_at"),
    sqlite_autoincrement=True,
)

# find_by_channel_name compares lower(channel_name) within a team; SQLite and PostgreSQL both use
# an index on the same expression for that.
sa.Index(
    "ix_engagements_team_id_lower_channel_name",
    engagements.c.team_id,
    sa.func.lower(engagements.c.channel_name),
)

user_conversations = sa.Table(
    "user_conversations",
    metadata,
    sa.Column("aad_id", sa.String, primary_key=True),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("tenant_id", sa.String, nullable=False),
    sa.Column("service_url", sa.Text, nullable=False),
    sa.Column("reference", JSONDocument, nullable=False),
)

team_installations = sa.Table(
    "team_installations",
    metadata,
    sa.Column("aad_group_id", sa.String, primary_key=True),
    sa.Column("team_id", sa.String, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("tenant_id", sa.String, nullable=False),
    sa.Column("service_url", sa.Text, nullable=False),
    sa.Column("reference", JSONDocument, nullable=False),
    sa.Index("ux_team_installations_team_id", "team_id", unique=True),
    sa.Index("ix_team_installations_tenant_id", "tenant_id"),
)

# No foreign keys to engagements on purpose: the audit log must also record refused attempts
# on ids that do not exist, and neither log nor queue should stop an engagement being purged.
# (Cards and revisions, below, belong to their engagement: their foreign keys cascade.)
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor_id", sa.String, nullable=False),
    sa.Column("actor_name", sa.Text, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("engagement_id", sa.Integer, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    # /show and /audit FC-n list one engagement's records newest first; the id breaks ties.
    sa.Index("ix_audit_log_engagement_id_id", "engagement_id", "id"),
    sqlite_autoincrement=True,
)

# Activities a turn has handled, so that Teams re-delivering one (same conversation and id, after
# a slow turn) is answered once, on any replica. Rows older than a day are pruned.
handled_activities = sa.Table(
    "handled_activities",
    metadata,
    sa.Column("activity_key", sa.String, primary_key=True),
    sa.Column("handled_at", UTCDateTime, nullable=False),
    sa.Index("ix_handled_activities_handled_at", "handled_at"),
)

# Tenant policy keys an admin set; keys without a row use the deployment's settings. The value
# is JSON text (str, int, bool, a list or an object, or null), read back as written.
tenant_policy_settings = sa.Table(
    "tenant_policy_settings",
    metadata,
    sa.Column("tenant_id", sa.String, primary_key=True),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_by_id", sa.String, nullable=False),
    sa.Column("updated_by_name", sa.Text, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Unfinished intake forms, one per user of a tenant. `form_values` is a JSON object of the
# form's fields (str -> str); `values` is a reserved word in SQL. Old drafts are pruned by
# updated_at.
intake_drafts = sa.Table(
    "intake_drafts",
    metadata,
    sa.Column("tenant_id", sa.String, primary_key=True),
    sa.Column("user_id", sa.String, primary_key=True),
    sa.Column("form_values", sa.Text, nullable=False),
    sa.Column("time_zone", sa.String, nullable=True),
    sa.Column("previewed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_intake_drafts_updated_at", "updated_at"),
)

# The cards sent about an engagement (approval cards, the requester's status card), so each can be
# re-rendered when the engagement changes. A message is one card: (conversation_id, activity_id)
# is unique, and recording it again is a no-op. The rows go with their engagement.
engagement_cards = sa.Table(
    "engagement_cards",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "engagement_id",
        sa.Integer,
        sa.ForeignKey(
            "engagements.id", name="fk_engagement_cards_engagement_id", ondelete="CASCADE"
        ),
        nullable=False,
    ),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("conversation_id", sa.String, nullable=False),
    sa.Column("activity_id", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(
        "ux_engagement_cards_conversation_id_activity_id",
        "conversation_id",
        "activity_id",
        unique=True,
    ),
    sa.Index("ix_engagement_cards_engagement_id", "engagement_id"),
    sqlite_autoincrement=True,
)

# The versions of a request: the form's values (a JSON object str -> str, as in intake_drafts)
# and the approver's comment that sent the version back (NULL for the one under review). The
# rows go with their engagement.
engagement_revisions = sa.Table(
    "engagement_revisions",
    metadata,
    sa.Column(
        "engagement_id",
        sa.Integer,
        sa.ForeignKey(
            "engagements.id", name="fk_engagement_revisions_engagement_id", ondelete="CASCADE"
        ),
        primary_key=True,
    ),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("form_values", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("comment_by_id", sa.String, nullable=True),
    sa.Column("comment_by_name", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# A job waiting to run: at most one such job per dedupe_key. SQL text, so the partial index and the
# ON CONFLICT clause that has to name it are the same literal.
QUEUED_JOB = sa.text("status = 'queued'")

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("engagement_id", sa.Integer, nullable=True),
    sa.Column("payload", JSONDocument, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("run_at", UTCDateTime, nullable=False),
    sa.Column("lease_owner", sa.String, nullable=True),
    sa.Column("lease_expires_at", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("dedupe_key", sa.String, nullable=True),
    sa.Index("ix_jobs_engagement_id", "engagement_id"),
    # claim() looks for (status queued, run_at due) and (status running, lease expired).
    sa.Index("ix_jobs_status_run_at", "status", "run_at"),
    # enqueue(): at most one queued job per dedupe_key (NULLs never collide). Running and
    # finished jobs keep their key but do not count.
    sa.Index(
        "ux_jobs_dedupe_key_queued",
        "dedupe_key",
        unique=True,
        sqlite_where=QUEUED_JOB,
        postgresql_where=QUEUED_JOB,
    ),
    # claim(): is another job with this key running?
    sa.Index("ix_jobs_dedupe_key", "dedupe_key"),
    sqlite_autoincrement=True,
)

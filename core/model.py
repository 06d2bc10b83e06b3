"""Engagement, its state machine, and the small value objects around it."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from core.errors import InvalidTransition


class EngagementState(enum.StrEnum):
    PENDING_APPROVAL = "pending_approval"
    REJECTED = "rejected"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    PROVISIONING_FAILED = "provisioning_failed"
    # Access is being removed (the end date came, or someone revoked it), step by step.
    OFFBOARDING = "offboarding"
    OFFBOARDING_FAILED = "offboarding_failed"
    ENDED = "ended"
    # --- approvals (issue 4) ---
    # The approver sent the request back: the requester edits and resubmits it.
    CHANGES_REQUESTED = "changes_requested"
    CANCELLED = "cancelled"  # by the requester, before a decision
    EXPIRED = "expired"  # nobody decided in time


TRANSITIONS: dict[EngagementState, frozenset[EngagementState]] = {
    EngagementState.PENDING_APPROVAL: frozenset(
        {
            EngagementState.PROVISIONING,
            EngagementState.REJECTED,
            EngagementState.CHANGES_REQUESTED,
            EngagementState.CANCELLED,
            EngagementState.EXPIRED,
        }
    ),
    EngagementState.CHANGES_REQUESTED: frozenset(
        {EngagementState.PENDING_APPROVAL, EngagementState.CANCELLED, EngagementState.EXPIRED}
    ),
    EngagementState.CANCELLED: frozenset(),
    EngagementState.EXPIRED: frozenset(),
    EngagementState.PROVISIONING: frozenset(
        {EngagementState.ACTIVE, EngagementState.PROVISIONING_FAILED}
    ),
    # A failed set-up can be retried, or ended: offboarding removes whatever it had made.
    EngagementState.PROVISIONING_FAILED: frozenset(
        {EngagementState.PROVISIONING, EngagementState.OFFBOARDING}
    ),
    EngagementState.REJECTED: frozenset(),
    EngagementState.ACTIVE: frozenset({EngagementState.OFFBOARDING}),
    EngagementState.OFFBOARDING: frozenset(
        {EngagementState.ENDED, EngagementState.OFFBOARDING_FAILED}
    ),
    EngagementState.OFFBOARDING_FAILED: frozenset({EngagementState.OFFBOARDING}),
    EngagementState.ENDED: frozenset(),
}

OPEN_STATES = frozenset({EngagementState.PENDING_APPROVAL, EngagementState.PROVISIONING})

# Engagements whose freelancer may hold (or is about to get) access through what provisioning
# made: offboarding another engagement must leave what these need. A failed set-up counts until
# it is ended, since an admin may retry it.
ACCESS_NEEDING_STATES = frozenset(
    {
        EngagementState.PROVISIONING,
        EngagementState.ACTIVE,
        EngagementState.PROVISIONING_FAILED,
    }
)


class DataClassification(enum.StrEnum):
    """How sensitive the data is that the freelancer will see (the intake asks)."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"


class OffboardingStep(enum.StrEnum):
    """Offboarding's steps, in order; each is recorded on the engagement once done."""

    CHANNEL_MEMBER_REMOVED = "channel_member_removed"
    TEAM_MEMBER_REMOVED = "team_member_removed"
    ACCOUNT_DISABLED = "account_disabled"
    CLOSING_NOTE_POSTED = "closing_note_posted"
    CHANNEL_RENAMED = "channel_renamed"


_REF_RE = re.compile(r"^\s*FC-?(\d{1,12})\s*$", re.IGNORECASE)


def engagement_ref(engagement_id: int) -> str:
    """The human id shown everywhere: FC-12."""
    return f"FC-{engagement_id}"


# Engagement ids are PostgreSQL integers: a larger number names no engagement, and asking the
# database for it would fail.
MAX_ENGAGEMENT_ID = 2**31 - 1


def parse_engagement_ref(text: str) -> int | None:
    """`FC-12`, `fc12` or `12` -> 12; anything else (or a number over MAX_ENGAGEMENT_ID)
    -> None."""
    match = _REF_RE.match(text) or re.match(r"^\s*(\d{1,12})\s*$", text)
    number = int(match.group(1)) if match else None
    return number if number is not None and number <= MAX_ENGAGEMENT_ID else None


@dataclass(frozen=True)
class Actor:
    """Who is acting in a turn: the Entra object id from the activity, and the display name."""

    aad_id: str
    name: str


@dataclass(frozen=True)
class MessageRef:
    """Where a message the bot sent lives, so it can be updated later."""

    conversation_id: str
    activity_id: str


@dataclass
class Engagement:
    requester_id: str
    requester_name: str
    tenant_id: str
    project_title: str
    description: str
    freelancer_name: str
    freelancer_email: str
    start_date: date
    end_date: date
    team_id: str  # the team's Microsoft 365 group id (aadGroupId), which Graph calls use
    team_name: str
    channel_name: str
    created_at: datetime
    updated_at: datetime
    id: int | None = None
    version: int = 0
    state: EngagementState = EngagementState.PENDING_APPROVAL
    approver_id: str | None = None
    approver_name: str | None = None
    approval_message: MessageRef | None = None
    approver_missing_notified: bool = False
    decided_by_id: str | None = None
    decided_by_name: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    # When the engagement became active (provisioning finished); the report's KPIs use it.
    provisioned_at: datetime | None = None
    failure_reason: str | None = None
    # Identifies the card submission that created this engagement (the requester and the card
    # message), so a re-delivered or double-clicked Submit finds it instead of making another.
    submission_key: str | None = None
    # Set just before the invitation is sent: on a rerun, a guest found by e-mail was then
    # invited by us (a crash came between Graph's answer and our record), not reused.
    guest_invitation_started: bool = False
    # What provisioning made, recorded step by step so a rerun never makes it twice.
    channel_id: str | None = None
    guest_user_id: str | None = None
    guest_reused: bool = False
    team_membership_id: str | None = None
    channel_membership_id: str | None = None
    welcome_message_id: str | None = None
    # The user recorded as the guest's sponsor in Entra (the requester) at provisioning.
    sponsor_id: str | None = None
    # --- lifecycle ---
    # The requester asked for a later end date; the approver has not decided yet.
    extension_end_date: date | None = None
    # The requester answered a reminder with "Let it end": no more reminders.
    let_it_end: bool = False
    # Why access ended or is ending, and who ended it (None: the end date came).
    end_reason: str | None = None
    ended_by_id: str | None = None
    ended_by_name: str | None = None
    ended_at: datetime | None = None
    offboarding_done: frozenset[OffboardingStep] = frozenset()
    # How often the requester was nudged about an invitation the guest has not accepted.
    invitation_nudges: int = 0
    # --- intake (issue 5) ---
    justification: str = ""
    freelancer_org: str | None = None
    profile_url: str | None = None  # https only
    data_classification: DataClassification = DataClassification.INTERNAL
    budget: Decimal | None = None
    hours: int | None = None
    # The requester's IANA time zone at submission: the dates are calendar days there, so the
    # end of access (and the reminders) fall at midnight there. None: the program's zone.
    time_zone: str | None = None
    # --- approvals (issue 4) ---
    # The stage waiting for a decision (1: the approver; 2: any member of
    # `second_stage_group_id`), and how many the request needs.
    approval_stage: int = 1
    stages: int = 1
    second_stage_group_id: str | None = None
    # When the current stage got its approver: reminders, escalation and expiry count from it.
    stage_started_at: datetime | None = None
    approval_reminders: int = 0  # sent in the current stage
    escalated: bool = False  # the current stage went to the approver's manager
    # The request's content version: 1 at submission, +1 at each resubmission after changes
    # were requested (the versions and comments are kept as revisions).
    revision: int = 1

    @property
    def ref(self) -> str:
        if self.id is None:
            raise ValueError("engagement has no id before it is stored")
        return engagement_ref(self.id)

    def transition(self, new_state: EngagementState, now: datetime) -> None:
        if new_state not in TRANSITIONS[self.state]:
            raise InvalidTransition(f"{self.state.value} -> {new_state.value}")
        self.state = new_state
        self.updated_at = now

    @property
    def channel_description(self) -> str:
        """Marks a channel as made for this engagement, so a rerun can recognise it as ours."""
        return f"Freelance Connector {self.ref}: {self.project_title}"[:1024]


@dataclass(frozen=True)
class UserConversation:
    """A personal chat with a user, stored at install so the bot can message them later."""

    aad_id: str
    user_id: str  # the bot-specific 29:... id
    name: str
    tenant_id: str
    service_url: str
    reference: dict[str, Any]  # the serialized conversation reference, opaque to the domain


@dataclass(frozen=True)
class TeamInstallation:
    """A team where the bot is installed."""

    team_id: str  # Teams' thread id of the team (19:...), as activities carry it
    aad_group_id: str  # the Graph id
    name: str
    tenant_id: str
    service_url: str
    reference: dict[str, Any]


@dataclass(frozen=True)
class IntakeDraft:
    """A requester's unfinished intake form, kept in our storage (one per user and tenant) so
    it survives restarts, is shared by replicas, and is offered again on the next /request.

    `values` holds only the form's own fields, as the card sent them (bounded strings).
    `previewed`: the values passed every check and the preview card was shown; its Confirm
    carries `version`, so a preview older than the draft cannot be confirmed."""

    tenant_id: str
    user_id: str
    values: dict[str, str]
    time_zone: str | None
    created_at: datetime
    updated_at: datetime
    previewed: bool = False
    version: int = 0


@dataclass(frozen=True)
class PolicySetting:
    """One tenant policy key an admin set: its value as JSON-able data, who set it, when."""

    key: str
    value: Any
    updated_by_id: str
    updated_by_name: str
    updated_at: datetime


class ViewerRole(enum.StrEnum):
    """How a person sees an engagement's approval card (Universal Actions: each viewer gets
    their own rendering)."""

    APPROVER = "approver"  # decides the current stage: live buttons
    REQUESTER = "requester"  # the status, and Cancel while nobody decided
    OTHER = "other"  # a read-only summary


class CardKind(enum.StrEnum):
    """Which card about an engagement a sent message holds (so it can be re-rendered)."""

    APPROVAL = "approval"  # the approval card, in a first-stage approver's chat
    REVIEW = "review"  # the approval card, in a review-group member's chat (second stage)
    STATUS = "status"  # the requester's submitted card, live with Cancel
    CHANGES_FORM = "changes_form"  # the form sent back for changes, in the requester's chat


@dataclass(frozen=True)
class SentCard:
    """A card the bot sent about an engagement: updated (updateActivity) on every change."""

    engagement_id: int
    kind: CardKind
    user_id: str  # the Entra id of the person it was sent to
    ref: MessageRef


@dataclass(frozen=True)
class Revision:
    """One version of a request: the form's values, and the approver's comment that sent it
    back for changes (None for the version still under review)."""

    engagement_id: int
    number: int
    values: dict[str, str]
    created_at: datetime
    comment: str | None = None
    comment_by_id: str | None = None
    comment_by_name: str | None = None


class AuditOutcome(enum.StrEnum):
    OK = "ok"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True)
class AuditRecord:
    at: datetime
    actor_id: str
    actor_name: str
    action: str
    outcome: AuditOutcome
    engagement_id: int | None = None
    detail: str = ""
    id: int | None = None


class JobKind(enum.StrEnum):
    ROUTE_APPROVAL = "route_approval"
    PROVISION = "provision"
    NOTIFY = "notify"
    # --- lifecycle ---
    END_REMINDER = "end_reminder"  # payload: end_date, days_before
    END_AT_DATE = "end_at_date"  # payload: end_date
    OFFBOARD = "offboard"
    ROUTE_EXTENSION = "route_extension"  # payload: end_date (the one asked for)
    CHECK_INVITATION = "check_invitation"
    RESEND_INVITATION = "resend_invitation"  # payload: user_id (who asked)
    DELETE_GUEST = "delete_guest"  # payload: guest_user_id
    # --- approvals (issue 4); payload: stage, revision (a timer of an earlier stage or
    # revision does nothing) ---
    APPROVAL_REMINDER = "approval_reminder"  # payload also: number
    APPROVAL_ESCALATION = "approval_escalation"
    APPROVAL_EXPIRY = "approval_expiry"
    UPDATE_CARDS = "update_cards"  # re-render every card sent about the engagement
    SEND_CHANGES_REQUESTED = "send_changes_requested"  # the form back to the requester


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class NewJob:
    kind: JobKind
    engagement_id: int | None
    payload: dict[str, Any] = field(default_factory=dict)
    run_at: datetime | None = None  # None: now
    # Jobs with the same key never run side by side, and at most one waits: enqueueing while
    # one is queued is a no-op; while one runs, the new one waits until it ends.
    dedupe_key: str | None = None


@dataclass(frozen=True)
class Job:
    id: int
    kind: JobKind
    engagement_id: int | None
    payload: dict[str, Any]
    status: JobStatus
    attempts: int  # including the current one once claimed
    run_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    created_at: datetime


class Notice(enum.StrEnum):
    """What the requester or approver is told, asynchronously, about an engagement."""

    APPROVER_NOT_INSTALLED = "approver_not_installed"
    NO_APPROVER = "no_approver"
    SENT_FOR_APPROVAL = "sent_for_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    PROVISIONED = "provisioned"
    PROVISIONING_FAILED = "provisioning_failed"
    ROUTING_FAILED = "routing_failed"
    # To each admin: provisioning failed, with the reason and how to retry.
    PROVISIONING_FAILED_ADMIN = "provisioning_failed_admin"
    # To the requester: an admin re-queued the failed provisioning.
    PROVISIONING_RETRIED = "provisioning_retried"
    # --- lifecycle ---
    ENDED = "ended"
    OFFBOARDING_FAILED = "offboarding_failed"
    OFFBOARDING_FAILED_ADMIN = "offboarding_failed_admin"
    EXTENDED = "extended"
    EXTENSION_REJECTED = "extension_rejected"  # the job's detail is the approver's reason
    INVITATION_RESENT = "invitation_resent"
    # --- administration ---
    EXTENDED_BY_ADMIN = "extended_by_admin"  # the job's detail is the admin's name
    # --- approvals ---
    CANCELLED = "cancelled"  # to the approver
    EXPIRED = "expired"  # to the requester and the approver
    APPROVAL_REMINDER = "approval_reminder"  # to the approver
    ESCALATED = "escalated"  # to the requester and the former approver; detail: new approver
    DELEGATED = "delegated"  # to the requester; detail: the new approver
    STAGE_APPROVED = "stage_approved"  # to the requester: stage 1 done, stage 2 next

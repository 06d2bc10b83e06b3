"""Ports: what the domain needs from the outside world, as Protocols that adapters implement.

Storage (storage/), Directory (graph/) and Notifier (bot/) are injected by app.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, Protocol

from core.model import (
    AuditRecord,
    Engagement,
    EngagementState,
    IntakeDraft,
    Job,
    MessageRef,
    NewJob,
    Notice,
    PolicySetting,
    Revision,
    SentCard,
    TeamInstallation,
    UserConversation,
    ViewerRole,
)

# --- Storage ---------------------------------------------------------------------------------


class EngagementRepository(Protocol):
    async def add(self, engagement: Engagement) -> Engagement:
        """Insert; returns the engagement with its id and version 1. A `submission_key` that
        another engagement has raises core.errors.DuplicateSubmission."""
        ...

    async def get(self, engagement_id: int) -> Engagement | None: ...

    async def get_by_submission_key(self, submission_key: str) -> Engagement | None: ...

    async def find_by_channel_name(
        self, team_id: str, channel_name: str, *, states: Sequence[EngagementState]
    ) -> Engagement | None:
        """An engagement in `team_id` in one of `states` whose channel name equals
        `channel_name` case-insensitively (Teams treats names so)."""
        ...

    async def update(self, engagement: Engagement) -> Engagement:
        """Compare-and-set on `engagement.version`: raise StaleVersion if the stored row has
        another version; otherwise store it and return it with the version incremented."""
        ...

    async def list_by_requester(
        self, requester_id: str, *, limit: int = 50
    ) -> Sequence[Engagement]:
        """Newest first."""
        ...

    async def list_by_state(
        self, states: Sequence[EngagementState], *, limit: int = 50
    ) -> Sequence[Engagement]:
        """Oldest first."""
        ...

    async def list_awaiting_approval_card(self, approver_id: str) -> Sequence[Engagement]:
        """Pending engagements routed to `approver_id` whose approval card was never sent."""
        ...

    async def list_for_guest(self, guest_user_id: str | None, email: str) -> Sequence[Engagement]:
        """Every engagement (any state) of this guest account or of this freelancer e-mail
        (case-insensitively), oldest first."""
        ...

    async def search(
        self, query: EngagementQuery, *, offset: int, limit: int
    ) -> Sequence[Engagement]:
        """One page of the engagements `query` selects, in its order (for admin lists)."""
        ...

    async def after(self, after_id: int, *, limit: int) -> Sequence[Engagement]:
        """Up to `limit` engagements with ids above `after_id`, by id (for exports)."""
        ...


@dataclass(frozen=True)
class EngagementQuery:
    """Which engagements an admin list shows. None: no condition."""

    states: frozenset[EngagementState] | None = None
    team_ids: frozenset[str] | None = None
    ends_on_or_after: date | None = None
    ends_on_or_before: date | None = None
    # newest: by id, newest first; ending: by end date, soonest first.
    order: Literal["newest", "ending"] = "newest"


class ConversationRepository(Protocol):
    async def save_user(self, conversation: UserConversation) -> None:
        """Insert or replace by aad_id."""
        ...

    async def get_user(self, aad_id: str) -> UserConversation | None: ...

    async def save_team(self, team: TeamInstallation) -> None:
        """Insert or replace by aad_group_id."""
        ...

    async def get_team(self, aad_group_id: str) -> TeamInstallation | None: ...

    async def get_team_by_thread(self, team_id: str) -> TeamInstallation | None: ...

    async def list_teams(self, tenant_id: str) -> Sequence[TeamInstallation]: ...


class AuditLog(Protocol):
    async def append(self, record: AuditRecord) -> None: ...

    async def list_for_engagement(self, engagement_id: int) -> Sequence[AuditRecord]:
        """Oldest first."""
        ...

    async def newest(
        self, *, engagement_id: int | None, offset: int, limit: int
    ) -> Sequence[AuditRecord]:
        """One page of the log, newest first: one engagement's records, or (None) all."""
        ...

    async def count_for_engagement(self, engagement_id: int) -> int: ...

    async def after(self, after_id: int, *, limit: int) -> Sequence[AuditRecord]:
        """Up to `limit` records with ids above `after_id`, by id (for exports)."""
        ...


@dataclass(frozen=True)
class DurationSummary:
    count: int
    median: timedelta | None  # None when count is 0
    rejected: int = 0  # decisions only


class ProgramFigures(Protocol):
    """The numbers the program report is made of; each query is served by an index."""

    async def count_by_state(self) -> dict[EngagementState, int]: ...

    async def count_jobs(self) -> dict[tuple[str, str], int]:
        """Jobs in the job table by (kind, status), for the metrics endpoint."""
        ...

    async def decision_times(self, since: datetime) -> DurationSummary:
        """Engagements decided at or after `since`: how many, the median time from request to
        decision, and how many were rejected."""
        ...

    async def provisioning_times(self, since: datetime) -> DurationSummary:
        """Engagements that became active at or after `since`: how many, and the median time
        from approval to active."""
        ...

    async def active_freelancers_by_team(self) -> Sequence[tuple[str, int]]:
        """(team name, distinct freelancer e-mails) over active engagements, most first."""
        ...

    async def count_active_ending(self, first: date, last: date) -> int:
        """Active engagements whose end date lies in [first, last]."""
        ...

    async def count_pending_created_before(self, before: datetime) -> int: ...


class HandledActivities(Protocol):
    """Which inbound activities were handled already (by any replica)."""

    async def claim(self, key: str, now: datetime) -> bool:
        """Record `key` as handled; False when it was recorded already."""
        ...

    async def release(self, key: str) -> None:
        """Forget `key` (its turn failed: a re-delivery should be handled)."""
        ...

    async def prune(self, before: datetime) -> int:
        """Forget keys handled before `before`; returns how many."""
        ...


class PolicyRepository(Protocol):
    """Tenant policy keys set by admins (keys not set fall back to the deployment's settings)."""

    async def get_all(self, tenant_id: str) -> Sequence[PolicySetting]:
        """Every key set for the tenant, by key."""
        ...

    async def put(self, tenant_id: str, setting: PolicySetting) -> None:
        """Insert or replace the tenant's value of `setting.key`."""
        ...

    async def remove(self, tenant_id: str, key: str) -> bool:
        """Forget the tenant's value of `key` (back to the default); False if it was not set."""
        ...


class DraftRepository(Protocol):
    """Unfinished intake forms, one per (tenant, user)."""

    async def get(self, tenant_id: str, user_id: str) -> IntakeDraft | None: ...

    async def save(self, draft: IntakeDraft) -> IntakeDraft:
        """Insert or replace the user's draft; returns it with the version incremented (1 for
        a new one). `draft.created_at` is kept from the stored draft when one exists."""
        ...

    async def delete(self, tenant_id: str, user_id: str) -> bool:
        """False if there was no draft."""
        ...

    async def prune(self, before: datetime) -> int:
        """Delete drafts last updated before `before`; returns how many."""
        ...


class CardRepository(Protocol):
    """The cards sent about each engagement (to update them when its state changes)."""

    async def add(self, card: SentCard) -> None:
        """Record a sent card; the same message recorded again is not a second card."""
        ...

    async def list_for_engagement(self, engagement_id: int) -> Sequence[SentCard]:
        """Oldest first."""
        ...


class RevisionRepository(Protocol):
    """The versions of a request and the comments that sent them back."""

    async def add(self, revision: Revision) -> None:
        """Insert; (engagement_id, number) is unique."""
        ...

    async def list_for_engagement(self, engagement_id: int) -> Sequence[Revision]:
        """By number."""
        ...


class JobQueue(Protocol):
    async def enqueue(self, job: NewJob) -> int:
        """Add a job in the caller's transaction; it becomes visible to workers on commit.
        With a `dedupe_key` that a queued job already has, add nothing and return that job's
        id (a queueing lock)."""
        ...


class Transaction(Protocol):
    """One database transaction. Rolled back unless `commit()` is called."""

    engagements: EngagementRepository
    conversations: ConversationRepository
    audit: AuditLog
    jobs: JobQueue
    figures: ProgramFigures
    activities: HandledActivities
    policies: PolicyRepository
    drafts: DraftRepository
    cards: CardRepository
    revisions: RevisionRepository

    async def commit(self) -> None: ...


class JobStore(Protocol):
    """The worker's view of the job table. Every call is its own transaction."""

    async def claim(
        self, *, worker_id: str, now: datetime, lease_seconds: float, limit: int
    ) -> Sequence[Job]:
        """Lease up to `limit` due jobs: queued ones whose run_at has come, and running ones
        whose lease expired (their worker died). Increments `attempts`. A job whose
        `dedupe_key` is held by another running job with a live lease is not due yet."""
        ...

    async def renew_lease(
        self, job_id: int, *, worker_id: str, now: datetime, lease_seconds: float
    ) -> bool:
        """False if the lease was lost (another worker took the job over)."""
        ...

    async def complete(self, job_id: int, *, worker_id: str, now: datetime) -> bool: ...

    async def retry(
        self, job_id: int, *, worker_id: str, run_at: datetime, error: str, now: datetime
    ) -> bool:
        """Back to queued, due at `run_at`; `error` is kept as last_error."""
        ...

    async def fail(self, job_id: int, *, worker_id: str, error: str, now: datetime) -> bool: ...

    async def get(self, job_id: int) -> Job | None: ...

    async def list_for_engagement(self, engagement_id: int) -> Sequence[Job]: ...


class Storage(Protocol):
    jobs: JobStore

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...


# --- Directory (Microsoft Graph) ----------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryUser:
    id: str
    display_name: str
    mail: str | None = None
    user_type: str = "Member"  # "Member" or "Guest"
    account_enabled: bool = True


@dataclass(frozen=True)
class GuestInvitation:
    invited_user_id: str
    redeem_url: str | None
    status: str


@dataclass(frozen=True)
class ChannelInfo:
    id: str
    display_name: str
    description: str | None
    membership_type: str


class Directory(Protocol):
    """Directory and Teams operations. Raises core.errors.DirectoryError subclasses:
    Throttled / TransientDirectoryError / NotYetReplicated to retry, PermanentDirectoryError
    (ChannelNameTaken for a duplicate name) when retrying cannot help."""

    async def get_user(self, user_id: str) -> DirectoryUser | None: ...

    async def get_manager(self, user_id: str) -> DirectoryUser | None: ...

    async def find_user_by_email(self, email: str) -> DirectoryUser | None:
        """By `mail` or `otherMails` (how an invited guest is found)."""
        ...

    async def invite_guest(
        self, *, email: str, display_name: str, redirect_url: str
    ) -> GuestInvitation: ...

    async def find_user_by_identifier(self, identifier: str) -> DirectoryUser | None:
        """A user by user principal name, object id or e-mail address (GET /users/{upn-or-id},
        then `mail eq`): how an admin names a person. None when nobody matches."""
        ...

    async def find_channel(self, team_id: str, display_name: str) -> ChannelInfo | None: ...

    async def list_channels(self, team_id: str) -> Sequence[ChannelInfo]:
        """Every channel of the team that Graph lists (standard, private and shared; app-only
        sees them all). Deleted channels are not listed, though they keep their names and
        count towards the private channel limit for 30 days."""
        ...

    async def create_private_channel(
        self, team_id: str, *, display_name: str, description: str, owner_id: str
    ) -> ChannelInfo: ...

    async def find_team_member(self, team_id: str, user_id: str) -> str | None:
        """The membership id, if the user is a member of the team."""
        ...

    async def add_team_member(self, team_id: str, user_id: str) -> str:
        """Returns the membership id."""
        ...

    async def find_channel_member(
        self, team_id: str, channel_id: str, user_id: str
    ) -> str | None: ...

    async def add_channel_member(self, team_id: str, channel_id: str, user_id: str) -> str: ...

    # --- lifecycle (offboarding, sponsors, invitation redemption) ---

    async def remove_team_member(self, team_id: str, membership_id: str) -> None:
        """DELETE the team membership; a membership that is already gone is not an error."""
        ...

    async def remove_channel_member(
        self, team_id: str, channel_id: str, membership_id: str
    ) -> None:
        """DELETE the private channel membership; already gone (or channel gone) is not an
        error."""
        ...

    async def set_account_enabled(self, user_id: str, enabled: bool) -> None:
        """PATCH accountEnabled. A user that no longer exists raises UserGone."""
        ...

    async def delete_user(self, user_id: str) -> None:
        """DELETE the user (soft delete, restorable for 30 days); already gone is not an
        error."""
        ...

    async def list_sponsor_ids(self, user_id: str) -> list[str]:
        """Ids of the user's sponsors (users or groups)."""
        ...

    async def add_sponsor(self, user_id: str, sponsor_id: str) -> None:
        """Record `sponsor_id` (a user) as a sponsor of `user_id`; already a sponsor is not an
        error."""
        ...

    async def get_invitation_state(self, user_id: str) -> str | None:
        """The guest's `externalUserState` (`PendingAcceptance`, `Accepted`), None when Graph
        reports none (members); UserGone when the user is gone."""
        ...

    async def resend_invitation(
        self, *, email: str, display_name: str, redirect_url: str
    ) -> GuestInvitation:
        """A new invitation e-mail to an existing guest (POST /invitations again)."""
        ...

    async def rename_channel(self, team_id: str, channel_id: str, display_name: str) -> None:
        """PATCH the channel's displayName. Raises ChannelNameTaken when the name is taken."""
        ...

    async def check_member_groups(self, user_id: str, group_ids: Sequence[str]) -> set[str]:
        """Which of `group_ids` (at most 20) the user is a member of, transitively
        (POST /users/{id}/checkMemberGroups). An unknown user is a member of none."""
        ...

    async def list_group_members(self, group_id: str, *, limit: int = 100) -> list[DirectoryUser]:
        """The enabled member users of an Entra group, nested groups included (GET
        /groups/{id}/transitiveMembers/microsoft.graph.user), at most `limit`. An unknown group
        has none."""
        ...


# --- Notifier (Teams, through the Bot Connector) -------------------------------------------------


class Notifier(Protocol):
    """Messages the bot sends outside a turn. Raises NoConversation when the user has no chat
    with the bot; TransientDeliveryError / PermanentDeliveryError when the connector fails."""

    async def send_approval_request(
        self, engagement: Engagement, approver_id: str | None = None
    ) -> MessageRef:
        """The approval card, in the personal chat of `approver_id` (a member of the
        second-stage group), or of the engagement's approver."""
        ...

    async def update_card(self, engagement: Engagement, card: SentCard, role: ViewerRole) -> None:
        """Re-render a sent card (updateActivity) as `role` sees the engagement now. A message
        that is gone raises PermanentDeliveryError."""
        ...

    async def send_changes_requested(self, engagement: Engagement) -> MessageRef:
        """The intake form, prefilled with the request, back in the requester's chat, with the
        approver's comment; its Submit resubmits the engagement."""
        ...

    async def send_notice(
        self, user_id: str, engagement: Engagement, notice: Notice, detail: str | None = None
    ) -> None:
        """A short card telling `user_id` what happened to the engagement (`detail`: a reason
        the engagement does not hold, such as an extension's rejection reason)."""
        ...

    async def send_end_reminder(self, engagement: Engagement) -> MessageRef:
        """The end reminder (Extend / End now / Let it end), in the requester's chat."""
        ...

    async def send_extension_request(self, engagement: Engagement) -> MessageRef:
        """The extension's approval card, in the approver's chat."""
        ...

    async def send_invitation_nudge(self, engagement: Engagement, days_pending: int) -> None:
        """Tell the requester the guest has not accepted the invitation (with Resend)."""
        ...

    async def post_closing_note(self, engagement: Engagement) -> MessageRef:
        """The closing note, as a new post in the engagement's channel."""
        ...

    async def post_welcome(self, engagement: Engagement) -> MessageRef:
        """The welcome card, as a new post in the engagement's channel."""
        ...

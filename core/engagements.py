"""Use cases that run inside a turn: installs, intake submission, decisions, lists.

None of them calls Graph or the Bot Connector: they change the database and enqueue jobs in the
same transaction (acknowledge fast, work durably).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from core import audit_actions as A
from core import texts
from core.admin_rights import AdminRights
from core.clock import Clock
from core.config import ProgramConfig
from core.errors import (
    InvalidTransition,
    NotAuthorised,
    NotFound,
    StaleVersion,
)
from core.model import (
    Actor,
    AuditOutcome,
    AuditRecord,
    Engagement,
    EngagementState,
    JobKind,
    NewJob,
    Notice,
    TeamInstallation,
    UserConversation,
    engagement_ref,
)
from core.ports import Storage, Transaction

T = TypeVar("T")

DECISION_ATTEMPTS = 5
# The memo is per process; replicas each re-check a user at most every SEEN_MEMO_TTL.
SEEN_MEMO_TTL = timedelta(minutes=10)
SEEN_MEMO_SIZE = 10_000
# An install re-routes at most this many waiting second stages (oldest first).
STAGE_TWO_REROUTE_LIMIT = 200


class EngagementService:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        config: ProgramConfig,
        *,
        rights: AdminRights | None = None,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._config = config
        self.rights = rights or AdminRights(config.admin_ids)
        # aad_id -> (what we last stored or found for them, when): skips unchanged users.
        self._seen: OrderedDict[str, tuple[UserConversation, datetime]] = OrderedDict()

    # --- installs ---------------------------------------------------------------------------

    async def record_user_install(self, conversation: UserConversation) -> int:
        """Remember the user's chat; re-route approvals that were waiting for this user, and
        the second stages of the user's tenant (the user may be in a review group; routing
        sends the card to members who do not have it yet). Returns how many routings were
        queued."""
        async with self._storage.transaction() as tx:
            await self._remember_user(tx, conversation)
            waiting = list(await tx.engagements.list_awaiting_approval_card(conversation.aad_id))
            pending = await tx.engagements.list_by_state(
                [EngagementState.PENDING_APPROVAL], limit=STAGE_TWO_REROUTE_LIMIT
            )
            waiting += [
                e
                for e in pending
                if e.approval_stage > 1
                and e.tenant_id == conversation.tenant_id
                and e not in waiting
            ]
            for engagement in waiting:
                await tx.jobs.enqueue(route_approval_job(engagement))
            await tx.commit()
        return len(waiting)

    async def record_user_seen(self, conversation: UserConversation) -> None:
        """Remember how to reach a user who wrote to the bot. This runs on every message, so a
        user seen unchanged recently costs no database round trip at all."""
        now = self._clock.now()
        recent = self._seen.get(conversation.aad_id)
        if recent is not None and recent[0] == conversation and now - recent[1] < SEEN_MEMO_TTL:
            return
        async with self._storage.transaction() as tx:
            if await self._remember_user(tx, conversation):
                await tx.commit()
        self._seen[conversation.aad_id] = (conversation, now)
        self._seen.move_to_end(conversation.aad_id)
        while len(self._seen) > SEEN_MEMO_SIZE:
            self._seen.popitem(last=False)

    async def _remember_user(self, tx: Transaction, conversation: UserConversation) -> bool:
        known = await tx.conversations.get_user(conversation.aad_id)
        if known is not None:
            # A channel message tells us less than the personal chat we already know of.
            if known.reference and not conversation.reference:
                return False
            if known == conversation:
                return False
        await tx.conversations.save_user(conversation)
        return True

    async def record_team_install(self, team: TeamInstallation) -> None:
        async with self._storage.transaction() as tx:
            await tx.conversations.save_team(team)
            await tx.commit()

    async def list_teams(self, tenant_id: str) -> Sequence[TeamInstallation]:
        async with self._storage.transaction() as tx:
            return await tx.conversations.list_teams(tenant_id)

    async def team_for_thread(self, team_thread_id: str) -> TeamInstallation | None:
        async with self._storage.transaction() as tx:
            return await tx.conversations.get_team_by_thread(team_thread_id)

    # --- reads ------------------------------------------------------------------------------

    async def get(self, engagement_id: int) -> Engagement:
        async with self._storage.transaction() as tx:
            return await self._get(tx, engagement_id)

    async def may_view(self, engagement: Engagement, actor: Actor, tenant_id: str) -> bool:
        """Only the people involved, and admins, of the engagement's own tenant see it."""
        if engagement.tenant_id != tenant_id:
            return False
        return is_involved(engagement, actor) or await self.rights.is_admin(actor.aad_id)

    async def view(self, engagement_id: int, actor: Actor, tenant_id: str) -> Engagement:
        """The engagement, for someone allowed to see it; NotFound otherwise (not even its
        existence is revealed to others)."""
        engagement = await self.get(engagement_id)
        if not await self.may_view(engagement, actor, tenant_id):
            async with self._storage.transaction() as tx:
                await self._audit(
                    tx, actor, A.VIEW_REFUSED, engagement_id, AuditOutcome.REFUSED, "not involved"
                )
                await tx.commit()
            raise NotFound(texts.ENGAGEMENT_NOT_FOUND.format(ref=engagement.ref))
        return engagement

    async def list_mine(self, actor: Actor, *, limit: int = 20) -> Sequence[Engagement]:
        async with self._storage.transaction() as tx:
            return await tx.engagements.list_by_requester(actor.aad_id, limit=limit)

    async def list_pending(self, actor: Actor, *, limit: int = 50) -> Sequence[Engagement]:
        """Admins only: raises NotAuthorised (and audits the refusal) for anyone else."""
        async with self._storage.transaction() as tx:
            if not await self.rights.is_admin(actor.aad_id):
                await self._audit(
                    tx,
                    actor,
                    A.COMMAND_PREFIX + "pending",
                    None,
                    AuditOutcome.REFUSED,
                    "not admin",
                )
                await tx.commit()
                raise NotAuthorised(texts.ADMIN_ONLY.format(command="/pending"))
            pending = await tx.engagements.list_by_state(
                [EngagementState.PENDING_APPROVAL], limit=limit
            )
            await self._audit(tx, actor, A.COMMAND_PREFIX + "pending", None)
            await tx.commit()
            return pending

    async def is_admin(self, actor: Actor) -> bool:
        return await self.rights.is_admin(actor.aad_id)

    # --- admin: retry -----------------------------------------------------------------------

    async def retry_provisioning(self, engagement_id: int, actor: Actor) -> Engagement:
        """Admins only: a `provisioning_failed` engagement goes back to `provisioning` and the
        job for its next step is queued. Steps are recorded as they finish, so the job starts
        with the step that failed and redoes nothing. Refusals are audited and raise
        NotAuthorised, NotFound or InvalidTransition; nothing changes then."""
        retried = await self._until_no_conflict(lambda: self._try_retry(engagement_id, actor))
        if retried is None:
            raise StaleVersion(texts.DECISION_BUSY.format(ref=engagement_ref(engagement_id)))
        return retried

    async def _try_retry(self, engagement_id: int, actor: Actor) -> Engagement:
        action = A.COMMAND_PREFIX + "retry"
        async with self._storage.transaction() as tx:
            if not await self.rights.is_admin(actor.aad_id):
                await self._audit(
                    tx, actor, action, engagement_id, AuditOutcome.REFUSED, "not admin"
                )
                await tx.commit()
                raise NotAuthorised(texts.ADMIN_ONLY.format(command="/retry"))
            engagement = await tx.engagements.get(engagement_id)
            if engagement is None:
                await self._audit(
                    tx, actor, action, engagement_id, AuditOutcome.REFUSED, "not found"
                )
                await tx.commit()
                ref = engagement_ref(engagement_id)
                raise NotFound(texts.ENGAGEMENT_NOT_FOUND.format(ref=ref))
            if engagement.state not in (
                EngagementState.PROVISIONING_FAILED,
                EngagementState.OFFBOARDING_FAILED,
            ):
                await self._audit(
                    tx,
                    actor,
                    action,
                    engagement_id,
                    AuditOutcome.REFUSED,
                    f"state {engagement.state.value}",
                )
                await tx.commit()
                raise InvalidTransition(
                    texts.RETRY_NOT_FAILED_ANY.format(
                        ref=engagement.ref, state=texts.STATE_LABELS[engagement.state.value]
                    )
                )
            previous = engagement.failure_reason or ""
            offboarding = engagement.state is EngagementState.OFFBOARDING_FAILED
            engagement.transition(
                EngagementState.OFFBOARDING if offboarding else EngagementState.PROVISIONING,
                self._clock.now(),
            )
            engagement.failure_reason = None
            engagement = await tx.engagements.update(engagement)  # compare-and-set
            if offboarding:
                await tx.jobs.enqueue(offboard_job(engagement))
            else:
                await tx.jobs.enqueue(provision_job(engagement))
                await enqueue_notice(
                    tx, engagement, engagement.requester_id, Notice.PROVISIONING_RETRIED
                )
            await self._audit(
                tx,
                actor,
                A.OFFBOARDING_RETRIED if offboarding else A.PROVISIONING_RETRIED,
                engagement_id,
                detail=previous[:500],
            )
            await tx.commit()
            return engagement

    # --- helpers ----------------------------------------------------------------------------

    async def _until_no_conflict(self, attempt: Callable[[], Awaitable[T]]) -> T | None:
        """Run `attempt` (one transaction ending in a compare-and-set) again while it loses to
        a concurrent write, re-reading each time; None if it kept losing."""
        for _ in range(DECISION_ATTEMPTS):
            try:
                return await attempt()
            except StaleVersion:
                continue
        return None

    async def _get(self, tx: Transaction, engagement_id: int) -> Engagement:
        engagement = await tx.engagements.get(engagement_id)
        if engagement is None:
            raise NotFound(texts.ENGAGEMENT_NOT_FOUND.format(ref=engagement_ref(engagement_id)))
        return engagement

    async def _audit(
        self,
        tx: Transaction,
        actor: Actor,
        action: str,
        engagement_id: int | None,
        outcome: AuditOutcome = AuditOutcome.OK,
        detail: str = "",
    ) -> None:
        await append_audit(tx, self._clock.now(), actor, action, engagement_id, outcome, detail)


def route_approval_job(engagement: Engagement) -> NewJob:
    return NewJob(JobKind.ROUTE_APPROVAL, engagement.id, dedupe_key=f"route:{engagement.id}")


def provision_job(engagement: Engagement) -> NewJob:
    # One queued or running step per engagement: two workers never run steps side by side.
    return NewJob(JobKind.PROVISION, engagement.id, dedupe_key=f"provision:{engagement.id}")


async def append_audit(
    tx: Transaction,
    at: datetime,
    actor: Actor,
    action: str,
    engagement_id: int | None,
    outcome: AuditOutcome = AuditOutcome.OK,
    detail: str = "",
) -> None:
    """One audit record in the caller's transaction: who did what to which engagement."""
    await tx.audit.append(
        AuditRecord(
            at=at,
            actor_id=actor.aad_id,
            actor_name=actor.name,
            action=action,
            outcome=outcome,
            engagement_id=engagement_id,
            detail=detail,
        )
    )


SYSTEM_ACTOR = Actor(A.SYSTEM_ACTOR_ID, A.SYSTEM_ACTOR_NAME)


async def notify_requester_and_approver(
    tx: Transaction, engagement: Engagement, notice: Notice
) -> None:
    """Queue `notice` for the requester, and for the approver when that is someone else."""
    await enqueue_notice(tx, engagement, engagement.requester_id, notice)
    if engagement.approver_id and engagement.approver_id != engagement.requester_id:
        await enqueue_notice(tx, engagement, engagement.approver_id, notice)


async def notify_failure(
    tx: Transaction,
    engagement: Engagement,
    admin_ids: frozenset[str],
    *,
    requester_notice: Notice,
    admin_notice: Notice,
) -> None:
    """Background work failed for good: the requester is told, and every admin with the reason
    and the /retry to use."""
    await enqueue_notice(tx, engagement, engagement.requester_id, requester_notice)
    for admin_id in sorted(admin_ids):
        await enqueue_notice(tx, engagement, admin_id, admin_notice)


def offboard_job(engagement: Engagement) -> NewJob:
    # One queued or running offboarding step per engagement, like provisioning.
    return NewJob(JobKind.OFFBOARD, engagement.id, dedupe_key=f"offboard:{engagement.id}")


def is_involved(engagement: Engagement, actor: Actor) -> bool:
    """The requester, the approver, or whoever decided."""
    return actor.aad_id in {
        engagement.requester_id,
        engagement.approver_id,
        engagement.decided_by_id,
    }


async def enqueue_notice(
    tx: Transaction,
    engagement: Engagement,
    user_id: str,
    notice: Notice,
    *,
    detail: str | None = None,
) -> None:
    """Queue a notice for `user_id` in the caller's transaction. `detail`: what the notice says
    that the engagement does not record (an extension's rejection reason)."""
    payload: dict[str, str] = {"user_id": user_id, "notice": notice.value}
    if detail is not None:
        payload["detail"] = detail
    await tx.jobs.enqueue(NewJob(JobKind.NOTIFY, engagement.id, payload))

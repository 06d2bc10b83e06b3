"""The engagement's life after provisioning: reminders before the end date, extension through
approval, ending (at the end date, by /revoke or "End now") and offboarding step by step, and
nudges for invitations the guest has not accepted.

`LifecycleService` holds the use cases a turn runs (database only, jobs enqueued in the same
transaction); `LifecycleHandlers` the ones the worker runs (Graph and messages). Offboarding
follows the provisioning engine's rules: each step looks for its own earlier result, records
what it did with its audit record and the job for the next step in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NoReturn, TypeVar

from core import audit_actions as A
from core import texts
from core.admin_rights import AdminRights
from core.clock import Clock
from core.config import ProgramConfig
from core.engagements import (
    SYSTEM_ACTOR,
    append_audit,
    enqueue_notice,
    notify_failure,
    notify_requester_and_approver,
    offboard_job,
)
from core.errors import (
    ChannelNameTaken,
    DomainError,
    InvalidInput,
    InvalidTransition,
    NoConversation,
    NotAuthorised,
    NotFound,
    PermanentDeliveryError,
    PermanentDirectoryError,
    StaleVersion,
    UserGone,
)
from core.model import (
    ACCESS_NEEDING_STATES,
    Actor,
    AuditOutcome,
    Engagement,
    EngagementState,
    Job,
    JobKind,
    NewJob,
    Notice,
    OffboardingStep,
    engagement_ref,
)
from core.policy import policy_in
from core.ports import Directory, Notifier, Storage, Transaction

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_REASON_LENGTH = 500
CHANGE_ATTEMPTS = 5
INVITATION_PENDING = "pendingacceptance"
# An engagement still being set up at its end date is looked at again this much later.
END_WHILE_PROVISIONING_DELAY = timedelta(hours=1)
# Teams channel names: at most 50 characters, and none may end with a dot.
CHANNEL_NAME_MAX = 50


# --- jobs --------------------------------------------------------------------------------------


def end_job(engagement: Engagement, config: ProgramConfig) -> NewJob:
    """Ends the engagement at its end date. Keyed by the end date: an extension queues a new
    one, and the old one finds the date changed and does nothing."""
    end = engagement.end_date.isoformat()
    return NewJob(
        JobKind.END_AT_DATE,
        engagement.id,
        {"end_date": end},
        run_at=config.end_instant(engagement.end_date, engagement.time_zone),
        dedupe_key=f"end:{engagement.id}:{end}",
    )


def reminder_jobs(engagement: Engagement, config: ProgramConfig, now: datetime) -> list[NewJob]:
    end = engagement.end_date.isoformat()
    jobs = []
    for days in sorted(set(config.end_reminder_days), reverse=True):
        at = config.reminder_instant(engagement.end_date, days, engagement.time_zone)
        if days > 0 and at > now:
            jobs.append(
                NewJob(
                    JobKind.END_REMINDER,
                    engagement.id,
                    {"end_date": end, "days_before": days},
                    run_at=at,
                    dedupe_key=f"remind:{engagement.id}:{end}:{days}",
                )
            )
    return jobs


def invitation_check_job(engagement: Engagement, config: ProgramConfig, now: datetime) -> NewJob:
    return NewJob(
        JobKind.CHECK_INVITATION,
        engagement.id,
        run_at=now + timedelta(days=config.invitation_nudge_days),
        dedupe_key=f"invitation:{engagement.id}",
    )


async def schedule_end(
    tx: Transaction, engagement: Engagement, config: ProgramConfig, now: datetime
) -> None:
    """Queue the reminders and the end of an engagement that just became active (or was
    extended), in the caller's transaction."""
    for job in reminder_jobs(engagement, config, now):
        await tx.jobs.enqueue(job)
    await tx.jobs.enqueue(end_job(engagement, config))


def ended_channel_name(prefix: str, name: str) -> str:
    if name.startswith(prefix):
        return name
    return (prefix + name)[:CHANNEL_NAME_MAX].rstrip(". ")


def _others_needing(engagement: Engagement, related: Sequence[Engagement]) -> list[Engagement]:
    return [o for o in related if o.id != engagement.id and o.state in ACCESS_NEEDING_STATES]


# --- turn use cases -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtensionOutcome:
    engagement: Engagement
    message: str
    changed: bool


class LifecycleService:
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
        self._rights = rights or AdminRights(config.admin_ids)

    # --- ending early -----------------------------------------------------------------------

    async def check_revoke(self, engagement_id: int, actor: Actor, reason: str) -> Engagement:
        """What /revoke and "End now" show on their confirmation card: the engagement, if the
        actor may end it now. Refusals are audited and raised; nothing changes either way."""
        async with self._storage.transaction() as tx:
            return await self._endable(tx, engagement_id, actor, reason)

    async def revoke(self, engagement_id: int, actor: Actor, reason: str) -> Engagement:
        """End the engagement now: offboarding starts in the background. Only the requester or
        an admin, only while active (or failed to set up, to remove what was made)."""
        for _ in range(CHANGE_ATTEMPTS):
            try:
                return await self._try_revoke(engagement_id, actor, reason)
            except StaleVersion:
                continue
        raise StaleVersion(texts.DECISION_BUSY.format(ref=engagement_ref(engagement_id)))

    async def _try_revoke(self, engagement_id: int, actor: Actor, reason: str) -> Engagement:
        now = self._clock.now()
        async with self._storage.transaction() as tx:
            engagement = await self._endable(tx, engagement_id, actor, reason)
            engagement = await begin_offboarding(
                tx, engagement, reason.strip(), actor=actor, now=now
            )
            await tx.commit()
        return engagement

    async def _endable(
        self, tx: Transaction, engagement_id: int, actor: Actor, reason: str
    ) -> Engagement:
        """The engagement if `actor` may end it now; otherwise the refusal is audited (and
        committed: the caller's transaction then holds nothing else) and raised."""
        action = A.COMMAND_PREFIX + "revoke"

        async def refuse(detail: str, error: DomainError) -> NoReturn:
            await self._refuse(tx, actor, action, engagement_id, detail)
            await tx.commit()
            raise error

        engagement = await tx.engagements.get(engagement_id)
        if engagement is None:
            ref = engagement_ref(engagement_id)
            await refuse("not found", NotFound(texts.ENGAGEMENT_NOT_FOUND.format(ref=ref)))
        assert engagement is not None
        ref = engagement.ref
        if actor.aad_id != engagement.requester_id and not await self._is_admin(actor):
            await refuse(
                "not requester or admin", NotAuthorised(texts.NOT_YOURS_TO_END.format(ref=ref))
            )
        if engagement.state is EngagementState.PROVISIONING:
            await refuse(
                "still provisioning",
                InvalidTransition(texts.CANNOT_END_WHILE_PROVISIONING.format(ref=ref)),
            )
        if engagement.state not in (
            EngagementState.ACTIVE,
            EngagementState.PROVISIONING_FAILED,
        ):
            label = texts.STATE_LABELS[engagement.state.value]
            await refuse(
                f"state {engagement.state.value}",
                InvalidTransition(texts.CANNOT_END_IN_STATE.format(ref=ref, state=label)),
            )
        if not reason.strip():
            raise InvalidInput(texts.REVOKE_USAGE)
        if len(reason.strip()) > MAX_REASON_LENGTH:
            raise InvalidInput(texts.REVOKE_REASON_TOO_LONG.format(max=MAX_REASON_LENGTH))
        return engagement

    async def let_it_end(self, engagement_id: int, actor: Actor) -> Engagement:
        """The requester's answer to a reminder: no more reminders, the end date stands."""

        async def attempt() -> Engagement:
            async with self._storage.transaction() as tx:
                engagement = await self._requester_active(tx, engagement_id, actor, "let_it_end")
                if not engagement.let_it_end:
                    engagement.let_it_end = True
                    engagement = await tx.engagements.update(engagement)
                    await self._audit(tx, actor, A.LET_IT_END, engagement_id)
                    await tx.commit()
                return engagement

        return await self._until_no_conflict(engagement_id, attempt)

    # --- extension --------------------------------------------------------------------------

    async def request_extension(
        self, engagement_id: int, actor: Actor, new_end: str
    ) -> Engagement:
        """The requester asks for a later end date; the approver gets a card to decide. Access
        continues until the current end date in the meantime."""
        now = self._clock.now()

        async def attempt() -> Engagement:
            async with self._storage.transaction() as tx:
                engagement = await self._requester_active(tx, engagement_id, actor, "extend")
                if engagement.extension_end_date is not None:
                    raise InvalidTransition(
                        texts.EXTENSION_ALREADY_PENDING.format(
                            ref=engagement.ref,
                            date=engagement.extension_end_date.isoformat(),
                            approver=engagement.approver_name or texts.UNKNOWN_APPROVER,
                        )
                    )
                if engagement.approver_id is None:
                    raise InvalidTransition(texts.EXTENSION_NO_APPROVER.format(ref=engagement.ref))
                wanted = await self._extension_date(tx, engagement, new_end, now)
                engagement.extension_end_date = wanted
                engagement = await tx.engagements.update(engagement)
                await tx.jobs.enqueue(
                    NewJob(
                        JobKind.ROUTE_EXTENSION,
                        engagement.id,
                        {"end_date": wanted.isoformat()},
                        dedupe_key=f"extension:{engagement.id}:{wanted.isoformat()}",
                    )
                )
                await self._audit(
                    tx, actor, A.EXTENSION_REQUESTED, engagement_id, detail=wanted.isoformat()
                )
                await tx.commit()
                return engagement

        return await self._until_no_conflict(engagement_id, attempt)

    async def _extension_date(
        self, tx: Transaction, engagement: Engagement, value: str, now: datetime
    ) -> date:
        """The new end date asked for, checked against the tenant's policy in force now."""
        value = value.strip()
        if not value:
            raise InvalidInput(texts.EXTENSION_DATE_REQUIRED)
        try:
            wanted = date.fromisoformat(value[:10])
        except ValueError:
            raise InvalidInput(texts.EXTENSION_DATE_REQUIRED) from None
        if wanted <= engagement.end_date:
            raise InvalidInput(
                texts.EXTENSION_NOT_LATER.format(end=engagement.end_date.isoformat())
            )
        if wanted < now.astimezone(self._config.zone(engagement.time_zone)).date():
            raise InvalidInput(texts.EXTENSION_PAST)
        max_days = (await policy_in(tx, engagement.tenant_id, self._config)).max_engagement_days
        latest = engagement.start_date + timedelta(days=max_days)
        if wanted > latest:
            raise InvalidInput(
                texts.EXTENSION_TOO_LONG.format(days=max_days, latest=latest.isoformat())
            )
        return wanted

    async def decide_extension(
        self, engagement_id: int, actor: Actor, *, approve: bool, reason: str = ""
    ) -> ExtensionOutcome:
        """The approver decides on a waiting extension. Compare-and-set: of two clicks, one
        decides and the other is told there is nothing waiting any more."""
        reason = reason.strip()

        async def attempt() -> ExtensionOutcome:
            now = self._clock.now()
            async with self._storage.transaction() as tx:
                engagement = await self._get(tx, engagement_id)
                refusal = self._extension_refusal(engagement, actor)
                if refusal is not None:
                    await self._refuse(tx, actor, A.LIFECYCLE_REFUSED, engagement_id, refusal)
                    await tx.commit()
                    return ExtensionOutcome(engagement, refusal, changed=False)
                if not approve and not reason:
                    return ExtensionOutcome(engagement, texts.REJECT_REASON_REQUIRED, False)
                if len(reason) > MAX_REASON_LENGTH:
                    message = texts.REJECT_REASON_TOO_LONG.format(max=MAX_REASON_LENGTH)
                    return ExtensionOutcome(engagement, message, False)
                wanted = engagement.extension_end_date
                assert wanted is not None
                engagement.extension_end_date = None
                values = {"ref": engagement.ref, "requester": engagement.requester_name}
                if approve:
                    engagement.end_date = wanted
                    engagement.let_it_end = False
                    engagement.updated_at = now
                    engagement = await tx.engagements.update(engagement)
                    await schedule_end(tx, engagement, self._config, now)
                    await enqueue_notice(tx, engagement, engagement.requester_id, Notice.EXTENDED)
                    await self._audit(
                        tx, actor, A.EXTENSION_APPROVED, engagement_id, detail=wanted.isoformat()
                    )
                    message = texts.EXTENSION_APPROVED_REPLY.format(
                        **values, end=wanted.isoformat()
                    )
                else:
                    engagement = await tx.engagements.update(engagement)
                    await enqueue_notice(
                        tx,
                        engagement,
                        engagement.requester_id,
                        Notice.EXTENSION_REJECTED,
                        detail=reason,
                    )
                    await self._audit(
                        tx,
                        actor,
                        A.EXTENSION_REJECTED,
                        engagement_id,
                        detail=f"{wanted.isoformat()}: {reason}",
                    )
                    message = texts.EXTENSION_REJECTED_REPLY.format(**values)
                await tx.commit()
                return ExtensionOutcome(engagement, message, changed=True)

        return await self._until_no_conflict(engagement_id, attempt)

    async def extend_by_admin(
        self, engagement_id: int, actor: Actor, new_end: str
    ) -> tuple[Engagement, date]:
        """An admin moves an active engagement's end date later, at once (no approval). The
        same date rules as a requested extension; a request still waiting is superseded.
        The caller checks admin rights."""

        async def attempt() -> tuple[Engagement, date]:
            now = self._clock.now()
            async with self._storage.transaction() as tx:
                found = await tx.engagements.get(engagement_id)
                if found is None:
                    await self._refuse(
                        tx, actor, A.LIFECYCLE_REFUSED, engagement_id, "extend: not found"
                    )
                    await tx.commit()
                    ref = engagement_ref(engagement_id)
                    raise NotFound(texts.ENGAGEMENT_NOT_FOUND.format(ref=ref))
                engagement = found
                if engagement.state is not EngagementState.ACTIVE:
                    label = texts.STATE_LABELS[engagement.state.value]
                    await self._refuse(
                        tx,
                        actor,
                        A.LIFECYCLE_REFUSED,
                        engagement_id,
                        f"extend: state {engagement.state.value}",
                    )
                    await tx.commit()
                    message = texts.NOT_ACTIVE.format(ref=engagement.ref, state=label)
                    raise InvalidTransition(message)
                wanted = await self._extension_date(tx, engagement, new_end, now)
                previous = engagement.end_date
                superseded = engagement.extension_end_date
                engagement.end_date = wanted
                engagement.extension_end_date = None
                engagement.let_it_end = False
                engagement.updated_at = now
                engagement = await tx.engagements.update(engagement)
                await schedule_end(tx, engagement, self._config, now)
                for user_id in dict.fromkeys(
                    user for user in (engagement.requester_id, engagement.approver_id) if user
                ):
                    await enqueue_notice(
                        tx, engagement, user_id, Notice.EXTENDED_BY_ADMIN, detail=actor.name
                    )
                detail = f"{previous.isoformat()} -> {wanted.isoformat()}"
                if superseded is not None:
                    detail += f"; supersedes the request for {superseded.isoformat()}"
                await self._audit(tx, actor, A.EXTENDED_BY_ADMIN, engagement_id, detail=detail)
                await tx.commit()
                return engagement, previous

        return await self._until_no_conflict(engagement_id, attempt)

    def _extension_refusal(self, engagement: Engagement, actor: Actor) -> str | None:
        if engagement.state is not EngagementState.ACTIVE or engagement.extension_end_date is None:
            return texts.EXTENSION_NOT_PENDING.format(ref=engagement.ref)
        if actor.aad_id != engagement.approver_id:
            return texts.EXTENSION_NOT_YOUR_DECISION.format(
                approver=engagement.approver_name or texts.UNKNOWN_APPROVER, ref=engagement.ref
            )
        return None

    # --- invitations ------------------------------------------------------------------------

    async def request_resend(self, engagement_id: int, actor: Actor) -> Engagement:
        """Queue a new invitation e-mail to the guest (requester or admin, while active)."""
        async with self._storage.transaction() as tx:
            engagement = await self._get(tx, engagement_id)
            if actor.aad_id != engagement.requester_id and not await self._is_admin(actor):
                await self._refuse(
                    tx, actor, A.LIFECYCLE_REFUSED, engagement_id, "resend: not requester"
                )
                await tx.commit()
                raise NotAuthorised(
                    texts.ONLY_REQUESTER.format(
                        requester=engagement.requester_name, ref=engagement.ref
                    )
                )
            if engagement.state is not EngagementState.ACTIVE:
                raise InvalidTransition(
                    texts.NOT_ACTIVE.format(
                        ref=engagement.ref, state=texts.STATE_LABELS[engagement.state.value]
                    )
                )
            await tx.jobs.enqueue(
                NewJob(
                    JobKind.RESEND_INVITATION,
                    engagement.id,
                    {"user_id": actor.aad_id},
                    dedupe_key=f"resend:{engagement.id}",
                )
            )
            await self._audit(tx, actor, A.INVITATION_RESEND_REQUESTED, engagement_id)
            await tx.commit()
            return engagement

    # --- helpers ----------------------------------------------------------------------------

    async def _requester_active(
        self, tx: Transaction, engagement_id: int, actor: Actor, what: str
    ) -> Engagement:
        engagement = await self._get(tx, engagement_id)
        if actor.aad_id != engagement.requester_id:
            await self._refuse(
                tx, actor, A.LIFECYCLE_REFUSED, engagement_id, f"{what}: not requester"
            )
            await tx.commit()
            raise NotAuthorised(
                texts.ONLY_REQUESTER.format(
                    requester=engagement.requester_name, ref=engagement.ref
                )
            )
        if engagement.state is not EngagementState.ACTIVE:
            raise InvalidTransition(
                texts.NOT_ACTIVE.format(
                    ref=engagement.ref, state=texts.STATE_LABELS[engagement.state.value]
                )
            )
        return engagement

    async def _is_admin(self, actor: Actor) -> bool:
        return await self._rights.is_admin(actor.aad_id)

    async def _until_no_conflict(
        self, engagement_id: int, attempt: Callable[[], Awaitable[T]]
    ) -> T:
        for _ in range(CHANGE_ATTEMPTS):
            try:
                return await attempt()
            except StaleVersion:
                continue
        raise StaleVersion(texts.DECISION_BUSY.format(ref=engagement_ref(engagement_id)))

    async def _get(self, tx: Transaction, engagement_id: int) -> Engagement:
        engagement = await tx.engagements.get(engagement_id)
        if engagement is None:
            raise NotFound(texts.ENGAGEMENT_NOT_FOUND.format(ref=engagement_ref(engagement_id)))
        return engagement

    async def _refuse(
        self, tx: Transaction, actor: Actor, action: str, engagement_id: int, detail: str
    ) -> None:
        await self._audit(tx, actor, action, engagement_id, AuditOutcome.REFUSED, detail)

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


async def begin_offboarding(
    tx: Transaction,
    engagement: Engagement,
    reason: str,
    *,
    actor: Actor | None,
    now: datetime,
) -> Engagement:
    """Move an engagement to `offboarding` and queue its first step, in the caller's
    transaction. A waiting extension is dropped (the requester hears why in the end notice)."""
    engagement.transition(EngagementState.OFFBOARDING, now)
    engagement.end_reason = reason
    engagement.ended_by_id = actor.aad_id if actor else None
    engagement.ended_by_name = actor.name if actor else None
    dropped = engagement.extension_end_date
    engagement.extension_end_date = None
    engagement.failure_reason = None
    engagement = await tx.engagements.update(engagement)  # compare-and-set
    await tx.jobs.enqueue(offboard_job(engagement))
    who = actor or SYSTEM_ACTOR
    await append_audit(tx, now, who, A.OFFBOARDING_STARTED, engagement.id, detail=reason)
    if dropped is not None:
        detail = f"extension to {dropped.isoformat()} was still waiting"
        await append_audit(tx, now, who, A.EXTENSION_DROPPED, engagement.id, detail=detail)
    return engagement


# --- worker use cases ---------------------------------------------------------------------------


class LifecycleHandlers:
    """The lifecycle's jobs, called by core.provisioning.JobHandlers."""

    def __init__(
        self,
        storage: Storage,
        directory: Directory,
        notifier: Notifier,
        clock: Clock,
        config: ProgramConfig,
    ) -> None:
        self._storage = storage
        self._directory = directory
        self._notifier = notifier
        self._clock = clock
        self._config = config

    async def run(self, job: Job, engagement_id: int) -> None:
        match job.kind:
            case JobKind.END_REMINDER:
                await self.send_end_reminder(engagement_id, str(job.payload["end_date"]))
            case JobKind.END_AT_DATE:
                await self.end_at_date(engagement_id, str(job.payload["end_date"]))
            case JobKind.OFFBOARD:
                await self.offboard(engagement_id)
            case JobKind.ROUTE_EXTENSION:
                await self.route_extension(engagement_id, str(job.payload["end_date"]))
            case JobKind.CHECK_INVITATION:
                await self.check_invitation(engagement_id)
            case JobKind.RESEND_INVITATION:
                await self.resend_invitation(engagement_id, str(job.payload["user_id"]))
            case JobKind.DELETE_GUEST:
                await self.delete_guest(
                    engagement_id, str(job.payload["guest_user_id"]), str(job.payload["email"])
                )
            case _:
                raise ValueError(f"not a lifecycle job: {job.kind}")

    # --- reminders and the end date ---------------------------------------------------------

    async def send_end_reminder(self, engagement_id: int, end_date: str) -> None:
        engagement = await self._load(engagement_id)
        if (
            engagement.state is not EngagementState.ACTIVE
            or engagement.end_date.isoformat() != end_date
            or engagement.let_it_end
            or engagement.extension_end_date is not None
        ):
            return  # ended, extended or answered since this reminder was planned
        try:
            await self._notifier.send_end_reminder(engagement)
        except NoConversation:
            await self._audit_system(
                A.NOTICE_UNDELIVERABLE,
                engagement_id,
                AuditOutcome.FAILED,
                f"end reminder: no chat with {engagement.requester_id}",
            )
            return
        await self._audit_system(A.END_REMINDER_SENT, engagement_id, detail=end_date)

    async def end_at_date(self, engagement_id: int, end_date: str) -> None:
        now = self._clock.now()
        async with self._storage.transaction() as tx:
            engagement = await self._reload(tx, engagement_id)
            if engagement.end_date.isoformat() != end_date:
                return  # extended: the job for the new date ends it
            if engagement.state is EngagementState.PROVISIONING:
                await tx.jobs.enqueue(
                    NewJob(
                        JobKind.END_AT_DATE,
                        engagement_id,
                        {"end_date": end_date},
                        run_at=now + END_WHILE_PROVISIONING_DELAY,
                        dedupe_key=f"end:{engagement_id}:{end_date}",
                    )
                )
                await tx.commit()
                return
            if engagement.state not in (
                EngagementState.ACTIVE,
                EngagementState.PROVISIONING_FAILED,
            ):
                return
            await begin_offboarding(tx, engagement, texts.END_DATE_REACHED, actor=None, now=now)
            await tx.commit()

    # --- offboarding ------------------------------------------------------------------------

    async def offboard(self, engagement_id: int) -> None:
        """Run the next offboarding step (one per job, like provisioning)."""
        engagement = await self._load(engagement_id)
        if engagement.state is not EngagementState.OFFBOARDING:
            return
        for step in OffboardingStep:
            if step not in engagement.offboarding_done:
                await self._run_step(engagement, step)
                return
        await self._finish(engagement)

    async def _run_step(self, engagement: Engagement, step: OffboardingStep) -> None:
        match step:
            case OffboardingStep.CHANNEL_MEMBER_REMOVED:
                await self._remove_from_channel(engagement)
            case OffboardingStep.TEAM_MEMBER_REMOVED:
                await self._remove_from_team(engagement)
            case OffboardingStep.ACCOUNT_DISABLED:
                await self._disable_account(engagement)
            case OffboardingStep.CLOSING_NOTE_POSTED:
                await self._post_closing_note(engagement)
            case OffboardingStep.CHANNEL_RENAMED:
                await self._rename_channel(engagement)

    async def _remove_from_channel(self, engagement: Engagement) -> None:
        step = OffboardingStep.CHANNEL_MEMBER_REMOVED
        team, channel, guest = engagement.team_id, engagement.channel_id, engagement.guest_user_id
        if channel is None or guest is None:
            await self._record(engagement, step, None)
            return
        membership = await self._directory.find_channel_member(team, channel, guest)
        if membership is not None:
            await self._directory.remove_channel_member(team, channel, membership)
        await self._record(
            engagement, step, A.GRAPH_CHANNEL_MEMBER_REMOVED, detail=f"channel {channel}"
        )

    async def _remove_from_team(self, engagement: Engagement) -> None:
        step = OffboardingStep.TEAM_MEMBER_REMOVED
        guest = engagement.guest_user_id
        if guest is None or engagement.team_membership_id is None:
            await self._record(engagement, step, None)  # provisioning never got that far
            return
        others = [
            o
            for o in _others_needing(engagement, await self._related(engagement))
            if o.team_id == engagement.team_id
        ]
        if others:
            refs = ", ".join(o.ref for o in others)
            await self._record(
                engagement, step, A.GRAPH_TEAM_MEMBER_KEPT, detail=f"still needed by {refs}"
            )
            return
        membership = await self._directory.find_team_member(engagement.team_id, guest)
        if membership is not None:
            await self._directory.remove_team_member(engagement.team_id, membership)
        await self._record(
            engagement, step, A.GRAPH_TEAM_MEMBER_REMOVED, detail=f"team {engagement.team_id}"
        )

    async def _disable_account(self, engagement: Engagement) -> None:
        step = OffboardingStep.ACCOUNT_DISABLED
        guest = engagement.guest_user_id
        if guest is None or not self._config.disable_guests:
            await self._record(engagement, step, None)
            return
        related = await self._related(engagement)
        others = _others_needing(engagement, related)
        if others:
            refs = ", ".join(o.ref for o in others)
            await self._record(
                engagement, step, A.GRAPH_GUEST_KEPT, detail=f"still needed by {refs}"
            )
            return
        if not any(o.guest_user_id == guest and not o.guest_reused for o in related):
            # The account was there before the program: other access may depend on it.
            await self._record(
                engagement,
                step,
                A.GRAPH_GUEST_KEPT,
                detail="the account was not invited by Freelance Connector",
            )
            return
        account = await self._directory.get_user(guest)
        if account is None:
            await self._record(engagement, step, A.GRAPH_GUEST_DISABLED, detail="already gone")
            return
        if account.account_enabled:
            # Looked up first so a rerun after a crash does not write the same change twice.
            try:
                await self._directory.set_account_enabled(guest, False)
            except UserGone:
                await self._record(engagement, step, A.GRAPH_GUEST_DISABLED, detail="already gone")
                return
        delete = None
        if self._config.guest_delete_after_days > 0:
            delete = NewJob(
                JobKind.DELETE_GUEST,
                engagement.id,
                {"guest_user_id": guest, "email": engagement.freelancer_email},
                run_at=self._clock.now() + timedelta(days=self._config.guest_delete_after_days),
                dedupe_key=f"delete-guest:{guest}",
            )
        await self._record(
            engagement, step, A.GRAPH_GUEST_DISABLED, detail=f"user {guest}", also=delete
        )

    async def _post_closing_note(self, engagement: Engagement) -> None:
        step = OffboardingStep.CLOSING_NOTE_POSTED
        # Only where the welcome went out: the channel exists and the bot can post there.
        if engagement.channel_id is None or not engagement.welcome_message_id:
            await self._record(engagement, step, None)
            return
        try:
            await self._notifier.post_closing_note(engagement)
        except (PermanentDeliveryError, NoConversation) as refused:
            await self._record(
                engagement, step, A.CLOSING_NOTE_POSTED, AuditOutcome.FAILED, str(refused)
            )
            return
        await self._record(engagement, step, A.CLOSING_NOTE_POSTED)

    async def _rename_channel(self, engagement: Engagement) -> None:
        step = OffboardingStep.CHANNEL_RENAMED
        prefix = self._config.ended_channel_prefix
        if not prefix or engagement.channel_id is None:
            await self._record(engagement, step, None)
            return
        name = ended_channel_name(prefix, engagement.channel_name)
        channel = await self._directory.find_channel(engagement.team_id, name)
        if channel is None or channel.id != engagement.channel_id:
            try:
                await self._directory.rename_channel(
                    engagement.team_id, engagement.channel_id, name
                )
            except (ChannelNameTaken, PermanentDirectoryError) as refused:
                # Cosmetic: the access is gone already, which is what matters.
                await self._record(
                    engagement, step, A.GRAPH_CHANNEL_RENAMED, AuditOutcome.FAILED, str(refused)
                )
                return
        await self._record(engagement, step, A.GRAPH_CHANNEL_RENAMED, detail=name)

    async def _finish(self, engagement: Engagement) -> None:
        assert engagement.id is not None
        now = self._clock.now()
        async with self._storage.transaction() as tx:
            current = await self._reload(tx, engagement.id)
            if current.state is not EngagementState.OFFBOARDING:
                return
            current.transition(EngagementState.ENDED, now)
            current.ended_at = now
            current = await tx.engagements.update(current)
            await notify_requester_and_approver(tx, current, Notice.ENDED)
            await self._audit(tx, A.OFFBOARDING_COMPLETED, current.id)
            await tx.commit()

    async def fail_offboarding(self, engagement_id: int, reason: str) -> None:
        async with self._storage.transaction() as tx:
            engagement = await self._reload(tx, engagement_id)
            if engagement.state is not EngagementState.OFFBOARDING:
                return
            engagement.transition(EngagementState.OFFBOARDING_FAILED, self._clock.now())
            engagement.failure_reason = reason
            engagement = await tx.engagements.update(engagement)
            await notify_failure(
                tx,
                engagement,
                self._config.admin_ids,
                requester_notice=Notice.OFFBOARDING_FAILED,
                admin_notice=Notice.OFFBOARDING_FAILED_ADMIN,
            )
            await self._audit(tx, A.OFFBOARDING_FAILED, engagement_id, AuditOutcome.FAILED, reason)
            await tx.commit()

    async def delete_guest(self, engagement_id: int, guest_user_id: str, email: str) -> None:
        """Delete a disabled guest once the grace period after its last engagement is over,
        unless an engagement needs the account again."""
        now = self._clock.now()
        grace = timedelta(days=self._config.guest_delete_after_days)
        async with self._storage.transaction() as tx:
            related = await tx.engagements.list_for_guest(guest_user_id, email)
            if any(o.state in ACCESS_NEEDING_STATES for o in related):
                await self._audit(
                    tx, A.GRAPH_GUEST_KEPT, engagement_id, detail="engaged again; not deleted"
                )
                await tx.commit()
                return
            if any(o.state is EngagementState.OFFBOARDING for o in related):
                due = now + timedelta(hours=1)  # another end is in progress; look again
            else:
                ends = [o.ended_at for o in related if o.ended_at is not None]
                due = max(ends) + grace if ends else now
            if due > now:
                await tx.jobs.enqueue(
                    NewJob(
                        JobKind.DELETE_GUEST,
                        engagement_id,
                        {"guest_user_id": guest_user_id, "email": email},
                        run_at=due,
                        dedupe_key=f"delete-guest:{guest_user_id}",
                    )
                )
                await tx.commit()
                return
        await self._directory.delete_user(guest_user_id)
        await self._audit_system(
            A.GRAPH_GUEST_DELETED, engagement_id, detail=f"user {guest_user_id}"
        )

    # --- extension --------------------------------------------------------------------------

    async def route_extension(self, engagement_id: int, end_date: str) -> None:
        engagement = await self._load(engagement_id)
        wanted = engagement.extension_end_date
        if engagement.state is not EngagementState.ACTIVE or wanted is None:
            return
        if wanted.isoformat() != end_date:
            return
        try:
            await self._notifier.send_extension_request(engagement)
        except NoConversation:
            await self._audit_system(
                A.APPROVAL_CARD_UNDELIVERABLE,
                engagement_id,
                AuditOutcome.FAILED,
                f"extension: no chat with approver {engagement.approver_id}",
            )
            return
        await self._audit_system(A.EXTENSION_CARD_SENT, engagement_id, detail=end_date)

    # --- invitations ------------------------------------------------------------------------

    async def check_invitation(self, engagement_id: int) -> None:
        engagement = await self._load(engagement_id)
        guest = engagement.guest_user_id
        if engagement.state is not EngagementState.ACTIVE or guest is None:
            return
        try:
            state = await self._directory.get_invitation_state(guest)
        except UserGone:
            await self._audit_system(
                A.INVITATION_PENDING, engagement_id, AuditOutcome.FAILED, "guest account gone"
            )
            return
        if (state or "").lower() != INVITATION_PENDING:
            await self._audit_system(A.INVITATION_ACCEPTED, engagement_id, detail=state or "")
            return
        nudges = engagement.invitation_nudges + 1
        days = self._config.invitation_nudge_days * nudges
        try:
            await self._notifier.send_invitation_nudge(engagement, days)
        except NoConversation:
            pass  # still counted: the audit record says it could not be delivered
        now = self._clock.now()
        async with self._storage.transaction() as tx:
            current = await self._reload(tx, engagement_id)
            current.invitation_nudges = nudges
            current = await tx.engagements.update(current)
            if nudges < self._config.invitation_nudge_limit:
                await tx.jobs.enqueue(invitation_check_job(current, self._config, now))
            await self._audit(
                tx, A.INVITATION_PENDING, engagement_id, detail=f"nudge {nudges} after {days} d"
            )
            await tx.commit()

    async def resend_invitation(self, engagement_id: int, user_id: str) -> None:
        engagement = await self._load(engagement_id)
        guest = engagement.guest_user_id
        if engagement.state is not EngagementState.ACTIVE or guest is None:
            return
        state = await self._directory.get_invitation_state(guest)
        if (state or "").lower() != INVITATION_PENDING:
            await self._audit_system(
                A.INVITATION_ACCEPTED, engagement_id, detail="not resent: already accepted"
            )
            return
        await self._directory.resend_invitation(
            email=engagement.freelancer_email,
            display_name=engagement.freelancer_name,
            redirect_url=self._config.invite_redirect_url,
        )
        async with self._storage.transaction() as tx:
            await self._audit(tx, A.GRAPH_INVITATION_RESENT, engagement_id)
            await enqueue_notice(tx, engagement, user_id, Notice.INVITATION_RESENT)
            await tx.commit()

    # --- helpers ----------------------------------------------------------------------------

    async def _related(self, engagement: Engagement) -> Sequence[Engagement]:
        async with self._storage.transaction() as tx:
            return await tx.engagements.list_for_guest(
                engagement.guest_user_id, engagement.freelancer_email
            )

    async def _record(
        self,
        engagement: Engagement,
        step: OffboardingStep,
        action: str | None,
        outcome: AuditOutcome = AuditOutcome.OK,
        detail: str = "",
        *,
        also: NewJob | None = None,
    ) -> None:
        """Mark `step` done, with its audit record, any job it started and the job for the
        next step, in one transaction."""
        assert engagement.id is not None
        async with self._storage.transaction() as tx:
            current = await self._reload(tx, engagement.id)
            current.offboarding_done = current.offboarding_done | {step}
            current = await tx.engagements.update(current)
            if action is not None:
                await self._audit(tx, action, current.id, outcome, detail)
            if also is not None:
                await tx.jobs.enqueue(also)
            await tx.jobs.enqueue(offboard_job(current))
            await tx.commit()

    async def _load(self, engagement_id: int) -> Engagement:
        async with self._storage.transaction() as tx:
            return await self._reload(tx, engagement_id)

    async def _reload(self, tx: Transaction, engagement_id: int) -> Engagement:
        engagement = await tx.engagements.get(engagement_id)
        if engagement is None:
            raise NotFound(f"engagement {engagement_id} does not exist")
        return engagement

    async def _audit_system(
        self,
        action: str,
        engagement_id: int,
        outcome: AuditOutcome = AuditOutcome.OK,
        detail: str = "",
    ) -> None:
        async with self._storage.transaction() as tx:
            await self._audit(tx, action, engagement_id, outcome, detail)
            await tx.commit()

    async def _audit(
        self,
        tx: Transaction,
        action: str,
        engagement_id: int | None,
        outcome: AuditOutcome = AuditOutcome.OK,
        detail: str = "",
    ) -> None:
        await append_audit(
            tx, self._clock.now(), SYSTEM_ACTOR, action, engagement_id, outcome, detail
        )

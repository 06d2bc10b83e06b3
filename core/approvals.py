"""Approvals: who decides each stage, the decisions on a request (approve, reject, request
changes, cancel, reassign, resubmit), and the timers that remind, escalate and expire.

Every decision is a compare-and-set on the engagement's version: of two clicks at the same
instant one decides and the other is told who did. Refusals change nothing and are audited.
The timers are jobs in the job table, keyed to the stage, revision and approver they were
planned for: a timer whose moment has passed (decided, reassigned, resubmitted) does nothing.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from core import audit_actions as A
from core import texts
from core.clock import Clock
from core.config import ProgramConfig
from core.engagements import (
    SYSTEM_ACTOR,
    append_audit,
    enqueue_notice,
    provision_job,
    route_approval_job,
)
from core.errors import (
    DeliveryError,
    DirectoryError,
    NoConversation,
    NotFound,
    ServiceUnavailable,
    StaleVersion,
    TransientDeliveryError,
)
from core.model import (
    Actor,
    AuditOutcome,
    CardKind,
    DataClassification,
    Engagement,
    EngagementState,
    Job,
    JobKind,
    NewJob,
    Notice,
    Revision,
    SentCard,
    ViewerRole,
    engagement_ref,
)
from core.policy import TenantPolicy
from core.ports import Directory, DirectoryUser, Notifier, Storage, Transaction

log = logging.getLogger(__name__)
T = TypeVar("T")

DECISION_ATTEMPTS = 5
MAX_COMMENT_LENGTH = 500
# Teams refreshes a card automatically for at most 60 listed users.
MAX_REFRESH_USERS = 60
# Stage-2 cards go to at most this many members of the group.
MAX_STAGE_MEMBERS = 50
# States in which the request waits for someone: its cards carry live buttons.
WAITING_STATES = frozenset({EngagementState.PENDING_APPROVAL, EngagementState.CHANGES_REQUESTED})


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_CHANGES = "request_changes"
    CANCEL = "cancel"
    DELEGATE = "delegate"


@dataclass(frozen=True)
class DecisionOutcome:
    """The engagement as stored after the attempt, and a message for the clicker if the
    attempt changed nothing (already decided, not theirs, missing reason)."""

    engagement: Engagement
    message: str | None = None
    changed: bool = False


def needs_second_stage(
    policy: TenantPolicy, classification: DataClassification, days: int
) -> bool:
    """Whether the tenant's policy asks its second-stage group to approve too."""
    if policy.second_stage_group_id is None:
        return False
    if classification is DataClassification.CONFIDENTIAL:
        return True
    return policy.second_stage_days is not None and days > policy.second_stage_days


def approval_timer_jobs(
    engagement: Engagement, config: ProgramConfig, now: datetime, *, expiry: bool = True
) -> list[NewJob]:
    """The first reminder and the escalation (stage 1 only: a group has no manager) for the
    stage, revision and approver the engagement has now; with `expiry`, the stage's deadline.
    A reassignment or an escalation plans new reminders but keeps the stage's deadline."""
    payload = timer_payload(engagement)
    key = ":".join(str(v) for v in (engagement.id, *payload.values()))
    jobs = [
        NewJob(
            JobKind.APPROVAL_REMINDER,
            engagement.id,
            {**payload, "number": 1},
            run_at=now + timedelta(hours=config.approval_reminder_hours),
            dedupe_key=f"approval-reminder:{key}:1",
        )
    ]
    if engagement.approval_stage == 1 and not engagement.escalated:
        jobs.append(
            NewJob(
                JobKind.APPROVAL_ESCALATION,
                engagement.id,
                payload,
                run_at=now + timedelta(hours=config.approval_escalation_hours),
                dedupe_key=f"approval-escalation:{key}",
            )
        )
    if expiry:
        deadline = {"stage": engagement.approval_stage, "revision": engagement.revision}
        jobs.append(
            NewJob(
                JobKind.APPROVAL_EXPIRY,
                engagement.id,
                deadline,
                run_at=now + timedelta(hours=config.approval_expiry_hours),
                dedupe_key=f"approval-expiry:{engagement.id}:{engagement.approval_stage}:"
                f"{engagement.revision}",
            )
        )
    return jobs


def timer_payload(engagement: Engagement) -> dict[str, Any]:
    return {
        "stage": engagement.approval_stage,
        "revision": engagement.revision,
        "approver_id": (engagement.approver_id or "") if engagement.approval_stage == 1 else "",
    }


def timer_is_current(engagement: Engagement, payload: Mapping[str, Any]) -> bool:
    """A reminder or escalation acts only on the wait it was planned for (same stage, revision
    and approver)."""
    return engagement.state is EngagementState.PENDING_APPROVAL and timer_payload(engagement) == {
        key: payload.get(key) for key in ("stage", "revision", "approver_id")
    }


def deadline_is_current(engagement: Engagement, payload: Mapping[str, Any]) -> bool:
    """The stage's deadline applies while the same revision waits in the same stage: for a
    decision, or for the requester's changes asked in that stage."""
    if payload.get("revision") != engagement.revision:
        return False
    return engagement.state in WAITING_STATES and payload.get("stage") == engagement.approval_stage


def update_cards_job(engagement: Engagement) -> NewJob:
    # One queued per engagement: a burst of changes re-renders the cards once.
    return NewJob(JobKind.UPDATE_CARDS, engagement.id, dedupe_key=f"cards:{engagement.id}")


class ApprovalService:
    """The decisions, in a turn. Stage 2 asks Graph whether the clicker is in the group."""

    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        config: ProgramConfig,
        *,
        directory: Directory | None = None,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._config = config
        self._directory = directory

    # --- who sees what ------------------------------------------------------------------------

    async def role_of(self, engagement: Engagement, actor: Actor) -> ViewerRole:
        """The requester; whoever decides the current stage (live buttons) or decided it (the
        full card, without buttons); anyone else a summary."""
        if actor.aad_id == engagement.requester_id:
            return ViewerRole.REQUESTER
        if engagement.state is not EngagementState.PENDING_APPROVAL:
            deciders = {engagement.approver_id, engagement.decided_by_id}
            return ViewerRole.APPROVER if actor.aad_id in deciders else ViewerRole.OTHER
        if await self._may_decide(engagement, actor):
            return ViewerRole.APPROVER
        return ViewerRole.OTHER

    async def has_card(self, engagement: Engagement, actor: Actor) -> bool:
        """Whether the bot sent `actor` a card about the engagement (a former approver, a
        member of the review group): they may keep seeing its summary."""
        async with self._storage.transaction() as tx:
            cards = await tx.cards.list_for_engagement(engagement.id or 0)
        return any(card.user_id == actor.aad_id for card in cards)

    async def _may_decide(self, engagement: Engagement, actor: Actor) -> bool:
        """Whether `actor` decides the current stage (never the requester: no self-approval)."""
        if engagement.state is not EngagementState.PENDING_APPROVAL:
            return False
        if actor.aad_id == engagement.requester_id:
            return False
        if engagement.approval_stage == 1:
            return engagement.approver_id is not None and engagement.approver_id == actor.aad_id
        group = engagement.second_stage_group_id
        if group is None or self._directory is None:
            return False
        # The stage-1 approver does not approve the second stage too.
        if actor.aad_id == engagement.approver_id:
            return False
        try:
            found = await self._directory.check_member_groups(actor.aad_id, [group])
        except DirectoryError as problem:
            raise ServiceUnavailable(texts.STAGE_CHECK_UNAVAILABLE) from problem
        return group.lower() in {g.lower() for g in found}

    # --- decisions ----------------------------------------------------------------------------

    async def approve(self, engagement_id: int, actor: Actor) -> DecisionOutcome:
        return await self._decide(engagement_id, actor, Decision.APPROVE, "")

    async def reject(self, engagement_id: int, actor: Actor, reason: str) -> DecisionOutcome:
        return await self._decide(engagement_id, actor, Decision.REJECT, reason)

    async def request_changes(
        self, engagement_id: int, actor: Actor, comment: str
    ) -> DecisionOutcome:
        return await self._decide(engagement_id, actor, Decision.REQUEST_CHANGES, comment)

    async def cancel(self, engagement_id: int, actor: Actor) -> DecisionOutcome:
        return await self._decide(engagement_id, actor, Decision.CANCEL, "")

    async def delegate(self, engagement_id: int, actor: Actor, identifier: str) -> DecisionOutcome:
        """The approver hands the decision to someone else, named by e-mail or UPN."""
        engagement = await self._reload(engagement_id)
        refusal = await self._refusal(engagement, actor, Decision.DELEGATE)
        if refusal is not None:
            return await self._refused(engagement, actor, Decision.DELEGATE, refusal)
        identifier = identifier.strip()[:320]
        if not identifier:
            return DecisionOutcome(engagement, texts.DELEGATE_WHO_REQUIRED)
        if self._directory is None:
            raise ServiceUnavailable(texts.STAGE_CHECK_UNAVAILABLE)
        try:
            person = await self._directory.find_user_by_identifier(identifier)
        except DirectoryError as failure:
            raise ServiceUnavailable(texts.DELEGATE_LOOKUP_UNAVAILABLE) from failure
        unsuitable = _delegate_problem(engagement, actor, person, identifier[:100])
        if unsuitable is not None:
            if person is not None and person.id in (engagement.requester_id, actor.aad_id):
                # An attempt at self-approval (or a no-op): refused and audited.
                return await self._refused(engagement, actor, Decision.DELEGATE, unsuitable)
            return DecisionOutcome(engagement, unsuitable)
        assert person is not None
        return await self._decide(engagement_id, actor, Decision.DELEGATE, "", new_approver=person)

    async def _decide(
        self,
        engagement_id: int,
        actor: Actor,
        decision: Decision,
        text: str,
        *,
        new_approver: DirectoryUser | None = None,
    ) -> DecisionOutcome:
        text = text.strip()
        if len(text) > MAX_COMMENT_LENGTH:
            engagement = await self._reload(engagement_id)
            return DecisionOutcome(
                engagement, texts.DECISION_TEXT_TOO_LONG.format(max=MAX_COMMENT_LENGTH)
            )
        # Writes that are not decisions (the worker recording a card, say) also bump the
        # version: re-read and decide again; a concurrent decision is then caught by the
        # refusal check.
        for _ in range(DECISION_ATTEMPTS):
            try:
                return await self._try_decide(engagement_id, actor, decision, text, new_approver)
            except StaleVersion:
                continue
        engagement = await self._reload(engagement_id)
        return DecisionOutcome(engagement, texts.DECISION_BUSY.format(ref=engagement.ref))

    async def _try_decide(
        self,
        engagement_id: int,
        actor: Actor,
        decision: Decision,
        text: str,
        new_approver: DirectoryUser | None,
    ) -> DecisionOutcome:
        engagement = await self._reload(engagement_id)
        # Group membership is read from Graph before the transaction, not inside it.
        refusal = await self._refusal(engagement, actor, decision)
        if refusal is not None:
            return await self._refused(engagement, actor, decision, refusal)
        if decision in (Decision.REJECT, Decision.REQUEST_CHANGES) and not text:
            required = (
                texts.REJECT_REASON_REQUIRED
                if decision is Decision.REJECT
                else texts.CHANGES_COMMENT_REQUIRED
            )
            return DecisionOutcome(engagement, required)
        now = self._clock.now()
        async with self._storage.transaction() as tx:
            stored = await tx.engagements.get(engagement_id)
            if stored is None or stored.version != engagement.version:
                raise StaleVersion(str(engagement_id))
            engagement = await self._apply(tx, stored, actor, decision, text, new_approver, now)
            await tx.jobs.enqueue(update_cards_job(engagement))
            await tx.commit()
        return DecisionOutcome(engagement, changed=True)

    async def _apply(
        self,
        tx: Transaction,
        engagement: Engagement,
        actor: Actor,
        decision: Decision,
        text: str,
        new_approver: DirectoryUser | None,
        now: datetime,
    ) -> Engagement:
        """The decision's change, in the caller's transaction (compare-and-set on update)."""
        stage = engagement.approval_stage
        detail = f"stage {stage}" + (f": {text}" if text else "")
        match decision:
            case Decision.APPROVE if stage < engagement.stages:
                engagement.approval_stage = stage + 1
                engagement.stage_started_at = now
                engagement.approval_reminders = 0
                engagement.approval_message = None
                engagement.updated_at = now
                engagement = await tx.engagements.update(engagement)
                await tx.jobs.enqueue(route_approval_job(engagement))
                for job in approval_timer_jobs(engagement, self._config, now):
                    await tx.jobs.enqueue(job)
                await enqueue_notice(
                    tx, engagement, engagement.requester_id, Notice.STAGE_APPROVED
                )
                await self._audit(tx, actor, A.STAGE_APPROVED, engagement, detail)
            case Decision.APPROVE | Decision.REJECT:
                approve = decision is Decision.APPROVE
                engagement.transition(
                    EngagementState.PROVISIONING if approve else EngagementState.REJECTED, now
                )
                engagement.decided_by_id = actor.aad_id
                engagement.decided_by_name = actor.name
                engagement.decided_at = now
                engagement.decision_reason = text or None
                engagement = await tx.engagements.update(engagement)
                if approve:
                    await tx.jobs.enqueue(provision_job(engagement))
                notice = Notice.APPROVED if approve else Notice.REJECTED
                await enqueue_notice(tx, engagement, engagement.requester_id, notice)
                action = A.ENGAGEMENT_APPROVED if approve else A.ENGAGEMENT_REJECTED
                await self._audit(tx, actor, action, engagement, text if not approve else detail)
            case Decision.REQUEST_CHANGES:
                engagement.transition(EngagementState.CHANGES_REQUESTED, now)
                engagement.decision_reason = text
                # Who asked (in stage 2, one of the group); cleared when resubmitted.
                engagement.decided_by_id = actor.aad_id
                engagement.decided_by_name = actor.name
                engagement = await tx.engagements.update(engagement)
                await self._close_revision(tx, engagement, actor, text, now)
                await tx.jobs.enqueue(
                    NewJob(
                        JobKind.SEND_CHANGES_REQUESTED,
                        engagement.id,
                        {"revision": engagement.revision},
                        dedupe_key=f"changes:{engagement.id}:{engagement.revision}",
                    )
                )
                await self._audit(tx, actor, A.CHANGES_REQUESTED, engagement, detail)
            case Decision.CANCEL:
                was_waiting_for = engagement.approver_id if stage == 1 else None
                # No decided_at: the report's decision times count decisions, not cancellations.
                engagement.transition(EngagementState.CANCELLED, now)
                engagement.decided_by_id = actor.aad_id
                engagement.decided_by_name = actor.name
                engagement = await tx.engagements.update(engagement)
                if was_waiting_for:
                    await enqueue_notice(tx, engagement, was_waiting_for, Notice.CANCELLED)
                await self._audit(tx, actor, A.ENGAGEMENT_CANCELLED, engagement, detail)
            case Decision.DELEGATE:
                assert new_approver is not None
                engagement.approver_id = new_approver.id
                engagement.approver_name = new_approver.display_name
                engagement.approval_message = None
                engagement.approver_missing_notified = False
                engagement.approval_reminders = 0
                engagement.stage_started_at = now
                engagement.updated_at = now
                engagement = await tx.engagements.update(engagement)
                await tx.jobs.enqueue(route_approval_job(engagement))
                for job in approval_timer_jobs(engagement, self._config, now, expiry=False):
                    await tx.jobs.enqueue(job)
                await enqueue_notice(
                    tx,
                    engagement,
                    engagement.requester_id,
                    Notice.DELEGATED,
                    detail=new_approver.display_name,
                )
                await self._audit(
                    tx,
                    actor,
                    A.APPROVAL_DELEGATED,
                    engagement,
                    f"to {new_approver.display_name} ({new_approver.id})",
                )
        return engagement

    async def _refusal(
        self, engagement: Engagement, actor: Actor, decision: Decision
    ) -> str | None:
        """Why `actor` may not take `decision` now, or None."""
        if decision is Decision.CANCEL:
            if actor.aad_id != engagement.requester_id:
                return texts.CANCEL_NOT_YOURS.format(ref=engagement.ref)
            if engagement.state in WAITING_STATES:
                return None
            return self._not_waiting(engagement)
        if engagement.state is not EngagementState.PENDING_APPROVAL:
            return self._not_waiting(engagement)
        if actor.aad_id == engagement.requester_id:
            return texts.NO_SELF_APPROVAL.format(ref=engagement.ref)
        if decision is Decision.DELEGATE and engagement.approval_stage != 1:
            return texts.DELEGATE_STAGE_TWO.format(ref=engagement.ref)
        if await self._may_decide(engagement, actor):
            return None
        if engagement.approval_stage == 2:
            if actor.aad_id == engagement.approver_id:
                return texts.STAGE_ONE_DONE.format(ref=engagement.ref)
            return texts.NOT_IN_STAGE_GROUP.format(ref=engagement.ref)
        return texts.NOT_YOUR_DECISION.format(
            approver=engagement.approver_name or texts.UNKNOWN_APPROVER, ref=engagement.ref
        )

    @staticmethod
    def _not_waiting(engagement: Engagement) -> str:
        if engagement.decided_by_name and engagement.state in DECIDED_VERBS:
            return texts.ALREADY_DECIDED.format(
                state=DECIDED_VERBS[engagement.state], name=engagement.decided_by_name
            )
        return texts.NOT_PENDING.format(
            ref=engagement.ref, state=texts.STATE_LABELS[engagement.state.value]
        )

    async def _refused(
        self, engagement: Engagement, actor: Actor, decision: Decision, refusal: str
    ) -> DecisionOutcome:
        async with self._storage.transaction() as tx:
            await append_audit(
                tx,
                self._clock.now(),
                actor,
                A.DECISION_REFUSED,
                engagement.id,
                AuditOutcome.REFUSED,
                f"{decision.value}: {refusal}"[:1000],
            )
            await tx.commit()
        return DecisionOutcome(engagement, refusal)

    # --- resubmission after changes were requested -----------------------------------------

    async def resubmit(
        self,
        engagement_id: int,
        actor: Actor,
        values: Mapping[str, str],
        check: Callable[[Engagement], Awaitable[Engagement]],
        *,
        revision: int | None = None,
    ) -> DecisionOutcome:
        """The requester's edited request: `check` validates `values` against the form's rules,
        the policy and pre-flight (raising FieldErrors) and returns the engagement with the
        new content; it goes back to the first stage as the next revision."""
        engagement = await self._reload(engagement_id)
        if actor.aad_id != engagement.requester_id:
            refusal = texts.RESUBMIT_NOT_YOURS.format(ref=engagement.ref)
            return await self._refused(engagement, actor, Decision.REQUEST_CHANGES, refusal)
        if engagement.state is not EngagementState.CHANGES_REQUESTED:
            refusal = self._not_waiting(engagement)
            return await self._refused(engagement, actor, Decision.REQUEST_CHANGES, refusal)
        if revision is not None and revision != engagement.revision:
            # A form sent back for an earlier round: its values are not what was asked about.
            refusal = texts.RESUBMIT_OLD_FORM.format(ref=engagement.ref)
            return await self._refused(engagement, actor, Decision.REQUEST_CHANGES, refusal)
        revised = await check(engagement)
        now = self._clock.now()
        async with self._storage.transaction() as tx:
            stored = await tx.engagements.get(engagement_id)
            if stored is None or stored.version != engagement.version:
                # Cancelled or expired meanwhile: say so, change nothing.
                current = stored or engagement
                return DecisionOutcome(current, self._not_waiting(current))
            revised.transition(EngagementState.PENDING_APPROVAL, now)
            revised.revision = engagement.revision + 1
            revised.approval_stage = 1
            revised.approval_message = None
            revised.approval_reminders = 0
            revised.escalated = False
            revised.stage_started_at = now
            revised.decision_reason = None
            revised.decided_by_id = None
            revised.decided_by_name = None
            # The sent-back version was kept with its comment; this one is the engagement.
            revised = await tx.engagements.update(revised)
            await tx.jobs.enqueue(route_approval_job(revised))
            for job in approval_timer_jobs(revised, self._config, now):
                await tx.jobs.enqueue(job)
            await tx.jobs.enqueue(update_cards_job(revised))
            await self._audit(
                tx, actor, A.ENGAGEMENT_RESUBMITTED, revised, f"revision {revised.revision}"
            )
            await tx.commit()
        return DecisionOutcome(revised, changed=True)

    async def revisions(self, engagement_id: int) -> Sequence[Revision]:
        async with self._storage.transaction() as tx:
            return await tx.revisions.list_for_engagement(engagement_id)

    async def _close_revision(
        self, tx: Transaction, engagement: Engagement, actor: Actor, comment: str, now: datetime
    ) -> None:
        """Keep the version that was sent back, with the comment that sent it back."""
        await tx.revisions.add(
            Revision(
                engagement.id or 0,
                engagement.revision,
                revision_values(engagement),
                now,
                comment=comment,
                comment_by_id=actor.aad_id,
                comment_by_name=actor.name,
            )
        )

    # --- cards ------------------------------------------------------------------------------

    async def record_card(self, card: SentCard) -> None:
        async with self._storage.transaction() as tx:
            await tx.cards.add(card)
            await tx.commit()

    # --- helpers ------------------------------------------------------------------------------

    async def _reload(self, engagement_id: int) -> Engagement:
        async with self._storage.transaction() as tx:
            return await _get(tx, engagement_id)

    async def _audit(
        self, tx: Transaction, actor: Actor, action: str, engagement: Engagement, detail: str
    ) -> None:
        await append_audit(
            tx, self._clock.now(), actor, action, engagement.id, detail=detail[:1000]
        )


DECIDED_VERBS = {
    EngagementState.REJECTED: texts.DECIDED_VERB_REJECTED,
    EngagementState.PROVISIONING: texts.DECIDED_VERB_APPROVED,
    EngagementState.ACTIVE: texts.DECIDED_VERB_APPROVED,
    EngagementState.PROVISIONING_FAILED: texts.DECIDED_VERB_APPROVED,
    EngagementState.OFFBOARDING: texts.DECIDED_VERB_APPROVED,
    EngagementState.OFFBOARDING_FAILED: texts.DECIDED_VERB_APPROVED,
    EngagementState.ENDED: texts.DECIDED_VERB_APPROVED,
    EngagementState.CANCELLED: texts.DECIDED_VERB_CANCELLED,
}


def _delegate_problem(
    engagement: Engagement, actor: Actor, person: DirectoryUser | None, shown: str
) -> str | None:
    if person is None:
        return texts.DELEGATE_UNKNOWN.format(who=shown)
    if person.user_type.lower() != "member":
        return texts.DELEGATE_GUEST.format(who=shown)
    if not person.account_enabled:
        return texts.DELEGATE_DISABLED.format(who=shown)
    if person.id == engagement.requester_id:
        return texts.DELEGATE_TO_REQUESTER.format(ref=engagement.ref)
    if person.id == actor.aad_id:
        return texts.DELEGATE_TO_SELF
    return None


def revision_values(engagement: Engagement) -> dict[str, str]:
    """The request's content as the intake form's fields (what a revision keeps)."""
    return {
        "project_title": engagement.project_title,
        "description": engagement.description,
        "justification": engagement.justification,
        "freelancer_name": engagement.freelancer_name,
        "freelancer_email": engagement.freelancer_email,
        "freelancer_org": engagement.freelancer_org or "",
        "profile_url": engagement.profile_url or "",
        "start_date": engagement.start_date.isoformat(),
        "end_date": engagement.end_date.isoformat(),
        "data_classification": engagement.data_classification.value,
        "budget": str(engagement.budget) if engagement.budget is not None else "",
        "hours": str(engagement.hours) if engagement.hours is not None else "",
        "team_id": engagement.team_id,
        "channel_name": engagement.channel_name,
    }


class ApprovalHandlers:
    """The approval jobs, called by core.provisioning.JobHandlers: reminders, escalation,
    expiry, re-rendering the cards, and the form sent back for changes."""

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
        # Timers of one engagement fall due together after a long wait (and a decision may
        # land meanwhile): a lost compare-and-set is re-read and decided again, not failed.
        for attempt in range(DECISION_ATTEMPTS):
            try:
                await self._run_once(job, engagement_id)
                return
            except StaleVersion:
                if attempt == DECISION_ATTEMPTS - 1:
                    raise

    async def _run_once(self, job: Job, engagement_id: int) -> None:
        match job.kind:
            case JobKind.APPROVAL_REMINDER:
                await self.remind(engagement_id, job.payload)
            case JobKind.APPROVAL_ESCALATION:
                await self.escalate(engagement_id, job.payload)
            case JobKind.APPROVAL_EXPIRY:
                await self.expire(engagement_id, job.payload)
            case JobKind.UPDATE_CARDS:
                await self.update_cards(engagement_id)
            case JobKind.SEND_CHANGES_REQUESTED:
                await self.send_changes_requested(engagement_id, job.payload)
            case _:
                raise ValueError(f"not an approval job: {job.kind}")

    async def remind(self, engagement_id: int, payload: Mapping[str, Any]) -> None:
        """Remind whoever decides the stage, and plan the next reminder up to the limit."""
        now = self._clock.now()
        number = int(payload.get("number", 1))
        async with self._storage.transaction() as tx:
            engagement = await _get(tx, engagement_id)
            # Already sent: this run repeats one whose completion was not recorded.
            if (
                not timer_is_current(engagement, payload)
                or engagement.approval_reminders >= number
            ):
                return
            engagement.approval_reminders = number
            engagement = await tx.engagements.update(engagement)  # compare-and-set
            for user_id in await _deciders(tx, engagement):
                await enqueue_notice(tx, engagement, user_id, Notice.APPROVAL_REMINDER)
            if number < self._config.approval_reminder_limit:
                key = ":".join(
                    str(v) for v in (engagement_id, *timer_payload(engagement).values())
                )
                await tx.jobs.enqueue(
                    NewJob(
                        JobKind.APPROVAL_REMINDER,
                        engagement_id,
                        {**timer_payload(engagement), "number": number + 1},
                        run_at=now + timedelta(hours=self._config.approval_reminder_hours),
                        dedupe_key=f"approval-reminder:{key}:{number + 1}",
                    )
                )
            await _system_audit(tx, now, A.APPROVAL_REMINDED, engagement, f"reminder {number}")
            await tx.commit()

    async def escalate(self, engagement_id: int, payload: Mapping[str, Any]) -> None:
        """The approver did not decide in time: the request goes to their manager."""
        engagement = await self._load(engagement_id)
        if not timer_is_current(engagement, payload) or engagement.approver_id is None:
            return
        former = engagement.approver_id
        manager = await self._directory.get_manager(former)
        now = self._clock.now()
        async with self._storage.transaction() as tx:
            engagement = await _get(tx, engagement_id)
            if not timer_is_current(engagement, payload):
                return
            if manager is None or manager.id in (engagement.requester_id, former):
                await _system_audit(
                    tx,
                    now,
                    A.APPROVAL_ESCALATED,
                    engagement,
                    f"{engagement.approver_name} has no manager to escalate to",
                    AuditOutcome.FAILED,
                )
                await tx.commit()
                return
            former_name = engagement.approver_name or ""
            engagement.approver_id = manager.id
            engagement.approver_name = manager.display_name
            engagement.escalated = True
            engagement.approval_message = None
            engagement.approver_missing_notified = False
            engagement.approval_reminders = 0
            engagement.updated_at = now
            engagement = await tx.engagements.update(engagement)
            await tx.jobs.enqueue(route_approval_job(engagement))
            for job in approval_timer_jobs(engagement, self._config, now, expiry=False):
                await tx.jobs.enqueue(job)
            await tx.jobs.enqueue(update_cards_job(engagement))
            for user_id in (engagement.requester_id, former):
                await enqueue_notice(
                    tx, engagement, user_id, Notice.ESCALATED, detail=manager.display_name
                )
            await _system_audit(
                tx,
                now,
                A.APPROVAL_ESCALATED,
                engagement,
                f"from {former_name} to {manager.display_name} ({manager.id})",
            )
            await tx.commit()

    async def expire(self, engagement_id: int, payload: Mapping[str, Any]) -> None:
        now = self._clock.now()
        async with self._storage.transaction() as tx:
            engagement = await _get(tx, engagement_id)
            if not deadline_is_current(engagement, payload):
                return
            deciders = await _deciders(tx, engagement)
            engagement.transition(EngagementState.EXPIRED, now)
            engagement = await tx.engagements.update(engagement)
            for user_id in {engagement.requester_id, *deciders}:
                await enqueue_notice(tx, engagement, user_id, Notice.EXPIRED)
            await tx.jobs.enqueue(update_cards_job(engagement))
            await _system_audit(
                tx, now, A.ENGAGEMENT_EXPIRED, engagement, f"stage {engagement.approval_stage}"
            )
            await tx.commit()

    async def update_cards(self, engagement_id: int) -> None:
        """Every card sent about the engagement shows its current state (no stale buttons).
        A message that is gone is skipped; a connector hiccup retries the job (updates are
        idempotent)."""
        engagement = await self._load(engagement_id)
        async with self._storage.transaction() as tx:
            cards = await tx.cards.list_for_engagement(engagement_id)
        for card in cards:
            if (
                card.kind is CardKind.CHANGES_FORM
                and engagement.state is EngagementState.CHANGES_REQUESTED
            ):
                continue  # the form stays while the requester is asked for changes
            try:
                await self._notifier.update_card(engagement, card, card_role(engagement, card))
            except TransientDeliveryError:
                raise
            except (NoConversation, DeliveryError) as problem:
                log.warning("could not update a card of %s: %s", engagement.ref, problem)

    async def send_changes_requested(self, engagement_id: int, payload: Mapping[str, Any]) -> None:
        engagement = await self._load(engagement_id)
        if (
            engagement.state is not EngagementState.CHANGES_REQUESTED
            or payload.get("revision") != engagement.revision
        ):
            return
        try:
            ref = await self._notifier.send_changes_requested(engagement)
        except NoConversation:
            async with self._storage.transaction() as tx:
                await _system_audit(
                    tx,
                    self._clock.now(),
                    A.NOTICE_UNDELIVERABLE,
                    engagement,
                    f"changes requested: no chat with {engagement.requester_id}",
                    AuditOutcome.FAILED,
                )
                await tx.commit()
            return
        # Recorded, so that once the request moves on the form becomes the status card and
        # its Resubmit button goes.
        async with self._storage.transaction() as tx:
            await tx.cards.add(
                SentCard(engagement_id, CardKind.CHANGES_FORM, engagement.requester_id, ref)
            )
            await tx.commit()

    async def _load(self, engagement_id: int) -> Engagement:
        async with self._storage.transaction() as tx:
            return await _get(tx, engagement_id)


def card_role(engagement: Engagement, card: SentCard) -> ViewerRole:
    """How a sent card is re-rendered for the person it was sent to: the requester's cards show
    the status; an approval card is live while its person decides the current stage (stage 1:
    the approver's own card; stage 2: a review-group member's card), and keeps its facts
    without buttons once the request is decided."""
    if card.user_id == engagement.requester_id or card.kind in (
        CardKind.STATUS,
        CardKind.CHANGES_FORM,
    ):
        return ViewerRole.REQUESTER
    if engagement.state is not EngagementState.PENDING_APPROVAL:
        return ViewerRole.APPROVER
    if engagement.approval_stage == 1:
        live = card.kind is CardKind.APPROVAL and card.user_id == engagement.approver_id
    else:
        live = card.kind is CardKind.REVIEW
    return ViewerRole.APPROVER if live else ViewerRole.OTHER


async def _deciders(tx: Transaction, engagement: Engagement) -> list[str]:
    """Who decides the current stage: the approver, or the review-group members who got its
    card."""
    if engagement.approval_stage == 1:
        return [engagement.approver_id] if engagement.approver_id else []
    cards = await tx.cards.list_for_engagement(engagement.id or 0)
    return sorted({c.user_id for c in cards if c.kind is CardKind.REVIEW})


async def _get(tx: Transaction, engagement_id: int) -> Engagement:
    engagement = await tx.engagements.get(engagement_id)
    if engagement is None:
        raise NotFound(texts.ENGAGEMENT_NOT_FOUND.format(ref=engagement_ref(engagement_id)))
    return engagement


async def _system_audit(
    tx: Transaction,
    at: datetime,
    action: str,
    engagement: Engagement,
    detail: str,
    outcome: AuditOutcome = AuditOutcome.OK,
) -> None:
    await append_audit(tx, at, SYSTEM_ACTOR, action, engagement.id, outcome, detail[:1000])

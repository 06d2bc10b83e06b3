"""Use cases that run in the worker: route an approval, provision an engagement step by step,
deliver a notice. Each step first looks for its own earlier result and records what it made,
so that a rerun after a crash or a retry never makes anything twice.

Errors: Transient* errors propagate to the worker, which retries with backoff; anything else
that reaches `give_up` leaves the engagement in a clear failed state with the reason.
"""

from __future__ import annotations

import logging

from core import audit_actions as A
from core import texts
from core.approvals import (
    MAX_STAGE_MEMBERS,
    ApprovalHandlers,
    approval_timer_jobs,
    timer_payload,
    update_cards_job,
)
from core.clock import Clock
from core.config import ProgramConfig
from core.engagements import (
    SYSTEM_ACTOR,
    append_audit,
    enqueue_notice,
    notify_failure,
    notify_requester_and_approver,
    provision_job,
)
from core.errors import (
    ChannelNameTaken,
    NoConversation,
    NotFound,
    PermanentDeliveryError,
    PermanentDirectoryError,
    UserGone,
)
from core.lifecycle import LifecycleHandlers, end_job, invitation_check_job, schedule_end
from core.model import (
    AuditOutcome,
    CardKind,
    Engagement,
    EngagementState,
    Job,
    JobKind,
    MessageRef,
    Notice,
    SentCard,
)
from core.policy import policy_in
from core.ports import Directory, DirectoryUser, Notifier, Storage, Transaction

log = logging.getLogger(__name__)

APPROVAL_JOBS = frozenset(
    {
        JobKind.APPROVAL_REMINDER,
        JobKind.APPROVAL_ESCALATION,
        JobKind.APPROVAL_EXPIRY,
        JobKind.UPDATE_CARDS,
        JobKind.SEND_CHANGES_REQUESTED,
    }
)
# Recorded instead of a message id when the welcome could not be posted (see _post_welcome).
WELCOME_NOT_POSTED = ""
# Recorded instead of the sponsor's id when Graph refused to record the sponsor.
NO_SPONSOR = ""


class JobHandlers:
    """What the worker calls: `run(job)` and, when retries are exhausted or the error is
    permanent, `give_up(job, reason)`."""

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
        self.lifecycle = LifecycleHandlers(storage, directory, notifier, clock, config)
        self.approvals = ApprovalHandlers(storage, directory, notifier, clock, config)

    async def run(self, job: Job) -> None:
        if job.engagement_id is None:
            raise ValueError(f"job {job.id} ({job.kind}) has no engagement")
        if job.kind is JobKind.ROUTE_APPROVAL:
            await self.route_approval(job.engagement_id)
        elif job.kind is JobKind.PROVISION:
            await self.provision(job.engagement_id)
        elif job.kind is JobKind.NOTIFY:
            detail = job.payload.get("detail")
            await self.notify(
                job.engagement_id,
                str(job.payload["user_id"]),
                Notice(job.payload["notice"]),
                detail=str(detail) if detail is not None else None,
            )
        elif job.kind in APPROVAL_JOBS:
            await self.approvals.run(job, job.engagement_id)
        else:
            await self.lifecycle.run(job, job.engagement_id)

    async def give_up(self, job: Job, reason: str) -> None:
        if job.engagement_id is None:
            return
        if job.kind is JobKind.PROVISION:
            await self._fail_provisioning(job.engagement_id, reason)
        elif job.kind is JobKind.ROUTE_APPROVAL:
            await self._fail_routing(job.engagement_id, reason)
        elif job.kind is JobKind.OFFBOARD:
            await self.lifecycle.fail_offboarding(job.engagement_id, reason)
        else:
            async with self._storage.transaction() as tx:
                await self._audit(
                    tx, A.NOTICE_UNDELIVERABLE, job.engagement_id, AuditOutcome.FAILED, reason
                )
                await tx.commit()

    # --- approval routing -------------------------------------------------------------------

    async def route_approval(self, engagement_id: int) -> None:
        """Name the stage's approver (stage 1) and send the approval card: to the approver, or
        in stage 2 to the review group's members. The first naming starts the stage's
        timers. Nobody ever gets the card for their own request."""
        engagement = await self._load(engagement_id)
        if engagement.state is not EngagementState.PENDING_APPROVAL:
            return
        if engagement.approval_stage > 1:
            await self._route_to_group(engagement)
            return
        if engagement.approver_id is None:
            approver = await self._approver_for(engagement)
            now = self._clock.now()
            async with self._storage.transaction() as tx:
                engagement = await self._reload(tx, engagement_id)
                if approver is None:
                    await self._tell_requester_once(
                        tx,
                        engagement,
                        Notice.NO_APPROVER,
                        A.APPROVAL_ROUTING_FAILED,
                        "no manager, no default approver",
                    )
                    return
                engagement.approver_id = approver.id
                engagement.approver_name = approver.display_name
                engagement.stage_started_at = now
                engagement = await tx.engagements.update(engagement)
                for job in approval_timer_jobs(engagement, self._config, now):
                    await tx.jobs.enqueue(job)
                await tx.jobs.enqueue(update_cards_job(engagement))  # "with Megan" on the status
                await self._audit(
                    tx,
                    A.APPROVAL_ROUTED,
                    engagement_id,
                    detail=f"approver {approver.display_name} ({approver.id})",
                )
                await tx.commit()

        if engagement.approval_message is not None:
            return
        try:
            message = await self._notifier.send_approval_request(engagement)
        except NoConversation:
            async with self._storage.transaction() as tx:
                engagement = await self._reload(tx, engagement_id)
                await self._tell_requester_once(
                    tx,
                    engagement,
                    Notice.APPROVER_NOT_INSTALLED,
                    A.APPROVAL_CARD_UNDELIVERABLE,
                    f"no chat with approver {engagement.approver_id}",
                )
            # Not an error: the card goes out when the approver installs the app.
            return
        sent_to, wait = engagement.approver_id or "", timer_payload(engagement)
        async with self._storage.transaction() as tx:
            # The card is recorded for whom it went to, whatever happened meanwhile, so that
            # updates reach it; it counts as this wait's card only if the wait is unchanged (a
            # reassignment or cancel during the send queued its own routing and updates).
            await tx.cards.add(SentCard(engagement_id, CardKind.APPROVAL, sent_to, message))
            engagement = await self._reload(tx, engagement_id)
            if (
                engagement.state is EngagementState.PENDING_APPROVAL
                and timer_payload(engagement) == wait
            ):
                engagement.approval_message = message
                engagement = await tx.engagements.update(engagement)
                await enqueue_notice(
                    tx, engagement, engagement.requester_id, Notice.SENT_FOR_APPROVAL
                )
                await self._audit(tx, A.APPROVAL_CARD_SENT, engagement_id)
            await tx.jobs.enqueue(update_cards_job(engagement))
            await tx.commit()

    async def _tell_requester_once(
        self, tx: Transaction, engagement: Engagement, notice: Notice, action: str, detail: str
    ) -> None:
        """Tell the requester why nobody has the card (once per wait: a routing job runs again
        whenever someone installs the app), audit it, and commit."""
        if engagement.approver_missing_notified:
            return
        engagement.approver_missing_notified = True
        await tx.engagements.update(engagement)
        await enqueue_notice(tx, engagement, engagement.requester_id, notice)
        await self._audit(tx, action, engagement.id or 0, AuditOutcome.FAILED, detail)
        await tx.commit()

    async def _approver_for(self, engagement: Engagement) -> DirectoryUser | None:
        """The requester's manager, else the tenant's (or the deployment's) default approver;
        never the requester (no self-approval): when the default approver is the requester,
        their manager is asked, which is nobody here."""
        requester = engagement.requester_id
        manager = await self._directory.get_manager(requester)
        if manager is not None and manager.id != requester:
            return manager
        async with self._storage.transaction() as tx:
            policy = await policy_in(tx, engagement.tenant_id, self._config)
        if not policy.default_approver_id or policy.default_approver_id == requester:
            return None
        return await self._directory.get_user(policy.default_approver_id)

    async def _route_to_group(self, engagement: Engagement) -> None:
        """Stage 2: the card to each member of the review group who has a chat with the bot
        (not the requester, not the stage-1 approver) and does not have it yet. Runs again
        whenever someone of the tenant installs the app, so a member who installs later gets
        the card too."""
        engagement_id = engagement.id or 0
        if engagement.second_stage_group_id is None:
            return
        members = await self._directory.list_group_members(
            engagement.second_stage_group_id, limit=MAX_STAGE_MEMBERS
        )
        async with self._storage.transaction() as tx:
            carded = {
                c.user_id: c.ref
                for c in await tx.cards.list_for_engagement(engagement_id)
                if c.kind is CardKind.REVIEW
            }
        sent: list[MessageRef] = []
        new = 0
        for member in members:
            if member.id in (engagement.requester_id, engagement.approver_id):
                continue
            if member.id in carded:
                # A card from an earlier run (or round) is live again through update_cards.
                sent.append(carded[member.id])
                continue
            try:
                ref = await self._notifier.send_approval_request(engagement, member.id)
            except NoConversation:
                continue
            # Recorded at once: a retry after a failure further down the list skips this one.
            async with self._storage.transaction() as tx:
                await tx.cards.add(SentCard(engagement_id, CardKind.REVIEW, member.id, ref))
                await tx.commit()
            sent.append(ref)
            new += 1
        async with self._storage.transaction() as tx:
            engagement = await self._reload(tx, engagement_id)
            if not sent:
                await self._tell_requester_once(
                    tx,
                    engagement,
                    Notice.APPROVER_NOT_INSTALLED,
                    A.APPROVAL_CARD_UNDELIVERABLE,
                    "stage 2: no member of the review group has a chat with the bot",
                )
                return
            if not new and engagement.approval_message is not None:
                return  # every member who can be reached has the card
            if engagement.approval_message is None and engagement.approval_stage > 1:
                engagement.approval_message = sent[0]
                engagement = await tx.engagements.update(engagement)
            await self._audit(
                tx, A.APPROVAL_CARD_SENT, engagement_id, detail=f"stage 2: {new} new, {len(sent)}"
            )
            await tx.jobs.enqueue(update_cards_job(engagement))
            await tx.commit()

    async def _fail_routing(self, engagement_id: int, reason: str) -> None:
        async with self._storage.transaction() as tx:
            engagement = await self._reload(tx, engagement_id)
            engagement.failure_reason = reason
            await tx.engagements.update(engagement)
            await enqueue_notice(tx, engagement, engagement.requester_id, Notice.ROUTING_FAILED)
            await self._audit(
                tx, A.APPROVAL_ROUTING_FAILED, engagement_id, AuditOutcome.FAILED, reason
            )
            await tx.commit()

    # --- provisioning -----------------------------------------------------------------------

    async def provision(self, engagement_id: int) -> None:
        """Run the next provisioning step. Recording a step's result enqueues the job for the
        step after it in the same transaction, so every step has its own attempt budget and a
        fault in one step does not use up the retries of the others."""
        engagement = await self._load(engagement_id)
        if engagement.state is not EngagementState.PROVISIONING:
            return  # finished already, or failed and waiting for an admin
        if engagement.channel_id is None:
            await self._ensure_channel(engagement)
        elif engagement.guest_user_id is None:
            engagement = await self._ensure_guest(engagement)
            # In the same run: one Graph call, not worth a job of its own.
            await self._ensure_sponsor(engagement)
        elif engagement.sponsor_id is None:
            await self._ensure_sponsor(engagement)
        elif engagement.team_membership_id is None:
            await self._ensure_team_member(engagement)
        elif engagement.channel_membership_id is None:
            await self._ensure_channel_member(engagement)
        elif engagement.welcome_message_id is None:
            await self._post_welcome(engagement)
        else:
            await self._finish(engagement)

    async def _ensure_channel(self, engagement: Engagement) -> Engagement:
        team, name = engagement.team_id, engagement.channel_name
        channel = await self._directory.find_channel(team, name)
        action = A.GRAPH_CHANNEL_ADOPTED
        if channel is None:
            try:
                channel = await self._directory.create_private_channel(
                    team,
                    display_name=name,
                    description=engagement.channel_description,
                    owner_id=engagement.requester_id,
                )
                action = A.GRAPH_CHANNEL_CREATED
            except ChannelNameTaken:
                # Either our own earlier create landed after the lookup (a timed-out request
                # that Graph applied late), or the name belongs to someone else, possibly a
                # deleted channel, whose names stay reserved. Look once more to tell which.
                channel = await self._directory.find_channel(team, name)
        if channel is None or channel.description != engagement.channel_description:
            raise PermanentDirectoryError(
                texts.FAIL_CHANNEL_NAME_TAKEN.format(channel=name, team=engagement.team_name)
            )
        return await self._record(
            engagement, action, channel_id=channel.id, detail=f"channel {channel.id} '{name}'"
        )

    async def _ensure_guest(self, engagement: Engagement) -> Engagement:
        existing = await self._directory.find_user_by_email(engagement.freelancer_email)
        if existing is not None:
            if existing.user_type.lower() != "guest":
                raise PermanentDirectoryError(
                    texts.FAIL_FREELANCER_IS_MEMBER.format(email=engagement.freelancer_email)
                )
            # Found after we started inviting: our own invitation, answered before a crash.
            ours = engagement.guest_invitation_started
            if not existing.account_enabled:
                # Disabled when an earlier engagement ended, and not deleted yet: engaged again.
                await self._directory.set_account_enabled(existing.id, True)
                async with self._storage.transaction() as tx:
                    await self._audit(
                        tx, A.GRAPH_GUEST_REENABLED, engagement.id, detail=f"user {existing.id}"
                    )
                    await tx.commit()
            return await self._record(
                engagement,
                A.GRAPH_GUEST_INVITED if ours else A.GRAPH_GUEST_REUSED,
                guest_user_id=existing.id,
                guest_reused=not ours,
                detail=f"user {existing.id}",
            )
        if not engagement.guest_invitation_started:
            engagement = await self._record(
                engagement, None, advance=False, guest_invitation_started=True
            )
        invitation = await self._directory.invite_guest(
            email=engagement.freelancer_email,
            display_name=engagement.freelancer_name,
            redirect_url=self._config.invite_redirect_url,
        )
        return await self._record(
            engagement,
            A.GRAPH_GUEST_INVITED,
            guest_user_id=invitation.invited_user_id,
            detail=f"user {invitation.invited_user_id}",
        )

    async def _ensure_sponsor(self, engagement: Engagement) -> Engagement:
        """Record the requester as the guest's sponsor in Entra, so that the directory knows
        who answers for the guest. A refusal does not undo the access: it is audited."""
        assert engagement.guest_user_id is not None
        guest, sponsor = engagement.guest_user_id, engagement.requester_id
        try:
            # Idempotent on its own (an existing sponsor is success), so no lookup first.
            await self._directory.add_sponsor(guest, sponsor)
        except (UserGone, PermanentDirectoryError) as refused:
            return await self._record(
                engagement,
                A.GRAPH_SPONSOR_ADDED,
                outcome=AuditOutcome.FAILED,
                detail=str(refused),
                sponsor_id=NO_SPONSOR,
            )
        return await self._record(
            engagement, A.GRAPH_SPONSOR_ADDED, sponsor_id=sponsor, detail=f"sponsor {sponsor}"
        )

    async def _ensure_team_member(self, engagement: Engagement) -> Engagement:
        assert engagement.guest_user_id is not None
        team, user = engagement.team_id, engagement.guest_user_id
        membership = await self._directory.find_team_member(team, user)
        if membership is None:
            membership = await self._directory.add_team_member(team, user)
        return await self._record(
            engagement,
            A.GRAPH_TEAM_MEMBER_ADDED,
            team_membership_id=membership,
            detail=f"team {team}",
        )

    async def _ensure_channel_member(self, engagement: Engagement) -> Engagement:
        assert engagement.guest_user_id is not None and engagement.channel_id is not None
        team, channel, user = (engagement.team_id, engagement.channel_id, engagement.guest_user_id)
        membership = await self._directory.find_channel_member(team, channel, user)
        if membership is None:
            membership = await self._directory.add_channel_member(team, channel, user)
        return await self._record(
            engagement,
            A.GRAPH_CHANNEL_MEMBER_ADDED,
            channel_membership_id=membership,
            detail=f"channel {channel}",
        )

    async def _post_welcome(self, engagement: Engagement) -> Engagement:
        try:
            message = await self._notifier.post_welcome(engagement)
        except PermanentDeliveryError as refused:
            # The access is what matters; a missing welcome must not undo it. The requester is
            # still told the channel is ready, and the audit log says why there is no welcome.
            return await self._record(
                engagement,
                A.WELCOME_POSTED,
                outcome=AuditOutcome.FAILED,
                detail=str(refused),
                welcome_message_id=WELCOME_NOT_POSTED,
            )
        return await self._record(
            engagement, A.WELCOME_POSTED, welcome_message_id=message.activity_id
        )

    async def _finish(self, engagement: Engagement) -> None:
        assert engagement.id is not None
        async with self._storage.transaction() as tx:
            current = await self._reload(tx, engagement.id)
            current.transition(EngagementState.ACTIVE, self._clock.now())
            current.provisioned_at = current.updated_at
            current = await tx.engagements.update(current)
            await notify_requester_and_approver(tx, current, Notice.PROVISIONED)
            await schedule_end(tx, current, self._config, self._clock.now())
            if self._config.invitation_nudge_days > 0 and not current.guest_reused:
                await tx.jobs.enqueue(
                    invitation_check_job(current, self._config, self._clock.now())
                )
            await tx.jobs.enqueue(update_cards_job(current))
            await self._audit(tx, A.PROVISIONING_COMPLETED, current.id)
            await tx.commit()

    async def _fail_provisioning(self, engagement_id: int, reason: str) -> None:
        async with self._storage.transaction() as tx:
            engagement = await self._reload(tx, engagement_id)
            if engagement.state is not EngagementState.PROVISIONING:
                return
            engagement.transition(EngagementState.PROVISIONING_FAILED, self._clock.now())
            engagement.failure_reason = reason
            engagement = await tx.engagements.update(engagement)
            await notify_failure(
                tx,
                engagement,
                self._config.admin_ids,
                requester_notice=Notice.PROVISIONING_FAILED,
                admin_notice=Notice.PROVISIONING_FAILED_ADMIN,
            )
            # Whatever the set-up made before it failed goes at the end date (or by /revoke).
            await tx.jobs.enqueue(end_job(engagement, self._config))
            await tx.jobs.enqueue(update_cards_job(engagement))
            await self._audit(
                tx, A.PROVISIONING_FAILED, engagement_id, AuditOutcome.FAILED, reason
            )
            await tx.commit()

    # --- notices ----------------------------------------------------------------------------

    async def notify(
        self, engagement_id: int, user_id: str, notice: Notice, *, detail: str | None = None
    ) -> None:
        engagement = await self._load(engagement_id)
        try:
            await self._notifier.send_notice(user_id, engagement, notice, detail)
        except NoConversation:
            async with self._storage.transaction() as tx:
                await self._audit(
                    tx,
                    A.NOTICE_UNDELIVERABLE,
                    engagement_id,
                    AuditOutcome.FAILED,
                    f"{notice.value}: no chat with {user_id}",
                )
                await tx.commit()

    # --- helpers ----------------------------------------------------------------------------

    async def _load(self, engagement_id: int) -> Engagement:
        async with self._storage.transaction() as tx:
            return await self._reload(tx, engagement_id)

    async def _reload(self, tx: Transaction, engagement_id: int) -> Engagement:
        engagement = await tx.engagements.get(engagement_id)
        if engagement is None:
            raise NotFound(f"engagement {engagement_id} does not exist")
        return engagement

    async def _record(
        self,
        engagement: Engagement,
        action: str | None,
        *,
        detail: str = "",
        advance: bool = True,
        outcome: AuditOutcome = AuditOutcome.OK,
        **made: object,
    ) -> Engagement:
        """Store what a provisioning step made, its audit record and the job for the next step,
        in one transaction."""
        assert engagement.id is not None
        async with self._storage.transaction() as tx:
            current = await self._reload(tx, engagement.id)
            for name, value in made.items():
                setattr(current, name, value)
            current = await tx.engagements.update(current)
            if action is not None:
                await self._audit(tx, action, current.id, outcome, detail)
            if advance:
                await tx.jobs.enqueue(provision_job(current))
            await tx.commit()
        return current

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

"""Intake use cases: open the form (offering the draft), check a submission against the form's
rules, the tenant's policy and Microsoft 365 (pre-flight), keep the draft, show the preview,
and create the engagement on Confirm.

Pre-flight only reads Graph (through the Directory port); nothing is written to Graph and no
engagement or job is stored before the requester confirms a preview that passed every check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core import audit_actions as A
from core import texts
from core.approvals import needs_second_stage
from core.channel_names import MAX_CHANNEL_NAME, suggest_channel_name
from core.clock import Clock
from core.config import ProgramConfig
from core.engagements import append_audit, route_approval_job
from core.errors import DirectoryError, DomainError, DuplicateSubmission
from core.intake import (
    FIELD_CHANNEL_NAME,
    FIELD_FREELANCER_EMAIL,
    FIELD_PROJECT_TITLE,
    FIELD_TEAM,
    FORM_PROBLEM,
    FieldErrors,
    IntakeForm,
    clean_values,
    parse_intake,
)
from core.model import (
    Actor,
    Engagement,
    EngagementState,
    IntakeDraft,
    TeamInstallation,
)
from core.policy import TenantPolicy, policy_in
from core.ports import Directory, DirectoryUser, Storage, Transaction

log = logging.getLogger(__name__)

# A draft untouched for this long is not offered again, and is pruned (every
# DRAFT_PRUNE_EVERY saves of a process).
DRAFT_TTL = timedelta(days=30)
DRAFT_PRUNE_EVERY = 200
# Teams allows 30 private channels per team, deleted ones included (facts A4).
PRIVATE_CHANNEL_LIMIT = 30
# Pre-flight's Graph reads run side by side; past this the requester is told to try again.
PREFLIGHT_TIMEOUT_S = 10.0
# A freelancer may not have two of these in one team (a duplicate request).
DUPLICATE_BLOCKING_STATES = frozenset(
    {
        EngagementState.PENDING_APPROVAL,
        EngagementState.CHANGES_REQUESTED,
        EngagementState.PROVISIONING,
        EngagementState.PROVISIONING_FAILED,
        EngagementState.ACTIVE,
    }
)
# Engagements whose channel name is taken in their team (the others never made a channel).
NEVER_MADE_A_CHANNEL = frozenset(
    {EngagementState.REJECTED, EngagementState.CANCELLED, EngagementState.EXPIRED}
)
CHANNEL_NAME_HOLDING_STATES = tuple(s for s in EngagementState if s not in NEVER_MADE_A_CHANNEL)


class NoDraft(DomainError):
    """Confirm or Edit of a request that was cancelled or already submitted."""


class StalePreview(DomainError):
    """Confirm of a preview older than the draft (the form was changed since)."""

    def __init__(self, draft: IntakeDraft) -> None:
        super().__init__(texts.PREVIEW_OUT_OF_DATE)
        self.draft = draft


@dataclass(frozen=True)
class Submission:
    engagement: Engagement
    created: bool  # False: this submission was seen before, nothing new was stored


@dataclass(frozen=True)
class IntakeStart:
    """What /request opens: the teams to choose from, the form's values, and the draft they
    came from (None: a fresh form)."""

    teams: Sequence[TeamInstallation]
    values: dict[str, str]
    today: date
    draft: IntakeDraft | None


@dataclass(frozen=True)
class IntakePreview:
    """A submission that passed every check, waiting for Confirm."""

    form: IntakeForm
    team: TeamInstallation
    draft: IntakeDraft
    time_zone: str
    notes: tuple[str, ...]  # what pre-flight found that the requester should know


@dataclass(frozen=True)
class _Checked:
    form: IntakeForm
    team: TeamInstallation
    notes: tuple[str, ...]
    policy: TenantPolicy


def resolve_zone(time_zone: str | None, config: ProgramConfig) -> tuple[str, bool]:
    """The IANA zone to use for a requester (the activity's `localTimezone`), and whether it
    is theirs (False: it was missing or unknown, and the program's zone is used)."""
    if time_zone and len(time_zone) <= 64:
        try:
            ZoneInfo(time_zone)
        except Exception:  # ValueError, ZoneInfoNotFoundError, odd keys such as "../x"
            pass
        else:
            return time_zone, True
    return config.time_zone, False


class IntakeService:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        config: ProgramConfig,
        *,
        directory: Directory,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._config = config
        self._directory = directory
        self._saves = 0

    def today(self, time_zone: str | None) -> date:
        """Today in the requester's zone (the form's default dates)."""
        zone, _ = resolve_zone(time_zone, self._config)
        return self._clock.now().astimezone(ZoneInfo(zone)).date()

    def _earliest_start(self, time_zone: str | None) -> date:
        zone, known = resolve_zone(time_zone, self._config)
        today = self._clock.now().astimezone(ZoneInfo(zone)).date()
        # Without the requester's zone, someone east of the program's zone may rightly start
        # on what is still tomorrow there.
        return today if known else today - timedelta(days=1)

    # --- the form and its draft ---------------------------------------------------------------

    async def start(
        self,
        actor: Actor,
        tenant_id: str,
        time_zone: str | None,
        prefill: Mapping[str, str],
    ) -> IntakeStart:
        """The form for /request: the draft's values (if there is a recent one) overlaid with
        what the command gave."""
        async with self._storage.transaction() as tx:
            teams = await tx.conversations.list_teams(tenant_id)
            draft = await self._live_draft(tx, tenant_id, actor.aad_id)
        values = dict(draft.values) if draft else {}
        values.update(prefill)
        return IntakeStart(teams, values, self.today(time_zone), draft)

    async def draft(self, actor: Actor, tenant_id: str) -> IntakeDraft | None:
        async with self._storage.transaction() as tx:
            return await self._live_draft(tx, tenant_id, actor.aad_id)

    async def save_draft(
        self, actor: Actor, tenant_id: str, time_zone: str | None, values: Mapping[str, Any]
    ) -> IntakeDraft:
        """Keep what the requester typed (the form's fields only, cleaned and bounded)."""
        return await self._save_draft(
            tenant_id, actor, time_zone, clean_values(values), previewed=False
        )

    async def discard(self, actor: Actor, tenant_id: str) -> IntakeDraft | None:
        """Drop the requester's draft (/cancel); the draft that was dropped, or None."""
        async with self._storage.transaction() as tx:
            draft = await self._live_draft(tx, tenant_id, actor.aad_id)
            deleted = await tx.drafts.delete(tenant_id, actor.aad_id)
            await tx.commit()
        return draft if deleted else None

    async def teams(self, tenant_id: str) -> Sequence[TeamInstallation]:
        async with self._storage.transaction() as tx:
            return await tx.conversations.list_teams(tenant_id)

    # --- submit -> preview --------------------------------------------------------------------

    async def preview(
        self, actor: Actor, tenant_id: str, time_zone: str | None, values: Mapping[str, Any]
    ) -> IntakePreview:
        """Check a submitted form. Either way the values are kept as the requester's draft;
        FieldErrors (one message per wrong field) when a check fails, else the preview."""
        cleaned = clean_values(values)
        if not cleaned.get(FIELD_CHANNEL_NAME) and cleaned.get(FIELD_PROJECT_TITLE):
            # Left empty: the channel is named after the project (the form's placeholder).
            cleaned[FIELD_CHANNEL_NAME] = suggest_channel_name(cleaned[FIELD_PROJECT_TITLE])
        try:
            checked = await self._check(actor, tenant_id, cleaned, time_zone)
        except FieldErrors:
            await self._save_draft(tenant_id, actor, time_zone, cleaned, previewed=False)
            raise
        draft = await self._save_draft(tenant_id, actor, time_zone, cleaned, previewed=True)
        zone, _ = resolve_zone(time_zone, self._config)
        return IntakePreview(checked.form, checked.team, draft, zone, checked.notes)

    async def recheck(self, actor: Actor, tenant_id: str, draft: IntakeDraft) -> IntakePreview:
        """The preview of the requester's current draft, checked afresh (a stale preview was
        confirmed). An already previewed draft keeps its version, so every preview of it that
        is on screen can still be confirmed."""
        checked = await self._check_draft(actor, tenant_id, draft)
        if not draft.previewed:
            draft = await self._save_draft(
                tenant_id, actor, draft.time_zone, draft.values, previewed=True
            )
        zone, _ = resolve_zone(draft.time_zone, self._config)
        return IntakePreview(checked.form, checked.team, draft, zone, checked.notes)

    async def reopen(self, actor: Actor, tenant_id: str) -> IntakeStart:
        """Edit on a preview: the form again with the draft's values."""
        async with self._storage.transaction() as tx:
            teams = await tx.conversations.list_teams(tenant_id)
            draft = await self._live_draft(tx, tenant_id, actor.aad_id)
        if draft is None:
            raise NoDraft(texts.DRAFT_GONE)
        return IntakeStart(teams, dict(draft.values), self.today(draft.time_zone), draft)

    # --- confirm -> engagement ----------------------------------------------------------------

    async def confirm(
        self,
        actor: Actor,
        tenant_id: str,
        version: int,
        *,
        submission_key: str | None = None,
    ) -> Submission:
        """Create the engagement from the previewed draft, checked once more (the policy or
        the directory may have changed since the preview).

        `submission_key` identifies the card: the same key again (a re-delivered or
        double-clicked Confirm) returns the engagement it made. Raises NoDraft, StalePreview
        (the draft changed since this preview) or FieldErrors (a check now fails)."""
        if submission_key is not None:
            earlier = await self._by_submission_key(submission_key)
            if earlier is not None:
                return Submission(earlier, created=False)
        draft = await self.draft(actor, tenant_id)
        if draft is None:
            raise NoDraft(texts.DRAFT_GONE)
        if not draft.previewed or draft.version != version:
            raise StalePreview(draft)
        checked = await self._check_draft(actor, tenant_id, draft)
        try:
            engagement = await self._create(actor, tenant_id, draft, checked, submission_key)
        except DuplicateSubmission:
            assert submission_key is not None
            earlier = await self._by_submission_key(submission_key)
            if earlier is None:  # pragma: no cover - the other transaction committed it
                raise
            return Submission(earlier, created=False)
        return Submission(engagement, created=True)

    async def _create(
        self,
        actor: Actor,
        tenant_id: str,
        draft: IntakeDraft,
        checked: _Checked,
        submission_key: str | None,
    ) -> Engagement:
        form, now = checked.form, self._clock.now()
        async with self._storage.transaction() as tx:
            # Checked again in the transaction that stores: another request may have been
            # confirmed since the pre-flight.
            errors = await self._database_conflicts(tx, form, tenant_id)
            if errors:
                raise FieldErrors(errors)
            engagement = await tx.engagements.add(
                Engagement(
                    requester_id=actor.aad_id,
                    requester_name=actor.name,
                    tenant_id=tenant_id,
                    project_title=form.project_title,
                    description=form.description,
                    freelancer_name=form.freelancer_name,
                    freelancer_email=str(form.freelancer_email).lower(),
                    start_date=form.start_date,
                    end_date=form.end_date,
                    team_id=form.team_id,
                    team_name=checked.team.name,
                    channel_name=form.channel_name,
                    created_at=now,
                    updated_at=now,
                    submission_key=submission_key,
                    justification=form.justification,
                    freelancer_org=form.freelancer_org,
                    profile_url=form.profile_url,
                    data_classification=form.data_classification,
                    budget=form.budget,
                    hours=form.hours,
                    time_zone=resolve_zone(draft.time_zone, self._config)[0],
                    **_stages(checked),
                )
            )
            await tx.jobs.enqueue(route_approval_job(engagement))
            await append_audit(tx, now, actor, A.ENGAGEMENT_SUBMITTED, engagement.id)
            await tx.drafts.delete(tenant_id, actor.aad_id)
            await tx.commit()
        return engagement

    # --- a request sent back for changes ----------------------------------------------------

    async def revise(
        self,
        actor: Actor,
        engagement: Engagement,
        values: Mapping[str, Any],
        time_zone: str | None,
    ) -> Engagement:
        """The engagement with the requester's edited content, checked like a new request
        (form, policy, pre-flight; its own name and freelancer conflict with nothing). Raises
        FieldErrors; stores nothing (core.approvals.resubmit does, with a compare-and-set)."""
        cleaned = clean_values(values)
        checked = await self._check(
            actor, engagement.tenant_id, cleaned, time_zone, revising=engagement.id
        )
        form = checked.form
        return replace(
            engagement,
            project_title=form.project_title,
            description=form.description,
            justification=form.justification,
            freelancer_name=form.freelancer_name,
            freelancer_email=str(form.freelancer_email).lower(),
            freelancer_org=form.freelancer_org,
            profile_url=form.profile_url,
            start_date=form.start_date,
            end_date=form.end_date,
            data_classification=form.data_classification,
            budget=form.budget,
            hours=form.hours,
            team_id=form.team_id,
            team_name=checked.team.name,
            channel_name=form.channel_name,
            **_stages(checked),
        )

    async def _by_submission_key(self, submission_key: str) -> Engagement | None:
        async with self._storage.transaction() as tx:
            return await tx.engagements.get_by_submission_key(submission_key)

    # --- the checks ---------------------------------------------------------------------------

    async def _check(
        self,
        actor: Actor,
        tenant_id: str,
        values: Mapping[str, Any],
        time_zone: str | None,
        *,
        revising: int | None = None,
    ) -> _Checked:
        """The form's rules and the tenant's policy, then our records, then Microsoft 365.
        Raises FieldErrors with every problem found at the stage that found one. `revising`:
        the engagement being changed, which conflicts with nothing of its own."""
        async with self._storage.transaction() as tx:
            teams = {t.aad_group_id: t for t in await tx.conversations.list_teams(tenant_id)}
            policy = await policy_in(tx, tenant_id, self._config)
            form = parse_intake(
                values,
                earliest_start=self._earliest_start(time_zone),
                allowed_team_ids=set(teams),
                policy=policy,
            )
            errors = await self._database_conflicts(tx, form, tenant_id, revising)
        team = teams[form.team_id]
        graph_errors, notes = await self._graph_preflight(actor, form, team, policy)
        for field, message in graph_errors.items():
            errors.setdefault(field, message)
        if errors:
            raise FieldErrors(errors)
        return _Checked(form, team, notes, policy)

    async def _check_draft(self, actor: Actor, tenant_id: str, draft: IntakeDraft) -> _Checked:
        """`_check` of a stored draft; a draft that fails is no longer previewed, so none of
        its previews can be confirmed until it passes again."""
        try:
            return await self._check(actor, tenant_id, draft.values, draft.time_zone)
        except FieldErrors:
            await self._save_draft(
                tenant_id, actor, draft.time_zone, draft.values, previewed=False
            )
            raise

    async def _database_conflicts(
        self, tx: Transaction, form: IntakeForm, tenant_id: str, revising: int | None = None
    ) -> dict[str, str]:
        errors: dict[str, str] = {}
        email = str(form.freelancer_email)
        for other in await tx.engagements.list_for_guest(None, email):
            if (
                other.id != revising
                and other.tenant_id == tenant_id
                and other.team_id == form.team_id
                and other.state in DUPLICATE_BLOCKING_STATES
            ):
                errors[FIELD_FREELANCER_EMAIL] = texts.ERR_DUPLICATE_ENGAGEMENT.format(
                    name=form.freelancer_name,
                    team=other.team_name,
                    ref=other.ref,
                    title=other.project_title,
                    state=texts.STATE_LABELS[other.state.value].lower(),
                )
                break
        same_name = await tx.engagements.find_by_channel_name(
            form.team_id, form.channel_name, states=CHANNEL_NAME_HOLDING_STATES
        )
        if same_name is not None and same_name.id != revising:
            errors[FIELD_CHANNEL_NAME] = texts.ERR_CHANNEL_IN_USE.format(ref=same_name.ref)
        return errors

    async def _graph_preflight(
        self, actor: Actor, form: IntakeForm, team: TeamInstallation, policy: TenantPolicy
    ) -> tuple[dict[str, str], tuple[str, ...]]:
        """Reads only: is the freelancer known, is the requester in the team, is the channel
        name free and is there room for another private channel."""
        directory = self._directory
        try:
            existing, membership, channels = await asyncio.wait_for(
                asyncio.gather(
                    directory.find_user_by_email(str(form.freelancer_email)),
                    directory.find_team_member(form.team_id, actor.aad_id),
                    directory.list_channels(form.team_id),
                ),
                timeout=PREFLIGHT_TIMEOUT_S,
            )
        except (DirectoryError, TimeoutError) as problem:
            log.warning("intake pre-flight could not ask Microsoft Graph: %s", problem)
            return {FORM_PROBLEM: texts.PREFLIGHT_UNAVAILABLE}, ()
        errors: dict[str, str] = {}
        notes: list[str] = []
        guest_note = self._guest_finding(form, existing, errors)
        if guest_note:
            notes.append(guest_note)
        if membership is None:
            errors[FIELD_TEAM] = texts.ERR_NOT_TEAM_MEMBER.format(team=team.name)
        private = sum(1 for c in channels if c.membership_type == "private")
        if private >= PRIVATE_CHANNEL_LIMIT:
            errors.setdefault(
                FIELD_TEAM,
                texts.ERR_PRIVATE_CHANNEL_LIMIT.format(
                    team=team.name, limit=PRIVATE_CHANNEL_LIMIT
                ),
            )
        taken = {c.display_name.casefold() for c in channels}
        if form.channel_name.casefold() in taken:
            free = await self._free_channel_name(form, taken, policy)
            errors[FIELD_CHANNEL_NAME] = (
                texts.ERR_CHANNEL_TAKEN_SUGGEST.format(
                    name=form.channel_name, team=team.name, suggestion=free
                )
                if free
                else texts.ERR_CHANNEL_TAKEN.format(name=form.channel_name, team=team.name)
            )
        return errors, tuple(notes)

    @staticmethod
    def _guest_finding(
        form: IntakeForm, existing: DirectoryUser | None, errors: dict[str, str]
    ) -> str | None:
        if existing is None:
            return None
        if existing.user_type.lower() != "guest":
            errors[FIELD_FREELANCER_EMAIL] = texts.ERR_FREELANCER_IS_MEMBER.format(
                email=form.freelancer_email
            )
            return None
        if not existing.account_enabled:
            return texts.PREFLIGHT_GUEST_DISABLED.format(name=existing.display_name)
        return texts.PREFLIGHT_GUEST_EXISTS.format(name=existing.display_name)

    async def _free_channel_name(
        self, form: IntakeForm, taken: set[str], policy: TenantPolicy
    ) -> str | None:
        """The first of "Name 2", "Name 3", ... that neither Teams nor our records hold."""
        async with self._storage.transaction() as tx:
            for number in range(2, 100):
                suffix = f" {number}"
                candidate = form.channel_name[: MAX_CHANNEL_NAME - len(suffix)].rstrip(" .")
                candidate += suffix
                if candidate.casefold() in taken:
                    continue
                held = await tx.engagements.find_by_channel_name(
                    form.team_id, candidate, states=CHANNEL_NAME_HOLDING_STATES
                )
                if held is None:
                    return candidate
        return None

    # --- drafts -------------------------------------------------------------------------------

    async def _live_draft(
        self, tx: Transaction, tenant_id: str, user_id: str
    ) -> IntakeDraft | None:
        draft = await tx.drafts.get(tenant_id, user_id)
        if draft is None or self._clock.now() - draft.updated_at > DRAFT_TTL:
            return None
        return draft

    async def _save_draft(
        self,
        tenant_id: str,
        actor: Actor,
        time_zone: str | None,
        values: Mapping[str, str],
        *,
        previewed: bool,
    ) -> IntakeDraft:
        now = self._clock.now()
        zone = resolve_zone(time_zone, self._config)[0] if time_zone else None
        draft = IntakeDraft(
            tenant_id=tenant_id,
            user_id=actor.aad_id,
            values=dict(values),
            time_zone=zone,
            created_at=now,
            updated_at=now,
            previewed=previewed,
        )
        async with self._storage.transaction() as tx:
            saved = await tx.drafts.save(draft)
            # Abandoned drafts are dropped now and then, by whichever replica saves one.
            self._saves += 1
            if self._saves % DRAFT_PRUNE_EVERY == 0:
                await tx.drafts.prune(now - DRAFT_TTL)
            await tx.commit()
        return saved


def _stages(checked: _Checked) -> dict[str, Any]:
    """The approval stages the tenant's policy asks of this request."""
    form, policy = checked.form, checked.policy
    days = (form.end_date - form.start_date).days
    if needs_second_stage(policy, form.data_classification, days):
        return {"stages": 2, "second_stage_group_id": policy.second_stage_group_id}
    return {"stages": 1, "second_stage_group_id": None}

"""Administration use cases: admin lists, an engagement's timeline, the audit log, the program
report (KPIs), admin extensions and the CSV exports. Every admin command is audited, refusals
included; reads go through indexed queries only (see storage/tables.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Generic, TypeVar

from core import audit_actions as A
from core import texts
from core.admin_rights import AdminRights
from core.clock import Clock
from core.config import ProgramConfig
from core.engagements import append_audit, is_involved
from core.errors import InvalidInput, NotAuthorised, NotFound
from core.exports import (
    AUDIT_COLUMNS,
    ENGAGEMENT_COLUMNS,
    ExportGrant,
    ExportKind,
    ExportLinks,
    audit_row,
    csv_text,
    engagement_row,
)
from core.lifecycle import LifecycleService
from core.model import (
    Actor,
    AuditOutcome,
    AuditRecord,
    Engagement,
    EngagementState,
    TeamInstallation,
    engagement_ref,
)
from core.ports import DurationSummary, EngagementQuery, Storage, Transaction

PAGE_SIZE = 10
# /audit last N: at most this many records, paged.
MAX_AUDIT_LAST = 500
DEFAULT_AUDIT_LAST = 20
DEFAULT_EXPIRING_DAYS = 30
MAX_EXPIRING_DAYS = 3_650
# Pages beyond this are refused: an offset that large is a scan, and nobody reads that far.
MAX_PAGE = 1_000
# /show lists an engagement's newest audit records; older ones are counted, not listed.
TIMELINE_LENGTH = 30
EXPORT_BATCH = 1_000

# /requests STATE: the state's own name, or one of these words.
STATE_WORDS: dict[str, frozenset[EngagementState]] = {
    **{state.value: frozenset({state}) for state in EngagementState},
    "pending": frozenset({EngagementState.PENDING_APPROVAL}),
    "failed": frozenset({EngagementState.PROVISIONING_FAILED, EngagementState.OFFBOARDING_FAILED}),
    "open": frozenset(
        {
            EngagementState.PENDING_APPROVAL,
            EngagementState.CHANGES_REQUESTED,
            EngagementState.PROVISIONING,
            EngagementState.PROVISIONING_FAILED,
        }
    ),
    "all": frozenset(EngagementState),
}


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    number: int  # 1-based
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


@dataclass(frozen=True)
class Timeline:
    engagement: Engagement
    records: Sequence[AuditRecord]  # oldest first, the newest TIMELINE_LENGTH
    earlier: int  # records older than those, not listed


@dataclass(frozen=True)
class ProgramReport:
    generated_at: datetime
    window_days: int
    by_state: dict[EngagementState, int]
    decisions: int  # decided within the window
    median_to_decision: timedelta | None
    provisionings: int  # became active within the window
    median_to_provisioned: timedelta | None  # from approval to active
    rejected: int
    rejection_rate: float | None  # rejected / decided, within the window
    active_by_team: Sequence[tuple[str, int]] = field(default_factory=tuple)
    ending_days: int = DEFAULT_EXPIRING_DAYS
    ending_soon: int = 0
    waiting_hours: int = 48
    waiting_long: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


def compute_report(
    *,
    now: datetime,
    window_days: int,
    by_state: dict[EngagementState, int],
    decisions: DurationSummary,
    provisionings: DurationSummary,
    active_by_team: Sequence[tuple[str, int]],
    ending_soon: int,
    waiting_long: int,
    ending_days: int = DEFAULT_EXPIRING_DAYS,
    waiting_hours: int = 48,
) -> ProgramReport:
    """The KPIs from the figures storage returns."""
    return ProgramReport(
        generated_at=now,
        window_days=window_days,
        by_state=by_state,
        decisions=decisions.count,
        median_to_decision=decisions.median,
        provisionings=provisionings.count,
        median_to_provisioned=provisionings.median,
        rejected=decisions.rejected,
        rejection_rate=decisions.rejected / decisions.count if decisions.count else None,
        active_by_team=tuple(active_by_team),
        ending_days=ending_days,
        ending_soon=ending_soon,
        waiting_hours=waiting_hours,
        waiting_long=waiting_long,
    )


class AdminService:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        config: ProgramConfig,
        *,
        rights: AdminRights,
        lifecycle: LifecycleService,
        export_links: ExportLinks | None = None,
        report_window_days: int = 90,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._config = config
        self.rights = rights
        self._lifecycle = lifecycle
        self.export_links = export_links
        self.report_window_days = report_window_days

    def now(self) -> datetime:
        return self._clock.now()

    # --- rights -----------------------------------------------------------------------------

    async def require_admin(self, actor: Actor, command: str, detail: str = "") -> None:
        """Raise NotAuthorised (audited) unless `actor` is an admin."""
        if await self.rights.is_admin(actor.aad_id):
            return
        async with self._storage.transaction() as tx:
            await self._audit(
                tx, actor, command, None, AuditOutcome.REFUSED, _joined("not admin", detail)
            )
            await tx.commit()
        raise NotAuthorised(texts.ADMIN_ONLY.format(command=command))

    # --- lists ------------------------------------------------------------------------------

    async def list_requests(
        self, actor: Actor, state_word: str, page: int
    ) -> tuple[Page[Engagement], frozenset[EngagementState] | None]:
        """/requests [STATE] [page]: newest first, optionally of some states."""
        await self.require_admin(actor, "/requests")
        states = None
        if state_word:
            states = STATE_WORDS.get(state_word.lower())
            if states is None:
                raise InvalidInput(
                    texts.REQUESTS_STATE_UNKNOWN.format(
                        state=state_word[:40], states=", ".join(state_words())
                    )
                )
        query = EngagementQuery(states=states)
        return await self._page(actor, "/requests", query, page, state_word), states

    async def list_active(
        self, actor: Actor, tenant_id: str, team: str, page: int
    ) -> tuple[Page[Engagement], TeamInstallation | None]:
        """/active [TEAM]: active engagements, newest first, in one team if named."""
        await self.require_admin(actor, "/active")
        chosen = None
        team_ids = None
        if team:
            async with self._storage.transaction() as tx:
                chosen = pick_team(await tx.conversations.list_teams(tenant_id), team)
            team_ids = frozenset({chosen.aad_group_id})
        query = EngagementQuery(states=frozenset({EngagementState.ACTIVE}), team_ids=team_ids)
        return await self._page(actor, "/active", query, page, team), chosen

    async def list_expiring(self, actor: Actor, days: int, page: int) -> Page[Engagement]:
        """/expiring [DAYS]: active engagements ending within `days` days, soonest first."""
        await self.require_admin(actor, "/expiring")
        if not 0 <= days <= MAX_EXPIRING_DAYS:
            raise InvalidInput(texts.EXPIRING_DAYS_INVALID.format(max=MAX_EXPIRING_DAYS))
        today = self._config.today(self._clock.now())
        query = EngagementQuery(
            states=frozenset({EngagementState.ACTIVE}),
            ends_on_or_after=today,
            ends_on_or_before=today + timedelta(days=days),
            order="ending",
        )
        return await self._page(actor, "/expiring", query, page, str(days))

    async def _page(
        self, actor: Actor, command: str, query: EngagementQuery, page: int, detail: str
    ) -> Page[Engagement]:
        page = _page_number(page)
        async with self._storage.transaction() as tx:
            rows = await tx.engagements.search(
                query, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE + 1
            )
            await self._audit(tx, actor, command, None, detail=_joined(detail, f"page {page}"))
            await tx.commit()
        return Page(rows[:PAGE_SIZE], page, has_next=len(rows) > PAGE_SIZE)

    # --- one engagement ---------------------------------------------------------------------

    async def timeline(self, actor: Actor, tenant_id: str, engagement_id: int) -> Timeline:
        """/show FC-n: for the requester, the approver, whoever decided, and admins. Others
        get the same answer as for an id that does not exist (and the refusal is audited)."""
        is_admin = await self.rights.is_admin(actor.aad_id)
        async with self._storage.transaction() as tx:
            engagement = await tx.engagements.get(engagement_id)
            # Admins are program-wide (as in the lists); the others only in their own tenant.
            involved = engagement is not None and (
                is_admin or (engagement.tenant_id == tenant_id and is_involved(engagement, actor))
            )
            if engagement is None or not involved:
                detail = "not found" if engagement is None else "not involved"
                await self._audit(tx, actor, "/show", engagement_id, AuditOutcome.REFUSED, detail)
                await tx.commit()
                ref = engagement_ref(engagement_id)
                raise NotFound(texts.ENGAGEMENT_NOT_FOUND.format(ref=ref))
            newest = await tx.audit.newest(
                engagement_id=engagement_id, offset=0, limit=TIMELINE_LENGTH + 1
            )
            earlier = 0
            if len(newest) > TIMELINE_LENGTH:
                total = await tx.audit.count_for_engagement(engagement_id)
                earlier = total - TIMELINE_LENGTH
            await self._audit(tx, actor, "/show", engagement_id)
            await tx.commit()
        return Timeline(engagement, tuple(reversed(newest[:TIMELINE_LENGTH])), earlier)

    async def extend(
        self, actor: Actor, engagement_id: int, new_end: str
    ) -> tuple[Engagement, date]:
        """/extend FC-n YYYY-MM-DD: an admin sets a later end date directly. Returns the
        engagement and its previous end date."""
        await self.require_admin(actor, "/extend", engagement_ref(engagement_id))
        return await self._lifecycle.extend_by_admin(engagement_id, actor, new_end)

    # --- audit log --------------------------------------------------------------------------

    async def audit_log(
        self, actor: Actor, engagement_id: int | None, last: int, page: int
    ) -> Page[AuditRecord]:
        """/audit FC-n (that engagement's records) or /audit last N; newest first, paged."""
        target = engagement_ref(engagement_id) if engagement_id else f"last {last}"
        await self.require_admin(actor, "/audit", target)
        if not 1 <= last <= MAX_AUDIT_LAST:
            raise InvalidInput(texts.AUDIT_LAST_INVALID.format(max=MAX_AUDIT_LAST))
        page = _page_number(page)
        offset = (page - 1) * PAGE_SIZE
        shown = PAGE_SIZE if engagement_id is not None else max(0, min(PAGE_SIZE, last - offset))
        async with self._storage.transaction() as tx:
            # Read before this command's own record is written, so it is not in its answer.
            records = (
                await tx.audit.newest(engagement_id=engagement_id, offset=offset, limit=shown + 1)
                if shown
                else []
            )
            await self._audit(
                tx, actor, "/audit", engagement_id, detail=_joined(target, f"page {page}")
            )
            await tx.commit()
        within_last = engagement_id is not None or offset + PAGE_SIZE < last
        has_next = within_last and len(records) > shown
        return Page(tuple(records[:shown]), page, has_next=has_next)

    # --- report -----------------------------------------------------------------------------

    async def report(self, actor: Actor) -> ProgramReport:
        await self.require_admin(actor, "/report")
        now = self._clock.now()
        today = self._config.today(now)
        since = now - timedelta(days=self.report_window_days)
        waiting_hours = 48
        async with self._storage.transaction() as tx:
            figures = tx.figures
            report = compute_report(
                now=now,
                window_days=self.report_window_days,
                by_state=await figures.count_by_state(),
                decisions=await figures.decision_times(since),
                provisionings=await figures.provisioning_times(since),
                active_by_team=await figures.active_freelancers_by_team(),
                ending_soon=await figures.count_active_ending(
                    today, today + timedelta(days=DEFAULT_EXPIRING_DAYS)
                ),
                waiting_long=await figures.count_pending_created_before(
                    now - timedelta(hours=waiting_hours)
                ),
                waiting_hours=waiting_hours,
            )
            await self._audit(tx, actor, "/report", None)
            await tx.commit()
        return report

    # --- exports ----------------------------------------------------------------------------

    async def export_link(self, actor: Actor, kind: ExportKind) -> tuple[str, ExportGrant]:
        """A signed token for downloading `kind` as CSV; raises when exports are off."""
        await self.require_admin(actor, "/export", kind.value)
        if self.export_links is None:
            raise InvalidInput(texts.EXPORT_NOT_CONFIGURED)
        token, grant = self.export_links.sign(kind, actor.aad_id, self._clock.now())
        async with self._storage.transaction() as tx:
            await self._audit(tx, actor, "/export", None, detail=f"{kind.value} link issued")
            await tx.commit()
        return token, grant

    async def open_export(self, token: str) -> ExportGrant:
        """Check a download: signature, expiry, and that the holder is still an admin.
        InvalidInput or NotAuthorised (audited) otherwise."""
        if self.export_links is None:
            raise InvalidInput(texts.EXPORT_NOT_CONFIGURED)
        grant = self.export_links.verify(token, self._clock.now())
        holder = Actor(grant.actor_id, grant.actor_id)
        await self.require_admin(holder, "/export", f"{grant.kind.value} download")
        async with self._storage.transaction() as tx:
            await self._audit(tx, holder, "/export", None, detail=f"{grant.kind.value} download")
            await tx.commit()
        return grant

    async def export_csv(self, kind: ExportKind) -> AsyncIterator[str]:
        """The CSV, header first, in chunks of EXPORT_BATCH rows; each chunk is its own short
        transaction, so a long download holds no lock and sees rows added meanwhile."""
        if kind is ExportKind.ENGAGEMENTS:
            yield csv_text([ENGAGEMENT_COLUMNS])
        else:
            yield csv_text([AUDIT_COLUMNS])
        after = 0
        while True:
            async with self._storage.transaction() as tx:
                if kind is ExportKind.ENGAGEMENTS:
                    engagements = await tx.engagements.after(after, limit=EXPORT_BATCH)
                    rows = [engagement_row(e) for e in engagements]
                    ids = [e.id or 0 for e in engagements]
                else:
                    records = await tx.audit.after(after, limit=EXPORT_BATCH)
                    rows = [audit_row(r) for r in records]
                    ids = [r.id or 0 for r in records]
            if not rows:
                return
            yield csv_text(rows)
            after = ids[-1]

    # --- helpers ----------------------------------------------------------------------------

    async def _audit(
        self,
        tx: Transaction,
        actor: Actor,
        command: str,
        engagement_id: int | None,
        outcome: AuditOutcome = AuditOutcome.OK,
        detail: str = "",
    ) -> None:
        action = A.COMMAND_PREFIX + command.lstrip("/")
        await append_audit(
            tx, self._clock.now(), actor, action, engagement_id, outcome, detail[:500]
        )


def state_words() -> list[str]:
    return sorted(STATE_WORDS)


def pick_team(teams: Sequence[TeamInstallation], wanted: str) -> TeamInstallation:
    """The team named `wanted`: an exact (case-insensitive) name, else the one team whose name
    contains it. InvalidInput names the candidates otherwise."""
    needle = wanted.strip().lower()
    exact = [team for team in teams if team.name.lower() == needle]
    if len(exact) == 1:
        return exact[0]
    partial = exact or [team for team in teams if needle in team.name.lower()]
    if len(partial) == 1:
        return partial[0]
    if partial:
        names = ", ".join(sorted(team.name for team in partial)[:10])
        raise InvalidInput(texts.TEAM_AMBIGUOUS.format(team=wanted[:60], teams=names))
    known = ", ".join(sorted(team.name for team in teams)[:10]) or texts.NO_TEAMS_KNOWN
    raise InvalidInput(texts.TEAM_UNKNOWN.format(team=wanted[:60], teams=known))


def _page_number(page: int) -> int:
    if not 1 <= page <= MAX_PAGE:
        raise InvalidInput(texts.PAGE_INVALID.format(max=MAX_PAGE))
    return page


def _joined(*parts: str) -> str:
    return "; ".join(part for part in parts if part)

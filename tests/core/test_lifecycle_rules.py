"""The lifecycle's turn use cases on real storage (SQLite): who may end, extend or decide on an
extension, every validation message, and that a refused or invalid attempt stores nothing (and
is audited when it is a refusal)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from core import audit_actions as A
from core import texts
from core.config import ProgramConfig
from core.errors import InvalidInput, InvalidTransition, NotAuthorised, NotFound
from core.lifecycle import LifecycleService, ended_channel_name, reminder_jobs
from core.model import Actor, AuditOutcome, Engagement, EngagementState, JobKind, JobStatus
from storage.repositories import SqlStorage, open_storage
from tests.support.clock import FakeClock

REQUESTER = Actor("aad-requester", "Rita Requester")
APPROVER = Actor("aad-approver", "Andy Approver")
STRANGER = Actor("aad-stranger", "Sam Stranger")
ADMIN = Actor("aad-admin", "Ada Admin")
NOW = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
CONFIG = ProgramConfig(admin_ids=frozenset({ADMIN.aad_id}), max_engagement_days=100)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def storage(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqlStorage]:
    store = await open_storage(f"sqlite+aiosqlite:///{tmp_path / 'fc.db'}", clock=clock)
    yield store
    await store.close()


@pytest.fixture
def lifecycle(storage: SqlStorage, clock: FakeClock) -> LifecycleService:
    return LifecycleService(storage, clock, CONFIG)


async def stored(storage: SqlStorage, state: EngagementState = EngagementState.ACTIVE) -> int:
    async with storage.transaction() as tx:
        engagement = await tx.engagements.add(
            Engagement(
                requester_id=REQUESTER.aad_id,
                requester_name=REQUESTER.name,
                tenant_id="tenant-1",
                project_title="Website",
                description="Pages",
                freelancer_name="Jane Doe",
                freelancer_email="jane@fabrikam.example",
                start_date=date(2027, 1, 1),
                end_date=date(2027, 3, 31),
                team_id="group-1",
                team_name="Team",
                channel_name="Website",
                created_at=NOW,
                updated_at=NOW,
                state=state,
                approver_id=APPROVER.aad_id,
                approver_name=APPROVER.name,
            )
        )
        await tx.commit()
    assert engagement.id is not None
    return engagement.id


async def snapshot(storage: SqlStorage, engagement_id: int) -> tuple[Engagement, list[str]]:
    async with storage.transaction() as tx:
        engagement = await tx.engagements.get(engagement_id)
    assert engagement is not None
    jobs = [j.kind.value for j in await storage.jobs.list_for_engagement(engagement_id)]
    return engagement, jobs


async def refusals(storage: SqlStorage, engagement_id: int) -> list[tuple[str, str]]:
    async with storage.transaction() as tx:
        records = await tx.audit.list_for_engagement(engagement_id)
    return [(r.actor_id, r.detail) for r in records if r.outcome is AuditOutcome.REFUSED]


# --- revoke ----------------------------------------------------------------------------------


async def test_revoke_by_the_requester_starts_offboarding_with_its_first_job(
    storage: SqlStorage, lifecycle: LifecycleService
) -> None:
    engagement_id = await stored(storage)
    ended = await lifecycle.revoke(engagement_id, REQUESTER, "  Contract cancelled ")
    assert ended.state is EngagementState.OFFBOARDING
    assert ended.end_reason == "Contract cancelled" and ended.ended_by_name == REQUESTER.name
    _, jobs = await snapshot(storage, engagement_id)
    assert jobs == [JobKind.OFFBOARD.value]


async def test_an_admin_may_revoke_someone_elses_engagement(
    storage: SqlStorage, lifecycle: LifecycleService
) -> None:
    engagement_id = await stored(storage)
    assert (await lifecycle.revoke(engagement_id, ADMIN, "Audit finding")).ended_by_id == (
        ADMIN.aad_id
    )


@pytest.mark.parametrize(
    ("actor", "state", "reason", "error", "message", "audited"),
    [
        (STRANGER, EngagementState.ACTIVE, "x", NotAuthorised, texts.NOT_YOURS_TO_END, True),
        (APPROVER, EngagementState.ACTIVE, "x", NotAuthorised, texts.NOT_YOURS_TO_END, True),
        (
            REQUESTER,
            EngagementState.PROVISIONING,
            "x",
            InvalidTransition,
            texts.CANNOT_END_WHILE_PROVISIONING,
            True,
        ),
        (REQUESTER, EngagementState.ENDED, "x", InvalidTransition, "nothing to end", True),
        (REQUESTER, EngagementState.REJECTED, "x", InvalidTransition, "nothing to end", True),
        (REQUESTER, EngagementState.ACTIVE, "   ", InvalidInput, texts.REVOKE_USAGE, False),
        (REQUESTER, EngagementState.ACTIVE, "y" * 501, InvalidInput, "under 500", False),
    ],
)
async def test_revoke_refusals_say_why_and_change_nothing(
    storage: SqlStorage,
    lifecycle: LifecycleService,
    actor: Actor,
    state: EngagementState,
    reason: str,
    error: type[Exception],
    message: str,
    audited: bool,
) -> None:
    engagement_id = await stored(storage, state)
    before = await snapshot(storage, engagement_id)
    with pytest.raises(error) as refused:
        await lifecycle.revoke(engagement_id, actor, reason)
    expected = message.format(ref=f"FC-{engagement_id}") if "{ref}" in message else message
    assert expected in str(refused.value)
    assert await snapshot(storage, engagement_id) == before
    assert bool(await refusals(storage, engagement_id)) is audited


async def test_revoke_of_an_unknown_engagement_is_refused_and_audited(
    storage: SqlStorage, lifecycle: LifecycleService
) -> None:
    with pytest.raises(NotFound, match="FC-404"):
        await lifecycle.revoke(404, ADMIN, "gone")
    assert await refusals(storage, 404) == [(ADMIN.aad_id, "not found")]


# --- extension -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", texts.EXTENSION_DATE_REQUIRED),
        ("next week", texts.EXTENSION_DATE_REQUIRED),
        ("2027-02-30", texts.EXTENSION_DATE_REQUIRED),
        ("2027-03-31", "must be after the current one (2027-03-31)"),
        ("2027-03-01", "must be after the current one"),
        ("2027-04-12", "at most 100 days, so the latest possible end date is 2027-04-11"),
    ],
)
async def test_extension_dates_are_validated_with_a_specific_message(
    storage: SqlStorage, lifecycle: LifecycleService, value: str, message: str
) -> None:
    engagement_id = await stored(storage)
    before = await snapshot(storage, engagement_id)
    with pytest.raises(InvalidInput) as invalid:
        await lifecycle.request_extension(engagement_id, REQUESTER, value)
    assert message in str(invalid.value)
    assert await snapshot(storage, engagement_id) == before


async def test_an_extension_into_the_past_is_refused(
    storage: SqlStorage, clock: FakeClock
) -> None:
    engagement_id = await stored(storage)
    clock.current = datetime(2027, 4, 20, tzinfo=UTC)  # after the end (an overdue job)
    lifecycle = LifecycleService(storage, clock, ProgramConfig(max_engagement_days=365))
    with pytest.raises(InvalidInput, match="can't be in the past"):
        await lifecycle.request_extension(engagement_id, REQUESTER, "2027-04-10")


async def test_only_the_requester_may_ask_for_an_extension_and_only_once_at_a_time(
    storage: SqlStorage, lifecycle: LifecycleService
) -> None:
    engagement_id = await stored(storage)
    with pytest.raises(NotAuthorised, match="Only Rita Requester"):
        await lifecycle.request_extension(engagement_id, APPROVER, "2027-04-05")
    assert await refusals(storage, engagement_id) == [(APPROVER.aad_id, "extend: not requester")]

    asked = await lifecycle.request_extension(engagement_id, REQUESTER, "2027-04-05")
    assert asked.extension_end_date == date(2027, 4, 5)
    _, jobs = await snapshot(storage, engagement_id)
    assert jobs == [JobKind.ROUTE_EXTENSION.value]
    with pytest.raises(InvalidTransition, match="already waiting for Andy Approver"):
        await lifecycle.request_extension(engagement_id, REQUESTER, "2027-04-06")


async def test_extension_decisions_by_anyone_but_the_approver_are_refused_and_audited(
    storage: SqlStorage, lifecycle: LifecycleService
) -> None:
    engagement_id = await stored(storage)
    await lifecycle.request_extension(engagement_id, REQUESTER, "2027-04-05")
    for actor in (REQUESTER, STRANGER, ADMIN):
        outcome = await lifecycle.decide_extension(engagement_id, actor, approve=True)
        assert not outcome.changed and "Only Andy Approver" in outcome.message
    engagement, _ = await snapshot(storage, engagement_id)
    assert engagement.end_date == date(2027, 3, 31)
    assert engagement.extension_end_date == date(2027, 4, 5)
    assert len(await refusals(storage, engagement_id)) == 3


async def test_rejecting_an_extension_needs_a_reason_and_tells_the_requester_why(
    storage: SqlStorage, lifecycle: LifecycleService
) -> None:
    engagement_id = await stored(storage)
    await lifecycle.request_extension(engagement_id, REQUESTER, "2027-04-05")
    no_reason = await lifecycle.decide_extension(engagement_id, APPROVER, approve=False)
    assert not no_reason.changed and no_reason.message == texts.REJECT_REASON_REQUIRED
    rejected = await lifecycle.decide_extension(
        engagement_id, APPROVER, approve=False, reason="Budget is spent"
    )
    assert rejected.changed and rejected.engagement.end_date == date(2027, 3, 31)
    assert rejected.engagement.extension_end_date is None
    jobs = await storage.jobs.list_for_engagement(engagement_id)
    notice = [j for j in jobs if j.kind is JobKind.NOTIFY]
    assert [j.payload for j in notice] == [
        {"user_id": REQUESTER.aad_id, "notice": "extension_rejected", "detail": "Budget is spent"}
    ]


async def test_approving_an_extension_moves_the_end_and_plans_new_reminders_and_end(
    storage: SqlStorage, lifecycle: LifecycleService
) -> None:
    engagement_id = await stored(storage)
    await lifecycle.request_extension(engagement_id, REQUESTER, "2027-04-10")
    outcome = await lifecycle.decide_extension(engagement_id, APPROVER, approve=True)
    assert outcome.changed and outcome.engagement.end_date == date(2027, 4, 10)
    queued = {
        (j.kind, j.run_at)
        for j in await storage.jobs.list_for_engagement(engagement_id)
        if j.status is JobStatus.QUEUED and j.kind is not JobKind.NOTIFY
    }
    assert (JobKind.END_AT_DATE, datetime(2027, 4, 11, tzinfo=UTC)) in queued
    assert (JobKind.END_REMINDER, datetime(2027, 4, 3, 9, tzinfo=UTC)) in queued
    assert (JobKind.END_REMINDER, datetime(2027, 4, 9, 9, tzinfo=UTC)) in queued


async def test_two_approvers_clicking_at_once_extend_exactly_once(
    storage: SqlStorage, lifecycle: LifecycleService
) -> None:
    engagement_id = await stored(storage)
    await lifecycle.request_extension(engagement_id, REQUESTER, "2027-04-10")
    outcomes = await asyncio.gather(
        *(lifecycle.decide_extension(engagement_id, APPROVER, approve=True) for _ in range(5))
    )
    assert sum(o.changed for o in outcomes) == 1
    async with storage.transaction() as tx:
        records = await tx.audit.list_for_engagement(engagement_id)
    assert [r.action for r in records].count(A.EXTENSION_APPROVED) == 1


async def test_let_it_end_is_the_requesters_and_is_recorded_once(
    storage: SqlStorage, lifecycle: LifecycleService
) -> None:
    engagement_id = await stored(storage)
    with pytest.raises(NotAuthorised):
        await lifecycle.let_it_end(engagement_id, STRANGER)
    assert (await lifecycle.let_it_end(engagement_id, REQUESTER)).let_it_end
    await lifecycle.let_it_end(engagement_id, REQUESTER)
    async with storage.transaction() as tx:
        records = await tx.audit.list_for_engagement(engagement_id)
    assert [r.action for r in records].count(A.LET_IT_END) == 1


# --- plans -----------------------------------------------------------------------------------


def test_reminders_are_planned_in_the_program_time_zone_and_never_in_the_past() -> None:
    config = ProgramConfig(time_zone="Europe/Berlin", end_reminder_days=(1, 7, 30))
    engagement = Engagement(
        requester_id="r",
        requester_name="R",
        tenant_id="t",
        project_title="P",
        description="D",
        freelancer_name="F",
        freelancer_email="f@x.example",
        start_date=date(2027, 1, 1),
        end_date=date(2027, 3, 31),
        team_id="g",
        team_name="T",
        channel_name="C",
        created_at=NOW,
        updated_at=NOW,
        id=5,
    )
    jobs = reminder_jobs(engagement, config, now=NOW)  # 10 March: the 30-day one has passed
    assert [(j.payload["days_before"], j.run_at) for j in jobs] == [
        (7, datetime(2027, 3, 24, 8, tzinfo=UTC)),  # 09:00 in Berlin (CET)
        (1, datetime(2027, 3, 30, 7, tzinfo=UTC)),  # 09:00 in Berlin (CEST from 28 March)
    ]
    assert config.end_instant(date(2027, 3, 31)) == datetime(2027, 3, 31, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("prefix", "name", "renamed"),
    [
        ("ENDED ", "Website", "ENDED Website"),
        ("ENDED ", "ENDED Website", "ENDED Website"),
        ("Old-", "x" * 50, "Old-" + "x" * 46),
        ("[ended] ", "Budget v2.", "[ended] Budget v2"),
    ],
)
def test_ended_channel_names_keep_teams_rules(prefix: str, name: str, renamed: str) -> None:
    assert ended_channel_name(prefix, name) == renamed
    assert len(ended_channel_name(prefix, name)) <= 50

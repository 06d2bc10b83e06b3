"""The storage contract: every test runs on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import DuplicateSubmission, StaleVersion
from core.model import (
    AuditOutcome,
    AuditRecord,
    DataClassification,
    Engagement,
    EngagementState,
    Job,
    JobKind,
    JobStatus,
    MessageRef,
    NewJob,
    OffboardingStep,
    TeamInstallation,
    UserConversation,
)
from storage.db import SQLITE_BUSY_TIMEOUT_MS, make_engine, normalize_database_url
from storage.migrate import current_revision, head_revision, upgrade_database
from storage.repositories import SqlStorage
from storage.tables import jobs as jobs_table
from storage.tables import metadata
from tests.contract.conftest import FakeClock

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LEASE = 30.0


def make_engagement(**changes: Any) -> Engagement:
    engagement = Engagement(
        requester_id="requester-1",
        requester_name="Ada Lovelace",
        tenant_id="tenant-1",
        project_title="Website relaunch",
        description="New landing pages",
        freelancer_name="Fred Lance",
        freelancer_email="fred@example.org",
        start_date=date(2025, 3, 3),
        end_date=date(2025, 6, 30),
        team_id="group-1",
        team_name="Marketing",
        channel_name="fl-fred-lance",
        created_at=T0,
        updated_at=T0,
    )
    return dataclasses.replace(engagement, **changes)


async def add(storage: SqlStorage, **changes: Any) -> Engagement:
    async with storage.transaction() as tx:
        engagement = await tx.engagements.add(make_engagement(**changes))
        await tx.commit()
    return engagement


async def get(storage: SqlStorage, engagement_id: int | None) -> Engagement | None:
    assert engagement_id is not None
    async with storage.transaction() as tx:
        return await tx.engagements.get(engagement_id)


async def save(storage: SqlStorage, engagement: Engagement) -> Engagement:
    async with storage.transaction() as tx:
        stored = await tx.engagements.update(engagement)
        await tx.commit()
    return stored


async def enqueue(storage: SqlStorage, *new_jobs: NewJob) -> list[int]:
    async with storage.transaction() as tx:
        ids = [await tx.jobs.enqueue(job) for job in new_jobs]
        await tx.commit()
    return ids


def notify_job(engagement_id: int | None = 1, run_at: datetime | None = None) -> NewJob:
    return NewJob(JobKind.NOTIFY, engagement_id, {"user_id": "u-1"}, run_at=run_at)


async def claim(
    storage: SqlStorage, worker: str, now: datetime, *, limit: int = 10, lease: float = LEASE
) -> list[Job]:
    return list(
        await storage.jobs.claim(worker_id=worker, now=now, lease_seconds=lease, limit=limit)
    )


def audit_record(action: str) -> AuditRecord:
    return AuditRecord(T0, "aad-1", "Ada", action, AuditOutcome.OK, engagement_id=7)


def is_utc(value: datetime | None) -> bool:
    return value is not None and value.utcoffset() == timedelta(0)


# --- engagements ---------------------------------------------------------------------------------

CEST = timezone(timedelta(hours=2))

# Every field differs from its default, so a field that is not persisted cannot go unnoticed.
FULL = make_engagement(
    requester_name="Ada Lovelace ✓ 'quoted'",
    description="Line one\nLine two; DROP TABLE engagements; --",
    created_at=datetime(2025, 3, 1, 11, 30, 15, 123456, tzinfo=CEST),
    updated_at=datetime(2025, 3, 2, 8, 0, 0, 654321, tzinfo=UTC),
    state=EngagementState.PROVISIONING_FAILED,
    approver_id="manager-1",
    approver_name="Grace Hopper",
    approval_message=MessageRef("a:1personal-chat", "1700000000000"),
    approver_missing_notified=True,
    decided_by_id="manager-1",
    decided_by_name="Grace Hopper",
    decided_at=datetime(2025, 3, 2, 7, 59, 59, 999999, tzinfo=UTC),
    decision_reason="Budget approved",
    provisioned_at=datetime(2025, 3, 2, 10, 30, tzinfo=UTC),
    failure_reason="Channel name taken",
    submission_key="requester-1|a:1personal-chat|1700000000000",
    guest_invitation_started=True,
    channel_id="19:abc123@thread.tacv2",
    guest_user_id="guest-1",
    guest_reused=True,
    team_membership_id="MCMjMiMj" + "x" * 200,
    channel_membership_id="MCMjMSMj" + "y" * 180,
    welcome_message_id="1700000000001",
    sponsor_id="requester-1",
    extension_end_date=date(2025, 9, 30),
    let_it_end=True,
    end_reason="Contract cancelled; «early» ✓",
    ended_by_id="requester-1",
    ended_by_name="Ada Lovelace",
    ended_at=datetime(2025, 6, 1, 0, 0, 1, 5, tzinfo=CEST),
    offboarding_done=frozenset(
        {OffboardingStep.CHANNEL_MEMBER_REMOVED, OffboardingStep.ACCOUNT_DISABLED}
    ),
    invitation_nudges=2,
    justification="Two people short for the launch; «urgent» ✓",
    freelancer_org="Lance & Co. GmbH",
    profile_url="https://www.upwork.com/freelancers/~01abcdef",
    data_classification=DataClassification.CONFIDENTIAL,
    budget=Decimal("1500.50"),
    hours=120,
    time_zone="Europe/Berlin",
    approval_stage=2,
    stages=2,
    second_stage_group_id="0b8f7c6e-approvers-group",
    stage_started_at=datetime(2025, 3, 1, 23, 45, 0, 250000, tzinfo=CEST),
    approval_reminders=3,
    escalated=True,
    revision=4,
)


def test_full_engagement_sets_every_field() -> None:
    for field in dataclasses.fields(Engagement):
        if field.name in {"id", "version"}:
            continue
        if field.default is not dataclasses.MISSING:
            assert getattr(FULL, field.name) != field.default, field.name


async def test_engagement_round_trips_every_field(storage: SqlStorage) -> None:
    added = await storage_add(storage, FULL)
    assert FULL.id is None and FULL.version == 0  # the caller's object is left alone
    assert added.id is not None and added.version == 1

    stored = await get(storage, added.id)

    assert stored == dataclasses.replace(FULL, id=added.id, version=1)
    assert stored is not None
    assert isinstance(stored.state, EngagementState)
    for value in (
        stored.created_at,
        stored.updated_at,
        stored.decided_at,
        stored.stage_started_at,
    ):
        assert is_utc(value)
    assert stored.created_at.hour == 9 and stored.created_at.microsecond == 123456


async def storage_add(storage: SqlStorage, engagement: Engagement) -> Engagement:
    async with storage.transaction() as tx:
        added = await tx.engagements.add(engagement)
        await tx.commit()
    return added


async def test_minimal_engagement_round_trips_nulls(storage: SqlStorage) -> None:
    added = await add(storage)
    assert await get(storage, added.id) == added
    assert added.approval_message is None


async def test_ids_increase(storage: SqlStorage) -> None:
    ids = []
    for _ in range(3):
        engagement = await add(storage)
        assert engagement.id is not None
        ids.append(engagement.id)
    assert ids == sorted(set(ids)) and len(ids) == 3


async def test_add_is_rolled_back_without_commit(storage: SqlStorage) -> None:
    async with storage.transaction() as tx:
        added = await tx.engagements.add(make_engagement())
    assert await get(storage, added.id) is None


async def test_update_stores_every_field(storage: SqlStorage) -> None:
    added = await add(storage)
    changed = dataclasses.replace(FULL, id=added.id, version=added.version)

    saved = await save(storage, changed)

    assert saved.version == 2 and changed.version == 1
    assert await get(storage, added.id) == saved


async def test_update_is_compare_and_set(storage: SqlStorage) -> None:
    added = await add(storage)
    first = await get(storage, added.id)
    second = await get(storage, added.id)
    assert first is not None and second is not None
    first.decided_by_name = "First"
    second.decided_by_name = "Second"

    winner = await save(storage, first)
    with pytest.raises(StaleVersion):
        await save(storage, second)

    stored = await get(storage, added.id)
    assert stored is not None
    assert stored.decided_by_name == "First" and stored.version == 2 == winner.version
    winner.failure_reason = "next change"
    assert (await save(storage, winner)).version == 3


async def test_concurrent_updates_one_wins(storage: SqlStorage) -> None:
    added = await add(storage)
    assert added.id is not None
    both_read = asyncio.Barrier(2)

    async def decide(name: str) -> bool:
        assert added.id is not None
        async with storage.transaction() as tx:
            current = await tx.engagements.get(added.id)
            assert current is not None
            await both_read.wait()
            current.decided_by_name = name
            try:
                await tx.engagements.update(current)
            except StaleVersion:
                return False
            await tx.commit()
            return True

    results = await asyncio.wait_for(asyncio.gather(decide("A"), decide("B")), timeout=20)

    assert sorted(results) == [False, True]
    stored = await get(storage, added.id)
    assert stored is not None and stored.version == 2
    assert stored.decided_by_name == ("A" if results[0] else "B")


async def test_update_of_unknown_engagement_is_stale(storage: SqlStorage) -> None:
    with pytest.raises(StaleVersion):
        await save(storage, make_engagement(id=999, version=1))


async def test_list_by_requester_newest_first_with_limit(storage: SqlStorage) -> None:
    hours = [3, 1, 4, 2]
    for hour in hours:
        await add(storage, created_at=T0 + timedelta(hours=hour))
    await add(storage, requester_id="someone-else", created_at=T0 + timedelta(hours=9))

    async with storage.transaction() as tx:
        mine = await tx.engagements.list_by_requester("requester-1")
        newest_two = await tx.engagements.list_by_requester("requester-1", limit=2)

    assert [e.created_at for e in mine] == [T0 + timedelta(hours=h) for h in (4, 3, 2, 1)]
    assert newest_two == mine[:2]


async def test_list_by_state_oldest_first_with_limit(storage: SqlStorage) -> None:
    pending, provisioning, rejected = (
        EngagementState.PENDING_APPROVAL,
        EngagementState.PROVISIONING,
        EngagementState.REJECTED,
    )
    plan = [(5, pending), (1, provisioning), (3, rejected), (2, pending), (4, provisioning)]
    for hour, state in plan:
        await add(storage, created_at=T0 + timedelta(hours=hour), state=state)

    async with storage.transaction() as tx:
        open_ = await tx.engagements.list_by_state([pending, provisioning])
        oldest_two = await tx.engagements.list_by_state([pending, provisioning], limit=2)
        only_rejected = await tx.engagements.list_by_state([rejected])
        nothing = await tx.engagements.list_by_state([])

    assert [(e.created_at.hour - 9, e.state) for e in open_] == [
        (1, provisioning),
        (2, pending),
        (4, provisioning),
        (5, pending),
    ]
    assert oldest_two == open_[:2]
    assert [e.state for e in only_rejected] == [rejected]
    assert nothing == []


async def test_list_awaiting_approval_card(storage: SqlStorage) -> None:
    waiting = await add(storage, approver_id="manager-1")
    later = await add(storage, approver_id="manager-1", created_at=T0 + timedelta(hours=1))
    await add(storage, approver_id="manager-1", approval_message=MessageRef("c", "a"))
    await add(storage, approver_id="manager-2")
    await add(storage, approver_id=None)
    await add(storage, approver_id="manager-1", state=EngagementState.REJECTED)

    async with storage.transaction() as tx:
        found = await tx.engagements.list_awaiting_approval_card("manager-1")
        none = await tx.engagements.list_awaiting_approval_card("nobody")

    assert [e.id for e in found] == [waiting.id, later.id]
    assert none == []


async def test_duplicate_submission_key_raises_and_keeps_one(storage: SqlStorage) -> None:
    first = await add(storage, submission_key="card-1")
    other_key = await add(storage, submission_key="card-2")
    without_key = [await add(storage, submission_key=None) for _ in range(2)]  # never collide

    async with storage.transaction() as tx:
        with pytest.raises(DuplicateSubmission):
            await tx.engagements.add(make_engagement(submission_key="card-1", project_title="2"))
        # The transaction is still usable: what it does next is committed as usual.
        await tx.audit.append(audit_record("duplicate refused"))
        assert await tx.engagements.get_by_submission_key("card-1") == first
        third = await tx.engagements.add(make_engagement(submission_key="card-3"))
        await tx.commit()

    async with storage.transaction() as tx:
        assert await tx.engagements.get_by_submission_key("card-1") == first
        assert await tx.engagements.get_by_submission_key("card-2") == other_key
        assert await tx.engagements.get_by_submission_key("card-3") == third
        assert await tx.engagements.get_by_submission_key("card-4") is None
        everything = await tx.engagements.list_by_requester("requester-1")
        logged = await tx.audit.list_for_engagement(7)
    assert sorted(e.id for e in everything if e.id is not None) == sorted(
        e.id for e in (first, other_key, third, *without_key) if e.id is not None
    )
    assert [r.action for r in logged] == ["duplicate refused"]


async def test_duplicate_submission_within_one_transaction(storage: SqlStorage) -> None:
    async with storage.transaction() as tx:
        first = await tx.engagements.add(make_engagement(submission_key="card-1"))
        with pytest.raises(DuplicateSubmission):
            await tx.engagements.add(make_engagement(submission_key="card-1"))
        await tx.commit()
    async with storage.transaction() as tx:
        assert await tx.engagements.get_by_submission_key("card-1") == first
        assert len(await tx.engagements.list_by_requester("requester-1")) == 1


async def test_concurrent_duplicate_submissions_store_one(storage: SqlStorage) -> None:
    async def submit(n: int) -> int | None:
        async with storage.transaction() as tx:
            try:
                added = await tx.engagements.add(
                    make_engagement(submission_key="card-1", project_title=f"try {n}")
                )
            except DuplicateSubmission:
                pass
            else:
                await tx.commit()
                return added.id
        # As the caller does: a new transaction finds the engagement that won.
        async with storage.transaction() as tx:
            found = await tx.engagements.get_by_submission_key("card-1")
        assert found is not None
        return found.id

    ids = await asyncio.wait_for(asyncio.gather(*(submit(n) for n in range(10))), timeout=60)

    assert len(set(ids)) == 1 and ids[0] is not None
    async with storage.transaction() as tx:
        assert len(await tx.engagements.list_by_requester("requester-1")) == 1


async def test_other_integrity_errors_are_not_duplicate_submissions(storage: SqlStorage) -> None:
    first = await add(storage, submission_key="card-1")
    second = await add(storage, submission_key="card-2")
    assert second.id is not None
    with pytest.raises(sa.exc.IntegrityError):
        # Only add() translates the key's conflict; an update to a taken key is a bug.
        await save(storage, dataclasses.replace(second, submission_key="card-1"))
    async with storage.transaction() as tx:
        with pytest.raises(sa.exc.IntegrityError):
            await tx.engagements.add(make_engagement(submission_key="card-9", project_title=None))
    async with storage.transaction() as tx:
        assert await tx.engagements.get_by_submission_key("card-9") is None
        assert await tx.engagements.get_by_submission_key("card-1") == first


async def test_find_by_channel_name(storage: SqlStorage) -> None:
    pending, provisioning, active, rejected = (
        EngagementState.PENDING_APPROVAL,
        EngagementState.PROVISIONING,
        EngagementState.ACTIVE,
        EngagementState.REJECTED,
    )
    wanted = await add(storage, channel_name="FL-Fred-Lance", state=provisioning)
    await add(storage, channel_name="fl-fred-lance", team_id="group-2", state=provisioning)
    await add(storage, channel_name="fl-fred-lance", state=rejected)
    await add(storage, channel_name="fl-fred-lancer", state=pending)
    await add(storage, channel_name="fl-ada", state=active)

    async with storage.transaction() as tx:
        find = tx.engagements.find_by_channel_name
        assert await find("group-1", "fl-fred-lance", states=[pending, provisioning]) == wanted
        assert await find("group-1", "FL-FRED-LANCE", states=[provisioning]) == wanted
        assert await find("group-1", "fl-fred-lance", states=[pending, active]) is None
        assert await find("group-1", "fl-fred-lance", states=[]) is None
        assert await find("group-3", "fl-fred-lance", states=[provisioning]) is None
        assert await find("group-1", "fl-fred", states=[pending, provisioning]) is None
        assert await find("group-1", "fl-fred-lance%", states=[pending, provisioning]) is None
        rejected_one = await find("group-1", "Fl-Fred-Lance", states=[rejected])
        in_group_2 = await find("group-2", "FL-fred-LANCE", states=[provisioning])
        assert (await find("group-1", "FL-ADA", states=[active])) is not None
    assert rejected_one is not None and rejected_one.state is rejected
    assert in_group_2 is not None and in_group_2.team_id == "group-2"


async def test_find_by_channel_name_uses_an_index(storage: SqlStorage) -> None:
    indexes = await index_definitions(storage, "engagements")
    assert any("lower(channel_name)" in definition for definition in indexes), indexes


async def index_definitions(storage: SqlStorage, table: str) -> list[str]:
    async with storage.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            query = "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"
        else:
            query = "SELECT indexdef FROM pg_indexes WHERE tablename = :t"
        rows = await connection.execute(sa.text(query), {"t": table})
        return [str(sql).lower() for (sql,) in rows if sql is not None]


# --- conversations -------------------------------------------------------------------------------


def user_conversation(**changes: Any) -> UserConversation:
    conversation = UserConversation(
        aad_id="aad-1",
        user_id="29:abc",
        name="Ada",
        tenant_id="tenant-1",
        service_url="https://smba.trafficmanager.net/emea/",
        reference={"conversation": {"id": "a:1"}, "bot": {"id": "28:bot"}, "list": [1, "ü"]},
    )
    return dataclasses.replace(conversation, **changes)


async def test_user_conversation_upsert_and_lookup(storage: SqlStorage) -> None:
    first = user_conversation()
    second = user_conversation(name="Ada L.", user_id="29:new", reference={"v": 2})

    async with storage.transaction() as tx:
        await tx.conversations.save_user(first)
        await tx.commit()
    async with storage.transaction() as tx:
        assert await tx.conversations.get_user("aad-1") == first
        await tx.conversations.save_user(second)
        await tx.conversations.save_user(user_conversation(aad_id="aad-2"))
        await tx.commit()
    async with storage.transaction() as tx:
        assert await tx.conversations.get_user("aad-1") == second
        assert (await tx.conversations.get_user("aad-2")) == user_conversation(aad_id="aad-2")
        assert await tx.conversations.get_user("unknown") is None


def team(**changes: Any) -> TeamInstallation:
    installation = TeamInstallation(
        team_id="19:team-a@thread.tacv2",
        aad_group_id="group-a",
        name="Alpha",
        tenant_id="tenant-1",
        service_url="https://smba.trafficmanager.net/emea/",
        reference={"conversation": {"id": "19:team-a@thread.tacv2"}},
    )
    return dataclasses.replace(installation, **changes)


async def test_team_upsert_and_lookups(storage: SqlStorage) -> None:
    alpha = team()
    beta = team(team_id="19:team-b@thread.tacv2", aad_group_id="group-b", name="Beta")
    other = team(team_id="19:team-c@thread.tacv2", aad_group_id="group-c", tenant_id="t-2")
    async with storage.transaction() as tx:
        for installation in (beta, alpha, other):
            await tx.conversations.save_team(installation)
        await tx.commit()

    renamed = dataclasses.replace(alpha, name="Alpha Team", team_id="19:team-a2@thread.tacv2")
    async with storage.transaction() as tx:
        await tx.conversations.save_team(renamed)
        await tx.commit()

    async with storage.transaction() as tx:
        assert await tx.conversations.get_team("group-a") == renamed
        assert await tx.conversations.get_team("missing") is None
        assert await tx.conversations.get_team_by_thread("19:team-a2@thread.tacv2") == renamed
        assert await tx.conversations.get_team_by_thread("19:team-a@thread.tacv2") is None
        assert await tx.conversations.get_team_by_thread("19:team-b@thread.tacv2") == beta
        assert list(await tx.conversations.list_teams("tenant-1")) == [renamed, beta]
        assert list(await tx.conversations.list_teams("t-2")) == [other]
        assert list(await tx.conversations.list_teams("nobody")) == []


# --- audit ---------------------------------------------------------------------------------------


async def test_audit_append_and_list_oldest_first(storage: SqlStorage) -> None:
    def record(minute: int, action: str, engagement_id: int | None = 7) -> AuditRecord:
        return AuditRecord(
            at=T0 + timedelta(minutes=minute),
            actor_id="aad-1",
            actor_name="Ada",
            action=action,
            outcome=AuditOutcome.REFUSED if action == "refused" else AuditOutcome.OK,
            engagement_id=engagement_id,
            detail=f"detail of {action}",
        )

    records = [
        record(2, "third"),
        record(0, "first"),
        record(1, "second"),
        record(2, "fourth, same time"),
        record(1, "refused"),
    ]
    async with storage.transaction() as tx:
        for item in records:
            await tx.audit.append(item)
        await tx.audit.append(record(0, "elsewhere", engagement_id=8))
        await tx.audit.append(record(0, "no engagement", engagement_id=None))
        await tx.commit()

    async with storage.transaction() as tx:
        listed = await tx.audit.list_for_engagement(7)

    assert [r.action for r in listed] == [
        "first",
        "second",
        "refused",
        "third",
        "fourth, same time",
    ]
    assert all(r.id is not None for r in listed)
    assert {dataclasses.replace(r, id=None) for r in listed} == set(records)
    assert listed[2].outcome is AuditOutcome.REFUSED and is_utc(listed[0].at)


# --- jobs ----------------------------------------------------------------------------------------


async def test_jobs_of_a_transaction_without_commit_never_become_visible(
    storage: SqlStorage, clock: FakeClock
) -> None:
    later = clock.current + timedelta(hours=1)
    async with storage.transaction() as tx:
        job_id = await tx.jobs.enqueue(notify_job())
        # Not visible to workers while the transaction is open ...
        assert await storage.jobs.get(job_id) is None
        assert await claim(storage, "w1", later) == []
    # ... nor after it ended without commit.
    assert await storage.jobs.get(job_id) is None
    assert await claim(storage, "w1", later) == []

    with pytest.raises(RuntimeError):
        async with storage.transaction() as tx:
            engagement = await tx.engagements.add(make_engagement())
            await tx.jobs.enqueue(notify_job(engagement.id))
            raise RuntimeError("boom before commit")
    assert await claim(storage, "w1", later) == []
    assert await get(storage, engagement.id) is None


async def test_enqueue_commit_then_claim(storage: SqlStorage, clock: FakeClock) -> None:
    now = clock.current
    engagement = await add(storage)
    assert engagement.id is not None
    payload = {"user_id": "u-1", "notice": "approved", "nested": {"n": [1, 2.5, None, "ü"]}}
    async with storage.transaction() as tx:
        job_id = await tx.jobs.enqueue(NewJob(JobKind.PROVISION, engagement.id, payload))
        await tx.commit()

    queued = await storage.jobs.get(job_id)
    assert queued == Job(
        id=job_id,
        kind=JobKind.PROVISION,
        engagement_id=engagement.id,
        payload=payload,
        status=JobStatus.QUEUED,
        attempts=0,
        run_at=now,
        lease_owner=None,
        lease_expires_at=None,
        last_error=None,
        created_at=now,
    )

    claimed = await claim(storage, "worker-1", now)

    expected = dataclasses.replace(
        queued,
        status=JobStatus.RUNNING,
        attempts=1,
        lease_owner="worker-1",
        lease_expires_at=now + timedelta(seconds=LEASE),
    )
    assert claimed == [expected]
    assert await storage.jobs.get(job_id) == expected
    assert list(await storage.jobs.list_for_engagement(engagement.id)) == [expected]
    assert is_utc(claimed[0].run_at) and is_utc(claimed[0].lease_expires_at)
    assert await claim(storage, "worker-2", now) == []  # leased, not handed out again


async def test_claim_takes_earliest_due_first_up_to_limit(
    storage: SqlStorage, clock: FakeClock
) -> None:
    now = clock.current
    minutes = [5, 1, 3, 2, 4]
    ids = await enqueue(
        storage, *(notify_job(run_at=now - timedelta(minutes=10 - m)) for m in minutes)
    )
    by_run_at = [job_id for _, job_id in sorted(zip(minutes, ids, strict=True))]

    first = await claim(storage, "w1", now, limit=2)
    rest = await claim(storage, "w1", now, limit=10)

    assert [job.id for job in first] == by_run_at[:2]
    assert [job.id for job in rest] == by_run_at[2:]
    assert await claim(storage, "w1", now, limit=0) == []


async def test_future_jobs_are_not_claimed_before_run_at(
    storage: SqlStorage, clock: FakeClock
) -> None:
    run_at = clock.current + timedelta(minutes=10)
    [job_id] = await enqueue(storage, notify_job(run_at=run_at))

    # The same instants in another time zone: comparisons in SQL must be by instant.
    local_run_at = run_at.astimezone(CEST)
    assert await claim(storage, "w1", local_run_at - timedelta(microseconds=1)) == []
    assert [job.id for job in await claim(storage, "w1", local_run_at)] == [job_id]


async def test_concurrent_claimers_never_get_the_same_job(
    storage: SqlStorage, clock: FakeClock
) -> None:
    now = clock.current
    ids = await enqueue(storage, *(notify_job() for _ in range(20)))

    batches = await asyncio.wait_for(
        asyncio.gather(*(claim(storage, f"w{i}", now, limit=1) for i in range(30))), timeout=30
    )

    claimed = [(job.id, job.lease_owner) for batch in batches for job in batch]
    assert all(len(batch) <= 1 for batch in batches)
    assert sorted(job_id for job_id, _ in claimed) == sorted(ids)  # each exactly once
    for job_id, owner in claimed:
        stored = await storage.jobs.get(job_id)
        assert stored is not None and stored.lease_owner == owner and stored.attempts == 1


async def test_concurrent_batch_claimers_share_the_work(
    storage: SqlStorage, clock: FakeClock
) -> None:
    now = clock.current
    ids = await enqueue(storage, *(notify_job() for _ in range(20)))

    batches = await asyncio.wait_for(
        asyncio.gather(*(claim(storage, f"w{i}", now, limit=3) for i in range(8))), timeout=30
    )

    claimed = [job.id for batch in batches for job in batch]
    assert sorted(claimed) == sorted(ids)
    assert all(len(batch) <= 3 for batch in batches)


async def test_expired_lease_is_reclaimed_and_old_owner_loses(
    storage: SqlStorage, clock: FakeClock
) -> None:
    now = clock.current
    [job_id] = await enqueue(storage, notify_job())
    await claim(storage, "worker-a", now)
    expiry = now + timedelta(seconds=LEASE)

    assert await claim(storage, "worker-b", expiry - timedelta(seconds=1)) == []
    assert await claim(storage, "worker-b", expiry) == []  # expired means strictly after
    [second] = await claim(storage, "worker-b", expiry + timedelta(seconds=1))

    assert second.id == job_id and second.lease_owner == "worker-b" and second.attempts == 2
    later = expiry + timedelta(seconds=2)
    jobs = storage.jobs
    assert not await jobs.complete(job_id, worker_id="worker-a", now=later)
    assert not await jobs.renew_lease(job_id, worker_id="worker-a", now=later, lease_seconds=9)
    assert not await jobs.retry(job_id, worker_id="worker-a", run_at=later, error="x", now=later)
    assert not await jobs.fail(job_id, worker_id="worker-a", error="x", now=later)
    assert await storage.jobs.get(job_id) == second

    assert await jobs.complete(job_id, worker_id="worker-b", now=later)
    done = await storage.jobs.get(job_id)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.attempts == 2
    assert await claim(storage, "worker-c", later + timedelta(days=1)) == []
    assert not await jobs.complete(job_id, worker_id="worker-b", now=later)  # only once


async def test_renewed_lease_is_not_reclaimed(storage: SqlStorage, clock: FakeClock) -> None:
    now = clock.current
    [job_id] = await enqueue(storage, notify_job())
    await claim(storage, "worker-a", now)

    renewed = await storage.jobs.renew_lease(
        job_id, worker_id="worker-a", now=now + timedelta(seconds=20), lease_seconds=LEASE
    )

    assert renewed
    new_expiry = now + timedelta(seconds=20 + LEASE)
    job = await storage.jobs.get(job_id)
    assert job is not None and job.lease_expires_at == new_expiry
    assert await claim(storage, "worker-b", now + timedelta(seconds=LEASE + 1)) == []
    [taken] = await claim(storage, "worker-b", new_expiry + timedelta(seconds=1))
    assert taken.id == job_id


async def test_retry_requeues_at_run_at_with_error(storage: SqlStorage, clock: FakeClock) -> None:
    now = clock.current
    [job_id] = await enqueue(storage, notify_job())
    await claim(storage, "worker-a", now)
    run_at = now + timedelta(minutes=5)

    assert await storage.jobs.retry(
        job_id, worker_id="worker-a", run_at=run_at, error="Graph 503", now=now
    )

    queued = await storage.jobs.get(job_id)
    assert queued is not None
    assert (queued.status, queued.run_at, queued.last_error) == (
        JobStatus.QUEUED,
        run_at,
        "Graph 503",
    )
    assert queued.lease_owner is None and queued.lease_expires_at is None
    assert queued.attempts == 1
    assert not await storage.jobs.complete(job_id, worker_id="worker-a", now=now)  # not running
    assert await claim(storage, "worker-b", run_at - timedelta(seconds=1)) == []
    [again] = await claim(storage, "worker-b", run_at)
    assert again.id == job_id and again.attempts == 2 and again.last_error == "Graph 503"


async def test_fail_is_final(storage: SqlStorage, clock: FakeClock) -> None:
    now = clock.current
    [job_id] = await enqueue(storage, notify_job())
    for attempt in range(1, 4):
        [job] = await claim(storage, "worker-a", now)
        assert job.attempts == attempt
        if attempt < 3:
            assert await storage.jobs.retry(
                job_id, worker_id="worker-a", run_at=now, error=f"try {attempt}", now=now
            )

    assert await storage.jobs.fail(job_id, worker_id="worker-a", error="permanent", now=now)

    failed = await storage.jobs.get(job_id)
    assert failed is not None
    assert (failed.status, failed.last_error, failed.attempts) == (
        JobStatus.FAILED,
        "permanent",
        3,
    )
    assert await claim(storage, "worker-b", now + timedelta(days=1)) == []
    assert not await storage.jobs.complete(job_id, worker_id="worker-a", now=now)


async def test_job_lookups(storage: SqlStorage) -> None:
    ids = await enqueue(storage, notify_job(1), notify_job(2), notify_job(1), notify_job(None))
    assert [job.id for job in await storage.jobs.list_for_engagement(1)] == [ids[0], ids[2]]
    assert list(await storage.jobs.list_for_engagement(3)) == []
    assert await storage.jobs.get(max(ids) + 1) is None


def keyed_job(key: str | None, engagement_id: int | None = 1) -> NewJob:
    return NewJob(JobKind.PROVISION, engagement_id, {"step": key}, dedupe_key=key)


async def job_count(storage: SqlStorage) -> int:
    query = sa.select(sa.func.count()).select_from(jobs_table)
    async with storage.engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


async def statuses(storage: SqlStorage, engagement_id: int = 1) -> list[tuple[int, JobStatus]]:
    return [(job.id, job.status) for job in await storage.jobs.list_for_engagement(engagement_id)]


async def test_dedupe_key_in_one_transaction(storage: SqlStorage) -> None:
    first, again, other, third = await enqueue(
        storage, keyed_job("k1"), keyed_job("k1"), keyed_job("k2"), keyed_job("k1")
    )
    assert first == again == third and other != first
    assert await job_count(storage) == 2


async def test_dedupe_key_across_transactions(storage: SqlStorage) -> None:
    [first] = await enqueue(storage, keyed_job("k1"))
    [again] = await enqueue(storage, keyed_job("k1", engagement_id=2))
    assert again == first and await job_count(storage) == 1
    stored = await storage.jobs.get(first)
    assert stored is not None and stored.engagement_id == 1 and stored.payload == {"step": "k1"}


async def test_dedupe_key_of_a_running_job_queues_one_that_waits(
    storage: SqlStorage, clock: FakeClock
) -> None:
    now = clock.current
    [first] = await enqueue(storage, keyed_job("k1"))
    [running] = await claim(storage, "w1", now)

    # The running job does not count: a job is queued, once, and is not claimed meanwhile.
    [second] = await enqueue(storage, keyed_job("k1"))
    assert await enqueue(storage, keyed_job("k1")) == [second]
    [unkeyed, other_key] = await enqueue(storage, notify_job(2), keyed_job("k2", 2))
    assert running.id == first != second
    assert {job.id for job in await claim(storage, "w2", now)} == {unkeyed, other_key}
    assert await claim(storage, "w2", now + timedelta(seconds=LEASE - 1)) == []

    assert await storage.jobs.complete(first, worker_id="w1", now=now)
    [taken] = await claim(storage, "w2", now)
    assert taken.id == second and taken.attempts == 1
    [third] = await enqueue(storage, keyed_job("k1"))
    assert await storage.jobs.fail(second, worker_id="w2", error="permanent", now=now)
    [after_fail] = await claim(storage, "w3", now)
    assert after_fail.id == third
    assert await storage.jobs.complete(third, worker_id="w3", now=now)

    # Once no job with the key is queued or running, the key is free altogether.
    [fourth] = await enqueue(storage, keyed_job("k1"))
    assert fourth not in {first, second, third}
    assert await statuses(storage) == [
        (first, JobStatus.SUCCEEDED),
        (second, JobStatus.FAILED),
        (third, JobStatus.SUCCEEDED),
        (fourth, JobStatus.QUEUED),
    ]


async def test_expired_job_of_a_key_is_taken_over_before_the_waiting_one(
    storage: SqlStorage, clock: FakeClock
) -> None:
    now = clock.current
    [first] = await enqueue(storage, keyed_job("k1"))
    await claim(storage, "w1", now)
    [second] = await enqueue(storage, keyed_job("k1"))
    expired = now + timedelta(seconds=LEASE + 1)

    # Both would be due; running them side by side is what the key forbids.
    [taken_over] = await claim(storage, "w2", expired)
    assert taken_over.id == first and taken_over.attempts == 2
    assert await claim(storage, "w3", expired) == []
    assert await storage.jobs.complete(first, worker_id="w2", now=expired)
    assert [job.id for job in await claim(storage, "w3", expired)] == [second]


async def test_concurrent_claimers_never_run_one_key_side_by_side(
    storage: SqlStorage, clock: FakeClock
) -> None:
    now = clock.current
    keys = [f"k{i}" for i in range(6)]
    await enqueue(storage, *(keyed_job(key) for key in keys))
    first_round = await claim(storage, "w0", now, limit=3)
    await enqueue(storage, *(keyed_job(key) for key in keys))  # 3 wait, 3 deduplicated
    assert await job_count(storage) == 9

    batches = await asyncio.wait_for(
        asyncio.gather(*(claim(storage, f"w{i}", now, limit=2) for i in range(1, 11))),
        timeout=30,
    )

    claimed = [job for batch in batches for job in batch]
    running = [*first_round, *claimed]
    assert len(claimed) == 3 and len(running) == 6
    assert sorted(job.payload["step"] for job in running) == keys  # one per key


async def test_retry_requeues_a_keyed_job_that_then_holds_the_key(
    storage: SqlStorage, clock: FakeClock
) -> None:
    now = clock.current
    [first] = await enqueue(storage, keyed_job("k1"))
    await claim(storage, "w1", now)
    later = now + timedelta(minutes=5)

    assert await storage.jobs.retry(first, worker_id="w1", run_at=later, error="503", now=now)

    assert await enqueue(storage, keyed_job("k1")) == [first]
    job = await storage.jobs.get(first)
    assert job is not None and (job.status, job.run_at) == (JobStatus.QUEUED, later)


async def test_retry_while_another_job_of_the_key_waits_hands_over(
    storage: SqlStorage, clock: FakeClock
) -> None:
    now = clock.current
    [first] = await enqueue(storage, keyed_job("k1"))
    await claim(storage, "w1", now)
    [waiting] = await enqueue(storage, keyed_job("k1"))
    backoff = now + timedelta(minutes=5)

    assert await storage.jobs.retry(first, worker_id="w1", run_at=backoff, error="503", now=now)

    ended, taking_over = await storage.jobs.get(first), await storage.jobs.get(waiting)
    assert ended is not None and taking_over is not None
    assert ended.status is JobStatus.FAILED and ended.last_error is not None
    assert ended.last_error.startswith("503") and str(waiting) in ended.last_error
    assert (taking_over.status, taking_over.run_at) == (JobStatus.QUEUED, backoff)
    assert not await storage.jobs.retry(first, worker_id="w1", run_at=now, error="x", now=now)
    assert await claim(storage, "w2", backoff - timedelta(seconds=1)) == []
    assert [job.id for job in await claim(storage, "w2", backoff)] == [waiting]


async def test_retry_racing_an_enqueue_of_its_key_hands_over(
    storage: SqlStorage, clock: FakeClock
) -> None:
    now = clock.current
    [first] = await enqueue(storage, keyed_job("k1"))
    await claim(storage, "w1", now)

    async with storage.transaction() as tx:
        waiting = await tx.jobs.enqueue(keyed_job("k1"))
        # The retry cannot see the uncommitted job, and then meets it in the unique index.
        retry = asyncio.create_task(
            storage.jobs.retry(first, worker_id="w1", run_at=now, error="503", now=now)
        )
        await asyncio.sleep(0.3)
        assert not retry.done()
        await tx.commit()
    assert await asyncio.wait_for(retry, timeout=20)

    assert await statuses(storage) == [(first, JobStatus.FAILED), (waiting, JobStatus.QUEUED)]


async def test_dedupe_key_of_a_rolled_back_job_is_free(storage: SqlStorage) -> None:
    async with storage.transaction() as tx:
        await tx.jobs.enqueue(keyed_job("k1"))
    [job_id] = await enqueue(storage, keyed_job("k1"))
    assert await storage.jobs.get(job_id) is not None and await job_count(storage) == 1


async def test_concurrent_enqueues_of_one_key_leave_one_job(
    storage: SqlStorage, clock: FakeClock
) -> None:
    started = asyncio.Barrier(10)

    async def enqueue_after_barrier() -> int:
        async with storage.transaction() as tx:
            await started.wait()
            job_id = await tx.jobs.enqueue(keyed_job("k1"))
            await asyncio.sleep(0.05)  # others meet the key while this is not committed yet
            await tx.commit()
        return job_id

    ids = await asyncio.wait_for(
        asyncio.gather(*(enqueue_after_barrier() for _ in range(10))), timeout=60
    )

    assert len(set(ids)) == 1
    assert await job_count(storage) == 1
    claimed = await claim(storage, "w1", clock.current)
    assert [job.id for job in claimed] == ids[:1]


async def test_jobs_without_dedupe_key_are_never_deduplicated(
    storage: SqlStorage, clock: FakeClock
) -> None:
    ids = await enqueue(storage, keyed_job(None), keyed_job(None), notify_job(), notify_job())
    ids += await enqueue(storage, keyed_job(None))
    assert len(set(ids)) == 5 and await job_count(storage) == 5
    assert len(await claim(storage, "w1", clock.current)) == 5  # nor kept from running together


async def test_naive_datetimes_are_refused(storage: SqlStorage) -> None:
    with pytest.raises((ValueError, sa.exc.StatementError), match="naive"):
        await claim(storage, "w1", datetime(2025, 3, 1, 9, 0))


# --- migrations and engines ----------------------------------------------------------------------


# compare_metadata cannot compare expression indexes on SQLite, nor partial indexes' WHERE
# anywhere; test_migrated_indexes_match_tables below compares those.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
async def test_upgrade_twice_is_a_noop_and_matches_tables(
    storage: SqlStorage, database_url: str
) -> None:
    engagement = await add(storage)

    await upgrade_database(database_url)

    assert await current_revision(storage.engine) == head_revision() is not None
    assert await get(storage, engagement.id) == engagement
    async with storage.engine.connect() as connection:
        differences = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata
            )
        )
    assert differences == []


async def test_migrated_indexes_match_tables(
    storage: SqlStorage, database_url: str, tmp_path: Path
) -> None:
    """Every index, with its expressions and WHERE, as the database reports it: the migrated
    schema against one made by metadata.create_all (SQLite: another file; PostgreSQL: another
    schema of the same database)."""
    migrated = await index_sql(storage.engine, "public")
    if storage.engine.dialect.name == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'expected.db'}")
        schema = "public"
    else:
        engine = make_engine(database_url, poolclass=sa.pool.NullPool)
        schema = "expected"
    try:
        async with engine.begin() as connection:
            if schema != "public":
                await connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                await connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
                connection = await connection.execution_options(
                    schema_translate_map={None: schema}
                )
            await connection.run_sync(metadata.create_all)
        expected = await index_sql(engine, schema)
        if schema != "public":
            async with engine.begin() as connection:
                await connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await engine.dispose()

    assert "ux_jobs_dedupe_key_queued" in expected
    assert "ix_engagements_team_id_lower_channel_name" in expected
    assert migrated == expected, (migrated, expected)


async def index_sql(engine: AsyncEngine, schema: str) -> dict[str, str]:
    """Index name -> its definition, normalised (no schema, case and spacing folded)."""
    async with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            rows = await connection.execute(sa.text(query))
        else:
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :schema"
            rows = await connection.execute(sa.text(query), {"schema": schema})
        return {
            name: " ".join(sql.lower().replace(f"{schema}.", "").replace('"', "").split())
            for name, sql in rows
            if not name.startswith("alembic_version")
        }


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db?sslmode=require", "postgresql+asyncpg://u@h/db?ssl=require"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///./data/x.db", "sqlite+aiosqlite:///./data/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        (" sqlite:////abs/x.db ", "sqlite+aiosqlite:////abs/x.db"),
    ],
)
def test_normalize_database_url(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


async def test_sqlite_engine_settings(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "there.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        async with engine.connect() as connection:
            settings = [
                (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys")
            ]
    finally:
        await engine.dispose()
    assert path.exists()
    assert settings == ["wal", SQLITE_BUSY_TIMEOUT_MS, 1]


async def test_list_for_guest_finds_engagements_by_guest_account_or_email_any_case(
    storage: SqlStorage,
) -> None:
    by_account = await add(storage, guest_user_id="guest-9", freelancer_email="old@example.org")
    by_email = await add(storage, freelancer_email="jane@example.org")
    ended = await add(
        storage,
        freelancer_email="jane@example.org",
        guest_user_id="guest-9",
        state=EngagementState.ENDED,
    )
    await add(storage, freelancer_email="other@example.org", guest_user_id="guest-2")

    async with storage.transaction() as tx:
        found = await tx.engagements.list_for_guest("guest-9", "JANE@example.org")
        only_email = await tx.engagements.list_for_guest(None, "jane@example.org")

    assert [e.id for e in found] == [by_account.id, by_email.id, ended.id]
    assert [e.id for e in only_email] == [by_email.id, ended.id]

"""The admin lists', audit log's and report's queries, on SQLite and PostgreSQL, checked against
a known dataset, and that none of them needs to read a whole table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.admin import compute_report
from core.model import EngagementState
from core.ports import EngagementQuery
from storage.db import make_engine
from storage.migrate import upgrade_engine
from storage.repositories import SqlStorage
from storage.tables import metadata
from tests.support.admin_dataset import (
    TEAMS,
    Dataset,
    expected_by_state,
    expected_expiring,
    expected_kpis,
    expected_requests,
    make_dataset,
    store,
)

S = EngagementState
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
COUNT = 300
AUDIT_PER_ENGAGEMENT = 6


@pytest.fixture
async def dataset(storage: SqlStorage) -> Dataset:
    data = make_dataset(COUNT, now=NOW, tenant_id="tenant-1")
    await store(storage, data, audit_per_engagement=AUDIT_PER_ENGAGEMENT)
    return data


async def search(
    storage: SqlStorage, query: EngagementQuery, offset: int, limit: int
) -> list[int]:
    async with storage.transaction() as tx:
        return [e.id or 0 for e in await tx.engagements.search(query, offset=offset, limit=limit)]


async def test_search_pages_through_a_state_newest_first(
    storage: SqlStorage, dataset: Dataset
) -> None:
    states = {S.PROVISIONING_FAILED, S.OFFBOARDING_FAILED, S.ACTIVE}
    expected = expected_requests(dataset, states)
    query = EngagementQuery(states=frozenset(states))
    pages = [await search(storage, query, offset, 10) for offset in range(0, len(expected), 10)]
    assert [i for page in pages for i in page] == expected
    assert await search(storage, query, len(expected), 10) == []


async def test_search_without_states_lists_everything_newest_first(
    storage: SqlStorage, dataset: Dataset
) -> None:
    assert await search(storage, EngagementQuery(), 5, 7) == expected_requests(dataset, None)[5:12]


async def test_search_active_in_one_team(storage: SqlStorage, dataset: Dataset) -> None:
    team_id, _ = TEAMS[1]
    query = EngagementQuery(states=frozenset({S.ACTIVE}), team_ids=frozenset({team_id}))
    expected = [
        e.id for e in reversed(dataset.engagements) if e.state is S.ACTIVE and e.team_id == team_id
    ]
    assert expected
    assert await search(storage, query, 0, 1_000) == expected


async def test_search_expiring_soonest_first(storage: SqlStorage, dataset: Dataset) -> None:
    query = EngagementQuery(
        states=frozenset({S.ACTIVE}),
        ends_on_or_after=dataset.today,
        ends_on_or_before=dataset.today + timedelta(days=30),
        order="ending",
    )
    expected = expected_expiring(dataset, 30)
    assert len(expected) > 10
    assert await search(storage, query, 0, 1_000) == expected


async def test_figures_give_the_kpis_of_the_dataset(storage: SqlStorage, dataset: Dataset) -> None:
    window = 90
    since = NOW - timedelta(days=window)
    async with storage.transaction() as tx:
        f = tx.figures
        report = compute_report(
            now=NOW,
            window_days=window,
            by_state=await f.count_by_state(),
            decisions=await f.decision_times(since),
            provisionings=await f.provisioning_times(since),
            active_by_team=await f.active_freelancers_by_team(),
            ending_soon=await f.count_active_ending(
                dataset.today, dataset.today + timedelta(days=30)
            ),
            waiting_long=await f.count_pending_created_before(NOW - timedelta(hours=48)),
        )
    expected = expected_kpis(dataset, window)
    assert report.by_state == expected_by_state(dataset)
    assert report.total == COUNT
    assert report.decisions == expected["decisions"]
    assert report.median_to_decision is not None
    assert report.median_to_decision.total_seconds() == pytest.approx(
        expected["median_decision_s"], abs=0.01
    )
    assert report.provisionings == expected["provisionings"]
    assert report.median_to_provisioned is not None
    assert report.median_to_provisioned.total_seconds() == pytest.approx(
        expected["median_provisioning_s"], abs=0.01
    )
    assert report.rejected == expected["rejected"]
    assert dict(report.active_by_team) == expected["active_by_team"]
    counts = [count for _, count in report.active_by_team]
    assert counts == sorted(counts, reverse=True)
    assert report.ending_soon == expected["ending_30"]
    assert report.waiting_long == expected["waiting_48h"]
    assert expected["waiting_48h"] and expected["rejected"]  # the dataset exercises both


async def test_audit_pages_newest_first_and_counts(storage: SqlStorage, dataset: Dataset) -> None:
    async with storage.transaction() as tx:
        newest = await tx.audit.newest(engagement_id=None, offset=0, limit=8)
        assert [r.detail for r in newest[:2]] == [f"record 5 of {COUNT}", f"record 4 of {COUNT}"]
        ids = [r.id or 0 for r in newest]
        assert ids == sorted(ids, reverse=True)
        one = await tx.audit.newest(engagement_id=42, offset=2, limit=10)
        assert [r.detail for r in one] == [f"record {n} of 42" for n in (3, 2, 1, 0)]
        assert await tx.audit.count_for_engagement(42) == AUDIT_PER_ENGAGEMENT
        assert await tx.audit.count_for_engagement(COUNT + 1) == 0


async def test_after_reads_everything_in_batches_exactly_once(
    storage: SqlStorage, dataset: Dataset
) -> None:
    seen: list[int] = []
    after = 0
    async with storage.transaction() as tx:
        while batch := await tx.audit.after(after, limit=97):
            seen.extend(r.id or 0 for r in batch)
            after = seen[-1]
        assert len(seen) == len(set(seen)) == COUNT * AUDIT_PER_ENGAGEMENT
        engagements = await tx.engagements.after(250, limit=1_000)
        assert [e.id for e in engagements] == list(range(251, COUNT + 1))


# --- no table scans --------------------------------------------------


@contextmanager
def statements(storage: SqlStorage) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    engine = storage.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


async def test_admin_queries_read_through_indexes(
    storage: SqlStorage, dataset: Dataset, database_url: str
) -> None:
    """SQLite: EXPLAIN QUERY PLAN shows no table scan (except a rowid-order read that stops at
    its LIMIT). PostgreSQL: with sequential scans priced out, no plan still needs one."""
    today = dataset.today
    with statements(storage) as seen:
        async with storage.transaction() as tx:
            f = tx.figures
            await f.count_by_state()
            await f.decision_times(NOW - timedelta(days=90))
            await f.provisioning_times(NOW - timedelta(days=90))
            await f.active_freelancers_by_team()
            await f.count_active_ending(today, today + timedelta(days=30))
            await f.count_pending_created_before(NOW)
            for query in (
                EngagementQuery(),
                EngagementQuery(states=frozenset({S.PENDING_APPROVAL})),
                EngagementQuery(states=frozenset({S.ACTIVE}), team_ids=frozenset({"t"})),
                EngagementQuery(
                    states=frozenset({S.ACTIVE}),
                    ends_on_or_after=today,
                    ends_on_or_before=today,
                    order="ending",
                ),
            ):
                await tx.engagements.search(query, offset=20, limit=11)
            await tx.audit.newest(engagement_id=None, offset=0, limit=11)
            await tx.audit.newest(engagement_id=7, offset=0, limit=11)
            await tx.audit.count_for_engagement(7)
            await tx.audit.after(0, limit=10)
            await tx.engagements.after(0, limit=10)
    assert len(seen) == 17  # the two medians take a count and a sorted read each
    async with storage.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in seen:
            if connection.dialect.name == "postgresql":
                plan = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
                details = [row[0] for row in plan.all()]
                assert not any("Seq Scan" in d for d in details), f"{statement}\n{details}"
                continue
            plan = await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            details = [row[-1] for row in plan.all()]
            # Scans of tables (not of a subquery's few result rows) that no index serves.
            full_scans = [
                d
                for d in details
                if d.split(" ")[:2] in (["SCAN", t] for t in metadata.tables)
                and " USING " not in d
            ]
            # A plain scan in rowid order with nothing to filter or sort stops at the LIMIT.
            stops_early = (
                " WHERE " not in statement.replace("\n", " ")
                and "LIMIT" in statement
                and not any("TEMP B-TREE" in d for d in details)
            )
            assert not full_scans or stops_early, f"{statement}\n{details}"


# --- migration 0003 -------------------------------------------------------------------------


async def test_migration_0003_fills_provisioned_at_from_the_audit_log(tmp_path: Path) -> None:
    """Engagements made active before 0003 get provisioned_at from their first successful
    provisioning.completed record; others keep NULL."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade_engine(engine, "0002")
        at = "2026-10-01 08:30:00.000000"
        async with engine.begin() as connection:
            for engagement_id in (1, 2):
                await connection.execute(
                    sa.text(
                        "INSERT INTO engagements (id, version, state, requester_id, "
                        "requester_name, tenant_id, project_title, description, "
                        "freelancer_name, freelancer_email, start_date, end_date, team_id, "
                        "team_name, channel_name, created_at, updated_at, "
                        "approver_missing_notified, guest_invitation_started, guest_reused) "
                        "VALUES (:id, 1, :state, 'r', 'R', 't', 'P', 'D', 'F', 'f@x.example', "
                        "'2026-10-01', '2026-12-01', 'team', 'Team', 'c', :at, :at, 0, 0, 0)"
                    ),
                    {
                        "id": engagement_id,
                        "state": "active" if engagement_id == 1 else "rejected",
                        "at": at,
                    },
                )
            for action, outcome, when in (
                ("provisioning.failed", "ok", "2026-10-01 09:00:00.000000"),
                ("provisioning.completed", "refused", "2026-10-01 09:30:00.000000"),
                ("provisioning.completed", "ok", "2026-10-01 10:00:00.000000"),
                ("provisioning.completed", "ok", "2026-10-02 10:00:00.000000"),
            ):
                await connection.execute(
                    sa.text(
                        "INSERT INTO audit_log (at, actor_id, actor_name, action, outcome, "
                        "engagement_id, detail) VALUES (:at, 's', 'S', :action, :outcome, 1, '')"
                    ),
                    {"at": when, "action": action, "outcome": outcome},
                )
        await upgrade_engine(engine)
        storage = SqlStorage(engine)
        async with storage.transaction() as tx:
            first = await tx.engagements.get(1)
            second = await tx.engagements.get(2)
        assert first is not None and second is not None
        assert first.provisioned_at == datetime(2026, 10, 1, 10, 0, tzinfo=UTC)
        assert second.provisioned_at is None
    finally:
        await engine.dispose()

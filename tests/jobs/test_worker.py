"""The worker against the real job table (SQLite): success, retries with backoff and
Retry-After, giving up, lease takeover after a crash, and graceful stop."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import pytest

from core import texts
from core.errors import (
    NotYetReplicated,
    PermanentDirectoryError,
    StaleVersion,
    Throttled,
    TransientDirectoryError,
)
from core.model import Job, JobKind, JobStatus, NewJob
from jobs.backoff import Backoff
from jobs.worker import Worker, WorkerConfig, describe_error
from storage.repositories import SqlStorage
from tests.support.clock import FakeClock


@dataclass
class ScriptedRunner:
    """Raises the scripted errors in order, then succeeds; records what it saw."""

    errors: list[Exception] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    given_up: list[tuple[int, str]] = field(default_factory=list)
    block: asyncio.Event | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, job: Job) -> None:
        self.runs.append(job.id)
        self.started.set()
        if self.block is not None:
            await self.block.wait()
        if self.errors:
            raise self.errors.pop(0)

    async def give_up(self, job: Job, reason: str) -> None:
        self.given_up.append((job.id, reason))


def worker(
    storage: SqlStorage, runner: ScriptedRunner, clock: FakeClock, **config: object
) -> Worker:
    defaults: dict[str, object] = {
        "max_attempts": 3,
        "backoff": Backoff(base_s=10, cap_s=100),
        "lease_s": 30,
        "worker_id": "w1",
    }
    defaults.update(config)
    return Worker(
        storage.jobs,
        runner,
        clock,
        WorkerConfig(**defaults),  # type: ignore[arg-type]
        rng=random.Random(7),
    )


async def enqueue(storage: SqlStorage) -> int:
    async with storage.transaction() as tx:
        job_id = await tx.jobs.enqueue(NewJob(JobKind.NOTIFY, 1, {"user_id": "u", "notice": "x"}))
        await tx.commit()
    return job_id


async def status_of(storage: SqlStorage, job_id: int) -> Job:
    job = await storage.jobs.get(job_id)
    assert job is not None
    return job


async def test_successful_job_is_marked_succeeded(storage: SqlStorage, clock: FakeClock) -> None:
    job_id = await enqueue(storage)
    runner = ScriptedRunner()
    assert await worker(storage, runner, clock).run_until_idle() == 1
    assert (await status_of(storage, job_id)).status is JobStatus.SUCCEEDED


async def test_transient_error_is_retried_later_not_immediately(
    storage: SqlStorage, clock: FakeClock
) -> None:
    job_id = await enqueue(storage)
    runner = ScriptedRunner(errors=[TransientDirectoryError("Graph is down (503)")])
    w = worker(storage, runner, clock)
    await w.run_until_idle()
    job = await status_of(storage, job_id)
    assert job.status is JobStatus.QUEUED
    assert job.last_error == "Graph is down (503)"
    assert 5 <= (job.run_at - clock.now()).total_seconds() <= 10  # first backoff: 5-10 s
    assert await w.run_until_idle() == 0  # not due yet
    clock.advance(10)
    assert await w.run_until_idle() == 1
    assert (await status_of(storage, job_id)).status is JobStatus.SUCCEEDED
    assert runner.runs == [job_id, job_id]


async def test_retry_after_from_graph_sets_the_earliest_next_attempt(
    storage: SqlStorage, clock: FakeClock
) -> None:
    job_id = await enqueue(storage)
    runner = ScriptedRunner(errors=[Throttled("429", retry_after=41)])
    await worker(storage, runner, clock).run_until_idle()
    job = await status_of(storage, job_id)
    assert (job.run_at - clock.now()).total_seconds() >= 41


async def test_permanent_error_gives_up_at_once_with_the_reason(
    storage: SqlStorage, clock: FakeClock
) -> None:
    job_id = await enqueue(storage)
    runner = ScriptedRunner(errors=[PermanentDirectoryError("needs User.Invite.All")])
    await worker(storage, runner, clock).run_until_idle()
    job = await status_of(storage, job_id)
    assert job.status is JobStatus.FAILED
    assert runner.given_up == [(job_id, "needs User.Invite.All")]


async def test_job_gives_up_after_max_attempts_naming_the_last_error(
    storage: SqlStorage, clock: FakeClock
) -> None:
    job_id = await enqueue(storage)
    runner = ScriptedRunner(errors=[TransientDirectoryError(f"outage {i}") for i in range(5)])
    w = worker(storage, runner, clock)
    for _ in range(3):
        await w.run_until_idle()
        clock.advance(200)
    job = await status_of(storage, job_id)
    assert job.status is JobStatus.FAILED
    assert job.attempts == 3
    assert len(runner.given_up) == 1
    assert "3 attempts" in runner.given_up[0][1] and "outage 2" in runner.given_up[0][1]


async def test_replication_delay_gets_more_patience_than_other_errors(
    storage: SqlStorage, clock: FakeClock
) -> None:
    job_id = await enqueue(storage)
    runner = ScriptedRunner(errors=[NotYetReplicated("not visible yet") for _ in range(4)])
    w = worker(
        storage,
        runner,
        clock,
        replication_max_attempts=6,
        replication_backoff=Backoff(base_s=10, cap_s=300),
    )
    for _ in range(5):
        await w.run_until_idle()
        clock.advance(400)
    assert (await status_of(storage, job_id)).status is JobStatus.SUCCEEDED
    assert runner.given_up == []


async def test_job_of_a_crashed_worker_is_taken_over_when_its_lease_expires(
    storage: SqlStorage, clock: FakeClock
) -> None:
    job_id = await enqueue(storage)
    # A worker claims the job and dies: it never completes or renews.
    claimed = await storage.jobs.claim(
        worker_id="dead", now=clock.now(), lease_seconds=30, limit=1
    )
    assert [j.id for j in claimed] == [job_id]
    runner = ScriptedRunner()
    w = worker(storage, runner, clock)
    assert await w.run_until_idle() == 0  # leased to the dead worker
    clock.advance(31)
    assert await w.run_until_idle() == 1
    job = await status_of(storage, job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.attempts == 2
    # The dead worker, were it to wake up, can no longer complete the job.
    assert not await storage.jobs.complete(job_id, worker_id="dead", now=clock.now())


async def test_stale_version_is_retried_not_treated_as_permanent(
    storage: SqlStorage, clock: FakeClock
) -> None:
    job_id = await enqueue(storage)
    runner = ScriptedRunner(errors=[StaleVersion("concurrent write")])
    w = worker(storage, runner, clock)
    await w.run_until_idle()
    assert (await status_of(storage, job_id)).status is JobStatus.QUEUED
    assert runner.given_up == []


async def test_stop_lets_the_running_job_finish_and_claims_nothing_more(
    storage: SqlStorage, clock: FakeClock
) -> None:
    first = await enqueue(storage)
    runner = ScriptedRunner(block=asyncio.Event())
    w = worker(storage, runner, clock, concurrency=1, poll_interval_s=0.01)
    w.start()
    await asyncio.wait_for(runner.started.wait(), 5)
    second = await enqueue(storage)
    stopping = asyncio.create_task(w.stop(timeout_s=5))
    await asyncio.sleep(0.05)
    runner.block.set()  # type: ignore[union-attr]
    await stopping
    assert (await status_of(storage, first)).status is JobStatus.SUCCEEDED
    assert (await status_of(storage, second)).status is JobStatus.QUEUED
    assert runner.runs == [first]


def test_unexpected_errors_are_described_by_type_only_so_internals_do_not_leak() -> None:
    reason = describe_error(RuntimeError("password=hunter2 at db"))
    assert reason == texts.UNEXPECTED_ERROR.format(kind="RuntimeError")
    assert "hunter2" not in reason


async def test_job_whose_lease_ran_out_while_running_here_is_not_started_twice(
    storage: SqlStorage, clock: FakeClock
) -> None:
    # Regression: the crash test saw one guest added to a team twice. A step outlived its
    # lease (the renewal waited on SQLite's write lock), the same worker claimed the job again
    # and ran a second copy beside the first; both looked for the membership, both added it.
    job_id = await enqueue(storage)
    runner = ScriptedRunner(block=asyncio.Event())
    w = worker(storage, runner, clock, lease_s=30, poll_interval_s=0.01)
    w.start()
    try:
        await asyncio.wait_for(runner.started.wait(), 5)
        clock.advance(31)  # the lease expires before the (real-time) heartbeat renews it
        w.wake()
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert (await status_of(storage, job_id)).attempts == 2  # claimed again ...
        assert runner.runs == [job_id]  # ... but not run again
        runner.block.set()  # type: ignore[union-attr]
        for _ in range(200):
            if (await status_of(storage, job_id)).status is JobStatus.SUCCEEDED:
                break
            await asyncio.sleep(0.01)
    finally:
        await w.stop(timeout_s=5)
    assert (await status_of(storage, job_id)).status is JobStatus.SUCCEEDED
    assert runner.runs == [job_id]


@dataclass
class CancellableRunner:
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, job: Job) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def give_up(self, job: Job, reason: str) -> None:
        raise AssertionError("a run that lost its lease must not give up the job")


async def test_run_stops_when_another_worker_takes_over_its_lease(
    storage: SqlStorage, clock: FakeClock
) -> None:
    job_id = await enqueue(storage)
    runner = CancellableRunner()
    # A short lease, so that the heartbeat (every lease/3 of real time) looks soon.
    w = Worker(
        storage.jobs,
        runner,
        clock,
        WorkerConfig(lease_s=0.15, poll_interval_s=60, worker_id="w1"),
        rng=random.Random(7),
    )
    w.start()
    try:
        await asyncio.wait_for(runner.started.wait(), 5)
        clock.advance(1)
        taken = await storage.jobs.claim(
            worker_id="w2", now=clock.now(), lease_seconds=60, limit=1
        )
        assert [j.id for j in taken] == [job_id]
        await asyncio.wait_for(runner.cancelled.wait(), 5)
    finally:
        await w.stop(timeout_s=5)
    job = await status_of(storage, job_id)
    # Still the new owner's: the stopped run recorded neither success nor a retry.
    assert (job.status, job.lease_owner) == (JobStatus.RUNNING, "w2")


async def test_worker_that_lost_the_lease_does_not_give_up_for_the_new_owner(
    storage: SqlStorage, clock: FakeClock
) -> None:
    job_id = await enqueue(storage)
    runner = ScriptedRunner(
        errors=[PermanentDirectoryError("permission missing")], block=asyncio.Event()
    )
    w = worker(storage, runner, clock, lease_s=30, poll_interval_s=60)
    w.start()
    try:
        await asyncio.wait_for(runner.started.wait(), 5)
        clock.advance(31)
        taken = await storage.jobs.claim(
            worker_id="w2", now=clock.now(), lease_seconds=60, limit=1
        )
        assert [j.id for j in taken] == [job_id]
        runner.block.set()  # type: ignore[union-attr]
        for _ in range(50):
            await asyncio.sleep(0.01)
    finally:
        await w.stop(timeout_s=5)
    assert runner.given_up == []
    job = await status_of(storage, job_id)
    assert (job.status, job.lease_owner) == (JobStatus.RUNNING, "w2")


class UnreachableStore:
    """A job store whose database went away after the claim: every renewal fails."""

    def __init__(self, store: object) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def renew_lease(self, *args: object, **kwargs: object) -> bool:
        raise ConnectionError("database unreachable")


async def test_run_stops_when_its_lease_cannot_be_renewed_for_a_whole_lease_length(
    storage: SqlStorage, clock: FakeClock
) -> None:
    job_id = await enqueue(storage)
    runner = CancellableRunner()
    w = Worker(
        UnreachableStore(storage.jobs),  # type: ignore[arg-type]
        runner,
        clock,
        WorkerConfig(lease_s=0.15, poll_interval_s=60, worker_id="w1"),
        rng=random.Random(7),
    )
    w.start()
    try:
        await asyncio.wait_for(runner.started.wait(), 5)
        # Another replica may own the job by now; this run must not go on writing.
        await asyncio.wait_for(runner.cancelled.wait(), 5)
    finally:
        await w.stop(timeout_s=5)
    assert (await status_of(storage, job_id)).lease_owner == "w1"


class CompleteFails(UnreachableStore):
    """Renewals work; recording success fails, as when the database goes away at the end."""

    async def renew_lease(self, *args: object, **kwargs: object) -> bool:
        return await self._store.renew_lease(*args, **kwargs)  # type: ignore[attr-defined,no-any-return]

    async def complete(self, *args: object, **kwargs: object) -> bool:
        raise ConnectionError("database unreachable")


async def test_a_failure_to_record_the_outcome_is_logged_not_lost(
    storage: SqlStorage, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = await enqueue(storage)
    runner = ScriptedRunner()
    w = Worker(
        CompleteFails(storage.jobs),  # type: ignore[arg-type]
        runner,
        clock,
        WorkerConfig(lease_s=30, poll_interval_s=0.01, worker_id="w1"),
        rng=random.Random(7),
    )
    w.start()
    try:
        await asyncio.wait_for(runner.started.wait(), 5)
        for _ in range(50):
            if "recording its outcome failed" in caplog.text:
                break
            await asyncio.sleep(0.01)
    finally:
        await w.stop(timeout_s=5)
    assert f"job {job_id}: recording its outcome failed" in caplog.text
    assert "ConnectionError" in caplog.text

"""Decisions through EngagementService on real storage (SQLite): who may decide, the
compare-and-set, and what a decision commits together."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from core import audit_actions as A
from core.approvals import ApprovalService
from core.config import ProgramConfig
from core.engagements import EngagementService
from core.errors import NotAuthorised
from core.model import Actor, AuditOutcome, Engagement, EngagementState, JobKind, MessageRef
from storage.repositories import SqlStorage, open_storage
from tests.support.clock import FakeClock

REQUESTER = Actor("aad-requester", "Rita Requester")
APPROVER = Actor("aad-approver", "Andy Approver")
STRANGER = Actor("aad-stranger", "Sam Stranger")
ADMIN = Actor("aad-admin", "Ada Admin")
TENANT = "tenant-1"


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqlStorage]:
    store = await open_storage(f"sqlite+aiosqlite:///{tmp_path / 'fc.db'}")
    yield store
    await store.close()


@pytest.fixture
def approvals(storage: SqlStorage) -> ApprovalService:
    return ApprovalService(
        storage, FakeClock(), ProgramConfig(admin_ids=frozenset({ADMIN.aad_id}))
    )


@pytest.fixture
def service(storage: SqlStorage) -> EngagementService:
    return EngagementService(
        storage, FakeClock(), ProgramConfig(admin_ids=frozenset({ADMIN.aad_id}))
    )


async def pending_engagement(service: EngagementService, storage: SqlStorage) -> int:
    """An engagement waiting for APPROVER's decision, as intake and routing leave it."""
    now = datetime(2026, 11, 1, tzinfo=UTC)
    async with storage.transaction() as tx:
        engagement = await tx.engagements.add(
            Engagement(
                requester_id=REQUESTER.aad_id,
                requester_name=REQUESTER.name,
                tenant_id=TENANT,
                project_title="Website",
                description="Pages",
                freelancer_name="Jane Doe",
                freelancer_email="jane@example.com",
                start_date=date(2026, 12, 1),
                end_date=date(2027, 1, 31),
                team_id="group-1",
                team_name="Team",
                channel_name="Website",
                created_at=now,
                updated_at=now,
            )
        )
        await tx.commit()
    assert engagement.id is not None
    async with storage.transaction() as tx:  # what routing does: name the approver
        stored = await tx.engagements.get(engagement.id)
        assert stored is not None
        stored.approver_id, stored.approver_name = APPROVER.aad_id, APPROVER.name
        await tx.engagements.update(stored)
        await tx.commit()
    return engagement.id


async def jobs_of(storage: SqlStorage, engagement_id: int) -> list[JobKind]:
    return [job.kind for job in await storage.jobs.list_for_engagement(engagement_id)]


async def test_approval_commits_state_provisioning_job_notice_and_audit_together(
    service: EngagementService, storage: SqlStorage, approvals: ApprovalService
) -> None:
    engagement_id = await pending_engagement(service, storage)
    outcome = await approvals.approve(engagement_id, APPROVER)
    assert outcome.changed and outcome.message is None
    assert outcome.engagement.state is EngagementState.PROVISIONING
    assert outcome.engagement.decided_by_name == APPROVER.name
    assert (await jobs_of(storage, engagement_id)).count(JobKind.PROVISION) == 1
    assert JobKind.NOTIFY in await jobs_of(storage, engagement_id)
    async with storage.transaction() as tx:
        actions = [r.action for r in await tx.audit.list_for_engagement(engagement_id)]
    assert A.ENGAGEMENT_APPROVED in actions


async def test_someone_other_than_the_approver_is_refused_audited_and_nothing_changes(
    service: EngagementService, storage: SqlStorage, approvals: ApprovalService
) -> None:
    engagement_id = await pending_engagement(service, storage)
    before = await service.get(engagement_id)
    outcome = await approvals.approve(engagement_id, STRANGER)
    assert not outcome.changed
    assert outcome.message is not None and "Only Andy Approver" in outcome.message
    after = await service.get(engagement_id)
    assert (after.state, after.version) == (before.state, before.version)
    assert JobKind.PROVISION not in await jobs_of(storage, engagement_id)
    async with storage.transaction() as tx:
        refused = [
            r
            for r in await tx.audit.list_for_engagement(engagement_id)
            if r.outcome is AuditOutcome.REFUSED
        ]
    assert [(r.action, r.actor_id) for r in refused] == [(A.DECISION_REFUSED, STRANGER.aad_id)]


async def test_reject_without_reason_changes_nothing(
    service: EngagementService, storage: SqlStorage, approvals: ApprovalService
) -> None:
    engagement_id = await pending_engagement(service, storage)
    outcome = await approvals.reject(engagement_id, APPROVER, "   ")
    assert not outcome.changed
    assert (await service.get(engagement_id)).state is EngagementState.PENDING_APPROVAL


async def test_concurrent_approve_and_reject_let_exactly_one_decision_win(
    service: EngagementService, storage: SqlStorage, approvals: ApprovalService
) -> None:
    engagement_id = await pending_engagement(service, storage)
    outcomes = await asyncio.gather(
        approvals.approve(engagement_id, APPROVER),
        approvals.reject(engagement_id, APPROVER, "budget"),
        approvals.approve(engagement_id, APPROVER),
    )
    assert sum(o.changed for o in outcomes) == 1
    losers = [o.message for o in outcomes if not o.changed]
    assert all(m is not None and m.startswith("Already") for m in losers)
    final = await service.get(engagement_id)
    assert final.state in (EngagementState.PROVISIONING, EngagementState.REJECTED)
    assert (await jobs_of(storage, engagement_id)).count(JobKind.PROVISION) == (
        1 if final.state is EngagementState.PROVISIONING else 0
    )


class InterleavingStorage:
    """Storage whose first engagement update runs another writer's update just before it,
    as the worker recording the approval card would."""

    def __init__(self, inner: SqlStorage, interloper: Any) -> None:
        self._inner = inner
        self.jobs = inner.jobs
        self._interloper = interloper
        self.interleaved = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self._inner.transaction() as tx:
            original_update = tx.engagements.update
            outer = self

            async def update(engagement: Any) -> Any:
                if outer.interleaved == 0:
                    outer.interleaved += 1
                    await outer._interloper(engagement.id)
                return await original_update(engagement)

            tx.engagements.update = update
            yield tx


async def test_decision_lost_to_the_workers_approval_card_write_was_refused(
    storage: SqlStorage, tmp_path: Path
) -> None:
    """Regression: an approval racing the worker's 'approval card sent' write was answered
    'not waiting for a decision any more' although the engagement was still pending."""
    plain = EngagementService(storage, FakeClock(), ProgramConfig())
    engagement_id = await pending_engagement(plain, storage)

    async def record_card(eid: int) -> None:
        async with storage.transaction() as tx:
            current = await tx.engagements.get(eid)
            assert current is not None
            await tx.engagements.update(
                dataclasses.replace(current, approval_message=MessageRef("a:1", "act-1"))
            )
            await tx.commit()

    racing = InterleavingStorage(storage, record_card)
    approvals = ApprovalService(racing, FakeClock(), ProgramConfig())  # type: ignore[arg-type]
    outcome = await approvals.approve(engagement_id, APPROVER)
    assert racing.interleaved == 1
    assert outcome.changed, outcome.message
    stored = await plain.get(engagement_id)
    assert stored.state is EngagementState.PROVISIONING
    assert stored.approval_message == MessageRef("a:1", "act-1")  # the other write survived


async def test_pending_list_is_for_admins_and_refusals_are_audited(
    service: EngagementService, storage: SqlStorage
) -> None:
    engagement_id = await pending_engagement(service, storage)
    with pytest.raises(NotAuthorised):
        await service.list_pending(REQUESTER)
    assert [e.id for e in await service.list_pending(ADMIN)] == [engagement_id]

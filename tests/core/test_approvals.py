"""Approvals on real storage (SQLite, and PostgreSQL for the race) with the Graph adapter
against the simulator: the actor x state x action matrix, and two review-group members
approving at the same instant.

Every refusal changes nothing (same version, same state) and leaves one refused audit record.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from core import audit_actions as A
from core import texts
from core.approvals import (
    ApprovalHandlers,
    ApprovalService,
    DecisionOutcome,
    card_role,
    deadline_is_current,
    timer_payload,
)
from core.config import ProgramConfig
from core.model import (
    Actor,
    AuditOutcome,
    CardKind,
    DataClassification,
    Engagement,
    EngagementState,
    JobKind,
    MessageRef,
    SentCard,
    ViewerRole,
)
from graph.directory import GraphDirectory
from graph.simulator import GraphSimulator
from storage.repositories import SqlStorage, open_storage
from tests.contract.conftest import _reset_schema, postgres_url  # noqa: F401 (fixture)
from tests.support.clock import FakeClock

TENANT = "tenant-1"
REQUESTER = Actor("aaaaaaaa-0000-0000-0000-00000000000a", "Rita Requester")
APPROVER = Actor("aaaaaaaa-0000-0000-0000-00000000000b", "Andy Approver")
REVIEWER = Actor("aaaaaaaa-0000-0000-0000-00000000000c", "Rae Reviewer")  # in the group
REVIEWER_2 = Actor("aaaaaaaa-0000-0000-0000-00000000000d", "Ravi Reviewer")  # in the group
STRANGER = Actor("aaaaaaaa-0000-0000-0000-00000000000e", "Sam Stranger")
COLLEAGUE = Actor("aaaaaaaa-0000-0000-0000-00000000000f", "Cole Colleague")  # delegate target
GROUP = "cccccccc-0000-0000-0000-000000000001"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
async def sim_directory(sim: GraphSimulator, directory: GraphDirectory) -> GraphDirectory:
    for actor in (REQUESTER, APPROVER, REVIEWER, REVIEWER_2, STRANGER, COLLEAGUE):
        first = actor.name.split()[0].lower()
        sim.add_user(
            actor.name,
            id=actor.aad_id,
            mail=f"{first}@contoso.com",
            user_principal_name=f"{first}@contoso.com",
        )
    # The requester is in the review group too: that must not let them decide.
    sim.add_group(GROUP, "Security review", [REVIEWER.aad_id, REVIEWER_2.aad_id, REQUESTER.aad_id])
    return directory


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqlStorage]:
    store = await open_storage(f"sqlite+aiosqlite:///{tmp_path / 'fc.db'}")
    yield store
    await store.close()


def service_for(storage: SqlStorage, directory: GraphDirectory) -> ApprovalService:
    return ApprovalService(storage, FakeClock(NOW), ProgramConfig(), directory=directory)


# --- arranging a state ------------------------------------------------------------------------


def base_engagement() -> Engagement:
    return Engagement(
        requester_id=REQUESTER.aad_id,
        requester_name=REQUESTER.name,
        tenant_id=TENANT,
        project_title="Website",
        description="Pages",
        freelancer_name="Jane Doe",
        freelancer_email="jane@fabrikam.com",
        start_date=date(2026, 12, 1),
        end_date=date(2027, 1, 31),
        team_id="group-1",
        team_name="Team",
        channel_name="Website",
        created_at=NOW,
        updated_at=NOW,
        approver_id=APPROVER.aad_id,
        approver_name=APPROVER.name,
        data_classification=DataClassification.CONFIDENTIAL,
        stages=2,
        second_stage_group_id=GROUP,
        stage_started_at=NOW,
    )


STATES: dict[str, dict[str, object]] = {
    "pending stage 1": {},
    "pending stage 2": {"approval_stage": 2},
    "changes requested": {"state": EngagementState.CHANGES_REQUESTED},
    "approved": {
        "state": EngagementState.PROVISIONING,
        "decided_by_id": REVIEWER.aad_id,
        "decided_by_name": REVIEWER.name,
    },
    "rejected": {
        "state": EngagementState.REJECTED,
        "decided_by_id": APPROVER.aad_id,
        "decided_by_name": APPROVER.name,
        "decision_reason": "budget",
    },
    "cancelled": {
        "state": EngagementState.CANCELLED,
        "decided_by_id": REQUESTER.aad_id,
        "decided_by_name": REQUESTER.name,
    },
    "expired": {"state": EngagementState.EXPIRED},
}


async def arrange(storage: SqlStorage, state: str) -> Engagement:
    async with storage.transaction() as tx:
        engagement = await tx.engagements.add(
            dataclasses.replace(base_engagement(), **STATES[state])  # type: ignore[arg-type]
        )
        await tx.commit()
    return engagement


ACTORS = {
    "requester": REQUESTER,
    "approver": APPROVER,
    "reviewer": REVIEWER,
    "stranger": STRANGER,
}
Action = Callable[[ApprovalService, int, Actor], Awaitable[DecisionOutcome]]
ACTIONS: dict[str, Action] = {
    "approve": lambda s, i, a: s.approve(i, a),
    "reject": lambda s, i, a: s.reject(i, a, "not now"),
    "request changes": lambda s, i, a: s.request_changes(i, a, "shorter, please"),
    "cancel": lambda s, i, a: s.cancel(i, a),
    "reassign": lambda s, i, a: s.delegate(i, a, "cole@contoso.com"),
}

# (actor, state, action) -> the state after it; missing: refused.
ALLOWED: dict[tuple[str, str, str], EngagementState] = {
    ("approver", "pending stage 1", "approve"): EngagementState.PENDING_APPROVAL,  # stage 2
    ("approver", "pending stage 1", "reject"): EngagementState.REJECTED,
    ("approver", "pending stage 1", "request changes"): EngagementState.CHANGES_REQUESTED,
    ("approver", "pending stage 1", "reassign"): EngagementState.PENDING_APPROVAL,
    ("reviewer", "pending stage 2", "approve"): EngagementState.PROVISIONING,
    ("reviewer", "pending stage 2", "reject"): EngagementState.REJECTED,
    ("reviewer", "pending stage 2", "request changes"): EngagementState.CHANGES_REQUESTED,
    ("requester", "pending stage 1", "cancel"): EngagementState.CANCELLED,
    ("requester", "pending stage 2", "cancel"): EngagementState.CANCELLED,
    ("requester", "changes requested", "cancel"): EngagementState.CANCELLED,
}


@pytest.mark.parametrize("state", list(STATES))
async def test_actor_state_action_matrix(
    storage: SqlStorage, sim_directory: GraphDirectory, state: str
) -> None:
    """For this state, every actor tries every action on a fresh engagement: the allowed ones
    change the state as listed; every other one is refused, changes nothing (same version,
    same state) and is audited once as refused."""
    service = service_for(storage, sim_directory)
    for actor_name, actor in ACTORS.items():
        for action, act in ACTIONS.items():
            case = f"{actor_name} / {state} / {action}"
            engagement = await arrange(storage, state)
            assert engagement.id is not None

            outcome = await act(service, engagement.id, actor)

            async with storage.transaction() as tx:
                after = await tx.engagements.get(engagement.id)
                records = await tx.audit.list_for_engagement(engagement.id)
            assert after is not None
            expected = ALLOWED.get((actor_name, state, action))
            if expected is None:
                assert not outcome.changed, case
                assert outcome.message, case
                assert (after.version, after.state) == (engagement.version, engagement.state), case
                assert [(r.action, r.outcome, r.actor_id) for r in records] == [
                    (A.DECISION_REFUSED, AuditOutcome.REFUSED, actor.aad_id)
                ], case
            else:
                assert outcome.changed, (case, outcome.message)
                assert after.state is expected, case
                assert after.version == engagement.version + 1, case
                assert [r.outcome for r in records] == [AuditOutcome.OK], case
    # Every allowed combination was tried.
    assert {k for k in ALLOWED if k[1] == state} <= {
        (a, state, x) for a in ACTORS for x in ACTIONS
    }


async def test_stage_one_approval_hands_over_to_the_review_group(
    storage: SqlStorage, sim_directory: GraphDirectory
) -> None:
    service = service_for(storage, sim_directory)
    engagement = await arrange(storage, "pending stage 1")
    assert engagement.id is not None
    outcome = await service.approve(engagement.id, APPROVER)
    assert outcome.engagement.approval_stage == 2
    assert outcome.engagement.state is EngagementState.PENDING_APPROVAL
    jobs = {j.kind for j in await storage.jobs.list_for_engagement(engagement.id)}
    assert {JobKind.ROUTE_APPROVAL, JobKind.APPROVAL_EXPIRY, JobKind.UPDATE_CARDS} <= jobs
    # The stage-1 approver does not decide stage 2, nor does the requester (a group member).
    again = await service.approve(engagement.id, APPROVER)
    assert not again.changed
    own = await service.approve(engagement.id, REQUESTER)
    assert not own.changed


async def test_reassigning_needs_a_member_who_is_not_the_requester(
    storage: SqlStorage, sim: GraphSimulator, sim_directory: GraphDirectory
) -> None:
    sim.add_user("Gus Guest", mail="gus@fabrikam.com", user_type="Guest")
    service = service_for(storage, sim_directory)
    engagement = await arrange(storage, "pending stage 1")
    assert engagement.id is not None
    for who in ("nobody@contoso.com", "gus@fabrikam.com", "rita@contoso.com", "andy@contoso.com"):
        outcome = await service.delegate(engagement.id, APPROVER, who)
        assert not outcome.changed and outcome.message, who
    outcome = await service.delegate(engagement.id, APPROVER, "cole@contoso.com")
    assert outcome.changed
    assert outcome.engagement.approver_id == COLLEAGUE.aad_id
    # The former approver's click is now refused; the new one decides.
    assert not (await service.approve(engagement.id, APPROVER)).changed
    assert (await service.approve(engagement.id, COLLEAGUE)).changed


async def race_stage_two(service: ApprovalService, storage: SqlStorage, rounds: int) -> None:
    for _ in range(rounds):
        engagement = await arrange(storage, "pending stage 2")
        assert engagement.id is not None
        first, second = await asyncio.gather(
            service.approve(engagement.id, REVIEWER), service.approve(engagement.id, REVIEWER_2)
        )
        assert [first.changed, second.changed].count(True) == 1, (first, second)
        winner, loser = (first, second) if first.changed else (second, first)
        name = winner.engagement.decided_by_name
        assert name in (REVIEWER.name, REVIEWER_2.name)
        assert loser.message == f"Already approved by {name}. Nothing was changed."
        async with storage.transaction() as tx:
            records = await tx.audit.list_for_engagement(engagement.id)
        assert [r.action for r in records].count(A.ENGAGEMENT_APPROVED) == 1
        provisions = [
            j
            for j in await storage.jobs.list_for_engagement(engagement.id)
            if j.kind is JobKind.PROVISION
        ]
        assert len(provisions) == 1


async def test_two_reviewers_approving_at_once_make_one_decision_100_times_sqlite(
    storage: SqlStorage, sim_directory: GraphDirectory
) -> None:
    await race_stage_two(service_for(storage, sim_directory), storage, 100)


async def test_two_reviewers_approving_at_once_make_one_decision_100_times_postgresql(
    postgres_url: str,  # noqa: F811 (the fixture imported above)
    sim_directory: GraphDirectory,
) -> None:
    await _reset_schema(postgres_url)
    store = await open_storage(postgres_url)
    try:
        await race_stage_two(service_for(store, sim_directory), store, 100)
    finally:
        await store.close()


# --- regressions from the review of this stop -------------------------------------------------


def test_a_former_approvers_card_is_not_live_in_the_second_stage() -> None:
    """Regression: after a reassignment, the stage-1 approver's old card counted as a review
    group member's in stage 2 (live buttons, reminders)."""
    stage_two = dataclasses.replace(base_engagement(), approval_stage=2, id=1)
    ref = MessageRef("a:1", "m-1")
    former = SentCard(1, CardKind.APPROVAL, STRANGER.aad_id, ref)
    member = SentCard(1, CardKind.REVIEW, REVIEWER.aad_id, ref)
    assert card_role(stage_two, former) is ViewerRole.OTHER
    assert card_role(stage_two, member) is ViewerRole.APPROVER
    stage_one = dataclasses.replace(stage_two, approval_stage=1)
    assert card_role(stage_one, SentCard(1, CardKind.APPROVAL, APPROVER.aad_id, ref)) is (
        ViewerRole.APPROVER
    )
    assert card_role(stage_one, former) is ViewerRole.OTHER


def test_a_stage_one_deadline_does_not_expire_changes_asked_in_stage_two() -> None:
    """Regression: changes requested in stage 2 expired at the (earlier) stage-1 deadline."""
    sent_back = dataclasses.replace(
        base_engagement(), approval_stage=2, state=EngagementState.CHANGES_REQUESTED
    )
    assert not deadline_is_current(sent_back, {"stage": 1, "revision": 1})
    assert deadline_is_current(sent_back, {"stage": 2, "revision": 1})
    assert not deadline_is_current(sent_back, {"stage": 2, "revision": 2})


async def test_a_reminder_run_again_after_a_crash_reminds_once(
    storage: SqlStorage, sim_directory: GraphDirectory
) -> None:
    """Regression: a reminder job re-run (its completion not recorded) reminded again."""
    engagement = await arrange(storage, "pending stage 1")
    assert engagement.id is not None
    handlers = ApprovalHandlers(
        storage, sim_directory, cast(Any, None), FakeClock(NOW), ProgramConfig()
    )
    payload = {**timer_payload(engagement), "number": 1}
    await handlers.remind(engagement.id, payload)
    await handlers.remind(engagement.id, payload)
    jobs = await storage.jobs.list_for_engagement(engagement.id)
    assert [j.kind for j in jobs].count(JobKind.NOTIFY) == 1
    assert [j.kind for j in jobs].count(JobKind.APPROVAL_REMINDER) == 1  # the second one


async def test_a_form_from_an_earlier_round_of_changes_is_refused(
    storage: SqlStorage, sim_directory: GraphDirectory
) -> None:
    service = service_for(storage, sim_directory)
    engagement = await arrange(storage, "changes requested")
    assert engagement.id is not None
    engagement = dataclasses.replace(engagement, revision=2)
    async with storage.transaction() as tx:
        engagement = await tx.engagements.update(engagement)
        await tx.commit()

    async def unchanged(current: Engagement) -> Engagement:
        return current

    outcome = await service.resubmit(engagement.id, REQUESTER, {}, unchanged, revision=1)
    assert not outcome.changed
    assert outcome.message == texts.RESUBMIT_OLD_FORM.format(ref=engagement.ref)
    async with storage.transaction() as tx:
        after = await tx.engagements.get(engagement.id)
    assert after is not None and after.version == engagement.version

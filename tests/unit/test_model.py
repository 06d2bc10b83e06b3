from __future__ import annotations

import random
from datetime import UTC, date, datetime

import pytest

from core.errors import InvalidTransition
from core.model import Engagement, EngagementState, engagement_ref, parse_engagement_ref
from jobs.backoff import Backoff

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def engagement() -> Engagement:
    return Engagement(
        requester_id="r",
        requester_name="R",
        tenant_id="t",
        project_title="P",
        description="D",
        freelancer_name="F",
        freelancer_email="f@x.com",
        start_date=date(2026, 12, 1),
        end_date=date(2027, 1, 1),
        team_id="g",
        team_name="Team",
        channel_name="P",
        created_at=NOW,
        updated_at=NOW,
        id=7,
    )


def test_human_ids_round_trip() -> None:
    assert engagement_ref(12) == "FC-12"
    for text in ("FC-12", "fc12", " 12 ", "Fc-12"):
        assert parse_engagement_ref(text) == 12
    for text in ("FC-", "twelve", "FC-1x", ""):
        assert parse_engagement_ref(text) is None


def test_approval_path_reaches_active() -> None:
    item = engagement()
    item.transition(EngagementState.PROVISIONING, NOW)
    item.transition(EngagementState.ACTIVE, NOW)
    assert item.state is EngagementState.ACTIVE


@pytest.mark.parametrize(
    ("path", "forbidden"),
    [
        ([], EngagementState.ACTIVE),
        ([EngagementState.REJECTED], EngagementState.PROVISIONING),
        ([EngagementState.PROVISIONING, EngagementState.ACTIVE], EngagementState.REJECTED),
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(
    path: list[EngagementState], forbidden: EngagementState
) -> None:
    item = engagement()
    for state in path:
        item.transition(state, NOW)
    before = item.state
    with pytest.raises(InvalidTransition):
        item.transition(forbidden, NOW)
    assert item.state is before


def test_channel_description_marks_the_channel_as_this_engagements() -> None:
    assert engagement().channel_description.startswith("Freelance Connector FC-7")


def test_backoff_grows_is_capped_and_never_undercuts_retry_after() -> None:
    rng = random.Random(1)
    policy = Backoff(base_s=2, cap_s=60)
    delays = [policy.delay(attempt, None, rng) for attempt in range(1, 10)]
    assert 1 <= delays[0] <= 2
    assert all(d <= 60 for d in delays)
    assert delays[5] >= 30  # ceiling reached: at least half of the cap
    assert policy.delay(1, 17, rng) == 17


async def test_admin_ids_match_whatever_the_case() -> None:
    from core.admin_rights import AdminRights

    rights = AdminRights({"AAAAAAAA-0000-0000-0000-00000000000A"})
    assert await rights.is_admin("aaaaaaaa-0000-0000-0000-00000000000a")
    assert not await rights.is_admin("aaaaaaaa-0000-0000-0000-00000000000b")

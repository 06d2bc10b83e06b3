"""A simulated year of overlapping engagements, driven day by day with an injectable clock:
the same guest in two teams, the same team with two guests, one guest twice in one team,
an extension, a "Let it end", an early revocation and a re-engagement after the account was
disabled. The real job handlers run every due job against the Graph simulator (real
msgraph-sdk requests) and SQLite; after every day the memberships and account states in the
simulator must be exactly what the engagements in the database need, no more and no less.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest

from core import audit_actions as A
from core.model import EngagementState
from graph.dev_seed import ALEX_ID, ENGINEERING_TEAM_ID, MARKETING_TEAM_ID, MEGAN_ID
from tests.lifecycle.rig import (
    ALEX,
    MEGAN,
    LifecycleRig,
    lifecycle_rig,
)

YEAR_START = date(2027, 1, 4)
MARKETING = (MARKETING_TEAM_ID, "Contoso Marketing")
ENGINEERING = (ENGINEERING_TEAM_ID, "Contoso Engineering")


@dataclass(frozen=True)
class Plan:
    """One engagement of the year: requested on `start` (and provisioned that day)."""

    key: str
    guest: str  # e-mail
    team: tuple[str, str]
    start: date
    end: date


PLANS = [
    # jane: two teams at once, then Marketing again while Engineering still runs.
    Plan("jane-mkt", "jane@fabrikam.example", MARKETING, date(2027, 1, 4), date(2027, 3, 31)),
    Plan("jane-eng", "jane@fabrikam.example", ENGINEERING, date(2027, 2, 1), date(2027, 6, 30)),
    Plan("jane-mkt2", "jane@fabrikam.example", MARKETING, date(2027, 5, 3), date(2027, 7, 30)),
    # kim: Marketing beside jane; ends, is disabled, comes back later (re-enabled).
    Plan("kim-1", "kim@fabrikam.example", MARKETING, date(2027, 1, 11), date(2027, 4, 30)),
    Plan("kim-2", "kim@fabrikam.example", MARKETING, date(2027, 5, 17), date(2027, 8, 31)),
    # lou: extended (May 31 -> Aug 31); deleted 30 days after the end.
    Plan("lou", "lou@fabrikam.example", ENGINEERING, date(2027, 3, 1), date(2027, 5, 31)),
    # max: revoked early by the requester.
    Plan("max", "max@fabrikam.example", ENGINEERING, date(2027, 4, 5), date(2027, 12, 31)),
    # noa: twice in Marketing at once, in two channels; the first ends with "Let it end".
    Plan("noa-1", "noa@fabrikam.example", MARKETING, date(2027, 7, 1), date(2027, 9, 30)),
    Plan("noa-2", "noa@fabrikam.example", MARKETING, date(2027, 8, 2), date(2027, 10, 29)),
]

EXTEND_LOU_ON = date(2027, 5, 20)
LOU_NEW_END = date(2027, 8, 31)
REVOKE_MAX_ON = date(2027, 6, 14)
NOA_LET_IT_END_ON = date(2027, 9, 24)
KIM_REDEEMS_ON = date(2027, 1, 12)  # before her first nudge; jane never redeems


@pytest.fixture
async def rig(tmp_path):  # type: ignore[no-untyped-def]
    async with lifecycle_rig(tmp_path, start=datetime.combine(YEAR_START, time(8), UTC)) as r:
        yield r


async def test_a_year_of_overlapping_engagements_leaves_exactly_the_access_that_is_needed(
    rig: LifecycleRig,
) -> None:
    ids: dict[str, int] = {}
    day = YEAR_START
    last_day = date(2027, 12, 31)
    while day <= last_day:
        rig.clock.current = datetime.combine(day, time(8), UTC)
        for plan in PLANS:
            if plan.start == day:
                ids[plan.key] = await rig.approve_engagement(
                    guest_email=plan.guest,
                    team=plan.team,
                    start=plan.start,
                    end=plan.end,
                    title=plan.key,
                )
        if day == KIM_REDEEMS_ON:
            await rig.redeem(ids["kim-1"])
        if day == EXTEND_LOU_ON:
            await rig.lifecycle.request_extension(ids["lou"], ALEX, LOU_NEW_END.isoformat())
            outcome = await rig.lifecycle.decide_extension(ids["lou"], MEGAN, approve=True)
            assert outcome.changed
        if day == REVOKE_MAX_ON:
            await rig.lifecycle.revoke(ids["max"], ALEX, "Contract cancelled")
        if day == NOA_LET_IT_END_ON:
            await rig.lifecycle.let_it_end(ids["noa-1"], ALEX)
        # The day's jobs: provisioning now, reminders at 09:00, ends at midnight.
        await rig.run_due_jobs()
        rig.clock.current = datetime.combine(day, time(12), UTC)
        await rig.run_due_jobs()
        rig.clock.current = datetime.combine(day + timedelta(days=1), time(0, 30), UTC)
        await rig.run_due_jobs()
        await rig.assert_access_matches_engagements(on=day)
        day += timedelta(days=1)

    final = {key: await rig.engagement(i) for key, i in ids.items()}
    assert all(e.state is EngagementState.ENDED for e in final.values()), {
        k: e.state for k, e in final.items()
    }
    assert final["lou"].end_date == LOU_NEW_END
    assert final["max"].ended_by_id == ALEX_ID and final["max"].end_reason == "Contract cancelled"

    # Reminders: 7 and 1 days before each end, for the end date in force; none after
    # "Let it end", none for the revoked one after its revocation.
    reminders = rig.notifier.reminders
    assert reminders[ids["jane-mkt"]] == [date(2027, 3, 24), date(2027, 3, 30)]
    assert reminders[ids["lou"]] == [date(2027, 8, 24), date(2027, 8, 30)]
    assert reminders[ids["noa-1"]] == [date(2027, 9, 23)]
    assert ids["max"] not in reminders

    # Nudges: jane never accepted (three nudges for her first engagement); kim accepted.
    assert rig.notifier.nudges[ids["jane-mkt"]] == [3, 6, 9]
    assert ids["kim-1"] not in rig.notifier.nudges

    # Re-engagement reused kim's account (re-enabled), never invited her twice.
    assert final["kim-2"].guest_user_id == final["kim-1"].guest_user_id
    assert final["kim-2"].guest_reused
    assert rig.invitations_to("kim@fabrikam.example") == 1
    assert await rig.audited(ids["kim-2"], A.GRAPH_GUEST_REENABLED)

    # Sponsor recorded at provisioning (kim's account is deleted by now; Entra keeps it, with
    # its sponsors, among the deleted items).
    kim = final["kim-1"].guest_user_id
    assert kim is not None and final["kim-1"].sponsor_id == ALEX_ID
    assert ALEX_ID in rig.sim.deleted_users()[kim].sponsor_ids

    # Deleted after the grace period: lou (ended Aug 31), jane (last end Jul 30);
    # noa's last engagement ended Oct 29, so she is deleted on Nov 28 + a day or so.
    for key in ("lou", "jane-eng", "noa-2", "kim-2"):
        guest = final[key].guest_user_id
        assert guest is not None
        assert rig.sim.user(guest) is None, f"{key}'s guest should be deleted by now"


async def test_offboarding_keeps_the_team_for_another_engagement_of_the_same_guest(
    rig: LifecycleRig,
) -> None:
    first = await rig.approve_engagement(
        guest_email="ola@fabrikam.example",
        team=MARKETING,
        start=YEAR_START,
        end=YEAR_START + timedelta(days=30),
        title="ola one",
    )
    second = await rig.approve_engagement(
        guest_email="ola@fabrikam.example",
        team=MARKETING,
        start=YEAR_START,
        end=YEAR_START + timedelta(days=60),
        title="ola two",
    )
    await rig.run_due_jobs()
    await rig.lifecycle.revoke(first, ALEX, "Done early")
    await rig.run_due_jobs()
    one, two = await rig.engagement(first), await rig.engagement(second)
    assert one.state is EngagementState.ENDED and two.state is EngagementState.ACTIVE
    guest = two.guest_user_id
    assert guest is not None
    assert rig.in_team(MARKETING_TEAM_ID, guest)
    assert rig.in_channel(MARKETING_TEAM_ID, two.channel_id, guest)
    assert not rig.in_channel(MARKETING_TEAM_ID, one.channel_id, guest)
    user = rig.sim.user(guest)
    assert user is not None and user.account_enabled
    assert await rig.audited(first, A.GRAPH_TEAM_MEMBER_KEPT)
    assert await rig.audited(first, A.GRAPH_GUEST_KEPT)


async def test_a_guest_who_existed_before_the_program_is_never_disabled(
    rig: LifecycleRig,
) -> None:
    from graph.dev_seed import PAT_GUEST_EMAIL, PAT_GUEST_ID

    engagement_id = await rig.approve_engagement(
        guest_email=PAT_GUEST_EMAIL,
        team=MARKETING,
        start=YEAR_START,
        end=YEAR_START + timedelta(days=10),
        title="pat",
    )
    await rig.run_due_jobs()
    await rig.lifecycle.revoke(engagement_id, ALEX, "Not needed")
    await rig.run_due_jobs()
    ended = await rig.engagement(engagement_id)
    assert ended.state is EngagementState.ENDED and ended.guest_reused
    pat = rig.sim.user(PAT_GUEST_ID)
    assert pat is not None and pat.account_enabled
    assert not rig.in_team(MARKETING_TEAM_ID, PAT_GUEST_ID)
    assert await rig.audited(engagement_id, A.GRAPH_GUEST_KEPT)


async def test_offboarding_renames_the_channel_and_posts_a_closing_note(tmp_path) -> None:  # type: ignore[no-untyped-def]
    start = datetime.combine(YEAR_START, time(8), UTC)
    async with lifecycle_rig(tmp_path, start=start, ended_channel_prefix="ENDED ") as rig:
        engagement_id = await rig.approve_engagement(
            guest_email="pia@fabrikam.example",
            team=ENGINEERING,
            start=YEAR_START,
            end=YEAR_START + timedelta(days=3),
            title="pia",
        )
        await rig.run_due_jobs()
        rig.clock.current = start + timedelta(days=4)
        await rig.run_due_jobs()
        ended = await rig.engagement(engagement_id)
        assert ended.state is EngagementState.ENDED
        assert ended.end_reason is not None and "end date" in ended.end_reason
        assert ended.ended_by_id is None
        names = {c.id: c.display_name for c in rig.sim.channels(ENGINEERING_TEAM_ID)}
        assert names[ended.channel_id] == "ENDED pia"
        assert rig.notifier.closing_notes == [engagement_id]
        assert rig.notifier.ended_notices == {engagement_id: [ALEX_ID, MEGAN_ID]}

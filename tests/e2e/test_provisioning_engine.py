"""The provisioning engine under Graph's faults, through the running app: many engagements
approved at once against 30 % transient faults, the 403 guest mode with the requester and the
admins told, and `/retry FC-n` resuming from the failed step."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from core import audit_actions as A
from core.model import AuditOutcome, Engagement, EngagementState
from graph.dev_seed import ALEX_ID, ENGINEERING_TEAM_ID, MARKETING_TEAM_ID, MEGAN_ID
from tests.e2e.conftest import ALEX, NESTOR, RunningApp
from tests.e2e.steps import install_personal, say, texts_to
from tests.support.cards import card_text
from tests.support.engagements import queue_approved_engagements

TEAMS = [(MARKETING_TEAM_ID, "Contoso Marketing"), (ENGINEERING_TEAM_ID, "Contoso Engineering")]
FAST_RETRIES: dict[str, Any] = {
    "job_max_attempts": 30,
    "job_retry_base_s": 0.02,
    "job_retry_max_s": 0.3,
    "job_replication_retry_base_s": 0.02,
    "worker_concurrency": 16,
    "graph_timeout_s": 0.3,
}


async def approved_engagements(app: RunningApp, count: int, prefix: str) -> list[int]:
    """`count` engagements of Alex, alternately in Contoso Marketing and Engineering,
    approved by Megan, all at once, as an approval leaves them."""
    ids = await queue_approved_engagements(
        app.components.storage,
        count=count,
        teams=[(team_id, name, ALEX_ID) for team_id, name in TEAMS],
        tenant_id=app.tenant_id,
        prefix=prefix,
        approver=(MEGAN_ID, "Megan Bowen"),
        now=datetime.now().astimezone(),
    )
    app.components.worker.wake()
    return ids


async def settled(app: RunningApp, ids: list[int]) -> list[Engagement]:
    async def all_settled() -> list[Engagement] | None:
        found = [await app.engagement(i) for i in ids]
        busy = any(e.state is EngagementState.PROVISIONING for e in found)
        return None if busy else found

    result: list[Engagement] = await app.wait_until(all_settled, 60, "every engagement settled")
    return result


def assert_exactly_once(app: RunningApp, engagements: list[Engagement]) -> None:
    """One invitation per freelancer, one channel per engagement, no duplicate membership:
    in the requests the simulator received (including writes that applied and then failed)
    and in its state."""
    sim = app.simulator
    assert sim.duplicate_writes() == {}
    writes = sim.applied_writes()
    all_channels = [c for team, _ in TEAMS for c in sim.channels(team)]
    channels = Counter(c.display_name.lower() for c in all_channels)
    invited = Counter(i.invited_user_email_address.lower() for i in sim.invitations)
    for e in engagements:
        assert writes.get(("invitation", e.freelancer_email.lower()), 0) <= 1
        assert invited[e.freelancer_email.lower()] <= 1
        assert channels[e.channel_name.lower()] <= 1
        if e.channel_id is not None:
            assert channels[e.channel_name.lower()] == 1
            made = [c for c in sim.channels(e.team_id) if c.id == e.channel_id]
            assert len(made) == 1 and made[0].description == e.channel_description
        else:
            assert channels[e.channel_name.lower()] == 0
        if e.guest_user_id is not None:
            assert invited[e.freelancer_email.lower()] == 1


@pytest.mark.parametrize("settings_overrides", [FAST_RETRIES])
async def test_thirty_percent_transient_faults_end_with_every_engagement_active(
    running_app: RunningApp,
) -> None:
    app = running_app
    # 25 % 503/504 (half of the 504s applied the change first) and 5 % timeouts.
    app.simulator.set_faults(
        fault_rate=0.25, timeout_rate=0.05, timeout_hang_s=0.6, applied_fault_share=0.5, seed=11
    )
    ids = await approved_engagements(app, 8, "flaky")
    engagements = await settled(app, ids)
    assert [e.state for e in engagements] == [EngagementState.ACTIVE] * len(ids)
    assert_exactly_once(app, engagements)
    faulted = [r for r in app.simulator.requests if r.outcome]
    assert len(faulted) > 10  # the faults did happen
    assert any(r.outcome.endswith("after-apply") for r in faulted)
    for e in engagements:
        members = {m.user_id for m in app.simulator.team_members(e.team_id)}
        assert e.guest_user_id in members
        assert e.channel_id is not None
        in_channel = app.simulator.channel_members(e.team_id, e.channel_id)
        assert [m.user_id for m in in_channel].count(e.guest_user_id) == 1


@pytest.mark.parametrize("settings_overrides", [FAST_RETRIES | {"job_max_attempts": 3}])
async def test_guest_refused_mode_fails_clearly_tells_admins_and_retry_resumes(
    running_app: RunningApp,
) -> None:
    app = running_app
    await install_personal(app, ALEX)
    await install_personal(app, NESTOR)  # the admin
    app.simulator.guest_team_add_forbidden = True
    ids = await approved_engagements(app, 3, "refused")
    engagements = await settled(app, ids)
    for e in engagements:
        assert e.state is EngagementState.PROVISIONING_FAILED
        assert e.failure_reason is not None
        assert "TeamMember.ReadWriteNonOwnerRole.All" in e.failure_reason
        # Nothing half-made is unrecorded: the channel and the guest are on the engagement.
        assert e.channel_id is not None and e.guest_user_id is not None
        assert e.team_membership_id is None
    assert_exactly_once(app, engagements)
    refs = [f"FC-{i}" for i in ids]
    await app.wait_until(
        lambda: (
            all(f"Setting up {ref}" in texts_to(app, NESTOR) for ref in refs)
            and all(f"/retry {ref}" in texts_to(app, NESTOR) for ref in refs)
        ),
        what="the admin told about each failure, with the command to retry",
    )
    await app.wait_until(
        lambda: all(f"Setting up {ref} failed" in texts_to(app, ALEX) for ref in refs),
        what="the requester told",
    )

    # A non-admin is refused, and the refusal is audited.
    card = await say(app, ALEX, f"/retry {refs[0]}")
    assert "admins only" in card_text(card)
    assert (await app.engagement(ids[0])).state is EngagementState.PROVISIONING_FAILED

    # The admin fixes the cause and retries: provisioning continues from the failed step.
    app.simulator.guest_team_add_forbidden = False
    requests_before = len(app.simulator.requests)
    for ref in refs:
        card = await say(app, NESTOR, f"/retry {ref}")
        assert "queued again" in card_text(card)
    engagements = await settled(app, ids)
    assert [e.state for e in engagements] == [EngagementState.ACTIVE] * len(ids)
    assert_exactly_once(app, engagements)
    assert len(app.simulator.invitations) == len(ids)
    later = app.simulator.requests[requests_before:]
    assert not any(r.method == "POST" and r.path.endswith("/channels") for r in later)

    async with app.components.storage.transaction() as tx:
        records = await tx.audit.list_for_engagement(ids[0])
    retried = [r for r in records if r.action == A.PROVISIONING_RETRIED]
    refused = [r for r in records if r.action == A.COMMAND_PREFIX + "retry"]
    assert [r.actor_id for r in retried] == [NESTOR.aad_id]
    assert "TeamMember.ReadWriteNonOwnerRole.All" in retried[0].detail
    assert [(r.actor_id, r.outcome) for r in refused] == [(ALEX.aad_id, AuditOutcome.REFUSED)]


async def test_retry_of_an_engagement_that_has_not_failed_changes_nothing(
    running_app: RunningApp,
) -> None:
    app = running_app
    await install_personal(app, NESTOR)
    (engagement_id,) = await approved_engagements(app, 1, "fine")
    await app.wait_for_state(engagement_id, EngagementState.ACTIVE)
    card = await say(app, NESTOR, f"/retry FC-{engagement_id}")
    assert "nothing to retry" in card_text(card)
    card = await say(app, NESTOR, "/retry")
    assert "/retry FC-12" in card_text(card)
    card = await say(app, NESTOR, "/retry FC-9999")
    assert "FC-9999" in card_text(card)
    assert (await app.engagement(engagement_id)).state is EngagementState.ACTIVE
    # Admin commands are audited, also when they are refused for an id that does not exist.
    async with app.components.storage.transaction() as tx:
        unknown = await tx.audit.list_for_engagement(9999)
    assert [(r.action, r.outcome, r.detail) for r in unknown] == [
        (A.COMMAND_PREFIX + "retry", AuditOutcome.REFUSED, "not found")
    ]

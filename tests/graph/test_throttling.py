"""Graph's documented limits: which request draws from which bucket, the simulator's 429s
(Graph's body, integer Retry-After), random faults and timeouts, and the client-side pacer
that keeps the app under the limits."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from core.errors import Throttled, TransientDirectoryError
from graph.client import GraphSettings, build_graph_client, close_graph_client
from graph.dev_seed import ALEX_ID, ENGINEERING_TEAM_ID, MARKETING_TEAM_ID
from graph.directory import GraphDirectory
from graph.rate_limits import (
    DOCUMENTED_LIMITS,
    IDENTITY_RU,
    IDENTITY_WRITES,
    INVITATIONS,
    TEAMS_GET_MEMBERS_CHANNELS,
    TEAMS_OTHER,
    TEAMS_POST_CHANNEL,
    TENANT_WRITES,
    Charge,
    GraphLimits,
    GraphPacer,
    api_path,
    bound_seconds,
    charges,
)
from graph.simulator import GraphSimulator
from tests.graph.conftest import TOKEN
from tests.graph.test_simulator import call, invitation, member, private_channel
from tests.support.clock import ManualClock

TEAM = MARKETING_TEAM_ID


def keys(method: str, path: str, query: dict[str, str] | None = None) -> dict[str, float]:
    return {c.key: c.cost for c in charges(method, path, query)}


# --- which limit a request counts against ---------------------------------------------------


def test_teams_requests_draw_from_the_team_and_their_request_type() -> None:
    assert keys("GET", f"/teams/{TEAM}/channels") == {
        f"team:{TEAM}": 1,
        TEAMS_GET_MEMBERS_CHANNELS: 1,
    }
    assert keys("GET", f"/teams/{TEAM}/channels/19:x@thread.skype/members") == {
        f"team:{TEAM}": 1,
        TEAMS_GET_MEMBERS_CHANNELS: 1,
    }
    assert keys("POST", f"/teams/{TEAM}/channels") == {f"team:{TEAM}": 1, TEAMS_POST_CHANNEL: 1}
    assert keys("POST", f"/teams/{TEAM}/members") == {f"team:{TEAM}": 1, TEAMS_OTHER: 1}
    assert keys("POST", f"/teams/{TEAM}/channels/19:x@thread.skype/members") == {
        f"team:{TEAM}": 1,
        TEAMS_OTHER: 1,
    }


def test_identity_costs_follow_the_documented_resource_units() -> None:
    assert keys("GET", "/users", {"$filter": "mail eq 'a@b.c'"}) == {IDENTITY_RU: 2}
    assert keys("GET", "/users", {"$filter": "x", "$select": "id"}) == {IDENTITY_RU: 1}
    assert keys("GET", "/users/abc", {"$select": "id"}) == {IDENTITY_RU: 1}
    assert keys("GET", "/users/abc/manager", {"$expand": "x"}) == {IDENTITY_RU: 2}
    invite = keys("POST", "/invitations")
    assert invite == {INVITATIONS: 1, IDENTITY_RU: 1, IDENTITY_WRITES: 1, TENANT_WRITES: 1}


def test_api_path_strips_the_version_segment() -> None:
    assert api_path("/v1.0/teams/x/members") == "/teams/x/members"
    assert api_path("/graph/v1.0/users") == "/users"
    assert api_path("/v1.0") == "/"


def test_documented_limits_and_the_bound() -> None:
    assert DOCUMENTED_LIMITS.rate(f"team:{TEAM}") == 4
    assert DOCUMENTED_LIMITS.rate(INVITATIONS) == 30
    assert DOCUMENTED_LIMITS.rate(IDENTITY_WRITES) == 20
    half = DOCUMENTED_LIMITS.scaled(0.5)
    assert half.rate(f"team:{TEAM}") == 2
    requests = [[Charge(f"team:{TEAM}")]] * 40 + [[Charge(INVITATIONS)]] * 60
    seconds, key, spent = bound_seconds(requests)
    assert (seconds, key) == (10.0, f"team:{TEAM}")
    assert spent[INVITATIONS] == 60


# --- the pacer (client side) ----------------------------------------------------------------


def test_pacer_spaces_requests_to_one_team_at_four_per_second() -> None:
    clock = ManualClock()
    pacer = GraphPacer(clock=clock)  # bursts of half of Graph's bucket: 2 on a team
    waits = [pacer.reserve(charges("GET", f"/teams/{TEAM}/channels")) for _ in range(6)]
    assert waits == pytest.approx([0, 0, 0.25, 0.5, 0.75, 1.0])
    # Another team has its own budget.
    assert pacer.reserve(charges("GET", f"/teams/{ENGINEERING_TEAM_ID}/channels")) == 0


def test_pacer_holds_a_throttled_bucket_for_retry_after() -> None:
    clock = ManualClock()
    pacer = GraphPacer(clock=clock)
    drawn = charges("POST", "/invitations")
    pacer.throttled(drawn, 7)
    assert pacer.reserve(drawn) == pytest.approx(7)
    clock.advance(7)
    assert pacer.reserve(charges("GET", "/users")) == 0


# --- the simulator (server side) ------------------------------------------------------------


async def test_simulator_answers_429_with_graphs_body_and_an_integer_retry_after(
    sim: GraphSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.set_limits(DOCUMENTED_LIMITS)
    statuses = [(await call(http, "GET", f"/teams/{TEAM}/channels"))[0] for _ in range(4)]
    assert statuses == [200] * 4
    status, body, headers = await call(http, "GET", f"/teams/{TEAM}/channels")
    assert status == 429
    assert body["error"]["code"] == "TooManyRequests"
    assert "innerError" in body["error"]
    assert headers["Retry-After"] == "1"
    # Another team is not affected: the limit is per team.
    assert (await call(http, "GET", f"/teams/{ENGINEERING_TEAM_ID}/channels"))[0] == 200
    clock.advance(0.25)
    assert (await call(http, "GET", f"/teams/{TEAM}/channels"))[0] == 200
    assert (await call(http, "GET", f"/teams/{TEAM}/channels"))[0] == 429
    assert [r.status for r in sim.requests] == [200] * 4 + [429, 200, 200, 429]
    assert sim.requests[4].outcome == f"throttled:team:{TEAM}"
    assert len(sim.answered(429)) == 2


async def test_simulator_limits_invitations_per_tenant(
    sim: GraphSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.set_limits(DOCUMENTED_LIMITS)
    for i in range(150):
        status, _, _ = await call(http, "POST", "/invitations", json=invitation(f"f{i}@x.com"))
        assert status == 201
    status, body, headers = await call(http, "POST", "/invitations", json=invitation("z@x.com"))
    assert status == 429
    assert int(headers["Retry-After"]) >= 1
    assert "invitations" in body["error"]["message"]
    assert len(sim.invitations) == 150  # a refused request changes nothing
    clock.advance(1.0)  # 30 per second come back
    for i in range(30):
        status, _, _ = await call(http, "POST", "/invitations", json=invitation(f"g{i}@x.com"))
        assert status == 201
    assert (await call(http, "POST", "/invitations", json=invitation("y@x.com")))[0] == 429


async def test_simulator_spends_the_directory_write_budget(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.set_limits(GraphLimits(identity_writes=(3, 150), invitations=(1000, 5)))
    for i in range(3):
        assert (await call(http, "POST", "/invitations", json=invitation(f"w{i}@x.com")))[0] == 201
    status, _, headers = await call(http, "POST", "/invitations", json=invitation("w9@x.com"))
    assert status == 429
    assert headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert int(headers["Retry-After"]) == 50  # one write back every 150 / 3 s


async def test_random_faults_answer_503_or_504_and_some_504s_applied_the_change(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.set_faults(fault_rate=1.0, applied_fault_share=1.0, seed=7)
    seen = set()
    for i in range(20):
        status, body, _ = await call(http, "POST", "/invitations", json=invitation(f"r{i}@x.com"))
        assert status in (503, 504)
        assert body["error"]["code"] in ("ServiceUnavailable", "GatewayTimeout")
        seen.add(status)
    assert seen == {503, 504}
    applied = [r for r in sim.requests if r.outcome == "fault-after-apply"]
    assert applied and all(r.status == 504 for r in applied)
    # Exactly the applied ones made a guest.
    assert len(sim.invitations) == len(applied)
    sim.set_faults(fault_rate=0.0)
    assert (await call(http, "GET", "/users/" + ALEX_ID))[0] == 200


async def test_a_timeout_leaves_the_client_waiting_and_may_have_applied_the_change(
    sim: GraphSimulator, clock: ManualClock
) -> None:
    sim.set_faults(timeout_rate=1.0, timeout_hang_s=1.0, applied_fault_share=1.0)
    assert sim.base_url is not None
    client = build_graph_client(
        GraphSettings(base_url=sim.base_url, static_token=TOKEN, request_timeout_s=0.3)
    )
    try:
        directory = GraphDirectory(client)
        with pytest.raises(TransientDirectoryError, match="did not answer in time"):
            await directory.invite_guest(
                email="slow@fabrikam.com", display_name="Slow", redirect_url="https://x.y"
            )
    finally:
        await close_graph_client(client)
    assert [i.invited_user_email_address for i in sim.invitations] == ["slow@fabrikam.com"]


async def test_client_maps_the_429_to_throttled_with_retry_after(
    sim: GraphSimulator,
) -> None:
    sim.set_limits(GraphLimits(per_team=(1, 3)))
    assert sim.base_url is not None
    client = build_graph_client(GraphSettings(base_url=sim.base_url, static_token=TOKEN))
    try:
        directory = GraphDirectory(client)
        await directory.find_channel(TEAM, "General")
        with pytest.raises(Throttled) as raised:
            await directory.find_channel(TEAM, "General")
    finally:
        await close_graph_client(client)
    assert raised.value.retry_after == 3


async def test_paced_client_makes_no_429_where_an_unpaced_one_is_throttled() -> None:
    # Real time here: the pacer sleeps. 10 requests at 4/s on one team take about 2 s.
    sim = GraphSimulator(limits=DOCUMENTED_LIMITS)
    from graph.dev_seed import seed_dev_directory

    seed_dev_directory(sim)
    base_url = await sim.start()

    async def burst(pacer: GraphPacer | None) -> list[Any]:
        client = build_graph_client(
            GraphSettings(base_url=base_url, static_token=TOKEN), pacer=pacer
        )
        try:
            directory = GraphDirectory(client)
            return await asyncio.gather(
                *(directory.find_team_member(TEAM, ALEX_ID) for _ in range(10)),
                return_exceptions=True,
            )
        finally:
            await close_graph_client(client)

    try:
        unpaced = await burst(None)
        assert any(isinstance(r, Throttled) for r in unpaced)
        sim.set_limits(DOCUMENTED_LIMITS)  # full buckets again
        before = len(sim.requests)
        paced = await burst(GraphPacer())
        assert all(isinstance(r, str) for r in paced), paced
        assert [r.status for r in sim.requests[before:]] == [200] * 10
    finally:
        await sim.stop()


async def test_member_add_with_a_body_is_throttled_before_validation(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.set_limits(GraphLimits(teams_other=(1, 1)))
    assert (await call(http, "POST", f"/teams/{TEAM}/members", json=member(ALEX_ID)))[0] == 201
    status, _, _ = await call(
        http, "POST", f"/teams/{ENGINEERING_TEAM_ID}/channels", json=private_channel("Ok")
    )
    assert status != 429  # channel creation has its own per-tenant budget
    assert (await call(http, "POST", f"/teams/{TEAM}/members", json=member(ALEX_ID)))[0] == 429


def test_pacer_spaces_out_requests_that_a_busy_loop_woke_late_and_together() -> None:
    clock = ManualClock()
    pacer = GraphPacer(clock=clock)
    drawn = charges("GET", f"/teams/{TEAM}/channels")
    for _ in range(6):
        pacer.reserve(drawn)  # scheduled 0, 0, .25, .5, .75, 1.0
    clock.advance(2.0)  # the loop stalled: all six are due now
    sent_now = [pacer.send_wait(drawn) == 0 for _ in range(6)]
    assert sent_now == [True, True, True, False, False, False]  # 3 = 0.75 of Graph's 4
    clock.advance(0.25)
    assert pacer.send_wait(drawn) == 0
    assert pacer.send_wait(drawn) == pytest.approx(0.25)


async def test_control_api_seeds_configures_and_reads_back_every_request() -> None:
    sim = GraphSimulator(control_api=True)
    base_url = await sim.start()
    root = base_url.removesuffix("/v1.0")
    try:
        async with aiohttp.ClientSession(
            base_url=root, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            async with http.post(
                "/_control/seed",
                json={
                    "users": [{"id": "u1", "display_name": "Owner", "mail": "o@contoso.com"}],
                    "teams": [{"id": "t1", "display_name": "Team", "owners": ["u1"]}],
                },
            ) as response:
                assert await response.json() == {"users": ["u1"], "teams": ["t1"]}
            async with http.post(
                "/_control/config", json={"limits": "documented", "guest_team_add_forbidden": True}
            ) as response:
                assert response.status == 200
            for _ in range(5):
                await call(http, "GET", "/teams/t1/channels")
            await call(http, "POST", "/invitations", json=invitation("c@x.com"))
            async with http.get("/_control/requests") as response:
                seen = await response.json()
            async with http.get("/_control/state") as response:
                state = await response.json()
    finally:
        await sim.stop()
    assert [r["status"] for r in seen] == [200, 200, 200, 200, 429, 201]
    assert seen[4]["outcome"] == "throttled:team:t1"
    assert seen[5]["json"]["invitedUserEmailAddress"] == "c@x.com"
    assert state["invitations"] == ["c@x.com"]
    assert state["duplicate_writes"] == []
    assert sim.guest_team_add_forbidden
    # Control calls are not Graph calls: they are not recorded.
    assert all(not r.path.startswith("/_control") for r in sim.requests)


def test_the_control_api_is_off_by_default() -> None:
    routes = {r.resource.canonical for r in GraphSimulator().app.router.routes() if r.resource}
    assert not any(path.startswith("/_control") for path in routes)

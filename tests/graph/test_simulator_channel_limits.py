"""The Graph simulator over HTTP: the per-team private channel limit, listing channels by
membership type, and reading a user by user principal name (facts A3-A5)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from graph.dev_seed import (
    ALEX_ID,
    ENGINEERING_TEAM_ID,
    LEE_ID,
    MARKETING_TEAM_ID,
    PAT_GUEST_ID,
)
from graph.simulator import MAX_PRIVATE_CHANNELS_PER_TEAM, GraphSimulator
from tests.graph.conftest import TOKEN
from tests.graph.test_simulator import assert_graph_error, call, private_channel
from tests.support.clock import ManualClock
from tests.support.simulator import running_simulator

LIMIT_MESSAGE = "This team has exceeded the Max allowed channels"


def fill_with_private_channels(
    sim: GraphSimulator, team_id: str, count: int, *, deleted: int = 0
) -> list[str]:
    """`count` private channels made outside Graph, the first `deleted` of them deleted."""
    ids = [
        sim.add_channel(team_id, f"Private {n}", membership_type="private", owners=[ALEX_ID])
        for n in range(count)
    ]
    for channel_id in ids[:deleted]:
        sim.delete_channel(team_id, channel_id)
    return ids


async def create(
    http: aiohttp.ClientSession, name: str, team_id: str = MARKETING_TEAM_ID, owner: str = ALEX_ID
) -> tuple[int, dict[str, object]]:
    status, body, _ = await call(
        http, "POST", f"/teams/{team_id}/channels", json=private_channel(name, owner_id=owner)
    )
    return status, body


@pytest.fixture
async def small_limit_http(
    clock: ManualClock,
) -> AsyncIterator[tuple[GraphSimulator, aiohttp.ClientSession]]:
    async with running_simulator(clock=clock, private_channel_limit=2) as simulator:
        assert simulator.base_url is not None
        async with aiohttp.ClientSession(
            base_url=simulator.base_url.removesuffix("/v1.0"),
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as session:
            yield simulator, session


# --- the private channel limit -----------------------------------------------------------


def test_the_documented_limit_is_30_private_channels_per_team(sim: GraphSimulator) -> None:
    assert MAX_PRIVATE_CHANNELS_PER_TEAM == 30
    assert sim.private_channel_limit == 30


async def test_the_30th_private_channel_is_created(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    fill_with_private_channels(sim, MARKETING_TEAM_ID, 29)

    status, body = await create(http, "FC-30")

    assert status == 201, body


async def test_the_31st_private_channel_is_refused_with_graphs_error_and_not_created(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    fill_with_private_channels(sim, MARKETING_TEAM_ID, 30)

    status, body = await create(http, "FC-31")

    assert status == 403
    error = assert_graph_error(body, "Forbidden")
    assert error["message"] == LIMIT_MESSAGE
    names = [c.display_name for c in sim.channels(MARKETING_TEAM_ID, include_deleted=True)]
    assert "FC-31" not in names
    assert sim.applied_writes() == {}


async def test_deleted_private_channels_still_count_towards_the_limit(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    fill_with_private_channels(sim, MARKETING_TEAM_ID, 30, deleted=5)

    status, body = await create(http, "FC-31")

    assert status == 403
    assert_graph_error(body, "Forbidden")
    assert len(sim.channels(MARKETING_TEAM_ID)) == 1 + 25  # General and the live ones


async def test_standard_and_shared_channels_do_not_count_towards_the_limit(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    fill_with_private_channels(sim, MARKETING_TEAM_ID, 29)
    for n in range(10):
        sim.add_channel(MARKETING_TEAM_ID, f"Standard {n}")
        sim.add_channel(
            MARKETING_TEAM_ID, f"Shared {n}", membership_type="shared", owners=[ALEX_ID]
        )

    private_status, _ = await create(http, "FC-30")
    standard_status, _, _ = await call(
        http,
        "POST",
        f"/teams/{MARKETING_TEAM_ID}/channels",
        json={"displayName": "More talk", "membershipType": "standard"},
    )
    refused_status, _ = await create(http, "FC-31")

    assert (private_status, standard_status, refused_status) == (201, 201, 403)


async def test_the_limit_is_per_team(sim: GraphSimulator, http: aiohttp.ClientSession) -> None:
    fill_with_private_channels(sim, MARKETING_TEAM_ID, 30)

    status, body = await create(http, "FC-1", team_id=ENGINEERING_TEAM_ID, owner=LEE_ID)

    assert status == 201, body


async def test_a_request_graph_would_refuse_anyway_gets_its_own_error_first(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    fill_with_private_channels(sim, MARKETING_TEAM_ID, 30)

    status, body = await create(http, "Private 3")

    assert status == 400
    assert_graph_error(body, "NameAlreadyExists")


async def test_the_limit_can_be_lowered_per_simulator_and_switched_off(
    small_limit_http: tuple[GraphSimulator, aiohttp.ClientSession],
) -> None:
    sim, http = small_limit_http

    statuses = [(await create(http, f"FC-{n}"))[0] for n in range(3)]
    sim.private_channel_limit = None
    unlimited, _ = await create(http, "FC-3")

    assert statuses == [201, 201, 403]
    assert unlimited == 201


async def test_the_control_api_sets_the_limit() -> None:
    sim = GraphSimulator(control_api=True)
    base_url = await sim.start()
    try:
        async with aiohttp.ClientSession(
            base_url=base_url.removesuffix("/v1.0"), headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            async with http.post(
                "/_control/config", json={"private_channel_limit": 5}
            ) as response:
                assert response.status == 200
            lowered = sim.private_channel_limit
            async with http.post(
                "/_control/config", json={"private_channel_limit": None}
            ) as response:
                assert response.status == 200
    finally:
        await sim.stop()

    assert (lowered, sim.private_channel_limit) == (5, None)


# --- listing channels ----------------------------------------------------------------------


async def test_channels_filter_by_private_membership_type_and_never_list_deleted_ones(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    [gone, kept] = fill_with_private_channels(sim, MARKETING_TEAM_ID, 2, deleted=1)
    sim.add_channel(MARKETING_TEAM_ID, "Partners", membership_type="shared", owners=[ALEX_ID])
    path = f"/teams/{MARKETING_TEAM_ID}/channels"

    _, private, _ = await call(
        http, "GET", path, params={"$filter": "membershipType eq 'private'"}
    )
    _, everything, _ = await call(
        http, "GET", path, headers={"Prefer": "include-unknown-enum-members"}
    )

    assert [(c["id"], c["membershipType"]) for c in private["value"]] == [(kept, "private")]
    listed = {c["displayName"]: c["membershipType"] for c in everything["value"]}
    assert listed == {"General": "standard", "Private 1": "private", "Partners": "shared"}
    assert gone not in [c["id"] for c in everything["value"]]


# --- users by user principal name --------------------------------------------------------


async def test_user_is_read_by_user_principal_name_case_insensitively(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    dana = sim.add_user(
        "Dana Kim", mail="dana@contoso.com", user_principal_name="dana.kim@contoso.onmicrosoft.com"
    )

    status, body, _ = await call(http, "GET", "/users/DANA.KIM@contoso.onmicrosoft.com")

    assert status == 200
    assert (body["id"], body["userPrincipalName"]) == (dana, "dana.kim@contoso.onmicrosoft.com")


async def test_guest_is_read_by_its_ext_user_principal_name_with_an_encoded_hash(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    upn = sim.users[PAT_GUEST_ID].user_principal_name
    assert "#EXT#" in upn

    status, body, _ = await call(http, "GET", "/users/" + upn.replace("#", "%23"))

    assert status == 200
    assert body["id"] == PAT_GUEST_ID


@pytest.mark.parametrize(
    "key", ["nobody@contoso.com", "pat@fabrikam.com", "aaaaaaaa-0000-0000-0000-00000000ffff"]
)
async def test_unknown_key_or_a_mail_that_is_no_upn_is_404_resource_not_found(
    http: aiohttp.ClientSession, key: str
) -> None:
    status, body, _ = await call(http, "GET", f"/users/{key}")

    assert status == 404
    error = assert_graph_error(body, "Request_ResourceNotFound")
    assert error["message"].startswith(f"Resource '{key}' does not exist")


async def test_deleted_user_is_404_by_id_and_by_user_principal_name(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    gone = sim.add_user("Gone Soon", mail="gone@contoso.com")
    sim.delete_user(gone)

    by_id, _, _ = await call(http, "GET", f"/users/{gone}")
    by_upn, _, _ = await call(http, "GET", "/users/gone@contoso.com")

    assert (by_id, by_upn) == (404, 404)


async def test_key_starting_with_a_dollar_is_400_as_graph_reads_it_as_a_system_segment(
    http: aiohttp.ClientSession,
) -> None:
    status, body, _ = await call(http, "GET", "/users/%24adele@contoso.com")

    assert status == 400
    assert "The request URI is not valid" in assert_graph_error(body, "BadRequest")["message"]

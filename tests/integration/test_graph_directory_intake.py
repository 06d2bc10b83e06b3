"""GraphDirectory over real msgraph-sdk HTTP calls against the Graph simulator: naming a user
the way an admin does (find_user_by_identifier), listing a team's channels (list_channels) and
the private channel limit (PrivateChannelLimitReached)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from core.errors import (
    ChannelNameTaken,
    DirectoryError,
    PermanentDirectoryError,
    PrivateChannelLimitReached,
    TransientDirectoryError,
)
from core.metrics import graph_endpoint
from core.ports import ChannelInfo, DirectoryUser
from graph.client import GraphSettings, build_graph_client, close_graph_client
from graph.dev_seed import (
    ALEX_ID,
    ENGINEERING_TEAM_ID,
    LEE_ID,
    MARKETING_TEAM_ID,
    PAT_GUEST_EMAIL,
    PAT_GUEST_ID,
)
from graph.directory import GraphDirectory
from graph.rate_limits import api_path
from graph.simulator import GraphSimulator
from tests.integration.conftest import GRAPH_TOKEN
from tests.support.clock import ManualClock
from tests.support.simulator import running_simulator

# msgraph's generated request builders warn about their own deprecated classes on import.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph")

ALEX = DirectoryUser(ALEX_ID, "Alex Wilber", "alex@contoso.com", "Member")
PAT = DirectoryUser(PAT_GUEST_ID, "Pat Freelance", PAT_GUEST_EMAIL, "Guest")


def add_dana(sim: GraphSimulator) -> str:
    """A member whose e-mail address is not her user principal name."""
    return sim.add_user(
        "Dana Kim", mail="dana@contoso.com", user_principal_name="dana.kim@contoso.onmicrosoft.com"
    )


def sent(sim: GraphSimulator) -> list[tuple[str, str, str | None]]:
    """(method, path after /v1.0, $filter) of every request the simulator received."""
    return [(r.method, api_path(r.path), r.query.get("$filter")) for r in sim.requests]


# --- find_user_by_identifier ---------------------------------------------------------------


async def test_finds_a_member_by_user_principal_name_with_one_get(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    dana = add_dana(sim)

    found = await directory.find_user_by_identifier("Dana.Kim@contoso.onmicrosoft.com")

    assert found == DirectoryUser(dana, "Dana Kim", "dana@contoso.com", "Member")
    assert sent(sim) == [("GET", "/users/Dana.Kim@contoso.onmicrosoft.com", None)]
    assert sim.requests[0].query["$select"] == "id,displayName,mail,userType,accountEnabled"


async def test_finds_a_user_by_object_id(sim: GraphSimulator, directory: GraphDirectory) -> None:
    found = await directory.find_user_by_identifier(ALEX_ID.upper())

    assert found == ALEX
    assert sent(sim) == [("GET", f"/users/{ALEX_ID.upper()}", None)]


async def test_unknown_object_id_is_none_without_a_mail_filter(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    found = await directory.find_user_by_identifier("aaaaaaaa-0000-0000-0000-00000000ffff")

    assert found is None
    assert [r.status for r in sim.requests] == [404]


async def test_finds_a_member_by_an_email_that_is_not_the_upn_through_the_mail_filter(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    dana = add_dana(sim)

    found = await directory.find_user_by_identifier(" Dana@Contoso.com ")

    assert found is not None and found.id == dana
    assert sent(sim) == [
        ("GET", "/users/Dana@Contoso.com", None),
        ("GET", "/users", "mail eq 'Dana@Contoso.com'"),
    ]
    assert [r.status for r in sim.requests] == [404, 200]


async def test_finds_a_guest_by_email_and_by_its_ext_user_principal_name(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    upn = sim.users[PAT_GUEST_ID].user_principal_name

    by_email = await directory.find_user_by_identifier(PAT_GUEST_EMAIL)
    sim.requests.clear()
    by_upn = await directory.find_user_by_identifier(upn)

    assert by_email == PAT
    assert by_upn == PAT
    # The "#" went out percent-encoded: the whole UPN reached Graph, not a cut-off fragment.
    assert sent(sim) == [("GET", f"/users/{upn}", None)]


async def test_unknown_address_is_none(sim: GraphSimulator, directory: GraphDirectory) -> None:
    assert await directory.find_user_by_identifier("nobody@nowhere.example") is None
    assert [r.status for r in sim.requests] == [404, 200]


async def test_deleted_user_is_none(sim: GraphSimulator, directory: GraphDirectory) -> None:
    dana = add_dana(sim)
    sim.delete_user(dana)

    assert await directory.find_user_by_identifier(dana) is None
    assert await directory.find_user_by_identifier("dana.kim@contoso.onmicrosoft.com") is None
    assert await directory.find_user_by_identifier("dana@contoso.com") is None


@pytest.mark.parametrize("identifier", ["", "   ", "\x00", "alex@contoso.com\x00", "x" * 300])
async def test_blank_control_character_or_overlong_input_is_none_without_a_request(
    sim: GraphSimulator, directory: GraphDirectory, identifier: str
) -> None:
    assert await directory.find_user_by_identifier(identifier) is None
    assert sim.requests == []


@pytest.mark.parametrize(
    ("identifier", "literal"),
    [
        ("a/b", "'a/b'"),
        ("x' or 1 eq 1", "'x'' or 1 eq 1'"),
        ("what?#frag", "'what?#frag'"),
        ("$adele@contoso.com", "'$adele@contoso.com'"),
        ("alex@contoso.com/manager", "'alex@contoso.com/manager'"),
        ("../users", "'../users'"),
        ("Pat Freelance", "'Pat Freelance'"),
        ("o'brien+tag@contoso.com", "'o''brien+tag@contoso.com'"),
    ],
)
async def test_input_that_cannot_be_a_path_key_goes_only_to_the_quoted_mail_filter(
    sim: GraphSimulator, directory: GraphDirectory, identifier: str, literal: str
) -> None:
    found = await directory.find_user_by_identifier(identifier)

    assert found is None
    assert sent(sim) == [("GET", "/users", f"mail eq {literal}")]
    assert [r.status for r in sim.requests] == [200]


async def test_a_quote_in_an_address_reaches_graph_doubled_and_matches(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    obrien = sim.add_user(
        "Pat O'Brien", mail="o'brien@contoso.com", user_principal_name="pobrien@contoso.com"
    )

    found = await directory.find_user_by_identifier("o'brien@contoso.com")

    assert found is not None and found.id == obrien
    assert sent(sim)[-1] == ("GET", "/users", "mail eq 'o''brien@contoso.com'")


async def test_no_request_is_malformed_whatever_the_admin_types(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    unsendable = ["", "x" * 300, "\x00", "alex@contoso.com\r\nX-Injected: 1"]
    filtered = [
        "a/b",
        "x' or 1 eq 1",
        "?$select=*",
        "#",
        "%2F..%2F",
        "alex@contoso.com?$expand=manager",
        "users('x')",
        "\u202eevil@contoso.com",
        "a" * 64 + "@" + "b" * 60 + ".com",  # 129 characters: longer than any UPN
    ]
    for identifier in unsendable + filtered:
        try:
            found = await directory.find_user_by_identifier(identifier)
        except DirectoryError as error:  # pragma: no cover - the message says which
            pytest.fail(f"{identifier!r} raised {error!r}")
        assert found is None

    # Nothing went into a path; each value reached Graph whole, as one quoted literal.
    assert [r.query.get("$filter") for r in sim.requests] == [
        "mail eq '" + identifier.replace("'", "''") + "'" for identifier in filtered
    ]
    for request in sim.requests:
        assert (request.method, request.path, request.status) == ("GET", "/v1.0/users", 200)
        assert set(request.query) == {"$filter", "$select"}


async def test_transient_failure_of_the_get_is_a_transient_error(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault("GET", "/users/*", 503)

    with pytest.raises(TransientDirectoryError) as raised:
        await directory.find_user_by_identifier("alex@contoso.com")

    assert raised.value.status == 503
    assert len(sim.requests) == 1


async def test_forbidden_mail_filter_names_the_permission(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault("GET", "/users", 403, code="Authorization_RequestDenied")

    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.find_user_by_identifier("a/b")

    assert "User.Read.All" in str(raised.value)
    assert "look up a user by e-mail address" in str(raised.value)


async def test_user_lookups_show_as_templated_metrics_endpoints(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    await directory.find_user_by_identifier(ALEX_ID)
    await directory.find_user_by_identifier(sim.users[PAT_GUEST_ID].user_principal_name)
    await directory.find_user_by_identifier("someone@contoso.com")
    await directory.find_user_by_identifier("a/b")

    endpoints = {graph_endpoint(api_path(r.path)) for r in sim.requests}

    assert endpoints == {"/users/{id}", "/users"}


# --- list_channels -------------------------------------------------------------------------


async def test_lists_standard_private_and_shared_channels_with_their_membership_type(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    general = sim.channels(MARKETING_TEAM_ID)[0].id
    standard = sim.add_channel(MARKETING_TEAM_ID, "Announcements", description="news")
    private = sim.add_channel(
        MARKETING_TEAM_ID, "FC-1 Sam", membership_type="private", owners=[ALEX_ID]
    )
    shared = sim.add_channel(
        MARKETING_TEAM_ID, "Partners", membership_type="shared", owners=[ALEX_ID]
    )

    channels = await directory.list_channels(MARKETING_TEAM_ID)

    assert list(channels) == [
        ChannelInfo(general, "General", "Contoso Marketing general channel", "standard"),
        ChannelInfo(standard, "Announcements", "news", "standard"),
        ChannelInfo(private, "FC-1 Sam", None, "private"),
        # Not "unknownFutureValue": the Prefer header went along (facts A4).
        ChannelInfo(shared, "Partners", None, "shared"),
    ]
    [request] = sim.requests
    assert request.headers["Prefer"] == "include-unknown-enum-members"
    assert request.query == {"$select": "id,displayName,description,membershipType"}
    assert graph_endpoint(api_path(request.path)) == "/teams/{id}/channels"


async def test_deleted_channels_are_not_listed(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    gone = sim.add_channel(
        ENGINEERING_TEAM_ID, "Old work", membership_type="private", owners=[LEE_ID]
    )
    kept = sim.add_channel(
        ENGINEERING_TEAM_ID, "New work", membership_type="private", owners=[LEE_ID]
    )
    sim.delete_channel(ENGINEERING_TEAM_ID, gone)

    ids = [c.id for c in await directory.list_channels(ENGINEERING_TEAM_ID)]

    assert kept in ids and gone not in ids
    assert len(ids) == 2  # General and the live one


async def test_listing_an_unknown_team_is_a_permanent_error(directory: GraphDirectory) -> None:
    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.list_channels("bbbbbbbb-0000-0000-0000-00000000ffff")

    assert raised.value.status == 404
    assert "list the team's channels" in str(raised.value)


def _channel(n: int, membership_type: str = "standard") -> dict[str, Any]:
    return {
        "id": f"19:{n}@thread.tacv2",
        "displayName": f"Channel {n}",
        "description": None,
        "membershipType": membership_type,
    }


@pytest.fixture
async def paging_graph() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A stand-in that pages GET /teams/{id}/channels (the simulator answers in one page, as
    the channel list does in practice): the first page links to a second, then a third."""
    seen: list[web.Request] = []

    async def channels(request: web.Request) -> web.Response:
        seen.append(request)
        base = f"http://{request.host}/v1.0/teams/{request.match_info['team_id']}/channels"
        page = request.query.get("$skiptoken", "1")
        pages: dict[str, tuple[list[dict[str, Any]], str | None]] = {
            "1": ([_channel(1), _channel(2, "private")], f"{base}?$skiptoken=2"),
            "2": ([_channel(3, "shared")], f"{base}?$skiptoken=3"),
            "3": ([_channel(4)], None),
        }
        value, next_link = pages[page]
        body: dict[str, Any] = {"value": value}
        if next_link:
            body["@odata.nextLink"] = next_link
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/v1.0/teams/{team_id}/channels", channels)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/v1.0", seen
    finally:
        await runner.cleanup()


async def test_follows_next_links_keeping_the_prefer_header(
    paging_graph: tuple[str, list[web.Request]],
) -> None:
    base_url, seen = paging_graph
    client = build_graph_client(GraphSettings(base_url=base_url, static_token=GRAPH_TOKEN))
    try:
        channels = await GraphDirectory(client).list_channels("team-1")
    finally:
        await close_graph_client(client)

    assert [(c.id, c.membership_type) for c in channels] == [
        ("19:1@thread.tacv2", "standard"),
        ("19:2@thread.tacv2", "private"),
        ("19:3@thread.tacv2", "shared"),
        ("19:4@thread.tacv2", "standard"),
    ]
    assert [r.query.get("$skiptoken") for r in seen] == [None, "2", "3"]
    assert all(r.headers["Prefer"] == "include-unknown-enum-members" for r in seen)


# --- the private channel limit -------------------------------------------------------------


def fill_with_private_channels(
    sim: GraphSimulator, count: int, *, deleted: int = 0, team_id: str = MARKETING_TEAM_ID
) -> None:
    ids = [
        sim.add_channel(team_id, f"Private {n}", membership_type="private", owners=[ALEX_ID])
        for n in range(count)
    ]
    for channel_id in ids[:deleted]:
        sim.delete_channel(team_id, channel_id)


async def create(directory: GraphDirectory, name: str = "FC-31 Sam") -> ChannelInfo:
    return await directory.create_private_channel(
        MARKETING_TEAM_ID, display_name=name, description="Sam's work", owner_id=ALEX_ID
    )


async def test_a_full_team_raises_private_channel_limit_reached_with_advice_for_the_admin(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    fill_with_private_channels(sim, 30, deleted=3)

    with pytest.raises(PrivateChannelLimitReached) as raised:
        await create(directory)

    error = raised.value
    assert isinstance(error, PermanentDirectoryError)
    assert not isinstance(error, ChannelNameTaken)
    assert (error.status, error.code) == (403, "Forbidden")
    message = str(error)
    assert "limit of 30 private channels" in message
    assert "deleted ones count for 30 days" in message
    assert "Choose another team" in message
    # A full team is not a missing permission.
    assert "Channel.Create" not in message and "admin consent" not in message
    assert len(sim.requests) == 1


async def test_the_30th_private_channel_is_still_created(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    fill_with_private_channels(sim, 29)

    created = await create(directory, "FC-30 Sam")

    assert created.membership_type == "private"


async def test_standard_channels_leave_room_for_private_ones(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    fill_with_private_channels(sim, 29)
    for n in range(40):
        sim.add_channel(MARKETING_TEAM_ID, f"Standard {n}")

    created = await create(directory, "FC-30 Sam")

    assert created.display_name == "FC-30 Sam"


async def test_a_lowered_limit_is_reached_through_the_directory_too(clock: ManualClock) -> None:
    async with running_simulator(
        clock=clock, accepted_token=GRAPH_TOKEN, private_channel_limit=1
    ) as sim:
        assert sim.base_url is not None
        client = build_graph_client(GraphSettings(base_url=sim.base_url, static_token=GRAPH_TOKEN))
        try:
            directory = GraphDirectory(client)
            await create(directory, "FC-1 Sam")
            with pytest.raises(PrivateChannelLimitReached):
                await create(directory, "FC-2 Sam")
        finally:
            await close_graph_client(client)

"""The Bot Connector stand-in as botbuilder's own clients see it: proactive conversations,
team details, paged members and injected failures. Other tests rely on these answers being
ones botbuilder parses the way it parses the real service's."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from botbuilder.core import ActivityHandler, MessageFactory, TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.schema import ChannelAccount, ConversationParameters

from bot.adapter import FreelanceCloudAdapter
from tests.bot.conftest import APP_ID, TENANT_ID, StartBot
from tests.support.activities import TestTeam, TestUser, message
from tests.support.connector import NOT_INSTALLED_CODE, ConnectorStandIn
from tests.support.openid import OpenIdStandIn

DAVE = TestUser(aad_id="aad-dave", user_id="29:dave-mri", name="Dave")
TEAM = TestTeam(team_id="19:general-1@thread.tacv2", name="Contoso Projects", aad_group_id="g-1")


def _parameters(user_id: str) -> ConversationParameters:
    return ConversationParameters(
        is_group=False,
        bot=ChannelAccount(id=f"28:{APP_ID}"),
        members=[ChannelAccount(id=user_id)],
        tenant_id=TENANT_ID,
        channel_data={"tenant": {"id": TENANT_ID}},
        activity=MessageFactory.text("You have a new approval request"),
    )


async def _create(
    adapter: FreelanceCloudAdapter, service_url: str, user_id: str
) -> dict[str, str]:
    created: dict[str, str] = {}

    async def remember(turn_context: TurnContext) -> None:
        created["conversation_id"] = turn_context.activity.conversation.id
        created["activity_id"] = turn_context.activity.id

    await adapter.create_conversation(
        APP_ID, remember, _parameters(user_id), "msteams", service_url, None
    )
    return created


async def test_proactive_create_conversation_is_recorded_with_tenant_and_outbound_token(
    auth_adapter: FreelanceCloudAdapter, connector: ConnectorStandIn, outbound: OpenIdStandIn
) -> None:
    first = await _create(auth_adapter, connector.service_url, DAVE.user_id)
    again = await _create(auth_adapter, connector.service_url, DAVE.user_id)

    assert first["conversation_id"].startswith("a:")
    # Teams keeps one 1:1 conversation per user and bot.
    assert again["conversation_id"] == first["conversation_id"]
    created = connector.conversations[0]
    # botbuilder-python sends "tenantID"; the stand-in reads it case-insensitively.
    assert "tenantID" in created.parameters
    assert created.tenant_id == TENANT_ID
    assert created.member_ids == [DAVE.user_id]
    assert created.activity_id == first["activity_id"]
    assert connector.activities()[0]["text"] == "You have a new approval request"
    assert connector.calls[0].bearer_token == outbound.outbound_token


async def test_create_conversation_for_a_user_without_the_app_fails_with_teams_403(
    open_adapter: FreelanceCloudAdapter, connector: ConnectorStandIn
) -> None:
    connector.forbid_conversation(DAVE.user_id)

    with pytest.raises(Exception) as raised:
        await _create(open_adapter, connector.service_url, DAVE.user_id)

    error = raised.value
    assert error.response.status_code == 403  # type: ignore[attr-defined]
    assert error.error.error.code == NOT_INSTALLED_CODE  # type: ignore[attr-defined]
    assert connector.conversations == []


class TeamProbeBot(ActivityHandler):
    """Replies with what TeamsInfo reads from the connector for the team of the message."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        try:
            details = await TeamsInfo.get_team_details(turn_context)
            first = await TeamsInfo.get_paged_members(turn_context, page_size=2)
            rest = await TeamsInfo.get_paged_members(
                turn_context, continuation_token=first.continuation_token, page_size=2
            )
        except Exception as exc:
            self.errors.append(exc)
            return
        names = [m.name for m in first.members] + ["|"] + [m.name for m in rest.members]
        await turn_context.send_activity(f"{details.aad_group_id} {details.name}: {names}")


async def test_team_details_and_paged_members_come_back_through_teams_info(
    open_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
) -> None:
    connector.seed_team(TEAM.team_id, TEAM.name, aad_group_id=TEAM.aad_group_id)
    connector.set_members(
        TEAM.team_id,
        [{"id": f"29:u{i}", "name": f"User {i}", "aadObjectId": f"aad-{i}"} for i in range(3)],
    )
    bot = TeamProbeBot()
    url = await start_bot(open_adapter, bot)
    body = message(
        "who is here",
        user=DAVE,
        conversation_type="channel",
        team=TEAM,
        mention_bot=True,
        service_url=connector.service_url,
        tenant_id=TENANT_ID,
    )

    async with http.post(f"{url}/api/messages", json=body) as response:
        assert response.status == 201

    assert bot.errors == []
    reply = await connector.wait_for_activity()
    assert reply["text"] == "g-1 Contoso Projects: ['User 0', 'User 1', '|', 'User 2']"


async def test_an_unknown_team_is_a_404_with_teams_error_shape(
    open_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
) -> None:
    bot = TeamProbeBot()
    url = await start_bot(open_adapter, bot)
    body = message(
        "hi",
        user=DAVE,
        conversation_type="channel",
        team=TEAM,
        service_url=connector.service_url,
        tenant_id=TENANT_ID,
    )

    async with http.post(f"{url}/api/messages", json=body) as response:
        assert response.status == 201

    assert len(bot.errors) == 1
    # The teams operations raise a plain msrest HttpOperationError; the body is Teams' shape.
    response = bot.errors[0].response  # type: ignore[attr-defined]
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ConversationNotFound"


async def test_injected_failures_answer_once_then_the_route_works_again(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    connector.fail_next("POST", r"/activities$", 429, headers={"Retry-After": "2"})
    url = f"{connector.service_url}v3/conversations/a:1x/activities"
    activity: dict[str, Any] = {"type": "message", "text": "hi"}

    async with http.post(url, json=activity) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "2"
        assert await response.json() == {
            "error": {"code": "Throttled", "message": "Injected failure"}
        }
    async with http.post(url, json=activity) as response:
        assert response.status == 201
        sent_id = (await response.json())["id"]

    assert [c.status for c in connector.calls] == [429, 201]
    assert connector.activities("a:1x") == [activity]
    async with http.put(f"{url}/{sent_id}", json=activity) as response:
        assert response.status == 200
    assert connector.updates("a:1x")[0].match["activity_id"] == sent_id


async def test_strict_activity_ids_refuse_updates_of_unknown_messages(
    http: aiohttp.ClientSession,
) -> None:
    with ConnectorStandIn(strict_activity_ids=True) as connector:
        url = f"{connector.service_url}v3/conversations/a:1x/activities/404404"
        async with http.put(url, json={"type": "message", "text": "x"}) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "ActivityNotFoundInConversation"

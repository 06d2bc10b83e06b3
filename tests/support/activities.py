"""Builders for activities shaped as Microsoft Teams sends them to a bot (graph-teams-facts C1,
C5; stack-check 4 for what a Teams client puts on the wire).

Every builder returns a JSON-ready dict with channelId "msteams", a unique `id`, `timestamp`
and `localTimestamp`, `serviceUrl`, `from` {id "29:...", name, aadObjectId}, `recipient`
{id "28:<bot app id>", name}, `conversation` {id, conversationType, tenantId[, isGroup]} and
`channelData.tenant.id`. Teams omits `isGroup` in personal chats, so these builders do too.

Example::

    alice = TestUser(aad_id="aad-alice", user_id="29:alice", name="Alice")
    team = TestTeam(team_id="19:general@thread.tacv2", name="Contoso", aad_group_id="g-1")
    body = message("/pending", user=alice, service_url=url, tenant_id=TENANT)
    body = message("hi", user=alice, conversation_type="channel", team=team,
                   mention_bot=True, service_url=url, tenant_id=TENANT)
    body = invoke_action("approve", {"engagementId": "FC-1"}, user=alice,
                         reply_to_id="1700000000000", service_url=url, tenant_id=TENANT)
    await http.post(f"{bot_url}/api/messages", json=body, headers=auth)
"""

from __future__ import annotations

import hashlib
import itertools
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

ConversationType = Literal["personal", "groupChat", "channel"]

DEFAULT_BOT_APP_ID = "00000000-0000-0000-0000-0000000000b0"
DEFAULT_BOT_NAME = "Freelance Connector"

_counter = itertools.count(1)


@dataclass(frozen=True)
class TestUser:
    """A Teams user as the bot sees them: the bot-specific MRI and the Entra object id."""

    __test__ = False  # not a pytest test class, despite the name

    aad_id: str
    user_id: str  # "29:..."
    name: str

    def account(self) -> dict[str, Any]:
        return {"id": self.user_id, "name": self.name, "aadObjectId": self.aad_id}


@dataclass(frozen=True)
class TestTeam:
    """A team as Teams names it to a bot. `team_id` is the General channel's thread id
    ("19:...@thread.tacv2"), not the Graph id; `aad_group_id` is the Graph (M365 group) id."""

    __test__ = False

    team_id: str
    name: str
    aad_group_id: str
    channel_id: str | None = None  # the channel of the conversation; None = General

    @property
    def conversation_channel_id(self) -> str:
        return self.channel_id or self.team_id


def _new_activity_id() -> str:
    # Teams activity ids are millisecond timestamps; the counter keeps them unique in a run.
    # Fixed width: the fuzz test cuts serialized activities at drawn offsets, and hypothesis
    # must see the same lengths when it replays a case (a fifth counter digit, after 10,000
    # activities in one session, made its data generation inconsistent).
    return f"{int(time.time() * 1000)}{next(_counter) % 10_000:04d}"


def _timestamps() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "localTimestamp": now.isoformat(timespec="milliseconds"),
    }


def personal_conversation_id(user: TestUser, bot_app_id: str = DEFAULT_BOT_APP_ID) -> str:
    """A stable 1:1 conversation id ("a:1...") for this user and bot, as Teams keeps one."""
    digest = hashlib.sha256(f"{user.user_id}|{bot_app_id}".encode()).hexdigest()[:40]
    return f"a:1{digest}"


def _base(
    activity_type: str,
    *,
    user: TestUser,
    conversation_type: ConversationType,
    team: TestTeam | None,
    service_url: str,
    tenant_id: str,
    bot_app_id: str,
    bot_name: str,
    conversation_id: str | None,
    team_details_in_channel_data: bool = False,
) -> dict[str, Any]:
    if conversation_type == "channel" and team is None:
        raise ValueError("a channel conversation needs a team")
    activity_id = _new_activity_id()
    conversation: dict[str, Any] = {"conversationType": conversation_type, "tenantId": tenant_id}
    channel_data: dict[str, Any] = {"tenant": {"id": tenant_id}}
    if conversation_type == "personal":
        conversation["id"] = conversation_id or personal_conversation_id(user, bot_app_id)
    elif conversation_type == "groupChat":
        conversation["isGroup"] = True
        conversation["id"] = conversation_id or f"19:{uuid.uuid4().hex}@thread.v2"
    else:
        assert team is not None
        channel = team.conversation_channel_id
        conversation["isGroup"] = True
        # A new channel post starts its own thread: the channel id plus the post's own id.
        conversation["id"] = conversation_id or f"{channel};messageid={activity_id}"
        team_data: dict[str, Any] = {"id": team.team_id}
        if team_details_in_channel_data:
            team_data.update({"name": team.name, "aadGroupId": team.aad_group_id})
        channel_data.update(
            {
                "teamsChannelId": channel,
                "teamsTeamId": team.team_id,
                "channel": {"id": channel},
                "team": team_data,
            }
        )
    return {
        "type": activity_type,
        "id": activity_id,
        **_timestamps(),
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": user.account(),
        "recipient": {"id": f"28:{bot_app_id}", "name": bot_name},
        "conversation": conversation,
        "channelData": channel_data,
        "locale": "en-US",
        "localTimezone": "Europe/Berlin",
    }


def _client_info() -> dict[str, Any]:
    return {
        "type": "clientInfo",
        "locale": "en-US",
        "country": "US",
        "platform": "Web",
        "timezone": "Europe/Berlin",
    }


def message(
    text: str,
    *,
    user: TestUser,
    conversation_type: ConversationType = "personal",
    team: TestTeam | None = None,
    service_url: str,
    tenant_id: str,
    mention_bot: bool = False,
    bot_app_id: str = DEFAULT_BOT_APP_ID,
    bot_name: str = DEFAULT_BOT_NAME,
    conversation_id: str | None = None,
    value: dict[str, Any] | None = None,
    reply_to_id: str | None = None,
) -> dict[str, Any]:
    """A message. `mention_bot` puts `<at>bot name</at>` before the text with a mention entity,
    as Teams does for channel posts (which reach the bot only when they mention it). `value`
    and `reply_to_id` make it a legacy Action.Submit (C2)."""
    activity = _base(
        "message",
        user=user,
        conversation_type=conversation_type,
        team=team,
        service_url=service_url,
        tenant_id=tenant_id,
        bot_app_id=bot_app_id,
        bot_name=bot_name,
        conversation_id=conversation_id,
    )
    entities: list[dict[str, Any]] = [_client_info()]
    if mention_bot:
        mention_text = f"<at>{bot_name}</at>"
        text = f"{mention_text} {text}"
        entities.insert(
            0,
            {
                "type": "mention",
                "text": mention_text,
                "mentioned": {"id": f"28:{bot_app_id}", "name": bot_name},
            },
        )
    activity.update({"text": text, "textFormat": "plain", "entities": entities})
    if value is not None:
        activity["value"] = value
    if reply_to_id is not None:
        activity["replyToId"] = reply_to_id
    return activity


def invoke_action(
    verb: str,
    data: dict[str, Any] | None,
    *,
    user: TestUser,
    conversation_type: ConversationType = "personal",
    team: TestTeam | None = None,
    service_url: str,
    tenant_id: str,
    reply_to_id: str | None = None,
    trigger: Literal["manual", "automatic"] = "manual",
    bot_app_id: str = DEFAULT_BOT_APP_ID,
    bot_name: str = DEFAULT_BOT_NAME,
    conversation_id: str | None = None,
) -> dict[str, Any]:
    """An `adaptiveCard/action` invoke from an Action.Execute button (`trigger` "manual") or
    a card refresh ("automatic"). `reply_to_id` is the id of the message holding the card."""
    activity = _base(
        "invoke",
        user=user,
        conversation_type=conversation_type,
        team=team,
        service_url=service_url,
        tenant_id=tenant_id,
        bot_app_id=bot_app_id,
        bot_name=bot_name,
        conversation_id=conversation_id,
    )
    activity.update(
        {
            "name": "adaptiveCard/action",
            "value": {
                "action": {"type": "Action.Execute", "id": "", "verb": verb, "data": data or {}},
                "trigger": trigger,
            },
            "entities": [_client_info()],
        }
    )
    if reply_to_id is not None:
        activity["replyToId"] = reply_to_id
    return activity


def installation_update(
    *,
    user: TestUser,
    action: Literal["add", "remove"] = "add",
    team: TestTeam | None = None,
    service_url: str,
    tenant_id: str,
    bot_app_id: str = DEFAULT_BOT_APP_ID,
    bot_name: str = DEFAULT_BOT_NAME,
    conversation_id: str | None = None,
) -> dict[str, Any]:
    """The `installationUpdate` Teams sends when `user` installs (or removes) the app: in their
    personal scope, or in `team` (then the conversation is the team's General channel)."""
    activity = _base(
        "installationUpdate",
        user=user,
        conversation_type="channel" if team is not None else "personal",
        team=team,
        service_url=service_url,
        tenant_id=tenant_id,
        bot_app_id=bot_app_id,
        bot_name=bot_name,
        conversation_id=conversation_id or (team.team_id if team else None),
        team_details_in_channel_data=True,
    )
    activity["action"] = action
    if team is not None:
        activity["channelData"]["settings"] = {"selectedChannel": {"id": team.team_id}}
    return activity


def conversation_update_bot_added(
    *,
    team: TestTeam,
    user: TestUser,
    service_url: str,
    tenant_id: str,
    bot_app_id: str = DEFAULT_BOT_APP_ID,
    bot_name: str = DEFAULT_BOT_NAME,
) -> dict[str, Any]:
    """The `conversationUpdate` (eventType teamMemberAdded) Teams sends when `user` adds the
    bot to `team`; the conversation is the team's General channel."""
    activity = _base(
        "conversationUpdate",
        user=user,
        conversation_type="channel",
        team=team,
        service_url=service_url,
        tenant_id=tenant_id,
        bot_app_id=bot_app_id,
        bot_name=bot_name,
        conversation_id=team.team_id,
        team_details_in_channel_data=True,
    )
    activity["membersAdded"] = [{"id": f"28:{bot_app_id}"}]
    activity["channelData"]["eventType"] = "teamMemberAdded"
    activity["channelData"]["settings"] = {"selectedChannel": {"id": team.team_id}}
    # The General channel's own id is the team's id.
    activity["channelData"]["channel"] = {"id": team.team_id}
    activity["channelData"]["teamsChannelId"] = team.team_id
    return activity

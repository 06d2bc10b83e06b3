"""Reading Teams facts out of an activity: who is acting, which tenant, team and chat."""

from __future__ import annotations

from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import Activity

from core import texts
from core.model import Actor, TeamInstallation, UserConversation


def channel_data(activity: Activity) -> dict[str, Any]:
    data = activity.channel_data
    return data if isinstance(data, dict) else {}


def tenant_id(activity: Activity) -> str:
    # botbuilder-python does not populate conversation.tenant_id from Teams' JSON (it expects
    # "tenantID"), so channelData.tenant.id is the reliable source (platform facts C4).
    tenant = channel_data(activity).get("tenant") or {}
    value = tenant.get("id") if isinstance(tenant, dict) else None
    if isinstance(value, str) and value:
        return value
    return getattr(activity.conversation, "tenant_id", None) or ""


def team_thread_id(activity: Activity) -> str | None:
    team = channel_data(activity).get("team") or {}
    value = team.get("id") if isinstance(team, dict) else None
    return value if isinstance(value, str) and value else None


def conversation_type(activity: Activity) -> str:
    conversation = activity.conversation
    return (getattr(conversation, "conversation_type", None) or "personal") if conversation else ""


TEAMS_CHANNEL_ID = "msteams"


def is_teams(activity: Activity) -> bool:
    return bool(activity.channel_id == TEAMS_CHANNEL_ID)


def actor_of(activity: Activity) -> Actor | None:
    """The acting Teams user, identified by their Entra object id; None for anything else
    (another Bot Framework channel, or an activity without an Entra identity)."""
    sender = activity.from_property
    aad_id = getattr(sender, "aad_object_id", None) if sender else None
    if not aad_id or not is_teams(activity):
        return None
    name = (sender.name or "").strip() or texts.SOMEONE
    return Actor(aad_id=aad_id, name=name)


def user_conversation_of(activity: Activity) -> UserConversation | None:
    """How to reach the sender later. From their personal chat: that chat's reference. From a
    team or group chat: only who they are (reference empty); the Notifier then opens a personal
    chat, which Teams allows for users in a team where the bot is installed."""
    sender = activity.from_property
    if sender is None or not sender.aad_object_id or not sender.id or not is_teams(activity):
        return None
    personal = conversation_type(activity) == "personal"
    reference = TurnContext.get_conversation_reference(activity).serialize() if personal else {}
    # The id of this very message would make every stored reference differ (one write per
    # turn), and proactive messages must start new posts rather than reply to an old one.
    reference.pop("activityId", None)
    return UserConversation(
        aad_id=sender.aad_object_id,
        user_id=sender.id,
        name=sender.name or "",
        tenant_id=tenant_id(activity),
        service_url=activity.service_url or "",
        reference=reference,
    )


def team_installation_of(activity: Activity, *, aad_group_id: str, name: str) -> TeamInstallation:
    thread = team_thread_id(activity) or activity.conversation.id
    reference = TurnContext.get_conversation_reference(activity)
    # Post to the team's General channel (its id is the team's thread id), not a reply thread.
    reference.conversation.id = thread
    return TeamInstallation(
        team_id=thread,
        aad_group_id=aad_group_id,
        name=name,
        tenant_id=tenant_id(activity),
        service_url=activity.service_url or "",
        reference=reference.serialize(),
    )

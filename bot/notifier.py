"""The Notifier port on the Bot Connector: approval cards and notices in personal chats, and the
welcome post in a new channel. Connector errors become core errors the worker understands."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from botbuilder.core import BotAdapter, CardFactory, MessageFactory, TurnContext
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
)

from cards.engagement import approval_card, notice_card
from cards.intake import changes_requested_card
from cards.lifecycle import (
    closing_note_card,
    end_reminder_card,
    extension_approval_card,
    invitation_nudge_card,
)
from cards.welcome import welcome_card
from core import texts
from core.errors import NoConversation, PermanentDeliveryError, TransientDeliveryError
from core.model import Engagement, MessageRef, Notice, SentCard, UserConversation, ViewerRole
from core.ports import Storage

log = logging.getLogger(__name__)

# Bot Connector statuses worth retrying (platform facts B5); everything else is permanent.
RETRYABLE_STATUSES = frozenset({412, 429, 502, 503, 504})
# The user removed the app, blocked the bot or never installed it.
NO_CONVERSATION_STATUSES = frozenset({403, 404})


def _status_of(exc: BaseException) -> tuple[int | None, float | None]:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    retry_after: float | None = None
    headers = getattr(response, "headers", None)
    if headers is not None:
        try:
            raw = headers.get("Retry-After")
            retry_after = float(raw) if raw is not None else None
        except (TypeError, ValueError):
            retry_after = None
    return (int(status) if isinstance(status, int) else None), retry_after


def _utc_today() -> date:
    return datetime.now(UTC).date()


class TeamsNotifier:
    def __init__(
        self,
        adapter: BotAdapter,
        storage: Storage,
        *,
        bot_app_id: str,
        today: Callable[[], date] = _utc_today,
    ) -> None:
        self._adapter = adapter
        self._storage = storage
        self._bot_app_id = bot_app_id
        # The program's "today", for cards that count days (in its time zone).
        self._today = today

    async def send_approval_request(
        self, engagement: Engagement, approver_id: str | None = None
    ) -> MessageRef:
        approver_id = approver_id or engagement.approver_id
        if approver_id is None:
            raise NoConversation("(no approver)")
        conversation = await self._user(approver_id)
        card = approval_card(
            engagement,
            role=ViewerRole.APPROVER,
            refresh_user_ids=await self._refresh_ids(engagement, conversation),
        )
        # The chat may have been opened just now, so the MessageRef comes from the send itself.
        return await self._send(conversation, card, user_id=approver_id)

    async def update_card(self, engagement: Engagement, card: SentCard, role: ViewerRole) -> None:
        """updateActivity of a card sent earlier, rendered as `role` sees the engagement now."""
        conversation = await self._user(card.user_id)
        if not conversation.reference:
            raise PermanentDeliveryError("no conversation reference to update the card in")
        reference = ConversationReference().deserialize(conversation.reference)
        reference.conversation.id = card.ref.conversation_id
        rendered = approval_card(
            engagement,
            role=role,
            refresh_user_ids=await self._refresh_ids(engagement, conversation),
        )
        failure: list[BaseException] = []

        async def update(turn_context: TurnContext) -> None:
            try:
                activity = MessageFactory.attachment(CardFactory.adaptive_card(rendered))
                activity.id = card.ref.activity_id
                await turn_context.update_activity(activity)
            except Exception as exc:
                failure.append(exc)

        async def run() -> None:
            await self._adapter.continue_conversation(reference, update, self._bot_app_id)
            if failure:
                raise failure[0]

        await self._deliver(run, user_id=card.user_id)

    async def send_changes_requested(self, engagement: Engagement) -> MessageRef:
        conversation = await self._user(engagement.requester_id)
        async with self._storage.transaction() as tx:
            teams = await tx.conversations.list_teams(engagement.tenant_id)
            revisions = await tx.revisions.list_for_engagement(engagement.id or 0)
        sent_back = next((r for r in reversed(revisions) if r.comment is not None), None)
        zone = engagement.time_zone or None
        today = datetime.now(UTC).astimezone(ZoneInfo(zone)).date() if zone else self._today()
        card = changes_requested_card(
            engagement,
            teams=teams,
            today=today,
            comment=(sent_back.comment if sent_back else engagement.decision_reason) or "",
            comment_by=(sent_back.comment_by_name if sent_back else None)
            or engagement.approver_name
            or texts.UNKNOWN_APPROVER,
            time_zone=zone,
        )
        return await self._send(conversation, card, user_id=engagement.requester_id)

    async def _refresh_ids(self, engagement: Engagement, recipient: UserConversation) -> list[str]:
        """Whose Teams client refreshes the card by itself (each sees their own view): the
        person it is sent to, and the requester."""
        ids = [recipient.user_id]
        async with self._storage.transaction() as tx:
            requester = await tx.conversations.get_user(engagement.requester_id)
        if requester is not None and requester.user_id not in ids:
            ids.append(requester.user_id)
        return ids

    async def send_notice(
        self, user_id: str, engagement: Engagement, notice: Notice, detail: str | None = None
    ) -> None:
        conversation = await self._user(user_id)
        await self._send(conversation, notice_card(engagement, notice, detail), user_id=user_id)

    async def send_end_reminder(self, engagement: Engagement) -> MessageRef:
        conversation = await self._user(engagement.requester_id)
        card = end_reminder_card(engagement, today=self._today())
        return await self._send(conversation, card, user_id=engagement.requester_id)

    async def send_extension_request(self, engagement: Engagement) -> MessageRef:
        if engagement.approver_id is None:
            raise NoConversation("(no approver)")
        conversation = await self._user(engagement.approver_id)
        card = extension_approval_card(engagement, viewer_id=engagement.approver_id)
        return await self._send(conversation, card, user_id=engagement.approver_id)

    async def send_invitation_nudge(self, engagement: Engagement, days_pending: int) -> None:
        conversation = await self._user(engagement.requester_id)
        card = invitation_nudge_card(engagement, days_pending=days_pending)
        await self._send(conversation, card, user_id=engagement.requester_id)

    async def send_card(self, user_id: str, card: dict[str, Any]) -> MessageRef:
        """Any card, in the user's personal chat (opened first if the bot has none with them
        yet). The intake form asked for in a channel is sent this way, inside that turn."""
        conversation = await self._user(user_id)
        return await self._send(conversation, card, user_id=user_id)

    async def post_welcome(self, engagement: Engagement) -> MessageRef:
        return await self._post_in_channel(engagement, welcome_card(engagement))

    async def post_closing_note(self, engagement: Engagement) -> MessageRef:
        return await self._post_in_channel(engagement, closing_note_card(engagement))

    async def _post_in_channel(self, engagement: Engagement, card: dict[str, Any]) -> MessageRef:
        """A new post (thread) in the engagement's private channel."""
        if engagement.channel_id is None:
            raise PermanentDeliveryError("the engagement has no channel yet")
        async with self._storage.transaction() as tx:
            team = await tx.conversations.get_team(engagement.team_id)
        if team is None:
            raise PermanentDeliveryError(texts.FAIL_TEAM_NOT_INSTALLED)
        parameters = ConversationParameters(
            is_group=True,
            bot=ChannelAccount(id=f"28:{self._bot_app_id}" if self._bot_app_id else None),
            channel_data={
                "channel": {"id": engagement.channel_id},
                "tenant": {"id": team.tenant_id},
            },
            tenant_id=team.tenant_id,
            activity=Activity(
                type=ActivityTypes.message,
                attachments=[CardFactory.adaptive_card(card)],
            ),
        )
        created: dict[str, str] = {}

        async def remember(turn_context: TurnContext) -> None:
            created["conversation_id"] = turn_context.activity.conversation.id
            created["activity_id"] = turn_context.activity.id

        await self._deliver(
            lambda: self._adapter.create_conversation(
                self._bot_app_id, remember, parameters, "msteams", team.service_url, None
            ),
            user_id=None,
        )
        return MessageRef(created.get("conversation_id", ""), created.get("activity_id", ""))

    async def _user(self, aad_id: str) -> UserConversation:
        async with self._storage.transaction() as tx:
            conversation = await tx.conversations.get_user(aad_id)
        if conversation is None:
            raise NoConversation(aad_id)
        return conversation

    async def _send(
        self, conversation: UserConversation, card: dict[str, Any], *, user_id: str
    ) -> MessageRef:
        if not conversation.reference:
            return await self._open_chat_and_send(conversation, card)
        reference = ConversationReference().deserialize(conversation.reference)
        sent: dict[str, str] = {}
        failure: list[BaseException] = []

        async def send(turn_context: TurnContext) -> None:
            # The adapter hands callback errors to on_turn_error and swallows them, so catch
            # them here and re-raise after the pipeline.
            try:
                response = await turn_context.send_activity(
                    MessageFactory.attachment(CardFactory.adaptive_card(card))
                )
                sent["id"] = response.id if response and response.id else ""
            except Exception as exc:
                failure.append(exc)

        async def run() -> None:
            await self._adapter.continue_conversation(reference, send, self._bot_app_id)
            if failure:
                raise failure[0]

        await self._deliver(run, user_id=user_id)
        return MessageRef(str(reference.conversation.id), sent.get("id", ""))

    async def _open_chat_and_send(
        self, conversation: UserConversation, card: dict[str, Any]
    ) -> MessageRef:
        """Create the personal chat with a user known only from a team (Teams allows this when
        the bot is installed in a team the user belongs to), send the card, and remember it."""
        parameters = ConversationParameters(
            is_group=False,
            bot=ChannelAccount(id=f"28:{self._bot_app_id}" if self._bot_app_id else None),
            members=[ChannelAccount(id=conversation.user_id)],
            tenant_id=conversation.tenant_id,
            channel_data={"tenant": {"id": conversation.tenant_id}},
            activity=Activity(
                type=ActivityTypes.message, attachments=[CardFactory.adaptive_card(card)]
            ),
        )
        created: dict[str, Any] = {}

        async def remember(turn_context: TurnContext) -> None:
            created["activity_id"] = turn_context.activity.id
            created["reference"] = TurnContext.get_conversation_reference(
                turn_context.activity
            ).serialize()

        await self._deliver(
            lambda: self._adapter.create_conversation(
                self._bot_app_id, remember, parameters, "msteams", conversation.service_url, None
            ),
            user_id=conversation.aad_id,
        )
        if created.get("reference"):
            async with self._storage.transaction() as tx:
                await tx.conversations.save_user(
                    dataclasses.replace(conversation, reference=created["reference"])
                )
                await tx.commit()
        reference = created.get("reference") or {}
        conversation_id = str((reference.get("conversation") or {}).get("id") or "")
        return MessageRef(conversation_id, str(created.get("activity_id") or ""))

    async def _deliver(self, call: Callable[[], Awaitable[Any]], *, user_id: str | None) -> None:
        try:
            await call()
        except (NoConversation, TransientDeliveryError, PermanentDeliveryError):
            raise
        except Exception as exc:
            status, retry_after = _status_of(exc)
            if status in NO_CONVERSATION_STATUSES and user_id is not None:
                raise NoConversation(user_id) from exc
            if status is None or status in RETRYABLE_STATUSES:
                # No status: a connection error or timeout, worth another try.
                cause = status or type(exc).__name__
                raise TransientDeliveryError(
                    texts.DELIVERY_RETRYABLE.format(cause=cause), retry_after=retry_after
                ) from exc
            raise PermanentDeliveryError(texts.DELIVERY_REFUSED.format(status=status)) from exc

"""The activity handler: installs, chat commands and Adaptive Card verbs.

A turn only reads and writes the database through core use cases; Graph and outgoing messages
happen in jobs. Every card action gets an invoke response, including when something fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo

from botbuilder.core import InvokeResponse, TurnContext
from botbuilder.core.teams import TeamsActivityHandler, TeamsInfo
from botbuilder.schema import AdaptiveCardInvokeResponse, AdaptiveCardInvokeValue, ChannelAccount
from botbuilder.schema.teams import TeamInfo

from bot.admin_commands import AdminCommands
from bot.commands import Command, CommandRegistry, UsageError
from bot.conversations import (
    actor_of,
    conversation_type,
    is_teams,
    team_installation_of,
    team_thread_id,
    tenant_id,
    user_conversation_of,
)
from bot.replies import card_message, text_card_message
from cards import verbs
from cards.common import SHORT_MAX, clip, format_date_time, text_card
from cards.engagement import approval_card, engagement_list_card
from cards.help import help_card
from cards.intake import changes_requested_card, intake_card, preview_card
from cards.lifecycle import end_reminder_card, extension_approval_card, revoke_confirm_card
from core import texts
from core.admin import AdminService
from core.approvals import ApprovalService
from core.clock import Clock
from core.config import ProgramConfig
from core.engagements import EngagementService
from core.errors import DeliveryError, DomainError, InvalidInput, NoConversation, NotAuthorised
from core.intake import FIELD_PROJECT_TITLE, FieldErrors, clean_values, prefill_from_command
from core.intake_service import IntakeService, StalePreview, resolve_zone
from core.lifecycle import LifecycleService
from core.log_context import log_scope
from core.metrics import Metrics, activity_type_label
from core.model import (
    MAX_ENGAGEMENT_ID,
    Actor,
    CardKind,
    Engagement,
    MessageRef,
    SentCard,
    TeamInstallation,
    ViewerRole,
    engagement_ref,
    parse_engagement_ref,
)
from core.policy import PolicyService
from core.redelivery import RedeliveryGuard

log = logging.getLogger(__name__)

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_CARD_ACTION = "adaptiveCard/action"  # the invoke name of Action.Execute
# The longest intake field is 2,000 characters; longer values are tampering, not typing.
ECHO_LIMIT = 2_000


# (user's Entra id, card) -> where the card was sent in their personal chat.
PrivateSender = Callable[[str, dict[str, Any]], Awaitable[MessageRef]]


def _card_response(card: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    return AdaptiveCardInvokeResponse(status_code=200, type=CARD_CONTENT_TYPE, value=card)


class FreelanceBot(TeamsActivityHandler):  # type: ignore[misc]
    def __init__(
        self,
        service: EngagementService,
        clock: Clock,
        *,
        lifecycle: LifecycleService,
        config: ProgramConfig | None = None,
        admin: AdminService | None = None,
        public_base_url: str = "",
        redelivery: RedeliveryGuard | None = None,
        on_work_enqueued: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
        intake: IntakeService | None = None,
        policy: PolicyService | None = None,
        send_privately: PrivateSender | None = None,
        approvals: ApprovalService | None = None,
    ) -> None:
        super().__init__()
        self._approvals_service = approvals
        self._intake_service = intake
        self._policy_service = policy
        # Sends a card to a user's personal chat (opening it if need be), outside the turn's
        # conversation: the intake form asked for in a channel goes there.
        self._send_privately = send_privately
        self._redelivery = redelivery
        self._metrics = metrics or Metrics()
        self._service = service
        self._lifecycle = lifecycle
        self._config = config or ProgramConfig()
        self._clock = clock
        self._on_work_enqueued = on_work_enqueued
        self.commands = CommandRegistry()
        self._register_commands()
        AdminCommands(admin, clock, self._config, public_base_url, policy).register(self.commands)

    @property
    def _intake(self) -> IntakeService:
        if self._intake_service is None:
            raise RuntimeError("the intake needs an IntakeService")
        return self._intake_service

    @property
    def _approvals(self) -> ApprovalService:
        if self._approvals_service is None:
            raise RuntimeError("card decisions need an ApprovalService")
        return self._approvals_service

    @property
    def _policy(self) -> PolicyService:
        if self._policy_service is None:
            raise RuntimeError("the intake needs a PolicyService")
        return self._policy_service

    async def on_turn(self, turn_context: TurnContext) -> None:
        """Counts and times the turn (fc_turns_total, fc_turn_duration_seconds)."""
        kind = activity_type_label(turn_context.activity.type)
        started = time.perf_counter()
        outcome = "error"
        with log_scope(activity_type=kind):
            try:
                handled = await self._on_turn_once(turn_context)
                outcome = "ok" if handled else "redelivered"
            finally:
                elapsed = time.perf_counter() - started
                self._metrics.turns.inc(kind, outcome)
                self._metrics.turn_seconds.observe(elapsed, kind)
                log.debug("%s turn: %s in %.1f ms", kind, outcome, elapsed * 1000)

    async def _on_turn_once(self, turn_context: TurnContext) -> bool:
        """Messages and install events that Teams re-delivers are handled once (False for a
        repeat). Card actions are not filtered: each answers with an invoke response the client
        waits for, and their handlers are idempotent (submits are keyed to the form, decisions
        are compare-and-set, lists only read)."""
        key = _redelivery_key(turn_context.activity)
        if key is None or self._redelivery is None:
            await super().on_turn(turn_context)
            return True
        if not await self._redelivery.first_delivery(key):
            log.info("ignored a re-delivered %s activity", turn_context.activity.type)
            return False
        try:
            await super().on_turn(turn_context)
        except BaseException:
            await self._redelivery.release(key)
            raise
        return True

    # --- commands ---------------------------------------------------------------------------

    def _register_commands(self) -> None:
        self.commands.add(
            Command(
                "/request",
                texts.CMD_REQUEST_HELP,
                self.cmd_request,
                usage=texts.CMD_REQUEST_USAGE,
                aliases=("new request",),
            )
        )
        self.commands.add(
            Command("/cancel", texts.CMD_CANCEL_HELP, self.cmd_cancel, scopes=("personal",))
        )
        self.commands.add(Command("/status", texts.CMD_STATUS_HELP, self.cmd_status))
        self.commands.add(Command("/help", texts.CMD_HELP_HELP, self.cmd_help))
        self.commands.add(
            Command(
                "/pending",
                texts.CMD_PENDING_HELP,
                self.cmd_pending,
                admin_only=True,
                scopes=("personal",),
            )
        )
        self.commands.add(
            Command(
                "/retry",
                texts.CMD_RETRY_HELP,
                self.cmd_retry,
                usage=texts.CMD_RETRY_USAGE,
                admin_only=True,
                scopes=("personal",),
            )
        )
        self.commands.add(
            Command(
                "/revoke",
                texts.CMD_REVOKE_HELP,
                self.cmd_revoke,
                usage=texts.CMD_REVOKE_USAGE,
                scopes=("personal",),
            )
        )

    async def _is_admin(self, actor: Actor | None) -> bool:
        if actor is None:
            return False
        try:
            return await self._service.is_admin(actor)
        except DomainError:
            # Graph cannot tell right now: show everyone's commands only.
            return False

    async def _help_lines(self, actor: Actor | None) -> list[tuple[str, str]]:
        is_admin = await self._is_admin(actor)
        return [(c.usage_line, c.description) for c in self.commands.visible_to(is_admin=is_admin)]

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        actor = actor_of(activity)
        if actor is None:
            await turn_context.send_activity(text_card_message(texts.NO_IDENTITY, attention=True))
            return
        conversation = user_conversation_of(activity)
        if conversation is not None:
            # Keeps the reference fresh (service URLs can change) and learns how to reach users
            # who only ever talk to the bot in a channel.
            await self._service.record_user_seen(conversation)
        text = _without_bot_mention(activity).strip()
        resolved = self.commands.resolve(text)
        if resolved is None:
            await self._unknown_command(turn_context, actor, text)
            return
        command, args = resolved
        if _scope(activity) not in command.scopes:
            message = texts.COMMAND_PERSONAL_ONLY.format(command=command.name)
            await turn_context.send_activity(text_card_message(message))
            return
        try:
            await command.handler(turn_context, actor, args)
        except UsageError:
            await turn_context.send_activity(text_card_message(command.usage_text))
        except DomainError as refusal:
            await turn_context.send_activity(text_card_message(str(refusal), attention=True))

    async def _unknown_command(self, turn_context: TurnContext, actor: Actor, text: str) -> None:
        shown = text[:50] if text else texts.EMPTY_MESSAGE
        suggestion = self.commands.suggest(text[:200], is_admin=await self._is_admin(actor))
        if suggestion is None:
            message = texts.UNKNOWN_COMMAND.format(text=shown)
        else:
            message = texts.UNKNOWN_COMMAND_SUGGEST.format(text=shown, suggestion=suggestion)
        await turn_context.send_activity(text_card_message(message))

    async def cmd_help(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        await turn_context.send_activity(card_message(help_card(await self._help_lines(actor))))

    async def cmd_request(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        """The intake form, with the draft (if any) and what the command gave filled in. Asked
        in a channel or group chat, the form goes to the requester's 1:1 chat instead: what
        they type into it is nobody else's business."""
        activity = turn_context.activity
        selected = None
        thread = team_thread_id(activity)
        if thread:
            current = await self._service.team_for_thread(thread)
            selected = current.aad_group_id if current else None
        tenant = tenant_id(activity)
        zone = _time_zone(activity)
        start = await self._intake.start(actor, tenant, zone, prefill_from_command(args))
        if not start.teams:
            # No form to fill, and nothing private to say: answer where asked.
            await turn_context.send_activity(text_card_message(texts.NO_TEAMS))
            return
        notice = None
        if start.draft is not None:
            # The draft's time as the user reads it, in their zone.
            saved = start.draft.updated_at.astimezone(
                ZoneInfo(resolve_zone(zone, self._config)[0])
            )
            notice = texts.DRAFT_RESUMED.format(when=format_date_time(saved))
        card = await self._form(
            tenant,
            start.values,
            zone,
            teams=start.teams,
            selected=selected,
            notice=notice,
            draft=start.draft is not None,
        )
        if _scope(activity) == "personal":
            await turn_context.send_activity(card_message(card))
            return
        if self._send_privately is None:
            await turn_context.send_activity(text_card_message(texts.FORM_NOT_SENT))
            return
        try:
            await self._send_privately(actor.aad_id, card)
        except (NoConversation, DeliveryError) as problem:
            log.warning("could not send the intake form to a 1:1 chat: %s", problem)
            await turn_context.send_activity(text_card_message(texts.FORM_NOT_SENT))
            return
        await turn_context.send_activity(text_card_message(texts.FORM_SENT_TO_CHAT))

    async def cmd_cancel(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        dropped = await self._intake.discard(actor, tenant_id(turn_context.activity))
        if dropped is None:
            await turn_context.send_activity(text_card_message(texts.CANCEL_NOTHING))
            return
        title = dropped.values.get(FIELD_PROJECT_TITLE) or texts.CANCEL_UNTITLED
        message = texts.CANCEL_DONE.format(title=clip(title, SHORT_MAX))
        await turn_context.send_activity(text_card_message(message))

    async def _form(
        self,
        tenant: str,
        values: Mapping[str, str],
        zone: str | None,
        *,
        teams: Sequence[TeamInstallation] | None = None,
        errors: Mapping[str, str] | None = None,
        selected: str | None = None,
        notice: str | None = None,
        draft: bool = False,
    ) -> dict[str, Any]:
        """The intake form as the tenant's policy shapes it, in the requester's time zone."""
        if teams is None:
            teams = await self._intake.teams(tenant)
        policy = await self._policy.current(tenant)
        shown_zone, _ = resolve_zone(zone, self._config)
        return intake_card(
            teams,
            today=self._intake.today(zone),
            values=values,
            errors=errors,
            selected_team_id=selected,
            justification_required=policy.justification_required,
            time_zone=shown_zone,
            notice=notice,
            draft=draft,
        )

    async def cmd_status(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        mine = await self._service.list_mine(actor)
        card = engagement_list_card(texts.STATUS_TITLE, mine, empty_text=texts.NO_ENGAGEMENTS)
        await turn_context.send_activity(card_message(card))

    async def cmd_pending(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        try:
            pending = await self._service.list_pending(actor)
        except NotAuthorised as refusal:
            await turn_context.send_activity(text_card_message(str(refusal), attention=True))
            return
        card = engagement_list_card(texts.PENDING_TITLE, pending, empty_text=texts.NO_PENDING)
        await turn_context.send_activity(card_message(card))

    async def cmd_retry(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        engagement_id = parse_engagement_ref(args)
        if engagement_id is None:
            await turn_context.send_activity(text_card_message(texts.RETRY_USAGE))
            return
        try:
            engagement = await self._service.retry_provisioning(engagement_id, actor)
        except DomainError as refusal:
            await turn_context.send_activity(text_card_message(str(refusal), attention=True))
            return
        self._on_work_enqueued()
        await turn_context.send_activity(
            text_card_message(texts.RETRY_QUEUED.format(ref=engagement.ref))
        )

    async def cmd_revoke(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        """Shows a confirmation card; nothing ends before the requester or admin confirms."""
        ref, _, reason = args.partition(" ")
        engagement_id = parse_engagement_ref(ref)
        if engagement_id is None or not reason.strip():
            await turn_context.send_activity(text_card_message(texts.REVOKE_USAGE))
            return
        try:
            engagement = await self._lifecycle.check_revoke(engagement_id, actor, reason)
        except DomainError as refusal:
            await turn_context.send_activity(text_card_message(str(refusal), attention=True))
            return
        card = revoke_confirm_card(engagement, reason=reason.strip()[:ECHO_LIMIT])
        await turn_context.send_activity(card_message(card))

    # --- installs ---------------------------------------------------------------------------

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await self._remember_conversation(turn_context)
        actor = actor_of(turn_context.activity)
        await turn_context.send_activity(
            card_message(help_card(await self._help_lines(actor), greeting=True))
        )

    async def on_conversation_update_activity(self, turn_context: TurnContext) -> None:
        """Of Teams' conversation updates the bot only needs members added. botbuilder's Teams
        dispatch fails the turn on an update without channelData, and first looks up every
        added member at the Bot Connector, one call each (one not found fails the turn)."""
        activity = turn_context.activity
        if not is_teams(activity):
            await super().on_conversation_update_activity(turn_context)
        elif activity.members_added:
            await self.on_teams_members_added(activity.members_added, None, turn_context)

    async def on_teams_members_added(
        self,
        teams_members_added: list[ChannelAccount],
        team_info: TeamInfo,
        turn_context: TurnContext,
    ) -> None:
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        if any(member.id == bot_id for member in teams_members_added):
            # Teams also sends installationUpdate, which greets; here we only remember.
            await self._remember_conversation(turn_context)

    async def _remember_conversation(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if not is_teams(activity):
            return
        conversation = user_conversation_of(activity)
        if conversation is not None:
            # The installer (personal scope), or the team member who added the bot: either way
            # approvals waiting for them can now be delivered.
            if await self._service.record_user_install(conversation):
                self._on_work_enqueued()
        thread = team_thread_id(activity)
        if thread is None or conversation_type(activity) == "personal":
            return  # personal chat done above; group chats: nothing more to remember yet
        try:
            connector = await TeamsInfo.get_teams_connector_client(turn_context)
            # botbuilder's Teams client is synchronous; keep the event loop free.
            details = await asyncio.to_thread(connector.teams.get_team_details, thread)
        except Exception:
            log.exception("could not read the team's details for %s", thread)
            return
        if not details or not details.aad_group_id:
            log.warning("team %s has no aadGroupId; not recorded", thread)
            return
        await self._service.record_team_install(
            team_installation_of(
                activity,
                aad_group_id=details.aad_group_id,
                name=details.name or texts.UNNAMED_TEAM,
            )
        )

    # --- card actions -----------------------------------------------------------------------

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        """Only Action.Execute (adaptiveCard/action) is handled: the app has no messaging
        extension, task module, tab or sign-in. Any other invoke, or an action that is not an
        object, is a bad request (botbuilder would answer 501, or fail the turn on a value it
        cannot read)."""
        activity = turn_context.activity
        value = activity.value
        action = value.get("action") if isinstance(value, dict) else None
        malformed = action is not None and not isinstance(action, dict)
        if activity.name != ADAPTIVE_CARD_ACTION or malformed:
            return InvokeResponse(status=HTTPStatus.BAD_REQUEST)
        return await super().on_invoke_activity(turn_context)

    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse:
        action = invoke_value.action if isinstance(invoke_value.action, dict) else {}
        verb = action.get("verb") if isinstance(action.get("verb"), str) else None
        raw_data = action.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        actor = actor_of(turn_context.activity)
        try:
            if actor is None:
                return _card_response(text_card(texts.NO_IDENTITY, attention=True))
            if verb is not None and verb in INTAKE_VERBS:
                return await self._intake_action(turn_context, actor, verb, data)
            automatic = _trigger(turn_context) == "automatic"
            if verb in APPROVAL_VERBS:
                return await self._engagement_action(
                    turn_context, actor, verb, data, automatic=automatic
                )
            if verb == verbs.RESUBMIT and not automatic:
                return await self._resubmit(turn_context, actor, data)
            if verb in LIFECYCLE_VERBS:
                return await self._lifecycle_action(actor, verb, data)
            if verb == verbs.LIST_PAGE:
                return await self._list_page(turn_context, actor, data)
            return _card_response(text_card(texts.CARD_ACTION_UNKNOWN, attention=True))
        except DomainError as problem:
            return _card_response(text_card(str(problem), attention=True))
        except Exception:
            log.exception("card action %r failed", verb)
            return _card_response(text_card(texts.CARD_ACTION_FAILED, attention=True))

    async def _intake_action(
        self, turn_context: TurnContext, actor: Actor, verb: str, data: Mapping[str, Any]
    ) -> AdaptiveCardInvokeResponse:
        """Submit -> preview (or the form with its errors), Confirm -> the engagement, Edit,
        Save for later and Discard. The draft in our storage carries the values between them;
        a card action carries at most the draft's version."""
        activity = turn_context.activity
        tenant = tenant_id(activity)
        zone = _time_zone(activity)
        intake = self._intake
        if verb == verbs.INTAKE_SUBMIT:
            values = {k: v for k, v in data.items() if isinstance(v, str)}
            try:
                preview = await intake.preview(actor, tenant, zone, values)
            except FieldErrors as invalid:
                card = await self._form(
                    tenant, clean_values(values), zone, errors=invalid.errors, draft=True
                )
                return _card_response(card)
            return _card_response(preview_card(preview))
        if verb == verbs.INTAKE_SAVE_DRAFT:
            draft = await intake.save_draft(actor, tenant, zone, data)
            card = await self._form(
                tenant, draft.values, zone, notice=texts.DRAFT_SAVED, draft=True
            )
            return _card_response(card)
        if verb == verbs.INTAKE_DISCARD:
            await intake.discard(actor, tenant)
            card = await self._form(tenant, {}, zone, notice=texts.DRAFT_DISCARDED)
            return _card_response(card)
        if verb == verbs.INTAKE_EDIT:
            start = await intake.reopen(actor, tenant)
            card = await self._form(tenant, start.values, zone, teams=start.teams, draft=True)
            return _card_response(card)
        return await self._confirm_intake(turn_context, actor, data)

    async def _confirm_intake(
        self, turn_context: TurnContext, actor: Actor, data: Mapping[str, Any]
    ) -> AdaptiveCardInvokeResponse:
        activity = turn_context.activity
        tenant = tenant_id(activity)
        version = data.get(verbs.DRAFT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            return _card_response(text_card(texts.CARD_ACTION_UNKNOWN, attention=True))
        # The card message id (replyToId) identifies this form: a re-delivered or double-clicked
        # Confirm of the same card finds the engagement it made.
        source = activity.reply_to_id or activity.id
        submission_key = f"{actor.aad_id}:{source}" if source else None
        try:
            submission = await self._intake.confirm(
                actor, tenant, version, submission_key=submission_key
            )
        except StalePreview as stale:
            # Show the latest version of the request, checked afresh.
            draft = stale.draft
            try:
                preview = await self._intake.recheck(actor, tenant, draft)
            except FieldErrors as invalid:
                card = await self._form(
                    tenant, draft.values, draft.time_zone, errors=invalid.errors, draft=True
                )
                return _card_response(card)
            return _card_response(preview_card(preview, message=texts.PREVIEW_OUT_OF_DATE))
        except FieldErrors as invalid:
            draft_now = await self._intake.draft(actor, tenant)
            values = draft_now.values if draft_now else {}
            card = await self._form(
                tenant,
                values,
                draft_now.time_zone if draft_now else None,
                errors=invalid.errors,
                draft=True,
            )
            return _card_response(card)
        engagement = submission.engagement
        if submission.created:
            self._on_work_enqueued()
            conversation = activity.conversation.id if activity.conversation else None
            if activity.reply_to_id and conversation and engagement.id is not None:
                # This card becomes the requester's live status: updated on every change.
                await self._approvals.record_card(
                    SentCard(
                        engagement.id,
                        CardKind.STATUS,
                        actor.aad_id,
                        MessageRef(conversation, activity.reply_to_id),
                    )
                )
        card = approval_card(
            engagement,
            role=ViewerRole.REQUESTER,
            message=texts.SUBMITTED_TITLE.format(ref=engagement.ref),
            refresh_user_ids=[activity.from_property.id],
        )
        return _card_response(card)

    async def _engagement_action(
        self,
        turn_context: TurnContext,
        actor: Actor,
        verb: str,
        data: Mapping[str, Any],
        *,
        automatic: bool,
    ) -> AdaptiveCardInvokeResponse:
        """The approval card's verbs. Each viewer gets their own rendering (Universal Actions):
        the decider live buttons, the requester the status and Cancel, anyone else involved a
        summary; people not involved learn nothing. An automatic trigger (Teams refreshing the
        card as it is shown) only ever renders: it never decides."""
        engagement_id = _engagement_id(data.get(verbs.ENGAGEMENT_ID))
        if engagement_id is None:
            return _card_response(text_card(texts.CARD_ACTION_UNKNOWN, attention=True))
        refresh_ids = [turn_context.activity.from_property.id]
        tenant = tenant_id(turn_context.activity)
        approvals = self._approvals
        if verb == verbs.REFRESH or automatic:
            engagement = await self._service.get(engagement_id)
            if not await self._may_see(engagement, actor, tenant):
                await self._service.view(engagement_id, actor, tenant)  # audits, raises NotFound
            role = await approvals.role_of(engagement, actor)
            card = approval_card(engagement, role=role, refresh_user_ids=refresh_ids)
            return _card_response(card)
        comment = _text(data.get(verbs.REJECT_REASON))
        if verb == verbs.APPROVE:
            outcome = await approvals.approve(engagement_id, actor)
        elif verb == verbs.REJECT:
            outcome = await approvals.reject(engagement_id, actor, comment)
        elif verb == verbs.REQUEST_CHANGES:
            outcome = await approvals.request_changes(engagement_id, actor, comment)
        elif verb == verbs.CANCEL_REQUEST:
            outcome = await approvals.cancel(engagement_id, actor)
        else:  # verbs.DELEGATE
            who = _text(data.get(verbs.DELEGATE_TO))
            outcome = await approvals.delegate(engagement_id, actor, who)
        engagement = outcome.engagement
        message = outcome.message
        if outcome.changed:
            self._on_work_enqueued()
            if verb == verbs.DELEGATE:
                message = texts.DELEGATED_TO.format(name=engagement.approver_name or "")
        elif engagement.tenant_id != tenant:
            # Another tenant's engagement: not even its existence is revealed.
            return _card_response(text_card(_not_found(engagement_id), attention=True))
        elif not await self._may_see(engagement, actor, tenant):
            # Refused, and not involved: say why, but show none of the engagement's facts.
            return _card_response(text_card(message or "", attention=True))
        role = await approvals.role_of(engagement, actor)
        card = approval_card(engagement, role=role, message=message, refresh_user_ids=refresh_ids)
        return _card_response(card)

    async def _may_see(self, engagement: Engagement, actor: Actor, tenant: str) -> bool:
        if await self._service.may_view(engagement, actor, tenant):
            return True
        return engagement.tenant_id == tenant and await self._approvals.has_card(engagement, actor)

    async def _resubmit(
        self, turn_context: TurnContext, actor: Actor, data: Mapping[str, Any]
    ) -> AdaptiveCardInvokeResponse:
        """The requester's edited request, from the form sent back for changes."""
        engagement_id = _engagement_id(data.get(verbs.ENGAGEMENT_ID))
        if engagement_id is None:
            return _card_response(text_card(texts.CARD_ACTION_UNKNOWN, attention=True))
        activity = turn_context.activity
        zone = _time_zone(activity)
        values = {k: v for k, v in data.items() if isinstance(v, str)}

        async def check(engagement: Engagement) -> Engagement:
            return await self._intake.revise(actor, engagement, values, zone)

        try:
            raw_revision = data.get(verbs.REVISION)
            revision = (
                raw_revision
                if isinstance(raw_revision, int) and not isinstance(raw_revision, bool)
                else None
            )
            outcome = await self._approvals.resubmit(
                engagement_id, actor, values, check, revision=revision
            )
        except FieldErrors as invalid:
            engagement = await self._service.get(engagement_id)
            policy = await self._policy.current(engagement.tenant_id)
            card = changes_requested_card(
                engagement,
                teams=await self._intake.teams(engagement.tenant_id),
                today=self._intake.today(zone),
                comment=engagement.decision_reason or "",
                comment_by=engagement.decided_by_name
                or engagement.approver_name
                or texts.UNKNOWN_APPROVER,
                errors=invalid.errors,
                values=clean_values(values),
                time_zone=resolve_zone(zone, self._config)[0],
                justification_required=policy.justification_required,
            )
            return _card_response(card)
        engagement = outcome.engagement
        if not outcome.changed:
            if not await self._may_see(engagement, actor, tenant_id(activity)):
                return _card_response(text_card(outcome.message or "", attention=True))
            role = await self._approvals.role_of(engagement, actor)
            card = approval_card(engagement, role=role, message=outcome.message)
            return _card_response(card)
        self._on_work_enqueued()
        message = texts.RESUBMITTED.format(
            ref=engagement.ref, approver=engagement.approver_name or texts.UNKNOWN_APPROVER
        )
        card = approval_card(engagement, role=ViewerRole.REQUESTER, message=message)
        return _card_response(card)

    async def _list_page(
        self, turn_context: TurnContext, actor: Actor, data: Mapping[str, Any]
    ) -> AdaptiveCardInvokeResponse:
        """Next / Previous on a paged list: the command runs again, rights checked again."""
        name = data.get(verbs.LIST_COMMAND)
        command = self.commands.get(name) if isinstance(name, str) else None
        page = data.get(verbs.LIST_PAGE_NUMBER)
        args = data.get(verbs.LIST_ARGS, "")
        if (
            command is None
            or command.pager is None
            or not isinstance(page, int)
            or isinstance(page, bool)
            or not isinstance(args, str)
        ):
            return _card_response(text_card(texts.CARD_ACTION_UNKNOWN, attention=True))
        if _scope(turn_context.activity) not in command.scopes:
            message = texts.COMMAND_PERSONAL_ONLY.format(command=command.name)
            return _card_response(text_card(message, attention=True))
        try:
            card = await command.pager(turn_context, actor, args[:ECHO_LIMIT], page)
        except UsageError:
            return _card_response(text_card(command.usage_text, attention=True))
        return _card_response(card)

    async def _lifecycle_action(
        self, actor: Actor, verb: str, data: Mapping[str, Any]
    ) -> AdaptiveCardInvokeResponse:
        engagement_id = _engagement_id(data.get(verbs.ENGAGEMENT_ID))
        if engagement_id is None:
            return _card_response(text_card(texts.CARD_ACTION_UNKNOWN, attention=True))
        lifecycle = self._lifecycle
        today = self._config.today(self._clock.now())
        if verb == verbs.END_NOW:
            engagement = await lifecycle.check_revoke(engagement_id, actor, texts.END_NOW_REASON)
            return _card_response(revoke_confirm_card(engagement, reason=texts.END_NOW_REASON))
        if verb == verbs.REVOKE_CONFIRM:
            reason = _text(data.get(verbs.REVOKE_REASON))
            engagement = await lifecycle.revoke(engagement_id, actor, reason)
            self._on_work_enqueued()
            message = texts.ENDING_STARTED.format(
                ref=engagement.ref, freelancer=engagement.freelancer_name
            )
            return _card_response(text_card(message))
        if verb == verbs.REVOKE_CANCEL:
            engagement = await lifecycle.check_revoke(engagement_id, actor, texts.END_NOW_REASON)
            message = texts.REVOKE_KEPT.format(
                ref=engagement.ref, end=engagement.end_date.isoformat()
            )
            return _card_response(text_card(message))
        if verb == verbs.LET_IT_END:
            engagement = await lifecycle.let_it_end(engagement_id, actor)
            message = texts.LET_IT_END_RECORDED.format(
                ref=engagement.ref, end=engagement.end_date.isoformat()
            )
            return _card_response(end_reminder_card(engagement, today=today, message=message))
        if verb == verbs.EXTEND_REQUEST:
            new_end = _text(data.get(verbs.NEW_END_DATE))
            try:
                engagement = await lifecycle.request_extension(engagement_id, actor, new_end)
            except InvalidInput as invalid:
                current = await self._service.get(engagement_id)
                card = end_reminder_card(
                    current, today=today, message=str(invalid), attention=True
                )
                return _card_response(card)
            self._on_work_enqueued()
            message = texts.EXTENSION_REQUESTED.format(
                approver=engagement.approver_name or texts.UNKNOWN_APPROVER,
                ref=engagement.ref,
                date=_iso(engagement.extension_end_date),
                end=engagement.end_date.isoformat(),
            )
            return _card_response(end_reminder_card(engagement, today=today, message=message))
        if verb in (verbs.EXTENSION_APPROVE, verbs.EXTENSION_REJECT):
            outcome = await lifecycle.decide_extension(
                engagement_id,
                actor,
                approve=verb == verbs.EXTENSION_APPROVE,
                reason=_text(data.get(verbs.REJECT_REASON)),
            )
            if outcome.changed:
                self._on_work_enqueued()
            elif actor.aad_id != outcome.engagement.approver_id:
                # Refused, and not the approver: the reason only, not the approver's card.
                return _card_response(text_card(outcome.message, attention=True))
            card = extension_approval_card(
                outcome.engagement,
                viewer_id=actor.aad_id,
                message=outcome.message,
                attention=not outcome.changed,
            )
            return _card_response(card)
        # verbs.RESEND_INVITATION
        engagement = await lifecycle.request_resend(engagement_id, actor)
        self._on_work_enqueued()
        message = texts.RESEND_QUEUED.format(
            freelancer=engagement.freelancer_name, ref=engagement.ref
        )
        return _card_response(text_card(message))


APPROVAL_VERBS = frozenset(
    {
        verbs.APPROVE,
        verbs.REJECT,
        verbs.REQUEST_CHANGES,
        verbs.CANCEL_REQUEST,
        verbs.DELEGATE,
        verbs.REFRESH,
    }
)
INTAKE_VERBS = frozenset(
    {
        verbs.INTAKE_SUBMIT,
        verbs.INTAKE_CONFIRM,
        verbs.INTAKE_EDIT,
        verbs.INTAKE_SAVE_DRAFT,
        verbs.INTAKE_DISCARD,
    }
)
LIFECYCLE_VERBS = frozenset(
    {
        verbs.END_NOW,
        verbs.REVOKE_CONFIRM,
        verbs.REVOKE_CANCEL,
        verbs.LET_IT_END,
        verbs.EXTEND_REQUEST,
        verbs.EXTENSION_APPROVE,
        verbs.EXTENSION_REJECT,
        verbs.RESEND_INVITATION,
    }
)


def _text(value: object) -> str:
    # Inputs arrive as strings; anything else is tampering and counts as empty.
    return value[:ECHO_LIMIT] if isinstance(value, str) else ""


def _not_found(engagement_id: int) -> str:
    return texts.ENGAGEMENT_NOT_FOUND.format(ref=engagement_ref(engagement_id))


def _trigger(turn_context: TurnContext) -> str:
    """ "automatic" when Teams refreshes a card as it is shown, "manual" for a click."""
    value = turn_context.activity.value
    trigger = value.get("trigger") if isinstance(value, dict) else None
    return trigger if isinstance(trigger, str) else "manual"


def _time_zone(activity: Any) -> str | None:
    """The user's IANA time zone as Teams reports it (`localTimezone`); None when absent or
    not text. Whether it names a real zone is core's call (resolve_zone)."""
    value = getattr(activity, "local_timezone", None)
    return value[:64] if isinstance(value, str) and value else None


def _iso(value: date | None) -> str:
    return value.isoformat() if value is not None else ""


def _engagement_id(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        # isdigit() alone also accepts digits like "²", which int() refuses.
        value = int(value)
    if isinstance(value, int):
        return value if 0 < value <= MAX_ENGAGEMENT_ID else None
    return None


def _without_bot_mention(activity: Any) -> str:
    """The message's text without the bot's @mention. botbuilder's remove_recipient_mention
    fails the turn on a message without text or recipient or with a malformed mention entity,
    and uses the mention's text as a regular expression."""
    text = activity.text if isinstance(activity.text, str) else ""
    bot_id = activity.recipient.id if activity.recipient else None
    for entity in activity.entities or []:
        kind = getattr(entity, "type", None)
        if not isinstance(kind, str) or kind.lower() != "mention":
            continue
        details = getattr(entity, "additional_properties", None) or {}
        mentioned, mention_text = details.get("mentioned"), details.get("text")
        if isinstance(mentioned, dict) and mentioned.get("id") == bot_id:
            if isinstance(mention_text, str) and mention_text:
                text = text.replace(mention_text, "")
    return text


# Activities whose repeats are dropped (see FreelanceBot.on_turn).
REDELIVERY_GUARDED = frozenset({"message", "installationUpdate", "conversationUpdate"})


def _redelivery_key(activity: Any) -> str | None:
    if activity.type not in REDELIVERY_GUARDED or not activity.id:
        return None
    conversation = activity.conversation.id if activity.conversation else ""
    return f"{activity.channel_id}|{conversation}|{activity.id}"[:1_000]


# Teams conversation types -> the manifest scopes commands are declared for.
_SCOPES = {"personal": "personal", "channel": "team", "groupChat": "groupChat"}


def _scope(activity: Any) -> str:
    return _SCOPES.get(conversation_type(activity), "personal")

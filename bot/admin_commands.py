"""The admin commands (/requests, /active, /expiring, /show, /extend, /audit, /report,
/export, /policy): argument parsing and cards; the rules and the audit live in core/admin.py
and core/policy.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from botbuilder.core import TurnContext

from bot.commands import Command, CommandHandler, CommandRegistry, Pager, UsageError
from bot.conversations import tenant_id
from bot.replies import card_message
from cards.admin import (
    audit_page_card,
    engagement_page_card,
    export_card,
    policy_card,
    report_card,
    timeline_card,
)
from cards.common import text_card
from core import texts
from core.admin import DEFAULT_AUDIT_LAST, DEFAULT_EXPIRING_DAYS, AdminService
from core.clock import Clock
from core.config import ProgramConfig
from core.exports import ExportKind
from core.model import Actor, parse_engagement_ref
from core.policy import PolicyService

Card = dict[str, Any]

PERSONAL = ("personal",)
# The export route (served by bot/exports.py); the token follows.
EXPORT_PATH = "/exports/"


@dataclass
class AdminCommands:
    """Registers and runs the admin commands. `admin` is None only when the registry is built
    without a running app (manifest/build.py): the commands are declared, never run."""

    admin: AdminService | None
    clock: Clock
    config: ProgramConfig
    public_base_url: str = ""
    policy: PolicyService | None = None

    def register(self, registry: CommandRegistry) -> None:
        # (name, description, handler, usage, admin only, pager); all answer in 1:1 chat only.
        specs: list[tuple[str, str, CommandHandler, str, bool, Pager | None]] = [
            ("/requests", texts.CMD_REQUESTS_HELP, self.cmd_requests,
             texts.CMD_REQUESTS_USAGE, True, self.requests_page),
            ("/active", texts.CMD_ACTIVE_HELP, self.cmd_active,
             texts.CMD_ACTIVE_USAGE, True, self.active_page),
            ("/expiring", texts.CMD_EXPIRING_HELP, self.cmd_expiring,
             texts.CMD_EXPIRING_USAGE, True, self.expiring_page),
            ("/show", texts.CMD_SHOW_HELP, self.cmd_show, texts.CMD_SHOW_USAGE, False, None),
            ("/extend", texts.CMD_EXTEND_HELP, self.cmd_extend,
             texts.CMD_EXTEND_USAGE, True, None),
            ("/audit", texts.CMD_AUDIT_HELP, self.cmd_audit,
             texts.CMD_AUDIT_USAGE, True, self.audit_page),
            ("/report", texts.CMD_REPORT_HELP, self.cmd_report, "", True, None),
            ("/export", texts.CMD_EXPORT_HELP, self.cmd_export,
             texts.CMD_EXPORT_USAGE, True, None),
            ("/policy", texts.CMD_POLICY_HELP, self.cmd_policy,
             texts.CMD_POLICY_USAGE, True, None),
        ]  # fmt: skip
        for name, description, handler, usage, admin_only, pager in specs:
            registry.add(
                Command(
                    name,
                    description,
                    handler,
                    usage=usage,
                    admin_only=admin_only,
                    scopes=PERSONAL,
                    pager=pager,
                )
            )

    @property
    def _admin(self) -> AdminService:
        if self.admin is None:
            raise RuntimeError("admin commands need an AdminService")
        return self.admin

    # --- paged lists: the command reads an optional trailing page number ----------------------

    async def cmd_requests(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        words = args.split()
        page = 1
        if words and words[-1].isdigit():
            page = _page(words.pop())
        if len(words) > 1:
            raise UsageError()
        card = await self.requests_page(turn_context, actor, " ".join(words), page)
        await _send(turn_context, card)

    async def requests_page(
        self, turn_context: TurnContext, actor: Actor, args: str, page: int
    ) -> Card:
        result, states = await self._admin.list_requests(actor, args.strip(), page)
        title = texts.REQUESTS_TITLE
        if states is not None and args.strip().lower() != "all":
            labels = sorted(texts.STATE_LABELS[state.value] for state in states)
            title = texts.REQUESTS_TITLE_STATE.format(states=", ".join(labels))
        return engagement_page_card(
            title,
            result,
            command="/requests",
            args=args.strip(),
            empty_text=texts.LIST_EMPTY,
            today=self._today(),
        )

    async def cmd_active(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        await _send(turn_context, await self.active_page(turn_context, actor, args, 1))

    async def active_page(
        self, turn_context: TurnContext, actor: Actor, args: str, page: int
    ) -> Card:
        tenant = tenant_id(turn_context.activity)
        result, team = await self._admin.list_active(actor, tenant, args.strip(), page)
        title = texts.ACTIVE_TITLE_TEAM.format(team=team.name) if team else texts.ACTIVE_TITLE
        return engagement_page_card(
            title,
            result,
            command="/active",
            args=args.strip(),
            empty_text=texts.LIST_EMPTY,
            today=self._today(),
        )

    async def cmd_expiring(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        await _send(turn_context, await self.expiring_page(turn_context, actor, args, 1))

    async def expiring_page(
        self, turn_context: TurnContext, actor: Actor, args: str, page: int
    ) -> Card:
        value = args.strip()
        if value and not value.isdigit():
            raise UsageError()
        days = int(value[:6]) if value else DEFAULT_EXPIRING_DAYS
        result = await self._admin.list_expiring(actor, days, page)
        return engagement_page_card(
            texts.EXPIRING_TITLE.format(days=days),
            result,
            command="/expiring",
            args=value,
            empty_text=texts.LIST_EMPTY,
            today=self._today(),
        )

    async def cmd_audit(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        await _send(turn_context, await self.audit_page(turn_context, actor, args, 1))

    async def audit_page(
        self, turn_context: TurnContext, actor: Actor, args: str, page: int
    ) -> Card:
        words = args.split()
        engagement_id = None
        last = DEFAULT_AUDIT_LAST
        if len(words) == 1:
            engagement_id = parse_engagement_ref(words[0])
            if engagement_id is None:
                raise UsageError()
        elif len(words) == 2 and words[0].lower() == "last" and words[1].isdigit():
            last = int(words[1][:6])
        elif words:
            raise UsageError()
        result = await self._admin.audit_log(actor, engagement_id, last, page)
        if engagement_id is not None:
            title = texts.AUDIT_TITLE_ENGAGEMENT.format(ref=f"FC-{engagement_id}")
            normal = f"FC-{engagement_id}"
        else:
            title = texts.AUDIT_TITLE.format(last=last)
            normal = f"last {last}"
        return audit_page_card(
            title, result, command="/audit", args=normal, empty_text=texts.AUDIT_EMPTY
        )

    # --- single answers ---------------------------------------------------------------------

    async def cmd_show(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        engagement_id = parse_engagement_ref(args)
        if engagement_id is None:
            raise UsageError()
        tenant = tenant_id(turn_context.activity)
        timeline = await self._admin.timeline(actor, tenant, engagement_id)
        await _send(turn_context, timeline_card(timeline))

    async def cmd_extend(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        words = args.split()
        engagement_id = parse_engagement_ref(words[0]) if len(words) == 2 else None
        if engagement_id is None:
            raise UsageError()
        engagement, previous = await self._admin.extend(actor, engagement_id, words[1])
        message = texts.EXTENDED_BY_ADMIN_REPLY.format(
            ref=engagement.ref,
            end=engagement.end_date.isoformat(),
            previous=previous.isoformat(),
            requester=engagement.requester_name,
        )
        await _send(turn_context, text_card(message))

    async def cmd_report(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        if args.strip():
            raise UsageError()
        await _send(turn_context, report_card(await self._admin.report(actor)))

    async def cmd_export(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        wanted = args.strip().lower()
        kinds = {
            "": (ExportKind.ENGAGEMENTS, ExportKind.AUDIT),
            "engagements": (ExportKind.ENGAGEMENTS,),
            "audit": (ExportKind.AUDIT,),
        }.get(wanted)
        if kinds is None:
            raise UsageError()
        titles = {
            ExportKind.ENGAGEMENTS: texts.EXPORT_ENGAGEMENTS,
            ExportKind.AUDIT: texts.EXPORT_AUDIT,
        }
        links = []
        expires_at = None
        for kind in kinds:
            token, grant = await self._admin.export_link(actor, kind)
            links.append((titles[kind], self._export_url(token)))
            expires_at = grant.expires_at
        assert expires_at is not None
        await _send(turn_context, export_card(links, expires_at=expires_at))

    async def cmd_policy(self, turn_context: TurnContext, actor: Actor, args: str) -> None:
        """`/policy`, `/policy set KEY VALUE` (the value may be quoted to keep spaces) and
        `/policy reset KEY`. Every outcome is audited by the service, refusals included."""
        if self.policy is None:
            raise RuntimeError("/policy needs a PolicyService")
        tenant = tenant_id(turn_context.activity)
        words = args.split(maxsplit=2)
        action = words[0].lower() if words else ""
        message = None
        if not words:
            pass
        elif action == "set" and len(words) >= 2:
            line = await self.policy.set(
                actor, tenant, words[1], words[2] if len(words) == 3 else ""
            )
            message = texts.POLICY_SET_DONE.format(key=line.key.value, value=line.value)
        elif action == "reset" and len(words) == 2:
            line = await self.policy.reset(actor, tenant, words[1])
            message = texts.POLICY_RESET_DONE.format(key=line.key.value, value=line.value)
        else:
            raise UsageError()
        view = await self.policy.show(actor, tenant, audited=message is None)
        await _send(turn_context, policy_card(view, message=message))

    def _export_url(self, token: str) -> str:
        return f"{self.public_base_url.rstrip('/')}{EXPORT_PATH}{token}"

    def _today(self) -> date:
        return self.config.today(self.clock.now())


def _page(value: str) -> int:
    # Long digit strings are refused by the service's page check, not by int() cost.
    return int(value[:7])


async def _send(turn_context: TurnContext, card: Card) -> None:
    await turn_context.send_activity(card_message(card))

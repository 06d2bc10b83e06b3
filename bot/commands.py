"""The command registry: every chat command declared once (name, aliases, usage, description,
scopes, admin-only flag, handler, and for paged lists the pager). `/help`, the suggestions for
mistyped commands and the manifest's command menu (manifest/build.py) are built from it."""

from __future__ import annotations

import difflib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botbuilder.core import TurnContext

from core import texts
from core.model import Actor

CommandHandler = Callable[[TurnContext, Actor, str], Awaitable[None]]
# A paged list: (turn, actor, arguments without the page, page number) -> the card of that page.
# Next / Previous on the card come back as an invoke that calls it again.
Pager = Callable[[TurnContext, Actor, str, int], Awaitable[dict[str, Any]]]


class UsageError(Exception):
    """Raised by a handler for arguments it cannot use: the reply is the command's usage."""


@dataclass(frozen=True)
class Command:
    name: str  # with the slash: "/request"
    description: str
    handler: CommandHandler
    usage: str = ""
    aliases: tuple[str, ...] = ()  # whole phrases, e.g. "new request"
    admin_only: bool = False
    # Where the command is offered (Teams manifest scopes): personal, team, groupChat.
    scopes: tuple[str, ...] = ("personal", "team", "groupChat")
    pager: Pager | None = None

    @property
    def usage_line(self) -> str:
        return self.usage or self.name

    @property
    def usage_text(self) -> str:
        """The answer to arguments the command cannot use."""
        return texts.COMMAND_USAGE.format(usage=self.usage_line, description=self.description)


@dataclass
class CommandRegistry:
    _commands: list[Command] = field(default_factory=list)

    def add(self, command: Command) -> None:
        taken = {word for c in self._commands for word in (c.name, *c.aliases)}
        clash = taken & {command.name, *command.aliases}
        if clash:
            raise ValueError(f"command words already registered: {sorted(clash)}")
        self._commands.append(command)

    @property
    def commands(self) -> Sequence[Command]:
        return tuple(self._commands)

    def visible_to(self, *, is_admin: bool) -> list[Command]:
        return [c for c in self._commands if is_admin or not c.admin_only]

    def get(self, name: str) -> Command | None:
        return next((c for c in self._commands if c.name == name), None)

    def suggest(self, text: str, *, is_admin: bool) -> str | None:
        """The command the caller most likely meant by an unknown `text` (its first word)."""
        words = text.split()
        if not words:
            return None
        typed = "/" + words[0].lower().lstrip("/")
        names = [c.name for c in self.visible_to(is_admin=is_admin)]
        close = difflib.get_close_matches(typed, names, n=1, cutoff=0.6)
        return close[0] if close else None

    def resolve(self, text: str) -> tuple[Command, str] | None:
        """The command a message asks for and the rest of the text as its arguments.
        `/request x`, `request x` and the aliases (`new request x`) all match."""
        normalised = re.sub(r"\s+", " ", text).strip()
        lowered = normalised.lower()
        best: tuple[Command, str] | None = None
        best_len = -1
        for command in self._commands:
            bare = command.name.lstrip("/")
            for word in (command.name, bare, *command.aliases):
                if (lowered == word or lowered.startswith(word + " ")) and len(word) > best_len:
                    best, best_len = (command, normalised[len(word) :].strip()), len(word)
        return best

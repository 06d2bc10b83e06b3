"""The command registry: every chat command declared once (name, aliases, usage, description,
admin-only flag, handler). `/help` and, later, the manifest's command menu are built from it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from botbuilder.core import TurnContext

from core.model import Actor

CommandHandler = Callable[[TurnContext, Actor, str], Awaitable[None]]


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

    @property
    def usage_line(self) -> str:
        return self.usage or self.name


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

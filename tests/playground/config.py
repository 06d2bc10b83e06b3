"""Agents Playground configurations for the browser test, derived from the committed
`.m365agentsplayground.yml`.

The test needs two changes to it: one Playground per signed-in person (Alex the requester,
Megan the approver: the Playground has no user switcher), and the private channel the bot will
create listed as the team's extra channel, so the bot's welcome post into it has somewhere to go.
The result is written as JSON, which the Playground's YAML parser reads as well.

There is no YAML library in the project, so `load_simple_yaml` reads the small subset the
committed file uses (block mappings, block lists of mappings, plain and quoted scalars, `[]`,
comments) and refuses anything else rather than misreading it.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_CONFIG = ROOT / ".m365agentsplayground.yml"


class UnsupportedYaml(ValueError):
    """The file uses YAML this reader does not understand."""


def _strip_comment(line: str) -> str:
    quote: str | None = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index].rstrip()
    return line.rstrip()


def _scalar(text: str, where: int) -> Any:
    text = text.strip()
    if text == "[]":
        return []
    if text == "{}":
        return {}
    if text.startswith('"'):
        return json.loads(text)
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return text[1:-1].replace("''", "'")
    if not text or text[0] in "[{|>&*!%@`" or ": " in text:
        raise UnsupportedYaml(f"line {where}: unsupported value {text!r}")
    return text


_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(?:\s+(.*))?$")


def load_simple_yaml(source: str) -> Any:
    lines: list[tuple[int, int, str]] = []  # (line number, indent, content)
    for number, raw in enumerate(source.splitlines(), start=1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise UnsupportedYaml(f"line {number}: tab indentation")
        text = _strip_comment(raw)
        if text.strip():
            lines.append((number, len(text) - len(text.lstrip(" ")), text.strip()))
    position = 0

    def block(indent: int) -> Any:
        nonlocal position
        if lines[position][2].startswith("- "):
            items: list[Any] = []
            while position < len(lines) and lines[position][1] == indent:
                number, _, content = lines[position]
                if not content.startswith("- "):
                    raise UnsupportedYaml(f"line {number}: expected a list item")
                # The item is a mapping whose first key sits right after the dash.
                lines[position] = (number, indent + 2, content[2:].lstrip())
                items.append(block(indent + 2))
            return items
        mapping: dict[str, Any] = {}
        while position < len(lines) and lines[position][1] == indent:
            number, _, content = lines[position]
            match = _KEY.match(content)
            if match is None:
                raise UnsupportedYaml(f"line {number}: expected 'key: value'")
            key, value = match.group(1), match.group(2)
            position += 1
            if value is not None:
                mapping[key] = _scalar(value, number)
            elif position < len(lines) and lines[position][1] > indent:
                mapping[key] = block(lines[position][1])
            else:
                mapping[key] = None
        return mapping

    result = block(lines[0][1]) if lines else {}
    if position != len(lines):
        raise UnsupportedYaml(f"line {lines[position][0]}: unexpected indentation")
    return result


def committed_config() -> dict[str, Any]:
    config = load_simple_yaml(COMMITTED_CONFIG.read_text(encoding="utf-8"))
    assert isinstance(config, dict)
    return config


def config_for(
    base: dict[str, Any],
    *,
    given_name: str,
    personal_chat_id: str | None = None,
    extra_channel: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """`base` with the user whose givenName is `given_name` signed in (swapped with the
    current user, so there are still exactly five `users`), an own personal chat id, and
    `extra_channel` (id, name) as the team's one extra channel."""
    config = copy.deepcopy(base)
    everyone = [config["currentUser"], *config["users"]]
    chosen = next((u for u in everyone if u["givenName"].lower() == given_name.lower()), None)
    if chosen is None:
        raise KeyError(f"no user with givenName {given_name!r} in the Playground config")
    if chosen is not config["currentUser"]:
        config["users"] = [
            config["currentUser"] if user is chosen else user for user in config["users"]
        ]
        config["currentUser"] = chosen
    if personal_chat_id:
        config["personalChat"] = {"id": personal_chat_id}
    if extra_channel:
        channel_id, name = extra_channel
        config["team"]["channels"] = [{"id": channel_id, "name": name}]
    return config


def write_config(config: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path

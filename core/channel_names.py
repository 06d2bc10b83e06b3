"""Teams' rules for channel names (graph-teams-facts.md A4) and a name suggestion."""

from __future__ import annotations

import re
import unicodedata

from core import texts

MAX_CHANNEL_NAME = 50
FORBIDDEN_CHARACTERS = "~#%&*{}+/\\:<>?|'\","
# Whole names Teams reserves (they become SharePoint folder names); "_vti_" is refused anywhere.
RESERVED_NAMES = frozenset(
    {"forms", "con", "conin$", "conout$", "prn", "aux", "nul", "desktop.ini"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)


def _is_control(ch: str) -> bool:
    return ord(ch) <= 0x1F or 0x80 <= ord(ch) <= 0x9F or ord(ch) == 0x7F


def channel_name_error(name: str) -> str | None:
    """The user-facing reason `name` can't be a Teams channel name, or None if it can."""
    if len(name) > MAX_CHANNEL_NAME:
        return texts.ERR_CHANNEL_TOO_LONG
    if any(_is_control(ch) for ch in name):
        return texts.ERR_CHANNEL_CONTROL
    bad = sorted({ch for ch in name if ch in FORBIDDEN_CHARACTERS})
    if bad or ".." in name:
        shown = " ".join(bad + ([".."] if ".." in name else []))
        return texts.ERR_CHANNEL_CHARS.format(chars=shown)
    if name.lower() in RESERVED_NAMES or "_vti_" in name.lower():
        word = "_vti_" if "_vti_" in name.lower() else name
        return texts.ERR_CHANNEL_RESERVED.format(word=word)
    if name.startswith(("_", ".")):
        return texts.ERR_CHANNEL_START
    if name.endswith("."):
        return texts.ERR_CHANNEL_END
    return None


def suggest_channel_name(project_title: str) -> str:
    """A valid channel name derived from a project title ("" if nothing usable is left)."""
    text = unicodedata.normalize("NFKC", project_title)
    text = "".join(" " if ch in FORBIDDEN_CHARACTERS or _is_control(ch) else ch for ch in text)
    text = re.sub(r"\.{2,}", ".", text)
    text = re.sub(r"\s+", " ", text).strip().lstrip("_.").strip()
    name = text[:MAX_CHANNEL_NAME].rstrip(" .")
    return name if name and channel_name_error(name) is None else ""

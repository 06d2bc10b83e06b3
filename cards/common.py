"""The building blocks every card uses: the card envelope, escaped text, facts and dates.

All text goes through `plain` when it is put into a TextBlock or a Fact, so neither user content
nor a name from the directory can inject markdown (links, emphasis, lists, headings).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from core import texts
from core.model import Engagement

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"

Card = dict[str, Any]

# Characters with a meaning in the markdown subset of Adaptive Cards / Teams anywhere in a line
# (escape, code, emphasis, strike-through, links, autolinks / HTML)...
_INLINE = re.compile(r"([\\`*_~\[\]<])")
# ... and at the start of a line only (lists, numbered items, headings, quotes, underlines).
_LINE_START = re.compile(r"^([ \t]*)([-+=#>]|\d+(?=[.)]))", re.MULTILINE)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def plain(text: str) -> str:
    """`text` escaped so that a markdown renderer shows it literally.

    Backslash-escapes the markdown-significant characters (CommonMark escapes, which Teams
    honours) and breaks up `{{` so Adaptive Cards' DATE()/TIME() functions can't be triggered.
    """
    text = _INLINE.sub(r"\\\1", text)
    text = _LINE_START.sub(_escape_line_start, text)
    return text.replace("{{", "{\u200b{")


def _escape_line_start(match: re.Match[str]) -> str:
    indent, marker = match.group(1), match.group(2)
    if marker.isdigit():  # "1." / "1)": escape the punctuation after the number
        return f"{indent}{marker}\\"
    return f"{indent}\\{marker}"


def adaptive_card(
    body: Sequence[Card],
    *,
    actions: Sequence[Card] = (),
    refresh: Card | None = None,
) -> Card:
    """The card envelope: schema, version 1.5, body, and optionally actions and refresh."""
    card: Card = {
        "type": "AdaptiveCard",
        "$schema": SCHEMA,
        "version": VERSION,
        "body": list(body),
    }
    if actions:
        card["actions"] = list(actions)
    if refresh is not None:
        card["refresh"] = refresh
    return card


def text_block(
    text: str,
    *,
    size: str | None = None,
    weight: str | None = None,
    color: str | None = None,
    subtle: bool = False,
    spacing: str | None = None,
    element_id: str | None = None,
) -> Card:
    """A wrapping TextBlock whose text is escaped with `plain`."""
    block: Card = {"type": "TextBlock", "text": plain(text), "wrap": True}
    if size:
        block["size"] = size
    if weight:
        block["weight"] = weight
    if color:
        block["color"] = color
    if subtle:
        block["isSubtle"] = True
    if spacing:
        block["spacing"] = spacing
    if element_id:
        block["id"] = element_id
    return block


def title_block(text: str) -> Card:
    return text_block(text, size="medium", weight="bolder")


def fact_set(facts: Iterable[tuple[str, str]]) -> Card:
    """A FactSet; titles and values are escaped with `plain`, empty values left out."""
    return {
        "type": "FactSet",
        "facts": [
            {"title": plain(title), "value": plain(value)} for title, value in facts if value
        ],
    }


def text_card(text: str, *, title: str | None = None, attention: bool = False) -> Card:
    """A small card for simple replies and refusals (text is shown literally)."""
    body: list[Card] = []
    if title:
        body.append(title_block(title))
    body.append(text_block(text, color="attention" if attention else None))
    return adaptive_card(body)


# --- values shown on several cards ---------------------------------------------------------


def format_date(value: date | datetime) -> str:
    """3 Mar 2025, whatever the locale (datetimes show their date)."""
    day = value.date() if isinstance(value, datetime) else value
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def date_range(engagement: Engagement) -> str:
    return texts.DATE_RANGE.format(
        start=format_date(engagement.start_date), end=format_date(engagement.end_date)
    )


def freelancer_label(engagement: Engagement) -> str:
    return texts.FREELANCER_WITH_EMAIL.format(
        name=engagement.freelancer_name, email=engagement.freelancer_email
    )


def state_label(engagement: Engagement) -> str:
    return texts.STATE_LABELS[engagement.state.value]


def heading(engagement: Engagement) -> str:
    """FC-12: Website redesign"""
    return texts.CARD_HEADING.format(ref=engagement.ref, project=engagement.project_title)


def summary_facts(engagement: Engagement, *, approver: bool = False) -> Card:
    """Who, whom, when, where and the status of an engagement, as a FactSet."""
    facts = [
        (texts.FACT_PROJECT, engagement.project_title),
        (texts.FACT_REQUESTER, engagement.requester_name),
        (texts.FACT_FREELANCER, freelancer_label(engagement)),
        (texts.FACT_DATES, date_range(engagement)),
        (texts.FACT_TEAM, engagement.team_name),
        (texts.FACT_CHANNEL, engagement.channel_name),
    ]
    if approver:
        facts.append((texts.FACT_APPROVER, engagement.approver_name or ""))
    facts.append((texts.FACT_STATE, state_label(engagement)))
    return fact_set(facts)

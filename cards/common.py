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
from core.model import Engagement, EngagementState

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"

Card = dict[str, Any]

# Characters with a meaning in the markdown subset of Adaptive Cards / Teams anywhere in a line
# (escape, code, emphasis, strike-through, links, autolinks / HTML)...
_INLINE = re.compile(r"([\\`*_~\[\]<])")
# ... and at the start of a line only (lists, numbered items, headings, quotes, underlines).
_LINE_START = re.compile(r"^([ \t]*)([-+=#>]|\d+(?=[.)]))", re.MULTILINE)
# Control characters (line breaks and tabs stay) and the bidi embeddings, overrides and
# isolates that could reorder the text around user content; RTL scripts themselves need none.
_HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
ELLIPSIS = "…"
# How much of a user's text a card shows at most (`clip`); intake and the handlers allow less.
REASON_MAX = 500  # reasons (typed ones are at most 500 characters)
SHORT_MAX = 256  # names, titles, team and channel names, e-mail addresses
MESSAGE_MAX = 1000  # a message the handler shows on a re-rendered card (may quote the user)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def plain(text: str) -> str:
    """`text` escaped so that a markdown renderer shows it literally.

    Backslash-escapes the markdown-significant characters (CommonMark escapes, which Teams
    honours) and breaks up `{{` so Adaptive Cards' DATE()/TIME() functions can't be triggered.
    """
    text = _INLINE.sub(r"\\\1", text)
    text = _LINE_START.sub(_escape_line_start, text)
    return text.replace("{{", "{\u200b{")


def clip(text: str, limit: int, *, mark: bool = True) -> str:
    """User content made safe to show in a sentence: without control characters (line breaks
    and tabs stay) and bidi overrides, at most `limit` characters (with `mark`, a cut text ends
    in "…"; without, as for an input's value the user edits, it is just cut).

    Escaping is still `plain`'s job (text_block and fact_set do it).
    """
    text = _HIDDEN.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    if len(text) <= limit:
        return text
    if not mark:
        return text[:limit]
    return text[: max(limit - len(ELLIPSIS), 0)].rstrip() + ELLIPSIS


def sentence(text: str) -> str:
    """`text` ending in a full stop (unless it already ends in one, or in ! or ?)."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?", ELLIPSIS)) else f"{text}."


def clause(text: str) -> str:
    """`text` without a full stop at its end, to go inside a sentence."""
    return text.rstrip().rstrip(".").rstrip()


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
        name=clip(engagement.freelancer_name, SHORT_MAX),
        email=clip(engagement.freelancer_email, SHORT_MAX),
    )


def state_label(engagement: Engagement) -> str:
    return texts.STATE_LABELS[engagement.state.value]


def heading(engagement: Engagement) -> str:
    """FC-12: Website redesign"""
    return texts.CARD_HEADING.format(
        ref=engagement.ref, project=clip(engagement.project_title, SHORT_MAX)
    )


def summary_facts(engagement: Engagement, *, approver: bool = False) -> Card:
    """Who, whom, when, where and the status of an engagement, as a FactSet."""
    facts = [
        (texts.FACT_PROJECT, clip(engagement.project_title, SHORT_MAX)),
        (texts.FACT_REQUESTER, clip(engagement.requester_name, SHORT_MAX)),
        (texts.FACT_FREELANCER, freelancer_label(engagement)),
        (texts.FACT_DATES, date_range(engagement)),
        (texts.FACT_TEAM, clip(engagement.team_name, SHORT_MAX)),
        (texts.FACT_CHANNEL, clip(engagement.channel_name, SHORT_MAX)),
    ]
    if approver:
        facts.append((texts.FACT_APPROVER, clip(engagement.approver_name or "", SHORT_MAX)))
    facts.extend(lifecycle_facts(engagement))
    facts.append((texts.FACT_STATE, state_label(engagement)))
    return fact_set(facts)


# --- lifecycle ---------------------------------------------------------------------------------

ENDING_STATES = frozenset(
    {EngagementState.OFFBOARDING, EngagementState.OFFBOARDING_FAILED, EngagementState.ENDED}
)


def end_reason(engagement: Engagement) -> str:
    """Why the engagement ended (or is ending): the recorded reason, else the end date's."""
    if engagement.end_reason and engagement.end_reason.strip():
        return clip(engagement.end_reason.strip(), REASON_MAX)
    return texts.NO_REASON_GIVEN if engagement.ended_by_name else texts.END_DATE_REACHED


def ended_when(engagement: Engagement) -> date | datetime | None:
    """When it ended: as recorded, else the end date when nobody ended it early."""
    if engagement.ended_at is not None:
        return engagement.ended_at
    return None if engagement.ended_by_name else engagement.end_date


def ended_value(engagement: Engagement) -> str:
    """3 Mar 2025, by Rita Requester: Contract cancelled (the parts that are known)."""
    head: list[str] = []
    when = ended_when(engagement)
    if when is not None:
        head.append(format_date(when))
    if engagement.ended_by_name:
        head.append(texts.ENDED_BY.format(name=clip(engagement.ended_by_name, SHORT_MAX)))
    reason = end_reason(engagement)
    return texts.ENDED_VALUE.format(when=", ".join(head), reason=reason) if head else reason


def lifecycle_facts(engagement: Engagement) -> list[tuple[str, str]]:
    """The sponsor (the requester, once recorded as the guest's sponsor) and, for an engagement
    that is ending or ended, when, by whom and why."""
    facts: list[tuple[str, str]] = []
    if engagement.sponsor_id:
        facts.append((texts.FACT_SPONSOR, clip(engagement.requester_name, SHORT_MAX)))
    if engagement.state in ENDING_STATES:
        facts.append((texts.FACT_ENDED, ended_value(engagement)))
    return facts

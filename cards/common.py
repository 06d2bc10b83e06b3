"""The building blocks every card uses: the card envelope, escaped text, facts and dates.

All text goes through `plain` when it is put into a TextBlock or a Fact, so neither user content
nor a name from the directory can inject markdown (links, emphasis, lists, headings).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from core import texts
from core.intake import FIELD_DESCRIPTION, FIELD_JUSTIFICATION, LIMITS
from core.model import DataClassification, Engagement, EngagementState

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"

Card = dict[str, Any]

# Characters with a meaning in the markdown subset of Adaptive Cards / Teams anywhere in a line
# (escape, code, emphasis, strike-through, links, autolinks / HTML)...
_INLINE = re.compile(r"([\\`*_~\[\]<])")
# ... and at the start of a line only (lists, numbered items, headings, quotes, underlines).
_LINE_START = re.compile(r"^([ \t]*)([-+=#>]|\d+(?=[.)]))", re.MULTILINE)
# Control characters (line breaks and tabs stay), the bidi embeddings, overrides and isolates
# that could reorder the text around user content (RTL scripts themselves need none), and lone
# surrogates, which can't even be encoded to send the card.
_HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
ELLIPSIS = "…"
# How much of a user's text a card shows at most (`clip`); intake and the handlers allow less.
REASON_MAX = 500  # reasons (typed ones are at most 500 characters)
SHORT_MAX = 256  # names, titles, team and channel names, e-mail addresses
MESSAGE_MAX = 1000  # a message the handler shows on a re-rendered card (may quote the user)
TEXT_MAX = 2000  # the text of a simple reply (text_card), which may quote a long value
# A description or justification: what intake accepts.
LONG_MAX = max(LIMITS[FIELD_DESCRIPTION][1], LIMITS[FIELD_JUSTIFICATION][1])
# How much of the description and the justification a card shows: all of it, unless that (with
# many characters that need escaping, or wide ones) would not fit in a message (`fitted`).
LONG_TEXT_STEPS = (LONG_MAX, 1000, 400)
# A profile link as shown: intake accepts 2048 characters, but its start, with the host, is
# what a reader needs, and a long one (escaped) would crowd out the rest of the card.
URL_MAX = 500
# Teams refuses a message over ~28 KB (graph-teams-facts.md C6, 413 MessageSizeTooBig); a card
# stays under this many bytes of UTF-8 JSON, which leaves room for the activity around it.
CARD_BUDGET = 24_000
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def plain(text: str) -> str:
    """`text` escaped so that a markdown renderer shows it literally.

    Backslash-escapes the markdown-significant characters (CommonMark escapes, which Teams
    honours) and breaks up `{{` so Adaptive Cards' DATE()/TIME() functions can't be triggered.
    Control characters and bidi overrides go too (`visible`): a caller that forgot `clip` still
    can't reorder or hide the text around it.
    """
    text = _INLINE.sub(r"\\\1", visible(text))
    text = _LINE_START.sub(_escape_line_start, text)
    return text.replace("{{", "{\u200b{")


def clip(text: str, limit: int, *, mark: bool = True) -> str:
    """User content made safe to show in a sentence: without control characters (line breaks
    and tabs stay) and bidi overrides, at most `limit` characters (with `mark`, a cut text ends
    in "…"; without, as for an input's value the user edits, it is just cut).

    Escaping is still `plain`'s job (text_block and fact_set do it).
    """
    text = visible(text)
    if len(text) <= limit:
        return text
    if not mark:
        return text[:limit]
    return text[: max(limit - len(ELLIPSIS), 0)].rstrip() + ELLIPSIS


def visible(text: str) -> str:
    """`text` without control characters (a line break stays one, tabs stay), bidi overrides
    and lone surrogates. Right-to-left letters, emoji and their joiners are left alone."""
    return _HIDDEN.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


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
    """A small card for simple replies and refusals (text is shown literally, and bounded:
    a reply may quote what the user typed)."""
    body: list[Card] = []
    if title:
        body.append(title_block(clip(title, SHORT_MAX)))
    body.append(text_block(clip(text, TEXT_MAX), color="attention" if attention else None))
    return adaptive_card(body)


def text_section(title: str, text: str) -> list[Card]:
    """A bold heading and a (long) text under it, such as the description."""
    return [text_block(title, weight="bolder", spacing="medium"), text_block(text)]


def long_texts(description: str, justification: str | None, long_max: int) -> list[Card]:
    """The description and (when there is one) the justification of a request, each under its
    heading, at most `long_max` characters each."""
    blocks = text_section(texts.FACT_DESCRIPTION, clip(description, long_max))
    if justification and justification.strip():
        blocks += text_section(texts.FACT_JUSTIFICATION, clip(justification, long_max))
    return blocks


def execute(
    verb: str,
    title: str,
    *,
    data: dict[str, Any] | None = None,
    style: str | None = None,
    inputs: bool = False,
) -> Card:
    """An Action.Execute with the verb as its id; `inputs`: it submits the card's inputs (and
    the client checks the required ones first), else none."""
    action: Card = {"type": "Action.Execute", "id": verb, "title": title, "verb": verb}
    if data is not None:
        action["data"] = data
    action["associatedInputs"] = "auto" if inputs else "none"
    if style:
        action["style"] = style
    return action


def card_size(card: Card) -> int:
    """The card's size in a message: bytes of its UTF-8 JSON."""
    return len(json.dumps(card, ensure_ascii=False).encode())


_Option = TypeVar("_Option")


def fitted(build: Callable[[_Option], Card], options: Sequence[_Option]) -> Card:
    """The card built with the first of `options` (the most generous first) that fits
    CARD_BUDGET, else with the last one."""
    card: Card = {}
    for option in options:
        card = build(option)
        if card_size(card) <= CARD_BUDGET:
            return card
    return card


# --- values shown on several cards ---------------------------------------------------------


def format_date(value: date | datetime) -> str:
    """3 Mar 2025, whatever the locale (datetimes show their date)."""
    day = value.date() if isinstance(value, datetime) else value
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def format_date_time(value: datetime) -> str:
    """3 Mar 2025 14:05, in the datetime's own zone."""
    return f"{format_date(value)} {value:%H:%M}"


def access_ends(end_instant: datetime, zone: str) -> str:
    """When access ends, in the requester's zone and in UTC: "9 Jun 2025 00:00 (Europe/Berlin),
    8 Jun 2025 22:00 UTC"."""
    return texts.ACCESS_ENDS_AT.format(
        local=format_date_time(end_instant),
        zone=clip(zone, SHORT_MAX),
        utc=format_date_time(end_instant.astimezone(UTC)),
    )


def classification_label(classification: DataClassification) -> str:
    return texts.CLASSIFICATION_LABELS[DataClassification(classification).value]


def format_budget(budget: Decimal) -> str:
    """12,500 or 12,500.50: thousands separated, cents only when there are any (no currency:
    the form asks for an amount without one)."""
    whole = budget == budget.to_integral_value()
    return f"{budget:,.0f}" if whole else f"{budget:,.2f}"


def freelancer_facts(org: str | None, profile_url: str | None) -> list[tuple[str, str]]:
    """The freelancer's organisation and profile link, those that are set. The link is shown
    as escaped text, never as a link or button: nobody is led to click an address a requester
    typed."""
    return [
        (texts.FACT_FREELANCER_ORG, clip(org or "", SHORT_MAX)),
        (texts.FACT_PROFILE_URL, clip(profile_url or "", URL_MAX)),
    ]


def terms_facts(
    classification: DataClassification, budget: Decimal | None, hours: int | None
) -> list[tuple[str, str]]:
    """The data the freelancer will see, and the budget and hours when they are set."""
    return [
        (texts.FACT_CLASSIFICATION, classification_label(classification)),
        (texts.FACT_BUDGET, format_budget(budget) if budget is not None else ""),
        (texts.FACT_HOURS, f"{hours:,}" if hours is not None else ""),
    ]


def dates_text(start: date, end: date) -> str:
    """3 Mar 2025 to 8 Jun 2025"""
    return texts.DATE_RANGE.format(start=format_date(start), end=format_date(end))


def date_range(engagement: Engagement) -> str:
    return dates_text(engagement.start_date, engagement.end_date)


def freelancer_with_email(name: str, email: str) -> str:
    """Jane Doe (jane@contoso.com)"""
    return texts.FREELANCER_WITH_EMAIL.format(
        name=clip(name, SHORT_MAX), email=clip(email, SHORT_MAX)
    )


def freelancer_label(engagement: Engagement) -> str:
    return freelancer_with_email(engagement.freelancer_name, engagement.freelancer_email)


def state_label(engagement: Engagement) -> str:
    return texts.STATE_LABELS[engagement.state.value]


def heading(engagement: Engagement) -> str:
    """FC-12: Website redesign"""
    return texts.CARD_HEADING.format(
        ref=engagement.ref, project=clip(engagement.project_title, SHORT_MAX)
    )


def summary_facts(engagement: Engagement, *, approver: bool = False, terms: bool = False) -> Card:
    """Who, whom, when, where and the status of an engagement, as a FactSet; with `terms`, also
    the freelancer's organisation and profile, the data classification, budget and hours."""
    facts = [
        (texts.FACT_PROJECT, clip(engagement.project_title, SHORT_MAX)),
        (texts.FACT_REQUESTER, clip(engagement.requester_name, SHORT_MAX)),
        (texts.FACT_FREELANCER, freelancer_label(engagement)),
    ]
    if terms:
        facts.extend(freelancer_facts(engagement.freelancer_org, engagement.profile_url))
    facts.append((texts.FACT_DATES, date_range(engagement)))
    if terms:
        facts.extend(
            terms_facts(engagement.data_classification, engagement.budget, engagement.hours)
        )
    facts += [
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

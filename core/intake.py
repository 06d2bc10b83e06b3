"""The intake form: what the card posts, validated with pydantic into one message per field."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, EmailStr, TypeAdapter, ValidationError

from core import texts
from core.channel_names import MAX_CHANNEL_NAME, channel_name_error, suggest_channel_name
from core.model import DataClassification
from core.policy import TenantPolicy

# Card input ids; the intake card and the validation share them.
FIELD_PROJECT_TITLE = "project_title"
FIELD_DESCRIPTION = "description"
FIELD_JUSTIFICATION = "justification"
FIELD_FREELANCER_NAME = "freelancer_name"
FIELD_FREELANCER_EMAIL = "freelancer_email"
FIELD_FREELANCER_ORG = "freelancer_org"
FIELD_PROFILE_URL = "profile_url"
FIELD_START_DATE = "start_date"
FIELD_END_DATE = "end_date"
FIELD_CLASSIFICATION = "data_classification"
FIELD_BUDGET = "budget"
FIELD_HOURS = "hours"
FIELD_TEAM = "team_id"
FIELD_CHANNEL_NAME = "channel_name"
# In the order the form shows them.
INTAKE_FIELDS = (
    FIELD_PROJECT_TITLE,
    FIELD_DESCRIPTION,
    FIELD_JUSTIFICATION,
    FIELD_FREELANCER_NAME,
    FIELD_FREELANCER_EMAIL,
    FIELD_FREELANCER_ORG,
    FIELD_PROFILE_URL,
    FIELD_START_DATE,
    FIELD_END_DATE,
    FIELD_CLASSIFICATION,
    FIELD_BUDGET,
    FIELD_HOURS,
    FIELD_TEAM,
    FIELD_CHANNEL_NAME,
)
# May be left empty (justification: unless the tenant's policy requires it).
OPTIONAL_FIELDS = frozenset(
    {FIELD_JUSTIFICATION, FIELD_FREELANCER_ORG, FIELD_PROFILE_URL, FIELD_BUDGET, FIELD_HOURS}
)
# Free text that may span lines; every other field is one line.
MULTILINE_FIELDS = frozenset({FIELD_DESCRIPTION, FIELD_JUSTIFICATION})

LIMITS: dict[str, tuple[int, int]] = {
    FIELD_PROJECT_TITLE: (3, 100),
    FIELD_DESCRIPTION: (1, 2000),
    FIELD_JUSTIFICATION: (10, 2000),
    FIELD_FREELANCER_NAME: (2, 100),
    FIELD_FREELANCER_EMAIL: (3, 254),
    FIELD_FREELANCER_ORG: (2, 200),
    FIELD_PROFILE_URL: (12, 2048),
    FIELD_BUDGET: (1, 20),
    FIELD_HOURS: (1, 7),
}
# The longest value any field may hold: what is kept of a value in a draft or echoed in a card.
MAX_FIELD_LENGTH = max(high for _, high in LIMITS.values())

MAX_BUDGET = Decimal("1000000000")
MAX_HOURS = 100_000
_BUDGET = re.compile(r"^\d{1,10}(?:\.\d{1,2})?$")
# Thousands separators people type: "12,500", "12 500", "12'500".
_BUDGET_SEPARATORS = re.compile(r"(?<=\d)[,\u00a0\u202f ']" + r"(?=\d{3}(?:\D|$))")


def prefill_from_command(args: str) -> dict[str, str]:
    """`/request jane@contoso.com Website redesign` -> the form's freelancer e-mail (the first
    word with an @), project title (the other words) and a channel name suggested from it.

    Nothing is judged here: the form shows the values and validates them on submit like typed
    ones. Control and format characters (RTL overrides, zero-width) are dropped and each value
    is cut to its field's limit, so what the card echoes stays bounded."""
    # Format characters (Cf: direction overrides, zero-width) vanish; controls separate words.
    visible = "".join(
        ""
        if unicodedata.category(ch) == "Cf"
        else " "
        if unicodedata.category(ch)[0] == "C"
        else ch
        for ch in args
    )
    words = visible.split()
    email = next((word for word in words if "@" in word), "")
    if email:
        words.remove(email)
    title = " ".join(words)[: LIMITS[FIELD_PROJECT_TITLE][1]].strip()
    values = {FIELD_FREELANCER_EMAIL: email[: LIMITS[FIELD_FREELANCER_EMAIL][1]]}
    if title:
        values[FIELD_PROJECT_TITLE] = title
        values[FIELD_CHANNEL_NAME] = suggest_channel_name(title)
    return {field: value for field, value in values.items() if value}


class FieldErrors(Exception):
    """The form is invalid: one user-facing message per wrong field (a key that is no field,
    such as FORM_PROBLEM, is a message about the form as a whole)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# The key of a message that belongs to no single field (Graph could not be asked, say).
FORM_PROBLEM = "form"


class IntakeForm(BaseModel):
    """A valid intake. Build it with `parse_intake`, which explains every wrong field. The
    channel name carries the tenant's prefix."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid", frozen=True)

    project_title: str
    description: str
    justification: str
    freelancer_name: str
    freelancer_email: EmailStr
    freelancer_org: str | None
    profile_url: str | None
    start_date: date
    end_date: date
    data_classification: DataClassification
    budget: Decimal | None
    hours: int | None
    team_id: str
    channel_name: str


_EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)
_DATE: TypeAdapter[date] = TypeAdapter(date)


def clean_text(value: Any, *, multiline: bool = False) -> str:
    """What the card sent, as text safe to store and show: control characters, bidi overrides
    and zero-width characters (Unicode Cc/Cf) removed, line breaks kept only in multiline
    fields, and cut to MAX_FIELD_LENGTH. Right-to-left scripts and emoji stay as typed."""
    if not isinstance(value, str):
        return ""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    kept = []
    for ch in value[: MAX_FIELD_LENGTH * 2]:
        category = unicodedata.category(ch)
        if ch == "\n" and multiline:
            kept.append(ch)
        elif ch in "\n\t":
            kept.append(" ")
        elif category in ("Cc", "Cf", "Cs", "Co", "Cn") and ch != "\u200d":
            # ZWJ (U+200D) stays: it joins emoji sequences such as family and flag emoji.
            continue
        else:
            kept.append(ch)
    return "".join(kept)[:MAX_FIELD_LENGTH].strip()


def clean_values(values: Mapping[str, Any]) -> dict[str, str]:
    """The form's own fields of what the card sent, cleaned (`clean_text`); other keys and
    values that are not text are dropped."""
    return {
        name: clean_text(values[name], multiline=name in MULTILINE_FIELDS)
        for name in INTAKE_FIELDS
        if isinstance(values.get(name), str)
    }


def parse_budget(text: str) -> Decimal | None:
    """`12,500.50` -> Decimal("12500.50"); None when it is not an amount we accept."""
    text = _BUDGET_SEPARATORS.sub("", text.strip())
    if not _BUDGET.match(text):
        return None
    amount = Decimal(text)
    return amount if Decimal(0) < amount <= MAX_BUDGET else None


def profile_url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        return texts.ERR_PROFILE_URL_HTTPS
    host = parts.hostname or ""
    if (
        not host
        or "." not in host
        or parts.username is not None
        or any(ch.isspace() for ch in url)
    ):
        return texts.ERR_PROFILE_URL
    return None


def parse_intake(
    values: Mapping[str, Any],
    *,
    earliest_start: date,
    allowed_team_ids: set[str],
    policy: TenantPolicy,
) -> IntakeForm:
    """Validate raw card values against the form's rules and the tenant's policy; raise
    FieldErrors with one message per wrong field. `earliest_start` is today in the
    requester's time zone."""
    raw = clean_values(values)
    raw = {name: raw.get(name, "") for name in INTAKE_FIELDS}
    errors: dict[str, str] = {}
    for name, value in raw.items():
        if not value:
            if name == FIELD_JUSTIFICATION and policy.justification_required:
                errors[name] = texts.ERR_JUSTIFICATION_REQUIRED
            elif name not in OPTIONAL_FIELDS:
                errors[name] = texts.ERR_REQUIRED
        elif name in LIMITS:
            low, high = LIMITS[name]
            if len(value) > high:
                errors[name] = texts.ERR_TOO_LONG.format(max=high)
            elif len(value) < low:
                errors[name] = texts.ERR_TOO_SHORT.format(min=low)

    if FIELD_FREELANCER_EMAIL not in errors:
        try:
            _EMAIL.validate_python(raw[FIELD_FREELANCER_EMAIL])
        except ValidationError:
            errors[FIELD_FREELANCER_EMAIL] = texts.ERR_EMAIL
        else:
            problem = policy.email_domain_problem(raw[FIELD_FREELANCER_EMAIL])
            if problem:
                errors[FIELD_FREELANCER_EMAIL] = problem

    if raw[FIELD_PROFILE_URL] and FIELD_PROFILE_URL not in errors:
        problem = profile_url_problem(raw[FIELD_PROFILE_URL])
        if problem:
            errors[FIELD_PROFILE_URL] = problem

    if raw[FIELD_CLASSIFICATION] and FIELD_CLASSIFICATION not in errors:
        if raw[FIELD_CLASSIFICATION] not in set(DataClassification):
            errors[FIELD_CLASSIFICATION] = texts.ERR_CLASSIFICATION

    budget = parse_budget(raw[FIELD_BUDGET]) if raw[FIELD_BUDGET] else None
    if raw[FIELD_BUDGET] and FIELD_BUDGET not in errors and budget is None:
        errors[FIELD_BUDGET] = texts.ERR_BUDGET
    hours_text = raw[FIELD_HOURS].replace(",", "")
    if raw[FIELD_HOURS] and FIELD_HOURS not in errors:
        if not (hours_text.isascii() and hours_text.isdigit()) or not (
            1 <= int(hours_text) <= MAX_HOURS
        ):
            errors[FIELD_HOURS] = texts.ERR_HOURS.format(max=f"{MAX_HOURS:,}")

    dates: dict[str, date] = {}
    for name in (FIELD_START_DATE, FIELD_END_DATE):
        if name in errors:
            continue
        try:
            # Input.Date sends YYYY-MM-DD; refuse the other shapes pydantic would accept.
            dates[name] = _DATE.validate_python(date.fromisoformat(raw[name]))
        except ValueError:
            errors[name] = texts.ERR_DATE
    start, end = dates.get(FIELD_START_DATE), dates.get(FIELD_END_DATE)
    if start is not None and start < earliest_start:
        errors[FIELD_START_DATE] = texts.ERR_START_PAST
    if start is not None and end is not None:
        latest = start + timedelta(days=policy.max_engagement_days)
        if end <= start:
            errors[FIELD_END_DATE] = texts.ERR_END_BEFORE_START
        elif end > latest:
            errors[FIELD_END_DATE] = texts.ERR_TOO_LONG_ENGAGEMENT.format(
                days=policy.max_engagement_days, latest=latest.isoformat()
            )

    if FIELD_TEAM not in errors and raw[FIELD_TEAM] not in allowed_team_ids:
        errors[FIELD_TEAM] = texts.ERR_TEAM_UNKNOWN

    channel_name = raw[FIELD_CHANNEL_NAME]
    if FIELD_CHANNEL_NAME not in errors:
        prefixed = policy.prefixed_channel_name(channel_name)
        if prefixed != channel_name and len(prefixed) > MAX_CHANNEL_NAME:
            errors[FIELD_CHANNEL_NAME] = texts.ERR_CHANNEL_PREFIX_TOO_LONG.format(
                prefix=policy.channel_prefix,
                max=MAX_CHANNEL_NAME - len(policy.channel_prefix),
            )
        else:
            problem = channel_name_error(prefixed)
            if problem:
                errors[FIELD_CHANNEL_NAME] = problem
            channel_name = prefixed

    if errors:
        raise FieldErrors(errors)
    return IntakeForm(
        project_title=raw[FIELD_PROJECT_TITLE],
        description=raw[FIELD_DESCRIPTION],
        justification=raw[FIELD_JUSTIFICATION],
        freelancer_name=raw[FIELD_FREELANCER_NAME],
        freelancer_email=raw[FIELD_FREELANCER_EMAIL].lower(),
        freelancer_org=raw[FIELD_FREELANCER_ORG] or None,
        profile_url=raw[FIELD_PROFILE_URL] or None,
        start_date=dates[FIELD_START_DATE],
        end_date=dates[FIELD_END_DATE],
        data_classification=DataClassification(raw[FIELD_CLASSIFICATION]),
        budget=budget,
        hours=int(hours_text) if raw[FIELD_HOURS] else None,
        team_id=raw[FIELD_TEAM],
        channel_name=channel_name,
    )

"""The intake form: what the card posts, validated with pydantic into one message per field."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, TypeAdapter, ValidationError

from core import texts
from core.channel_names import channel_name_error, suggest_channel_name

# Card input ids; the intake card and the validation share them.
FIELD_PROJECT_TITLE = "project_title"
FIELD_DESCRIPTION = "description"
FIELD_FREELANCER_NAME = "freelancer_name"
FIELD_FREELANCER_EMAIL = "freelancer_email"
FIELD_START_DATE = "start_date"
FIELD_END_DATE = "end_date"
FIELD_TEAM = "team_id"
FIELD_CHANNEL_NAME = "channel_name"
INTAKE_FIELDS = (
    FIELD_PROJECT_TITLE,
    FIELD_DESCRIPTION,
    FIELD_FREELANCER_NAME,
    FIELD_FREELANCER_EMAIL,
    FIELD_START_DATE,
    FIELD_END_DATE,
    FIELD_TEAM,
    FIELD_CHANNEL_NAME,
)

LIMITS: dict[str, tuple[int, int]] = {
    FIELD_PROJECT_TITLE: (3, 100),
    FIELD_DESCRIPTION: (1, 2000),
    FIELD_FREELANCER_NAME: (2, 100),
    FIELD_FREELANCER_EMAIL: (3, 254),
}

# A user east of UTC may legitimately start "today" while it is still yesterday in UTC.
START_DATE_SLACK = timedelta(days=1)


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
    """The form is invalid: one user-facing message per wrong field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class IntakeForm(BaseModel):
    """A valid intake. Build it with `parse_intake`, which explains every wrong field."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid", frozen=True)

    project_title: str
    description: str
    freelancer_name: str
    freelancer_email: EmailStr
    start_date: date
    end_date: date
    team_id: str
    channel_name: str


_EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)
_DATE: TypeAdapter[date] = TypeAdapter(date)


def _as_text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def parse_intake(
    values: dict[str, Any], *, now: datetime, allowed_team_ids: set[str]
) -> IntakeForm:
    """Validate raw card values; raise FieldErrors with one message per wrong field."""
    raw = {name: _as_text(values.get(name)) for name in INTAKE_FIELDS}
    errors: dict[str, str] = {}
    for name, value in raw.items():
        if not value:
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
    if start is not None and start < (now - START_DATE_SLACK).date():
        errors[FIELD_START_DATE] = texts.ERR_START_PAST
    if start is not None and end is not None and end <= start:
        errors[FIELD_END_DATE] = texts.ERR_END_BEFORE_START

    if FIELD_TEAM not in errors and raw[FIELD_TEAM] not in allowed_team_ids:
        errors[FIELD_TEAM] = texts.ERR_TEAM_UNKNOWN

    if FIELD_CHANNEL_NAME not in errors:
        problem = channel_name_error(raw[FIELD_CHANNEL_NAME])
        if problem:
            errors[FIELD_CHANNEL_NAME] = problem

    if errors:
        raise FieldErrors(errors)
    return IntakeForm.model_validate(raw)

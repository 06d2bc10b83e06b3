from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core import texts
from core.intake import FieldErrors, parse_intake

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TEAMS = {"team-1"}


def valid(**overrides: str) -> dict[str, str]:
    values = {
        "project_title": "Website redesign",
        "description": "New landing pages",
        "freelancer_name": "Jane Doe",
        "freelancer_email": "Jane@Example.com",
        "start_date": "2026-12-01",
        "end_date": "2027-02-28",
        "team_id": "team-1",
        "channel_name": "Website redesign",
    }
    values.update(overrides)
    return values


def errors_of(values: dict[str, str]) -> dict[str, str]:
    with pytest.raises(FieldErrors) as caught:
        parse_intake(values, now=NOW, allowed_team_ids=TEAMS)
    return caught.value.errors


def test_valid_form_parses_into_typed_values() -> None:
    form = parse_intake(valid(), now=NOW, allowed_team_ids=TEAMS)
    assert form.start_date == date(2026, 12, 1)
    assert form.end_date == date(2027, 2, 28)
    assert form.team_id == "team-1"


def test_every_missing_field_gets_its_own_required_message() -> None:
    errors = errors_of({})
    assert set(errors) == {
        "project_title",
        "description",
        "freelancer_name",
        "freelancer_email",
        "start_date",
        "end_date",
        "team_id",
        "channel_name",
    }
    assert all(message == texts.ERR_REQUIRED for message in errors.values())


def test_bad_email_is_reported_on_the_email_field_only() -> None:
    assert errors_of(valid(freelancer_email="jane@")) == {"freelancer_email": texts.ERR_EMAIL}


def test_end_date_must_be_after_start_date() -> None:
    errors = errors_of(valid(start_date="2026-12-10", end_date="2026-12-10"))
    assert errors == {"end_date": texts.ERR_END_BEFORE_START}


def test_malformed_date_asks_for_iso_format() -> None:
    assert errors_of(valid(start_date="12/01/2026")) == {"start_date": texts.ERR_DATE}


def test_start_date_in_the_past_is_refused_but_yesterday_in_utc_is_allowed() -> None:
    assert errors_of(valid(start_date="2026-11-01")) == {"start_date": texts.ERR_START_PAST}
    parse_intake(valid(start_date="2026-11-21"), now=NOW, allowed_team_ids=TEAMS)


def test_team_must_be_one_where_the_bot_is_installed() -> None:
    assert errors_of(valid(team_id="other")) == {"team_id": texts.ERR_TEAM_UNKNOWN}


def test_channel_name_with_forbidden_character_is_refused_with_the_character_named() -> None:
    errors = errors_of(valid(channel_name="Web/Design"))
    assert list(errors) == ["channel_name"]
    assert "/" in errors["channel_name"]


def test_overlong_title_says_the_limit() -> None:
    errors = errors_of(valid(project_title="x" * 101))
    assert errors == {"project_title": texts.ERR_TOO_LONG.format(max=100)}


def test_several_wrong_fields_each_get_one_message() -> None:
    errors = errors_of(valid(freelancer_email="nope", channel_name="CON", end_date="2026-01-01"))
    assert set(errors) == {"freelancer_email", "channel_name", "end_date"}


def test_non_string_values_count_as_missing_rather_than_crashing() -> None:
    values: dict[str, object] = dict(valid())
    values["project_title"] = {"nested": "object"}
    with pytest.raises(FieldErrors) as caught:
        parse_intake(values, now=NOW, allowed_team_ids=TEAMS)
    assert caught.value.errors == {"project_title": texts.ERR_REQUIRED}


# --- /request with arguments ------------------------------------------------------------------


def test_request_arguments_prefill_the_email_title_and_a_channel_name() -> None:
    from core.intake import prefill_from_command

    assert prefill_from_command("jane@contoso.com Website redesign") == {
        "freelancer_email": "jane@contoso.com",
        "project_title": "Website redesign",
        "channel_name": "Website redesign",
    }
    # Order does not matter; nothing given, nothing filled.
    assert prefill_from_command("Q3 audit  jane@contoso.com")["project_title"] == "Q3 audit"
    assert prefill_from_command("") == {}
    assert prefill_from_command("Website/redesign") == {
        "project_title": "Website/redesign",
        "channel_name": "Website redesign",
    }


def test_request_arguments_are_bounded_and_lose_control_and_direction_characters() -> None:
    from core.intake import LIMITS, prefill_from_command

    values = prefill_from_command(
        "\u202eevil\u200b@x.com " + "\u0000Title\u202e " + "y" * 10_000 + " \U0001f680"
    )
    assert values["freelancer_email"] == "evil@x.com"
    assert len(values["project_title"]) <= LIMITS["project_title"][1]
    assert values["project_title"].startswith("Title y")
    assert all(ch not in "".join(values.values()) for ch in "\u202e\u200b\u0000")
    long_email = prefill_from_command("a" * 500 + "@x.com")["freelancer_email"]
    assert len(long_email) == LIMITS["freelancer_email"][1]

"""Every rule of the intake form and of the tenant policy it enforces, each with its exact
message (core/intake.py, core/policy.py). Pure functions: nothing here stores or calls."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from core import texts
from core.intake import (
    MAX_FIELD_LENGTH,
    FieldErrors,
    IntakeForm,
    clean_text,
    clean_values,
    parse_budget,
    parse_intake,
)
from core.model import DataClassification
from core.policy import TenantPolicy

TODAY = date(2026, 11, 22)
TEAMS = {"team-1"}
OPEN_POLICY = TenantPolicy(justification_required=False)
DEFAULT_POLICY = TenantPolicy()


def valid(**overrides: str) -> dict[str, str]:
    values = {
        "project_title": "Website redesign",
        "description": "New landing pages",
        "justification": "The campaign needs pages nobody in the team can build",
        "freelancer_name": "Jane Doe",
        "freelancer_email": "Jane@Example.com",
        "freelancer_org": "",
        "profile_url": "",
        "start_date": "2026-12-01",
        "end_date": "2027-02-28",
        "data_classification": "internal",
        "budget": "",
        "hours": "",
        "team_id": "team-1",
        "channel_name": "Website redesign",
    }
    values.update(overrides)
    return values


def parse(values: dict[str, str], policy: TenantPolicy = DEFAULT_POLICY) -> IntakeForm:
    return parse_intake(values, earliest_start=TODAY, allowed_team_ids=TEAMS, policy=policy)


def errors_of(values: dict[str, str], policy: TenantPolicy = DEFAULT_POLICY) -> dict[str, str]:
    with pytest.raises(FieldErrors) as caught:
        parse(values, policy)
    return caught.value.errors


def test_valid_form_parses_into_typed_values() -> None:
    form = parse(
        valid(
            freelancer_org="Fabrikam Studio",
            profile_url="https://www.upwork.com/freelancers/jane",
            data_classification="confidential",
            budget="12,500.50",
            hours="120",
        )
    )
    assert form.freelancer_email == "jane@example.com"
    assert form.start_date == date(2026, 12, 1)
    assert form.freelancer_org == "Fabrikam Studio"
    assert form.profile_url == "https://www.upwork.com/freelancers/jane"
    assert form.data_classification is DataClassification.CONFIDENTIAL
    assert form.budget == Decimal("12500.50")
    assert form.hours == 120


def test_optional_fields_left_empty_are_none() -> None:
    form = parse(valid(justification=""), OPEN_POLICY)
    assert (form.freelancer_org, form.profile_url, form.budget, form.hours) == (
        None,
        None,
        None,
        None,
    )
    assert form.justification == ""


def test_every_missing_required_field_gets_its_own_required_message() -> None:
    required = (
        "project_title",
        "description",
        "freelancer_name",
        "freelancer_email",
        "start_date",
        "end_date",
        "team_id",
        "channel_name",
    )
    errors = errors_of(valid(**dict.fromkeys(required, "")), OPEN_POLICY)
    assert errors == dict.fromkeys(required, texts.ERR_REQUIRED)


def test_classification_must_be_chosen() -> None:
    assert errors_of(valid(data_classification="")) == {"data_classification": texts.ERR_REQUIRED}


def test_unknown_classification_is_refused() -> None:
    assert errors_of(valid(data_classification="secret")) == {
        "data_classification": texts.ERR_CLASSIFICATION
    }


def test_justification_is_required_when_the_policy_says_so() -> None:
    assert errors_of(valid(justification="")) == {
        "justification": texts.ERR_JUSTIFICATION_REQUIRED
    }
    assert parse(valid(justification=""), OPEN_POLICY).justification == ""


def test_a_short_justification_says_the_minimum() -> None:
    assert errors_of(valid(justification="cheap")) == {
        "justification": texts.ERR_TOO_SHORT.format(min=10)
    }


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("project_title", 100),
        ("description", 2000),
        ("justification", 2000),
        ("freelancer_name", 100),
        ("freelancer_org", 200),
    ],
)
def test_overlong_text_says_the_limit(field: str, limit: int) -> None:
    assert errors_of(valid(**{field: "x" * (limit + 1)})) == {
        field: texts.ERR_TOO_LONG.format(max=limit)
    }


def test_bad_email_is_reported_on_the_email_field_only() -> None:
    assert errors_of(valid(freelancer_email="jane@")) == {"freelancer_email": texts.ERR_EMAIL}


@pytest.mark.parametrize(
    "url",
    ["http://upwork.com/jane", "ftp://upwork.com/jane", "javascript:alert(1)", "upwork.com/x"],
)
def test_profile_link_must_be_https(url: str) -> None:
    assert errors_of(valid(profile_url=url)) == {"profile_url": texts.ERR_PROFILE_URL_HTTPS}


@pytest.mark.parametrize(
    "url", ["https://localhost/jane", "https://user:pw@upwork.com/jane", "https:///jane"]
)
def test_profile_link_must_name_a_public_host_without_credentials(url: str) -> None:
    assert errors_of(valid(profile_url=url)) == {"profile_url": texts.ERR_PROFILE_URL}


@pytest.mark.parametrize("budget", ["12,5", "-100", "0", "1e6", "€500", "1.234", "10000000000"])
def test_budget_must_be_a_plain_positive_amount(budget: str) -> None:
    assert errors_of(valid(budget=budget)) == {"budget": texts.ERR_BUDGET}


def test_budget_accepts_thousands_separators() -> None:
    assert parse_budget("12 500") == Decimal("12500")
    assert parse_budget("1,234,567.89") == Decimal("1234567.89")
    assert parse_budget("12'500") == Decimal("12500")


@pytest.mark.parametrize("hours", ["0", "1.5", "-3", "100001", "lots", "١٢"])
def test_hours_must_be_whole_and_in_range(hours: str) -> None:
    assert errors_of(valid(hours=hours)) == {"hours": texts.ERR_HOURS.format(max="100,000")}


def test_end_date_must_be_after_start_date() -> None:
    errors = errors_of(valid(start_date="2026-12-01", end_date="2026-12-01"))
    assert errors == {"end_date": texts.ERR_END_BEFORE_START}


def test_malformed_date_asks_for_iso_format() -> None:
    assert errors_of(valid(start_date="01/12/2026")) == {"start_date": texts.ERR_DATE}


def test_start_date_before_today_in_the_requesters_zone_is_refused() -> None:
    assert errors_of(valid(start_date="2026-11-21")) == {"start_date": texts.ERR_START_PAST}
    assert parse(valid(start_date="2026-11-22")).start_date == TODAY


def test_engagement_longer_than_the_policy_allows_names_the_last_day() -> None:
    policy = TenantPolicy(max_engagement_days=30)
    errors = errors_of(valid(start_date="2026-12-01", end_date="2027-01-01"), policy)
    assert errors == {
        "end_date": texts.ERR_TOO_LONG_ENGAGEMENT.format(days=30, latest="2026-12-31")
    }
    assert parse(valid(start_date="2026-12-01", end_date="2026-12-31"), policy)


def test_team_must_be_one_where_the_bot_is_installed() -> None:
    assert errors_of(valid(team_id="elsewhere")) == {"team_id": texts.ERR_TEAM_UNKNOWN}


def test_channel_name_with_forbidden_character_is_refused_with_the_character_named() -> None:
    errors = errors_of(valid(channel_name="Web/Design"))
    assert errors == {"channel_name": texts.ERR_CHANNEL_CHARS.format(chars="/")}


def test_several_wrong_fields_each_get_one_message() -> None:
    errors = errors_of(valid(freelancer_email="x", end_date="2020-01-01", team_id="nope"))
    assert set(errors) == {"freelancer_email", "end_date", "team_id"}


def test_non_string_values_count_as_missing_rather_than_crashing() -> None:
    values: dict[str, object] = {**valid(), "project_title": ["not", "text"], "hours": 12}
    with pytest.raises(FieldErrors) as caught:
        parse_intake(values, earliest_start=TODAY, allowed_team_ids=TEAMS, policy=TenantPolicy())
    assert caught.value.errors == {"project_title": texts.ERR_REQUIRED}


# --- the tenant policy at intake ----------------------------------------------------------------


def test_blocked_domain_is_refused_and_wins_over_allowed() -> None:
    policy = TenantPolicy(allowed_domains=("example.com",), blocked_domains=("example.com",))
    assert errors_of(valid(), policy) == {
        "freelancer_email": texts.ERR_DOMAIN_BLOCKED.format(domain="example.com")
    }


def test_a_blocked_domain_also_blocks_its_subdomains() -> None:
    policy = TenantPolicy(blocked_domains=("example.com",))
    errors = errors_of(valid(freelancer_email="jane@eu.example.com"), policy)
    assert errors == {"freelancer_email": texts.ERR_DOMAIN_BLOCKED.format(domain="eu.example.com")}
    # ...but not a domain that merely ends in the same letters.
    assert parse(valid(freelancer_email="jane@badexample.com"), policy)


def test_a_domain_outside_the_allow_list_is_refused_with_the_list() -> None:
    policy = TenantPolicy(allowed_domains=("fabrikam.com", "contoso.net"))
    assert errors_of(valid(), policy) == {
        "freelancer_email": texts.ERR_DOMAIN_NOT_ALLOWED.format(
            domain="example.com", domains="fabrikam.com, contoso.net"
        )
    }
    assert parse(valid(freelancer_email="jane@studio.fabrikam.com"), policy)


def test_consumer_domains_are_refused_only_when_the_policy_blocks_them() -> None:
    policy = TenantPolicy(block_consumer_domains=True)
    assert errors_of(valid(freelancer_email="jane@Gmail.com"), policy) == {
        "freelancer_email": texts.ERR_DOMAIN_CONSUMER.format(domain="gmail.com")
    }
    assert parse(valid(freelancer_email="jane@gmail.com"))


def test_the_channel_prefix_is_put_in_front_once() -> None:
    policy = TenantPolicy(channel_prefix="ext-")
    assert parse(valid(channel_name="Website"), policy).channel_name == "ext-Website"
    assert parse(valid(channel_name="EXT-Website"), policy).channel_name == "EXT-Website"


def test_a_name_too_long_for_the_prefix_says_how_long_it_may_be() -> None:
    policy = TenantPolicy(channel_prefix="Freelance - ")
    errors = errors_of(valid(channel_name="x" * 45), policy)
    assert errors == {
        "channel_name": texts.ERR_CHANNEL_PREFIX_TOO_LONG.format(prefix="Freelance - ", max=38)
    }


# --- hostile input -------------------------------------------------------------------------------


def test_control_and_direction_characters_are_dropped_and_rtl_text_and_emoji_kept() -> None:
    text = "\u202eשלום\u0000 عالم\u200b \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2066x\u2069"
    assert clean_text(text) == "שלום عالم \U0001f468\u200d\U0001f469\u200d\U0001f467 x"


def test_line_breaks_survive_only_in_multiline_fields() -> None:
    values = clean_values({"description": "a\r\nb", "project_title": "a\nb", "other": "x"})
    assert values == {"description": "a\nb", "project_title": "a b"}


def test_a_ten_thousand_character_value_is_cut_before_it_is_judged_or_stored() -> None:
    values = clean_values({"description": "y" * 10_000, "freelancer_name": "z" * 10_000})
    assert all(len(v) == MAX_FIELD_LENGTH for v in values.values())
    errors = errors_of(valid(description="y" * 10_000))
    assert errors == {"description": texts.ERR_TOO_LONG.format(max=2000)}


def test_markdown_and_html_are_kept_as_typed_for_the_cards_to_escape() -> None:
    title = "**Big** [deal](https://evil.example) <script>x</script>"
    assert parse(valid(project_title=title[:100])).project_title == title[:100]


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

"""What an admin may type into `/policy set` for each key, and how stored keys become the policy
in force (core/policy.py). The audited command itself is tested end to end."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core import texts
from core.config import ProgramConfig
from core.errors import InvalidInput
from core.model import PolicySetting
from core.policy import (
    PolicyKey,
    TenantPolicy,
    parse_days,
    parse_domains,
    parse_prefix,
    parse_switch,
    policy_from_settings,
    policy_key,
    shown_value,
    unquote,
)

AT = datetime(2026, 11, 26, tzinfo=UTC)


def setting(key: str, value: object) -> PolicySetting:
    return PolicySetting(key, value, "aad-admin", "Ada Admin", AT)


def refusal(call: object, *args: str) -> str:
    assert callable(call)
    with pytest.raises(InvalidInput) as caught:
        call(*args)
    return str(caught.value)


def test_domains_are_lower_cased_deduplicated_and_may_be_written_with_at_or_star() -> None:
    assert parse_domains("Contoso.com, @fabrikam.com;*.eu.example.org contoso.com") == [
        "contoso.com",
        "fabrikam.com",
        "eu.example.org",
    ]
    assert parse_domains("none") == []


@pytest.mark.parametrize("word", ["contoso", "http://contoso.com", "con toso.com/x", "-a.com"])
def test_a_word_that_is_not_a_domain_is_named(word: str) -> None:
    message = refusal(parse_domains, f"fabrikam.com {word}")
    first_bad = word.split()[0].split("/")[0] if " " in word else word
    assert message == texts.POLICY_BAD_DOMAIN.format(word=first_bad)


def test_an_empty_or_huge_domain_list_is_refused() -> None:
    assert refusal(parse_domains, ",") == texts.POLICY_DOMAINS_EMPTY
    many = " ".join(f"d{i}.example.com" for i in range(201))
    assert refusal(parse_domains, many) == texts.POLICY_TOO_MANY_DOMAINS.format(max=200)


def test_switches_take_on_and_off_and_their_synonyms() -> None:
    assert [parse_switch(w) for w in ("on", "TRUE", "yes", "1")] == [True] * 4
    assert [parse_switch(w) for w in ("off", "false", "No", "0")] == [False] * 4
    assert refusal(parse_switch, "maybe") == texts.POLICY_BAD_SWITCH


@pytest.mark.parametrize("raw", ["0", "3651", "-5", "ten", "1.5", "\u0663"])
def test_days_must_be_a_whole_number_in_range(raw: str) -> None:
    assert refusal(parse_days, raw) == texts.POLICY_BAD_DAYS.format(max=3650)


def test_days_in_range_are_taken() -> None:
    assert parse_days("90") == 90
    assert parse_days("3650") == 3650


def test_a_quoted_prefix_keeps_its_spaces_and_none_clears_it() -> None:
    assert parse_prefix('"Ext - "') == "Ext - "
    assert parse_prefix("\u201cExt \u201d") == "Ext "
    assert parse_prefix("none") == ""
    assert unquote("'x'") == "x"


def test_a_prefix_must_be_able_to_start_a_channel_name() -> None:
    assert refusal(parse_prefix, "_ext") == texts.POLICY_BAD_PREFIX.format(
        problem=texts.ERR_CHANNEL_START
    )
    assert refusal(parse_prefix, "ext/") == texts.POLICY_BAD_PREFIX.format(
        problem=texts.ERR_CHANNEL_CHARS.format(chars="/")
    )
    assert refusal(parse_prefix, "x" * 21) == texts.POLICY_PREFIX_TOO_LONG.format(max=20)


def test_an_unknown_key_lists_the_keys() -> None:
    message = refusal(policy_key, "max_days")
    assert message == texts.POLICY_UNKNOWN_KEY.format(
        key="max_days", keys=", ".join(k.value for k in PolicyKey)
    )
    assert policy_key("Max-Engagement-Days") is PolicyKey.MAX_ENGAGEMENT_DAYS


def test_keys_never_set_take_the_deployments_defaults() -> None:
    config = ProgramConfig(max_engagement_days=180, default_approver_id="aad-default")
    policy = policy_from_settings([], config)
    assert policy == TenantPolicy(max_engagement_days=180, default_approver_id="aad-default")
    assert policy.justification_required is True
    assert policy.allowed_domains == () and policy.blocked_domains == ()


def test_stored_keys_override_the_defaults_and_malformed_ones_are_ignored() -> None:
    config = ProgramConfig(max_engagement_days=180)
    policy = policy_from_settings(
        [
            setting("allowed_domains", ["fabrikam.com"]),
            setting("block_consumer_domains", True),
            setting("max_engagement_days", 30),
            setting("channel_prefix", "ext-"),
            setting("justification_required", False),
            setting("default_approver", {"id": "aad-megan", "name": "Megan Bowen"}),
            setting("blocked_domains", "not a list"),  # written by nobody we know
            setting("retired_key", 1),
        ],
        config,
    )
    assert policy == TenantPolicy(
        allowed_domains=("fabrikam.com",),
        block_consumer_domains=True,
        max_engagement_days=30,
        channel_prefix="ext-",
        justification_required=False,
        default_approver_id="aad-megan",
        default_approver_name="Megan Bowen",
    )


def test_policy_values_are_shown_in_words() -> None:
    policy = TenantPolicy(channel_prefix="ext-", default_approver_name="Megan Bowen",
                          default_approver_id="aad-megan")  # fmt: skip
    shown = {key: shown_value(key, policy) for key in PolicyKey}
    assert shown == {
        PolicyKey.ALLOWED_DOMAINS: texts.POLICY_ANY_DOMAIN,
        PolicyKey.BLOCKED_DOMAINS: texts.POLICY_NONE,
        PolicyKey.BLOCK_CONSUMER_DOMAINS: texts.POLICY_OFF,
        PolicyKey.MAX_ENGAGEMENT_DAYS: "365 days",
        PolicyKey.CHANNEL_PREFIX: '"ext-"',
        PolicyKey.JUSTIFICATION_REQUIRED: texts.POLICY_ON,
        PolicyKey.DEFAULT_APPROVER: "Megan Bowen",
        PolicyKey.SECOND_STAGE_GROUP: texts.POLICY_NONE,
        PolicyKey.SECOND_STAGE_DAYS: texts.POLICY_CONFIDENTIAL_ONLY,
    }

"""The /policy card: every key with its value in force, where the value comes from and what the
key does, escaped and bounded like every card."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cards.admin import POLICY_VALUE_MAX, policy_card
from cards.common import adaptive_card
from core import texts
from core.config import ProgramConfig
from core.policy import PolicyKey, PolicyLine, PolicyView, TenantPolicy, shown_value
from tests.unit.test_cards import Walk, check, unescape

Card = dict[str, Any]
Builder = Callable[[], Card]

SET_AT = datetime(2026, 11, 26, 14, 5, tzinfo=UTC)
SET_POLICY = TenantPolicy(
    allowed_domains=("contoso.com", "fabrikam.com"),
    block_consumer_domains=True,
    max_engagement_days=180,
    channel_prefix="Ext - ",
    justification_required=False,
    default_approver_id="aad-megan",
    default_approver_name="Megan Bowen",
)
SET_KEYS = {
    PolicyKey.ALLOWED_DOMAINS,
    PolicyKey.BLOCK_CONSUMER_DOMAINS,
    PolicyKey.MAX_ENGAGEMENT_DAYS,
    PolicyKey.CHANNEL_PREFIX,
    PolicyKey.JUSTIFICATION_REQUIRED,
    PolicyKey.DEFAULT_APPROVER,
}


def default_view() -> PolicyView:
    """A tenant whose admins set nothing: the deployment's defaults."""
    policy = TenantPolicy(max_engagement_days=ProgramConfig().max_engagement_days)
    return PolicyView([PolicyLine(key, shown_value(key, policy), None, None) for key in PolicyKey])


def set_view() -> PolicyView:
    """A tenant whose admin set most keys (blocked_domains is left at its default)."""
    return PolicyView(
        [
            PolicyLine(key, shown_value(key, SET_POLICY), "Ada Admin", SET_AT)
            if key in SET_KEYS
            else PolicyLine(key, shown_value(key, SET_POLICY), None, None)
            for key in PolicyKey
        ]
    )


def entries(card: Card) -> list[Card]:
    return [e for e in card["body"] if e["type"] == "Container"]


def entry_texts(entry: Card) -> tuple[str, str, list[str]]:
    """(key, value, the small lines under them) of one entry, unescaped."""
    key, value, *small = (unescape(b["text"]) for b in Walk(adaptive_card([entry])).text_blocks)
    return key, value, small


def test_the_policy_card_has_its_title_and_intro_then_one_entry_per_key() -> None:
    card = policy_card(default_view())
    walk = check(card)
    title, intro = (unescape(b["text"]) for b in walk.text_blocks[:2])
    assert (title, intro) == (texts.POLICY_TITLE, texts.POLICY_INTRO)
    assert [entry_texts(e)[0] for e in entries(card)] == [key.value for key in PolicyKey]
    assert all(e["separator"] is True for e in entries(card))
    assert not walk.actions and not walk.inputs


def test_each_key_shows_its_value_its_default_source_and_what_it_does() -> None:
    shown = {key: rest for key, *rest in map(entry_texts, entries(policy_card(default_view())))}
    assert shown["allowed_domains"] == [
        texts.POLICY_ANY_DOMAIN,
        [texts.POLICY_SOURCE_DEFAULT, texts.POLICY_KEY_HELP["allowed_domains"]],
    ]
    assert shown["max_engagement_days"][0] == texts.POLICY_DAYS.format(days=365)
    assert shown["justification_required"][0] == texts.POLICY_ON
    for key in PolicyKey:
        assert shown[key.value][1] == [
            texts.POLICY_SOURCE_DEFAULT,
            texts.POLICY_KEY_HELP[key.value],
        ]


def test_a_key_an_admin_set_says_who_set_it_and_when() -> None:
    shown = {key: rest for key, *rest in map(entry_texts, entries(policy_card(set_view())))}
    source = texts.POLICY_SOURCE_SET.format(name="Ada Admin", date="26 Nov 2026")
    assert shown["allowed_domains"] == [
        "contoso.com, fabrikam.com",
        [source, texts.POLICY_KEY_HELP["allowed_domains"]],
    ]
    assert shown["channel_prefix"][0] == '"Ext - "'
    assert shown["default_approver"][0] == "Megan Bowen"
    assert shown["justification_required"][0] == texts.POLICY_OFF
    assert shown["blocked_domains"][1][0] == texts.POLICY_SOURCE_DEFAULT


def test_a_message_is_shown_above_the_keys() -> None:
    message = texts.POLICY_SET_DONE.format(key="max_engagement_days", value="180 days")
    card = policy_card(set_view(), message=message)
    block = check(card).block("message")
    assert unescape(block["text"]) == message
    assert card["body"].index(block) < card["body"].index(entries(card)[0])
    assert "message" not in check(policy_card(set_view())).ids


def test_values_and_names_are_shown_literally_and_bounded() -> None:
    evil = "**x** [a](https://evil.example)\n# h \u202e\x00"
    domains = ", ".join(f"d{n}.example-{'x' * 40}.com" for n in range(200))
    view = PolicyView(
        [
            PolicyLine(PolicyKey.CHANNEL_PREFIX, evil, evil, SET_AT),
            PolicyLine(PolicyKey.ALLOWED_DOMAINS, domains, "  ", SET_AT),
        ]
    )
    card = policy_card(view)
    check(card)
    (_, prefix, prefix_lines), (_, long_value, long_lines) = map(entry_texts, entries(card))
    assert prefix == "**x** [a](https://evil.example)\n# h "
    assert prefix_lines[0].startswith("set by **x** [a](https://evil.example)\n# h")
    assert len(long_value) == POLICY_VALUE_MAX and long_value.endswith("…")
    # An admin without a name is still someone.
    assert long_lines[0] == texts.POLICY_SOURCE_SET.format(name=texts.SOMEONE, date="26 Nov 2026")


# --- builders the official renderer checks too (tests/cards/test_official_renderer.py) -----------

POLICY_CARDS: dict[str, Builder] = {
    "policy/defaults": lambda: policy_card(default_view()),
    "policy/set+message": lambda: policy_card(
        set_view(), message=texts.POLICY_RESET_DONE.format(key="blocked_domains", value="none")
    ),
    "policy/empty": lambda: policy_card(PolicyView([])),
}

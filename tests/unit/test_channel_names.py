from __future__ import annotations

import pytest

from core.channel_names import channel_name_error, suggest_channel_name


@pytest.mark.parametrize(
    "name",
    ["Website redesign", "FC 12 - Logo", "a" * 50, "Q3 launch (EMEA)", "Café ünïcode"],
)
def test_valid_names_are_accepted(name: str) -> None:
    assert channel_name_error(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "a" * 51,
        "web#design",
        "50%",
        "R&D",
        "a*b",
        "{x}",
        "a+b",
        "a/b",
        "a\\b",
        "a:b",
        "<b>",
        "why?",
        "a|b",
        "it's",
        'say "hi"',
        "a,b",
        "a..b",
        "tab\there",
        "bell\x07",
        "c1\x85",
        "forms",
        "CON",
        "com1",
        "LPT9",
        "desktop.ini",
        "my_vti_folder",
        "_hidden",
        ".dot",
        "ends with.",
    ],
)
def test_names_breaking_teams_rules_are_refused(name: str) -> None:
    assert channel_name_error(name) is not None


def test_reserved_words_are_only_refused_as_the_whole_name() -> None:
    assert channel_name_error("Webforms redesign") is None
    assert channel_name_error("Console work") is None


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Website redesign", "Website redesign"),
        ("  _Website: redesign / 2027?.. ", "Website redesign 2027"),
        ("R&D #5", "R D 5"),
        ("x" * 80, "x" * 50),
        ("???", ""),
    ],
)
def test_suggested_names_are_valid_and_derived_from_the_title(title: str, expected: str) -> None:
    suggestion = suggest_channel_name(title)
    assert suggestion == expected
    if suggestion:
        assert channel_name_error(suggestion) is None

"""Regression tests for what the fuzz test (test_fuzz_activities.py) found in the bot's handler,
through the running app: activities the adapter lets through (they are well formed) whose
content made botbuilder or the handler fail, answered with a 5xx or logged as a failed turn or
a failed card action. Each test names the bug and checks the log stays free of errors. The last
two run on PostgreSQL, where the fuzz found what SQLite accepts and PostgreSQL does not.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cards import verbs as V
from core import texts
from tests.e2e.conftest import ALEX, MARKETING, RunningApp
from tests.support.activities import conversation_update_bot_added, invoke_action, message
from tests.support.cards import card_of, card_text, invoke_card
from tests.support.postgres import scratch_database


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def action(app: RunningApp, verb: Any, data: dict[str, Any]) -> dict[str, Any]:
    activity = invoke_action(
        "placeholder",
        data,
        user=ALEX,
        service_url=app.connector.service_url,
        tenant_id=app.tenant_id,
    )
    activity["value"]["action"]["verb"] = verb
    return activity


async def test_invokes_the_bot_does_not_implement_get_400_instead_of_501_or_500(
    running_app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    """botbuilder answered them 501, and failed the turn (500) when their value did not parse
    as the model it expected (a task module request that is a number)."""
    app = running_app
    for name, value in [
        ("task/fetch", {"data": {}}),
        ("task/fetch", 5.5),
        ("composeExtension/query", [1]),
        ("signin/verifyState", None),
        ("", {}),
        ("adaptiveCard/ACTION", {}),
    ]:
        activity = action(app, V.REFRESH, {})
        activity.update(name=name, value=value)
        status, _ = await app.send(activity)
        assert status == 400, name
    assert errors(caplog) == []


async def test_an_action_execute_whose_action_is_not_an_object_gets_400_instead_of_500(
    running_app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    """botbuilder called .get() on it: AttributeError, a failed turn answered 500."""
    app = running_app
    for not_an_object in ["approve", 5, [{"verb": V.APPROVE}], True]:
        activity = action(app, V.REFRESH, {})
        activity["value"]["action"] = not_an_object
        status, _ = await app.send(activity)
        assert status == 400, not_an_object
    assert errors(caplog) == []


async def test_a_verb_that_is_not_a_string_is_an_unknown_action_not_a_failed_one(
    running_app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    """An object or a list as the verb raised TypeError (unhashable) in the verb dispatch: the
    user saw "something went wrong" and the log a traceback."""
    app = running_app
    for verb in [{"verb": V.APPROVE}, [V.APPROVE], 5, None]:
        status, body = await app.send(action(app, verb, {V.ENGAGEMENT_ID: 1}))
        assert status == 200
        assert card_text(invoke_card(body)) == texts.CARD_ACTION_UNKNOWN
    assert errors(caplog) == []


async def test_engagement_ids_with_odd_digits_or_out_of_range_name_no_engagement(
    running_app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    """The id "²" passed str.isdigit() but not int(): ValueError. 10**30 overflowed SQLite's
    integers (anything over 2**31 - 1, PostgreSQL's): each a failed card action, logged with
    its traceback."""
    app = running_app
    for engagement_id in ["²", "１", "٣", 10**30, 2**63, 2**31, "999999999999"]:
        status, body = await app.send(action(app, V.REFRESH, {V.ENGAGEMENT_ID: engagement_id}))
        assert status == 200
        assert card_text(invoke_card(body)) == texts.CARD_ACTION_UNKNOWN, engagement_id
    assert errors(caplog) == []


async def test_conversation_updates_without_channel_data_or_with_unknown_members_do_not_fail(
    running_app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    """botbuilder's Teams dispatch read channelData.team of an update without channelData
    (AttributeError), and looked every added member up at the Bot Connector first: a member it
    does not know, or an empty id, failed the turn."""
    app = running_app
    added = conversation_update_bot_added(
        team=MARKETING, user=ALEX, service_url=app.connector.service_url, tenant_id=app.tenant_id
    )
    without_channel_data = {k: v for k, v in added.items() if k != "channelData"}
    for number, update in enumerate(
        [
            without_channel_data,
            {**added, "membersAdded": [{"id": "29:someone-who-left"}]},
            {**added, "membersAdded": [{"id": ""}, {"name": "no id"}]},
            {**added, "membersAdded": [], "membersRemoved": [{"id": "29:x"}]},
        ]
    ):
        status, _ = await app.send({**update, "id": f"{added['id']}{number}"})
        assert status == 201
    assert errors(caplog) == []
    # The bot being added still records the team, as before.
    assert (await app.send(added))[0] == 201
    teams = await app.components.service.list_teams(app.tenant_id)
    assert [t.aad_group_id for t in teams] == [MARKETING.aad_group_id]


async def test_messages_with_odd_mentions_or_without_recipient_are_answered(
    running_app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    """botbuilder's remove_recipient_mention failed the turn on a message without recipient or
    text, or with a mention entity without type or mentioned user, and used the mention text as
    a regular expression ("<at>a(b</at>": re.error)."""
    app = running_app
    base = message(
        "/help", user=ALEX, service_url=app.connector.service_url, tenant_id=app.tenant_id
    )
    bot_id = base["recipient"]["id"]
    odd: list[dict[str, Any]] = [
        {"entities": [{"type": "mention", "text": "<at>a(b</at>", "mentioned": {"id": bot_id}}]},
        {"entities": [{"type": "mention", "text": "<at>x</at>"}]},
        {"entities": [{"type": None}, {"text": "no type"}]},
        {"entities": [{"type": "mention"}], "text": None},
        {"entities": [{"type": "clientInfo"}], "recipient": None},
    ]
    for number, changes in enumerate(odd):
        before = len(app.connector.activities())
        status, _ = await app.send({**base, **changes, "id": f"{base['id']}{number}"})
        assert status == 201
        replies = app.connector.activities()[before:]
        assert len(replies) == 1 and card_of(replies[0]) is not None  # a card, no apology
    assert errors(caplog) == []
    # The bot's own mention is still removed before the command is read.
    mentioned = message(
        "/help",
        user=ALEX,
        service_url=app.connector.service_url,
        tenant_id=app.tenant_id,
        mention_bot=True,
    )
    await app.send(mentioned)
    assert texts.HELP_TITLE in card_text(card_of(app.connector.activities()[-1]) or {})


@pytest.mark.postgres
class TestOnPostgreSQL:
    @pytest.fixture
    async def settings_overrides(self) -> AsyncIterator[dict[str, Any]]:
        """The running app on a new PostgreSQL database of its own."""
        async with scratch_database("fc_findings") as url:
            yield {"database_url": url}

    async def test_fc_numbers_beyond_postgresql_integers_name_no_engagement(
        self, running_app: RunningApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A command naming FC-2147483648 (any FC number from 2**31 up to 12 digits) failed the
        turn: asyncpg refused the number for the integer id column."""
        app = running_app
        for text in ["/revoke FC-2147483648 gone", "/show FC-999999999999", "/revoke 99999 x"]:
            before = len(app.connector.activities())
            status, _ = await app.send(
                message(
                    text, user=ALEX, service_url=app.connector.service_url, tenant_id=app.tenant_id
                )
            )
            assert status == 201
            replies = app.connector.activities()[before:]
            assert len(replies) == 1 and card_of(replies[0]) is not None, text
        assert errors(caplog) == []

    async def test_a_nul_character_is_refused_before_it_reaches_postgresql(
        self, running_app: RunningApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A user whose name has a NUL character failed every turn: PostgreSQL stores no NUL in
        text, and the turn records how to reach the user."""
        app = running_app
        hello = message(
            "/help", user=ALEX, service_url=app.connector.service_url, tenant_id=app.tenant_id
        )
        hello["from"]["name"] = "Alex\x00"
        status, body = await app.send(hello)
        assert status == 400 and "NUL" in body["error"]["message"]
        assert errors(caplog) == []

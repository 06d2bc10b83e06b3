"""Intake end to end (issue 5): every validation rule and every pre-flight outcome answers with
its exact message while nothing is stored and nothing is written to Graph; the preview and its
Confirm; drafts; the form asked for in a channel goes to the 1:1 chat; time zones.

The app runs in dev mode over HTTP with the Graph simulator, as a Teams client would drive it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web

from app import COMPONENTS, build_app
from cards import verbs as V
from cards.common import plain
from core import audit_actions as A
from core import texts
from core.intake_service import PRIVATE_CHANNEL_LIMIT
from core.model import AuditOutcome, EngagementState, JobKind
from graph.dev_seed import LEE_ID, MEGAN_ID, PAT_GUEST_EMAIL
from tests.e2e.conftest import ALEX, ISAIAH, MARKETING, MEGAN, NESTOR, RunningApp, e2e_settings
from tests.e2e.steps import (
    click,
    confirm_preview,
    intake_values,
    say,
    submit_valid_request,
    texts_to,
)
from tests.e2e.test_failure_paths import approve, ready
from tests.support.activities import TestUser, invoke_action, message
from tests.support.cards import action_data, card_of, card_text, inputs, invoke_card, verbs
from tests.support.connector import ConnectorStandIn

LEE = TestUser(aad_id=LEE_ID, user_id="29:lee", name="Lee Gu")
# POSTs that only read Graph.
GRAPH_READ_POSTS = ("checkMemberGroups", "getMemberGroups", "checkMemberObjects")


@pytest.fixture
async def second_app(
    tmp_path: Path, connector: ConnectorStandIn
) -> AsyncIterator[Callable[[], Awaitable[RunningApp]]]:
    """Starts another instance of the app on the same database (a restart, or a replica)."""
    runners: list[web.AppRunner] = []

    async def start() -> RunningApp:
        app = await build_app(e2e_settings(tmp_path))
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return RunningApp(f"http://127.0.0.1:{port}", http, connector, app[COMPONENTS])

    async with aiohttp.ClientSession() as http:
        yield start
    for runner in runners:
        await runner.cleanup()


@dataclass(frozen=True)
class Effects:
    """What a turn may have changed: our records and Graph."""

    engagements: int
    jobs: int
    audit: list[tuple[str, str]]
    graph_writes: list[str]


async def effects(app: RunningApp) -> Effects:
    async with app.components.storage.transaction() as tx:
        figures = await tx.figures.count_by_state()
        jobs = await tx.figures.count_jobs()
        audit = await tx.audit.newest(engagement_id=None, offset=0, limit=1000)
    writes = [
        f"{r.method} {r.path}"
        for r in app.simulator.requests
        if r.method != "GET" and not r.path.endswith(GRAPH_READ_POSTS)
    ]
    return Effects(
        sum(figures.values()),
        sum(jobs.values()),
        [(r.action, r.outcome.value) for r in audit],
        writes,
    )


def field_errors(card: dict[str, Any]) -> dict[str, str]:
    """The message shown under each field of a re-rendered form, as escaped in the card."""
    return {
        str(node["id"]): str(node.get("errorMessage"))
        for node in inputs(card).values()
        if node.get("errorMessage")
    }


async def submit(app: RunningApp, user: TestUser = ALEX, **overrides: str) -> dict[str, Any]:
    return await click(app, user, V.INTAKE_SUBMIT, intake_values(**overrides))


async def set_policy(app: RunningApp, text: str) -> str:
    """An admin (Nestor) runs /policy set ...; returns the reply's text."""
    return card_text(await say(app, NESTOR, f"/policy set {text}"))


def tomorrow_in_berlin() -> date:
    return datetime.now(ZoneInfo("Europe/Berlin")).date() + timedelta(days=1)


# --- validation rules: exact message, nothing stored, nothing sent to Graph ----------------------

START = tomorrow_in_berlin()
RULES: list[tuple[str, dict[str, str], str, str]] = [
    ("required", {"project_title": ""}, "project_title", texts.ERR_REQUIRED),
    ("too short", {"project_title": "ab"}, "project_title", texts.ERR_TOO_SHORT.format(min=3)),
    (
        "too long",
        {"description": "d" * 2001},
        "description",
        texts.ERR_TOO_LONG.format(max=2000),
    ),
    (
        "justification required by the default policy",
        {"justification": ""},
        "justification",
        texts.ERR_JUSTIFICATION_REQUIRED,
    ),
    ("e-mail", {"freelancer_email": "jane@"}, "freelancer_email", texts.ERR_EMAIL),
    (
        "profile link not https",
        {"profile_url": "http://upwork.com/jane"},
        "profile_url",
        texts.ERR_PROFILE_URL_HTTPS,
    ),
    (
        "profile link without a host",
        {"profile_url": "https://localhost/jane"},
        "profile_url",
        texts.ERR_PROFILE_URL,
    ),
    (
        "classification",
        {"data_classification": "top secret"},
        "data_classification",
        texts.ERR_CLASSIFICATION,
    ),
    ("budget", {"budget": "€12,5"}, "budget", texts.ERR_BUDGET),
    ("hours", {"hours": "1.5"}, "hours", texts.ERR_HOURS.format(max="100,000")),
    ("date format", {"start_date": "12/01/2026"}, "start_date", texts.ERR_DATE),
    (
        "start in the past",
        {"start_date": (START - timedelta(days=2)).isoformat()},
        "start_date",
        texts.ERR_START_PAST,
    ),
    (
        "end before start",
        {"start_date": START.isoformat(), "end_date": START.isoformat()},
        "end_date",
        texts.ERR_END_BEFORE_START,
    ),
    (
        "longer than the policy allows",
        {"start_date": START.isoformat(), "end_date": (START + timedelta(days=366)).isoformat()},
        "end_date",
        texts.ERR_TOO_LONG_ENGAGEMENT.format(
            days=365, latest=(START + timedelta(days=365)).isoformat()
        ),
    ),
    ("team", {"team_id": "not-a-team"}, "team_id", texts.ERR_TEAM_UNKNOWN),
    (
        "channel characters",
        {"channel_name": "Web/Design"},
        "channel_name",
        texts.ERR_CHANNEL_CHARS.format(chars="/"),
    ),
]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [pytest.param(o, f, m, id=name) for name, o, f, m in RULES],
)
async def test_each_form_rule_answers_with_its_message_and_changes_nothing(
    running_app: RunningApp, overrides: dict[str, str], field: str, message: str
) -> None:
    app = running_app
    await ready(app)
    before = await effects(app)

    card = await submit(app, **overrides)

    assert field_errors(card) == {field: plain(message)}
    assert V.INTAKE_CONFIRM not in verbs(card)
    # What the user typed is kept in the form.
    for name, value in overrides.items():
        if name not in ("team_id", "data_classification"):  # choices offer only valid values
            assert inputs(card)[name]["value"] == value[: len(inputs(card)[name]["value"])]
    assert await effects(app) == before


POLICY_RULES: list[tuple[str, list[str], dict[str, str], str, str]] = [
    (
        "blocked domain",
        ["blocked_domains freelance.example"],
        {},
        "freelancer_email",
        texts.ERR_DOMAIN_BLOCKED.format(domain="freelance.example"),
    ),
    (
        "blocked wins over allowed",
        ["allowed_domains freelance.example", "blocked_domains freelance.example"],
        {},
        "freelancer_email",
        texts.ERR_DOMAIN_BLOCKED.format(domain="freelance.example"),
    ),
    (
        "consumer domain",
        ["block_consumer_domains on"],
        {"freelancer_email": "jane@gmail.com"},
        "freelancer_email",
        texts.ERR_DOMAIN_CONSUMER.format(domain="gmail.com"),
    ),
    (
        "outside the allow-list",
        ["allowed_domains fabrikam.com contoso.net"],
        {},
        "freelancer_email",
        texts.ERR_DOMAIN_NOT_ALLOWED.format(
            domain="freelance.example", domains="fabrikam.com, contoso.net"
        ),
    ),
    (
        "maximum length",
        ["max_engagement_days 30"],
        {"start_date": START.isoformat(), "end_date": (START + timedelta(days=31)).isoformat()},
        "end_date",
        texts.ERR_TOO_LONG_ENGAGEMENT.format(
            days=30, latest=(START + timedelta(days=30)).isoformat()
        ),
    ),
    (
        "channel prefix leaves too little room",
        ['channel_prefix "Freelance - "'],
        {"channel_name": "x" * 45},
        "channel_name",
        texts.ERR_CHANNEL_PREFIX_TOO_LONG.format(prefix="Freelance - ", max=38),
    ),
]


@pytest.mark.parametrize(
    ("policy", "overrides", "field", "message"),
    [pytest.param(p, o, f, m, id=name) for name, p, o, f, m in POLICY_RULES],
)
async def test_each_policy_rule_answers_with_its_message_and_changes_nothing(
    running_app: RunningApp,
    policy: list[str],
    overrides: dict[str, str],
    field: str,
    message: str,
) -> None:
    app = running_app
    await ready(app)
    for change in policy:
        reply = await set_policy(app, change)
        assert "applies from the next request" in reply, reply
    before = await effects(app)

    card = await submit(app, **overrides)

    assert field_errors(card) == {field: plain(message)}
    assert await effects(app) == before


async def test_the_channel_prefix_is_applied_to_the_name_shown_and_stored(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    await set_policy(app, 'channel_prefix "Ext - "')
    engagement_id = await submit_valid_request(app, channel_name="Website")
    assert (await app.engagement(engagement_id)).channel_name == "Ext - Website"


async def test_a_policy_change_applies_to_a_preview_confirmed_after_it(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    preview = await submit(app)
    await set_policy(app, "blocked_domains freelance.example")
    before = await effects(app)

    card = await confirm_preview(app, ALEX, preview)

    assert field_errors(card) == {
        "freelancer_email": plain(texts.ERR_DOMAIN_BLOCKED.format(domain="freelance.example"))
    }
    assert await effects(app) == before


# --- pre-flight checks through Graph -------------------------------------------------------------


async def test_a_freelancer_who_is_already_a_guest_is_reused_and_the_preview_says_so(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    before = await effects(app)

    preview = await submit(app, freelancer_email=PAT_GUEST_EMAIL, freelancer_name="Pat Freelance")

    assert texts.PREFLIGHT_GUEST_EXISTS.format(name="Pat Freelance") in card_text(preview)
    assert V.INTAKE_CONFIRM in verbs(preview)
    assert await effects(app) == before


async def test_a_member_of_the_organisation_cannot_be_requested_as_a_freelancer(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    before = await effects(app)

    card = await submit(app, freelancer_email="megan@contoso.com")

    message = texts.ERR_FREELANCER_IS_MEMBER.format(email="megan@contoso.com")
    assert field_errors(card) == {"freelancer_email": plain(message)}
    assert await effects(app) == before


async def test_a_second_request_for_the_same_freelancer_in_the_same_team_names_the_first(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    first = await submit_valid_request(app)
    # Routing, its card and its notice are done before the second request is measured.
    await app.wait_until(lambda: "with Megan Bowen" in texts_to(app, ALEX), what="notice")
    await app.components.worker.run_until_idle()
    before = await effects(app)

    card = await submit(app, channel_name="Another channel", project_title="Second project")

    message = texts.ERR_DUPLICATE_ENGAGEMENT.format(
        name="Jane Doe",
        team=MARKETING.name,
        ref=f"FC-{first}",
        title="Website redesign",
        state=texts.STATE_LABELS["pending_approval"].lower(),
    )
    assert field_errors(card) == {"freelancer_email": plain(message)}
    assert await effects(app) == before


async def test_a_channel_name_taken_in_the_team_is_refused_with_a_free_one_suggested(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    app.simulator.add_channel(MARKETING.aad_group_id, "Website Redesign", owners=[ALEX.aad_id])
    app.simulator.add_channel(MARKETING.aad_group_id, "Website redesign 2", owners=[ALEX.aad_id])
    before = await effects(app)

    card = await submit(app)

    message = texts.ERR_CHANNEL_TAKEN_SUGGEST.format(
        team=MARKETING.name, name="Website redesign", suggestion="Website redesign 3"
    )
    assert field_errors(card) == {"channel_name": plain(message)}
    assert await effects(app) == before
    # The suggestion goes through.
    preview = await submit(app, channel_name="Website redesign 3")
    assert V.INTAKE_CONFIRM in verbs(preview)


async def test_a_team_at_the_private_channel_limit_is_refused(running_app: RunningApp) -> None:
    app = running_app
    await ready(app)
    for n in range(PRIVATE_CHANNEL_LIMIT):
        app.simulator.add_channel(
            MARKETING.aad_group_id, f"Private {n}", membership_type="private", owners=[ALEX.aad_id]
        )
    before = await effects(app)

    card = await submit(app)

    message = texts.ERR_PRIVATE_CHANNEL_LIMIT.format(
        team=MARKETING.name, limit=PRIVATE_CHANNEL_LIMIT
    )
    assert field_errors(card) == {"team_id": plain(message)}
    assert await effects(app) == before


async def test_a_requester_outside_the_team_is_told_to_join_it_first(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    before = await effects(app)

    card = await submit(app, user=LEE)

    message = texts.ERR_NOT_TEAM_MEMBER.format(team=MARKETING.name)
    assert field_errors(card) == {"team_id": plain(message)}
    assert await effects(app) == before


async def test_when_graph_cannot_answer_the_form_is_kept_and_nothing_is_submitted(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    before = await effects(app)
    app.simulator.set_faults(fault_rate=1.0, seed=5)
    try:
        card = await submit(app, project_title="Kept while Graph is down")
    finally:
        app.simulator.set_faults(fault_rate=0.0)

    assert texts.PREFLIGHT_UNAVAILABLE in card_text(card)
    assert inputs(card)["project_title"]["value"] == "Kept while Graph is down"
    assert await effects(app) == before
    # ...and kept as the draft, for the next /request.
    form = await say(app, ALEX, "/request")
    assert inputs(form)["project_title"]["value"] == "Kept while Graph is down"


# --- preview, confirm, drafts --------------------------------------------------------------------


async def test_submit_previews_and_only_confirm_creates_the_engagement(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    before = await effects(app)

    preview = await submit(
        app, freelancer_org="Fabrikam Studio", budget="12,500", hours="120", channel_name=""
    )

    text = card_text(preview)
    assert texts.PREVIEW_TITLE in text and "Fabrikam Studio" in text and "12,500" in text
    # The channel left empty is named after the project.
    assert "Website redesign" in text
    assert set(action_data(preview, V.INTAKE_CONFIRM)) == {V.DRAFT_VERSION}
    assert await effects(app) == before

    card = await confirm_preview(app, ALEX, preview)
    assert "FC-1" in card_text(card)
    engagement = await app.engagement(1)
    assert engagement.freelancer_org == "Fabrikam Studio"
    assert str(engagement.budget) == "12500"
    assert engagement.hours == 120
    assert engagement.channel_name == "Website redesign"
    assert engagement.time_zone == "Europe/Berlin"
    async with app.components.storage.transaction() as tx:
        assert await tx.drafts.get(app.tenant_id, ALEX.aad_id) is None


async def test_edit_reopens_the_form_with_the_values_and_an_old_preview_cannot_be_confirmed(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    first = await submit(app, project_title="First idea")
    form = await click(app, ALEX, V.INTAKE_EDIT, {})
    assert inputs(form)["project_title"]["value"] == "First idea"
    second = await submit(app, project_title="Second idea", channel_name="Second idea")
    before = await effects(app)

    stale = await confirm_preview(app, ALEX, first)

    assert texts.PREVIEW_OUT_OF_DATE in card_text(stale)
    assert "Second idea" in card_text(stale)
    assert await effects(app) == before
    assert "FC-1" in card_text(await confirm_preview(app, ALEX, second))


async def test_a_saved_draft_is_offered_again_by_another_instance_and_cancel_drops_it(
    running_app: RunningApp, second_app: Callable[[], Awaitable[RunningApp]]
) -> None:
    app = running_app
    await ready(app)
    saved = await click(
        app, ALEX, V.INTAKE_SAVE_DRAFT, intake_values(project_title="Half done", budget="900")
    )
    assert texts.DRAFT_SAVED in card_text(saved)

    # A restarted (or another) instance on the same database offers it.
    other = await second_app()
    form = await say(other, ALEX, "/request")
    assert "I kept your unfinished request" in card_text(form)
    assert inputs(form)["project_title"]["value"] == "Half done"
    assert inputs(form)["budget"]["value"] == "900"
    assert V.INTAKE_DISCARD in verbs(form)

    reply = await say(app, ALEX, "/cancel")
    assert card_text(reply) == texts.CANCEL_DONE.format(title="Half done")
    assert card_text(await say(app, ALEX, "/cancel")) == texts.CANCEL_NOTHING
    fresh = await say(app, ALEX, "/request")
    assert inputs(fresh)["project_title"].get("value", "") == ""


async def test_request_arguments_fill_in_over_the_draft(running_app: RunningApp) -> None:
    app = running_app
    await ready(app)
    await click(app, ALEX, V.INTAKE_SAVE_DRAFT, intake_values(project_title="Half done"))
    form = await say(app, ALEX, "/request kim@fabrikam.com")
    assert inputs(form)["freelancer_email"]["value"] == "kim@fabrikam.com"
    assert inputs(form)["project_title"]["value"] == "Half done"


async def test_confirm_of_a_cancelled_request_says_so_and_creates_nothing(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    preview = await submit(app)
    await say(app, ALEX, "/cancel")
    before = await effects(app)

    card = await confirm_preview(app, ALEX, preview)

    assert card_text(card) == texts.DRAFT_GONE
    assert await effects(app) == before


# --- privacy in channels -------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["channel", "groupChat"])
async def test_request_in_a_channel_or_group_chat_sends_the_form_to_the_1_1_chat(
    running_app: RunningApp, where: str
) -> None:
    app = running_app
    await ready(app)
    before = len(app.connector.activities())
    activity = message(
        "/request jane@fabrikam.com Secret project",
        user=ALEX,
        conversation_type=where,  # type: ignore[arg-type]
        team=MARKETING if where == "channel" else None,
        mention_bot=where == "channel",
        service_url=app.connector.service_url,
        tenant_id=app.tenant_id,
    )
    status, _ = await app.send(activity)
    assert status in (200, 201)

    sent = app.connector.activities()[before:]
    public = [a for a in sent if a["conversation"]["id"] == activity["conversation"]["id"]]
    private = app.personal_activities(ALEX)
    assert [card_text(card_of(a)) for a in public] == [texts.FORM_SENT_TO_CHAT]
    form = card_of(private[-1])
    assert texts.INTAKE_TITLE in card_text(form)
    assert inputs(form)["freelancer_email"]["value"] == "jane@fabrikam.com"
    assert all(V.INTAKE_SUBMIT not in verbs(card_of(a)) for a in public)


async def test_request_in_a_channel_from_someone_the_bot_cannot_reach_gets_no_form_there(
    running_app: RunningApp,
) -> None:
    """Isaiah never opened a chat with the bot, and Teams refuses to open one (the app is not
    installed for him): he is told how to get the form, and the form is posted nowhere."""
    app = running_app
    await ready(app)
    app.connector.forbid_conversation(ISAIAH.user_id)
    before = len(app.connector.activities())
    status, _ = await app.send(
        message(
            "/request jane@fabrikam.com Secret project",
            user=ISAIAH,
            conversation_type="channel",
            team=MARKETING,
            mention_bot=True,
            service_url=app.connector.service_url,
            tenant_id=app.tenant_id,
        )
    )
    assert status in (200, 201)
    replies = [card_of(a) for a in app.connector.activities()[before:]]
    assert [card_text(card) for card in replies] == [texts.FORM_NOT_SENT]
    assert not any(V.INTAKE_SUBMIT in verbs(card) for card in replies)
    assert not [c for c in app.connector.conversations if ISAIAH.user_id in c.member_ids]


# --- /policy -------------------------------------------------------------------------------------


async def test_policy_is_shown_and_changed_by_admins_only_and_every_change_is_audited(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    refused = card_text(await say(app, ALEX, "/policy set max_engagement_days 30"))
    assert refused == texts.ADMIN_ONLY.format(command="/policy set")

    shown = card_text(await say(app, NESTOR, "/policy"))
    assert "max_engagement_days" in shown and "365 days" in shown and "default" in shown

    reply = await set_policy(app, "max_engagement_days 30")
    assert texts.POLICY_SET_DONE.format(key="max_engagement_days", value="30 days") in reply
    assert "set by Nestor Wilke" in reply

    bad = card_text(await say(app, NESTOR, "/policy set max_engagement_days forever"))
    assert bad == texts.POLICY_BAD_DAYS.format(max=3650)
    unknown = card_text(await say(app, NESTOR, "/policy set colour blue"))
    assert unknown.startswith('There is no policy key "colour"')

    reset = card_text(await say(app, NESTOR, "/policy reset max_engagement_days"))
    assert texts.POLICY_RESET_DONE.format(key="max_engagement_days", value="365 days") in reset

    audit = (await effects(app)).audit
    changes = [outcome for action, outcome in audit if action == A.POLICY_CHANGED]
    # newest first: reset ok, colour refused, forever refused, 30 ok
    assert changes == ["ok", "refused", "refused", "ok"]
    assert ("command.policy", AuditOutcome.REFUSED.value) in audit


async def test_default_approver_is_looked_up_in_the_directory_and_routes_requests(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    unknown = card_text(await say(app, NESTOR, "/policy set default_approver nobody@contoso.com"))
    assert unknown == texts.POLICY_APPROVER_UNKNOWN.format(who="nobody@contoso.com")
    guest = card_text(await say(app, NESTOR, f"/policy set default_approver {PAT_GUEST_EMAIL}"))
    assert guest == texts.POLICY_APPROVER_GUEST.format(who=PAT_GUEST_EMAIL)
    reply = await set_policy(app, "default_approver megan@contoso.com")
    assert "Megan Bowen" in reply

    # Nestor has no manager: his request goes to the tenant's default approver.
    app.simulator.add_team_member(MARKETING.aad_group_id, NESTOR.aad_id)
    engagement_id = await submit_valid_request(app, NESTOR)
    await app.wait_until(
        lambda: any(V.APPROVE in verbs(card_of(a)) for a in app.personal_activities(MEGAN)),
        what="approval card to Megan",
    )
    engagement = await app.engagement(engagement_id)
    assert engagement.approver_id == MEGAN_ID


# --- time zones ----------------------------------------------------------------------------------


async def test_dates_are_days_in_the_requesters_zone_and_access_ends_at_midnight_there(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    zone = ZoneInfo("Pacific/Kiritimati")  # UTC+14: its today is often UTC's tomorrow
    today_there = datetime.now(zone).date()
    values = intake_values(
        start_date=today_there.isoformat(),
        end_date=(today_there + timedelta(days=10)).isoformat(),
    )
    submit_activity = invoke_action(
        V.INTAKE_SUBMIT, values, user=ALEX, service_url=app.connector.service_url,
        tenant_id=app.tenant_id,
    )  # fmt: skip
    submit_activity["localTimezone"] = "Pacific/Kiritimati"
    status, body = await app.send(submit_activity)
    assert status == 200
    preview = invoke_card(body)
    assert V.INTAKE_CONFIRM in verbs(preview), card_text(preview)
    assert "Pacific/Kiritimati" in card_text(preview)
    card = await confirm_preview(app, ALEX, preview)
    engagement_id = int(card_text(card).split("FC-")[1].split()[0])

    engagement = await app.engagement(engagement_id)
    assert engagement.time_zone == "Pacific/Kiritimati"
    await approve(app, engagement_id)
    await app.wait_for_state(engagement_id, EngagementState.ACTIVE)
    jobs = await app.components.storage.jobs.list_for_engagement(engagement_id)
    (end_job,) = [j for j in jobs if j.kind is JobKind.END_AT_DATE]
    # Midnight after the end date at UTC+14 is 10:00 UTC on the end date itself.
    end_at = datetime.combine(engagement.end_date + timedelta(days=1), time(0), zone)
    assert end_job.run_at == end_at.astimezone(UTC)
    assert end_job.run_at.hour == 10


async def test_an_unknown_time_zone_falls_back_to_the_programs(running_app: RunningApp) -> None:
    app = running_app
    await ready(app)
    activity = invoke_action(
        V.INTAKE_SUBMIT, intake_values(), user=ALEX, service_url=app.connector.service_url,
        tenant_id=app.tenant_id,
    )  # fmt: skip
    activity["localTimezone"] = "../../etc/passwd"
    status, body = await app.send(activity)
    assert status == 200
    card = await confirm_preview(app, ALEX, invoke_card(body))
    assert "FC-1" in card_text(card)
    assert (await app.engagement(1)).time_zone == "UTC"

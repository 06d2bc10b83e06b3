"""The admin commands over real HTTP, against a known program history: who may run them (ADMIN_IDS
and an Entra group in the Graph simulator), what each answers, argument errors, paging, and
the CSV export behind a signed link."""

from __future__ import annotations

import csv
import io
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web

from app import COMPONENTS, build_app
from cards import verbs as V
from core import texts
from core.model import Actor, EngagementState, TeamInstallation
from graph.dev_seed import DEV_TENANT_ID, MEGAN_ID
from storage.tables import audit_log
from tests.e2e.conftest import ALEX, ISAIAH, MARKETING, MEGAN, NESTOR, RunningApp, e2e_settings
from tests.e2e.steps import say
from tests.support.activities import TestUser, invoke_action
from tests.support.admin_dataset import (
    TEAMS,
    Dataset,
    expected_by_state,
    expected_expiring,
    expected_kpis,
    expected_requests,
    make_dataset,
    store,
)
from tests.support.cards import card_text, invoke_card, walk
from tests.support.clock import FakeClock
from tests.support.connector import ConnectorStandIn

S = EngagementState
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ADMIN_GROUP = "5e0c4b1e-9a0d-4c3e-8f61-2f4f0b7a9d10"
COUNT = 120
AUDIT_PER_ENGAGEMENT = 6
ADMIN_ONLY_WORDS = "is for Freelance Connector admins only"


@dataclass
class AdminRig:
    app: RunningApp
    clock: FakeClock
    dataset: Dataset

    async def say(self, user: TestUser, text: str, **kwargs: Any) -> dict[str, Any]:
        return await say(self.app, user, text, **kwargs)

    async def click(self, user: TestUser, data: dict[str, Any]) -> dict[str, Any]:
        status, body = await self.app.send(
            invoke_action(
                V.LIST_PAGE,
                data,
                user=user,
                service_url=self.app.connector.service_url,
                tenant_id=self.app.tenant_id,
            )
        )
        assert status == 200, body
        return invoke_card(body)

    async def audit(self, actor_id: str) -> list[tuple[str, str, str]]:
        """(action, outcome, detail) of the actor's audit records, oldest first."""
        async with self.app.components.storage.engine.connect() as connection:
            rows = await connection.execute(
                sa.select(audit_log.c.action, audit_log.c.outcome, audit_log.c.detail)
                .where(audit_log.c.actor_id == actor_id)
                .order_by(audit_log.c.id)
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]


@pytest.fixture
async def rig(tmp_path: Path, connector: ConnectorStandIn) -> AsyncIterator[AdminRig]:
    clock = FakeClock(NOW)
    # Export links point at PUBLIC_BASE_URL, so the port is chosen before the app starts.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = e2e_settings(
        tmp_path,
        admin_group_id=ADMIN_GROUP,
        admin_group_cache_s=300,
        public_base_url=f"http://127.0.0.1:{port}",
    )
    app = await build_app(settings, clock=clock)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    components = app[COMPONENTS]
    assert components.simulator is not None
    components.simulator.add_group(ADMIN_GROUP, "Freelance admins", [MEGAN_ID])
    dataset = make_dataset(COUNT, now=NOW, tenant_id=DEV_TENANT_ID)
    await store(components.storage, dataset, audit_per_engagement=AUDIT_PER_ENGAGEMENT)
    async with components.storage.transaction() as tx:
        for team_id, name in TEAMS:
            await tx.conversations.save_team(
                TeamInstallation(f"19:{team_id}@thread", team_id, name, DEV_TENANT_ID, "", {})
            )
        await tx.commit()
    async with aiohttp.ClientSession() as http:
        running = RunningApp(f"http://127.0.0.1:{port}", http, connector, components)
        yield AdminRig(running, clock, dataset)
    await runner.cleanup()


def refs(card: dict[str, Any]) -> list[int]:
    """The engagement ids a list card shows, in order (each row starts with its ref)."""
    found = []
    for node in walk(card):
        if node.get("type") == "TextBlock":
            match = re.fullmatch(r"FC-(\d+)", str(node.get("text", "")))
            if match:
                found.append(int(match.group(1)))
    return found


def page_data(card: dict[str, Any], title: str) -> dict[str, Any] | None:
    for node in walk(card):
        if node.get("type") == "Action.Execute" and node.get("title") == title:
            data: dict[str, Any] = node["data"]
            return data
    return None


# --- who may -----------------------------------------------------------------------------------

ADMIN_COMMANDS = (
    "/pending",
    "/requests",
    "/requests bogus",
    "/expiring 99999",
    "/audit last 0",
    "/active",
    "/expiring",
    "/extend FC-5 2031-01-01",
    "/audit",
    "/report",
    "/export",
    "/retry FC-3",
)


async def test_every_admin_command_is_refused_to_others_audited_and_changes_nothing(
    rig: AdminRig,
) -> None:
    before = await rig.app.engagement(5)
    for command in ADMIN_COMMANDS:
        card = await rig.say(ALEX, command)
        assert ADMIN_ONLY_WORDS in card_text(card), command
        assert "FC-" not in card_text(card).replace("FC-5", "").replace("FC-3", "")
    assert await rig.app.engagement(5) == before
    refused = [(a, o) for a, o, _ in await rig.audit(ALEX.aad_id)]
    for command in ADMIN_COMMANDS:
        name = command.split()[0].lstrip("/")
        assert (f"command.{name}", "refused") in refused, command


async def test_admins_are_admin_ids_plus_the_entra_group_remembered_for_a_while(
    rig: AdminRig,
) -> None:
    expected = expected_requests(rig.dataset, None)[:10]
    assert refs(await rig.say(NESTOR, "/requests")) == expected  # ADMIN_IDS
    assert refs(await rig.say(MEGAN, "/requests")) == expected  # the group
    assert ADMIN_ONLY_WORDS in card_text(await rig.say(ISAIAH, "/requests"))

    simulator = rig.app.simulator
    simulator.remove_group_member(ADMIN_GROUP, MEGAN_ID)
    rig.clock.advance(60)  # within ADMIN_GROUP_CACHE_S: still the remembered answer
    assert refs(await rig.say(MEGAN, "/requests")) == expected
    rig.clock.advance(300)
    assert ADMIN_ONLY_WORDS in card_text(await rig.say(MEGAN, "/requests"))
    checks = [r for r in simulator.answered(200) if r.path.endswith("/checkMemberGroups")]
    assert len(checks) == 3  # Megan twice (before and after the cache), Isaiah once


async def test_graph_down_for_the_group_check_says_so_and_shows_nothing(rig: AdminRig) -> None:
    rig.app.simulator.inject_fault("POST", "/users/*/checkMemberGroups", 503, times=5)
    card = await rig.say(MEGAN, "/report")
    assert card_text(card) == texts.ADMIN_CHECK_UNAVAILABLE
    # ADMIN_IDS need no Graph call.
    assert texts.REPORT_TITLE in card_text(await rig.say(NESTOR, "/report"))


async def test_help_lists_admin_commands_for_admins_only(rig: AdminRig) -> None:
    admin_help = card_text(await rig.say(NESTOR, "/help"))
    user_help = card_text(await rig.say(ALEX, "/help"))
    for usage in ("/requests [STATE] [PAGE]", "/report", "/export", "/audit [FC-12 | last N]"):
        assert usage in admin_help
        assert usage not in user_help
    assert "/show FC-12" in admin_help and "/show FC-12" in user_help


async def test_unknown_commands_suggest_the_closest_one_the_caller_may_use(
    rig: AdminRig,
) -> None:
    assert "Did you mean /requests?" in card_text(await rig.say(NESTOR, "/reqeusts failed"))
    assert "Did you mean /request?" in card_text(await rig.say(ALEX, "/reqeusts failed"))
    assert "Did you mean /report?" not in card_text(await rig.say(ALEX, "/reprot"))
    assert "Did you mean /status?" in card_text(await rig.say(ALEX, "statsu"))
    assert card_text(await rig.say(ALEX, "/zzz")) == texts.UNKNOWN_COMMAND.format(text="/zzz")


async def test_admin_commands_in_a_channel_answer_in_private_only(rig: AdminRig) -> None:
    card = await rig.say(NESTOR, "/requests", conversation_type="channel", team=MARKETING)
    assert card_text(card) == texts.COMMAND_PERSONAL_ONLY.format(command="/requests")
    assert refs(card) == []


# --- lists -------------------------------------------------------------------------------------


async def test_requests_pages_forward_and_back_through_the_dataset(rig: AdminRig) -> None:
    expected = expected_requests(rig.dataset, None)
    first = await rig.say(NESTOR, "/requests")
    assert refs(first) == expected[:10]
    assert page_data(first, texts.LIST_PREVIOUS) is None
    next_data = page_data(first, texts.LIST_NEXT)
    assert next_data == {"command": "/requests", "args": "", "page": 2}
    second = await rig.click(NESTOR, next_data)
    assert refs(second) == expected[10:20]
    previous = page_data(second, texts.LIST_PREVIOUS)
    assert previous is not None
    assert refs(await rig.click(NESTOR, previous)) == expected[:10]
    # A page number typed after the command.
    assert refs(await rig.say(NESTOR, "/requests 3")) == expected[20:30]


async def test_requests_of_a_state_and_its_last_page(rig: AdminRig) -> None:
    failed = expected_requests(rig.dataset, {S.PROVISIONING_FAILED, S.OFFBOARDING_FAILED})
    assert 0 < len(failed) <= 10
    card = await rig.say(NESTOR, "/requests failed")
    assert refs(card) == failed
    assert page_data(card, texts.LIST_NEXT) is None
    active = expected_requests(rig.dataset, {S.ACTIVE})
    pages = -(-len(active) // 10)
    last = await rig.say(NESTOR, f"/requests active {pages}")
    assert refs(last) == active[(pages - 1) * 10 :]
    assert page_data(last, texts.LIST_NEXT) is None
    assert (
        refs(await rig.say(NESTOR, "/requests pending_approval"))
        == expected_requests(rig.dataset, {S.PENDING_APPROVAL})[:10]
    )


async def test_requests_argument_errors_say_what_is_wrong(rig: AdminRig) -> None:
    unknown = card_text(await rig.say(NESTOR, "/requests bogus"))
    assert unknown.startswith("'bogus' is not a state I know. Use one of:")
    assert "pending" in unknown and "failed" in unknown
    usage = card_text(await rig.say(NESTOR, "/requests active failed"))
    assert usage.startswith("Usage: /requests [STATE] [PAGE]")
    assert card_text(await rig.say(NESTOR, "/requests 0")) == texts.PAGE_INVALID.format(max=1000)


async def test_active_lists_one_team_by_name(rig: AdminRig) -> None:
    team_id, team_name = TEAMS[1]
    expected = [
        e.id
        for e in reversed(rig.dataset.engagements)
        if e.state is S.ACTIVE and e.team_id == team_id
    ]
    card = await rig.say(NESTOR, "/active research")
    assert texts.ACTIVE_TITLE_TEAM.format(team=team_name) in card_text(card)
    assert refs(card) == expected[:10]
    all_active = expected_requests(rig.dataset, {S.ACTIVE})
    assert refs(await rig.say(NESTOR, "/active")) == all_active[:10]
    unknown = card_text(await rig.say(NESTOR, "/active Finance"))
    assert unknown == texts.TEAM_UNKNOWN.format(
        team="Finance", teams="Contoso Marketing, Research, Sales EMEA"
    )
    ambiguous = card_text(await rig.say(NESTOR, "/active e"))
    assert ambiguous.startswith("Several teams match 'e'")


async def test_expiring_lists_soonest_first_within_the_days(rig: AdminRig) -> None:
    card = await rig.say(NESTOR, "/expiring 10")
    assert refs(card) == expected_expiring(rig.dataset, 10)[:10]
    default = await rig.say(NESTOR, "/expiring")
    assert refs(default) == expected_expiring(rig.dataset, 30)[:10]
    assert card_text(await rig.say(NESTOR, "/expiring soon")).startswith("Usage: /expiring")
    assert card_text(await rig.say(NESTOR, "/expiring 99999")) == (
        texts.EXPIRING_DAYS_INVALID.format(max=3650)
    )


# --- one engagement ----------------------------------------------------------------------------


async def test_show_gives_the_timeline_to_the_requester_and_admins_only(rig: AdminRig) -> None:
    engagement = rig.dataset.engagements[6]
    requester = TestUser(engagement.requester_id, "29:requester-7", engagement.requester_name)
    for viewer in (requester, NESTOR):
        text = card_text(await rig.say(viewer, "/show FC-7"))
        assert "Project 7" in text
        for n in range(AUDIT_PER_ENGAGEMENT):
            assert f"record {n} of 7" in text
        assert text.index("record 0 of 7") < text.index("record 5 of 7")  # oldest first
    outsider = card_text(await rig.say(ALEX, "/show FC-7"))
    assert outsider == texts.ENGAGEMENT_NOT_FOUND.format(ref="FC-7")
    assert card_text(await rig.say(ALEX, "/show FC-99999")) == outsider.replace("7", "99999")
    assert ("command.show", "refused", "not involved") in await rig.audit(ALEX.aad_id)
    assert card_text(await rig.say(ALEX, "/show")).startswith("Usage: /show FC-12")


async def test_extend_moves_an_active_engagements_end_and_tells_the_people_involved(
    rig: AdminRig,
) -> None:
    engagement = next(e for e in rig.dataset.engagements if e.state is S.ACTIVE)
    ref, new_end = engagement.ref, engagement.end_date + timedelta(days=14)
    reply = card_text(await rig.say(NESTOR, f"/extend {ref} {new_end.isoformat()}"))
    assert reply == texts.EXTENDED_BY_ADMIN_REPLY.format(
        ref=ref,
        end=new_end.isoformat(),
        previous=engagement.end_date.isoformat(),
        requester=engagement.requester_name,
    )
    assert engagement.id is not None
    stored = await rig.app.engagement(engagement.id)
    assert stored.end_date == new_end
    assert any(
        a == "lifecycle.extended_by_admin" and new_end.isoformat() in d
        for a, _, d in await rig.audit(NESTOR.aad_id)
    )
    jobs = await rig.app.components.storage.jobs.list_for_engagement(engagement.id)
    told = {
        job.payload.get("user_id")
        for job in jobs
        if job.payload.get("notice") == "extended_by_admin"
    }
    assert told == {engagement.requester_id, engagement.approver_id}
    # Not later than the current end, not active, or not a date: refused, nothing changes.
    earlier = card_text(await rig.say(NESTOR, f"/extend {ref} {engagement.end_date}"))
    assert earlier == texts.EXTENSION_NOT_LATER.format(end=new_end.isoformat())
    ended = next(e for e in rig.dataset.engagements if e.state is S.ENDED)
    assert card_text(await rig.say(NESTOR, f"/extend {ended.ref} 2031-01-01")) == (
        texts.NOT_ACTIVE.format(ref=ended.ref, state=texts.STATE_LABELS["ended"])
    )
    assert card_text(await rig.say(NESTOR, f"/extend {ref}")).startswith("Usage: /extend")
    assert card_text(await rig.say(NESTOR, f"/extend {ref} soon")) == (
        texts.EXTENSION_DATE_REQUIRED
    )
    assert (await rig.app.engagement(engagement.id)).end_date == new_end


# --- audit log and report ------------------------------------------------------------------


async def test_audit_shows_the_last_records_or_one_engagement(rig: AdminRig) -> None:
    # First, so the newest records are the dataset's (admin commands audit themselves).
    last3 = await rig.say(NESTOR, "/audit last 3")
    shown = card_text(last3)
    assert f"record 5 of {COUNT}" in shown and f"record 3 of {COUNT}" in shown
    assert f"record 2 of {COUNT}" not in shown
    assert page_data(last3, texts.LIST_NEXT) is None
    last15 = await rig.say(NESTOR, "/audit last 15")
    next_data = page_data(last15, texts.LIST_NEXT)
    assert next_data == {"command": "/audit", "args": "last 15", "page": 2}
    second_card = await rig.click(NESTOR, next_data)
    assert page_data(second_card, texts.LIST_NEXT) is None
    second = card_text(second_card)
    # Pages count back from the newest record when they are shown: by now the two /audit
    # commands are the newest, then FC-120's six records, FC-119's six and FC-118's. Page 2
    # is the 11th to 15th of those, and there is no page 3.
    for n in (3, 2, 1, 0):
        assert f"record {n} of {COUNT - 1}" in second
    assert f"record 5 of {COUNT - 2}" in second and f"record 4 of {COUNT - 2}" not in second
    text = card_text(await rig.say(NESTOR, "/audit FC-9"))
    positions = [text.index(f"record {n} of 9") for n in range(AUDIT_PER_ENGAGEMENT)]
    assert positions == sorted(positions, reverse=True)  # newest first
    assert card_text(await rig.say(NESTOR, "/audit last 0")) == (
        texts.AUDIT_LAST_INVALID.format(max=500)
    )
    assert card_text(await rig.say(NESTOR, "/audit yesterday")).startswith("Usage: /audit")


async def test_report_shows_the_kpis_of_the_dataset(rig: AdminRig) -> None:
    card = await rig.say(NESTOR, "/report")
    text = card_text(card)
    kpis = expected_kpis(rig.dataset, 90)
    by_state = expected_by_state(rig.dataset)
    for state in S:
        assert texts.STATE_LABELS[state.value] in text
    assert str(sum(by_state.values())) in text
    assert f"({kpis['rejected']} of {kpis['decisions']})" in text
    for team, freelancers in kpis["active_by_team"].items():  # type: ignore[attr-defined]
        assert f"{team}: {freelancers}" in text or team in text
    report = await rig.app.components.admin.report(Actor(NESTOR.aad_id, NESTOR.name))
    assert report.by_state == by_state
    assert report.decisions == kpis["decisions"]
    assert report.rejected == kpis["rejected"]
    assert report.ending_soon == kpis["ending_30"]
    assert report.waiting_long == kpis["waiting_48h"]
    assert dict(report.active_by_team) == kpis["active_by_team"]
    assert report.median_to_decision is not None
    assert report.median_to_decision.total_seconds() == pytest.approx(
        kpis["median_decision_s"], abs=0.01
    )


# --- export ------------------------------------------------------------------------------------


def export_links(card: dict[str, Any]) -> dict[str, str]:
    return {
        node["title"]: node["url"] for node in walk(card) if node.get("type") == "Action.OpenUrl"
    }


async def download(rig: AdminRig, url: str) -> tuple[int, str, dict[str, str]]:
    async with rig.app.http.get(url) as response:
        body = await response.read()
        return response.status, body.decode("utf-8"), dict(response.headers)


async def test_report_and_export_refuse_arguments_they_do_not_take(rig: AdminRig) -> None:
    assert card_text(await rig.say(NESTOR, "/report now")) == texts.COMMAND_USAGE.format(
        usage="/report", description=texts.CMD_REPORT_HELP
    )
    assert card_text(await rig.say(NESTOR, "/export everything")) == texts.COMMAND_USAGE.format(
        usage=texts.CMD_EXPORT_USAGE, description=texts.CMD_EXPORT_HELP
    )
    assert ("command.export", "ok", "engagements link issued") not in await rig.audit(
        NESTOR.aad_id
    )


async def test_export_gives_signed_links_to_csv_files(rig: AdminRig) -> None:
    card = await rig.say(NESTOR, "/export")
    links = export_links(card)
    assert set(links) == {texts.EXPORT_ENGAGEMENTS, texts.EXPORT_AUDIT}
    status, body, headers = await download(rig, links[texts.EXPORT_ENGAGEMENTS])
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"
    assert (
        'attachment; filename="freelance-connector-engagements-' in headers["Content-Disposition"]
    )
    assert body.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    assert [row["ref"] for row in rows] == [f"FC-{i}" for i in range(1, COUNT + 1)]
    assert rows[6]["project_title"] == "Project 7"
    assert rows[6]["state"] == rig.dataset.engagements[6].state.value

    status, body, _ = await download(rig, links[texts.EXPORT_AUDIT])
    assert status == 200
    audit_rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    dataset_rows = [r for r in audit_rows if r["detail"].startswith("record ")]
    assert len(dataset_rows) == COUNT * AUDIT_PER_ENGAGEMENT
    ids = [int(r["id"]) for r in audit_rows]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert any(
        r["action"] == "command.export" and r["detail"] == "engagements download"
        for r in audit_rows
    )


async def test_export_cells_cannot_become_spreadsheet_formulas(rig: AdminRig) -> None:
    async with rig.app.components.storage.transaction() as tx:
        engagement = await tx.engagements.get(3)
        assert engagement is not None
        engagement.project_title = '=HYPERLINK("http://evil.example","x")'
        engagement.freelancer_name = "+1 555 0100"
        await tx.engagements.update(engagement)
        await tx.commit()
    links = export_links(await rig.say(NESTOR, "/export engagements"))
    assert list(links) == [texts.EXPORT_ENGAGEMENTS]
    _, body, _ = await download(rig, links[texts.EXPORT_ENGAGEMENTS])
    row = next(r for r in csv.DictReader(io.StringIO(body.lstrip("\ufeff"))) if r["ref"] == "FC-3")
    assert row["project_title"] == '\'=HYPERLINK("http://evil.example","x")'
    assert row["freelancer_name"] == "'+1 555 0100"


async def test_export_links_refuse_forgery_expiry_and_former_admins(rig: AdminRig) -> None:
    url = export_links(await rig.say(MEGAN, "/export audit"))[texts.EXPORT_AUDIT]
    token = url.rsplit("/", 1)[1]
    payload, signature = token.split(".")
    forged = url.replace(token, payload + "." + signature[::-1])
    status, body, _ = await download(rig, forged)
    assert (status, body) == (401, texts.EXPORT_LINK_INVALID)
    status, body, _ = await download(rig, url.rsplit("/", 1)[0] + "/not-a-token")
    assert (status, body) == (401, texts.EXPORT_LINK_INVALID)

    rig.app.simulator.remove_group_member(ADMIN_GROUP, MEGAN_ID)
    rig.clock.advance(6 * 60)  # past the admin cache, within the link's 15 minutes
    status, body, _ = await download(rig, url)
    assert (status, body) == (403, texts.EXPORT_FORBIDDEN)
    assert ("command.export", "refused", "not admin; audit download") in await rig.audit(MEGAN_ID)

    nestor_url = export_links(await rig.say(NESTOR, "/export audit"))[texts.EXPORT_AUDIT]
    rig.clock.advance(15 * 60)
    status, body, _ = await download(rig, nestor_url)
    assert (status, body) == (401, texts.EXPORT_LINK_EXPIRED)


async def test_paging_buttons_check_rights_and_refuse_tampered_data(rig: AdminRig) -> None:
    card = await rig.say(NESTOR, "/requests")
    next_data = page_data(card, texts.LIST_NEXT)
    assert next_data is not None
    refused = card_text(await rig.click(ALEX, next_data))
    assert ADMIN_ONLY_WORDS in refused
    for tampered in (
        {**next_data, "page": "2"},
        {**next_data, "page": True},
        {**next_data, "command": "/report"},
        {**next_data, "command": "/nope"},
        {**next_data, "args": 5},
    ):
        assert card_text(await rig.click(NESTOR, tampered)) == texts.CARD_ACTION_UNKNOWN
    assert card_text(await rig.click(NESTOR, {**next_data, "page": 10**9})) == (
        texts.PAGE_INVALID.format(max=1000)
    )
    assert card_text(await rig.click(NESTOR, {**next_data, "args": "bogus"})).startswith(
        "'bogus' is not a state I know"
    )

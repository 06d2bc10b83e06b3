"""Observability of the running app: GET /metrics (Prometheus text, read back with Prometheus'
own parser) counts the end-to-end scenario's turns, jobs, Graph calls (a 429 included),
refused tenants and stored engagements; JSON log lines carry one correlation id per turn and
per job run."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

from bot.http import MetricsAccess
from cards import verbs as V
from core.log_context import log_handler
from core.model import EngagementState
from graph.dev_seed import DEV_TENANT_ID
from tests.e2e.conftest import ALEX, MEGAN, RunningApp
from tests.e2e.steps import click, install_in_team, install_personal, submit_valid_request
from tests.support.activities import message
from tests.support.cards import card_of, verbs

METRICS_TOKEN = "metrics-token-for-tests-0123456789abcdef"
OTHER_TENANT = "99999999-0000-0000-0000-000000000099"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "metrics_token": METRICS_TOKEN,
        "allowed_tenant_ids": frozenset({DEV_TENANT_ID}),
        # The 429 below asks for a 1 s wait; keep the rest of the retries quick.
        "job_retry_base_s": 0.05,
    }


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Everything logged (DEBUG and up, any library) as the app writes it in production."""
    stream = io.StringIO()
    handler = log_handler(json_lines=True, stream=stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


async def scrape(app: RunningApp, token: str | None = METRICS_TOKEN) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with app.http.get(f"{app.url}/metrics", headers=headers) as response:
        return response.status, await response.text()


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def provision_one(app: RunningApp) -> int:
    await install_personal(app, ALEX)
    await install_personal(app, MEGAN)
    await install_in_team(app, ALEX)
    engagement_id = await submit_valid_request(app)
    await app.connector.wait_for_activity(lambda a: V.APPROVE in verbs(card_of(a)), timeout=10)
    await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    await app.wait_for_state(engagement_id, EngagementState.ACTIVE)
    return engagement_id


async def test_metrics_count_the_scenario_turns_jobs_graph_calls_and_engagements(
    running_app: RunningApp,
) -> None:
    app = running_app
    # Graph throttles the invitation once: the provisioning job retries after Retry-After.
    app.simulator.inject_fault("POST", "/invitations", 429, retry_after=1)
    await provision_one(app)
    hello = message(
        "/help", user=ALEX, service_url=app.connector.service_url, tenant_id=DEV_TENANT_ID
    )
    assert (await app.send(hello))[0] in (200, 201)
    assert (await app.send(dict(hello)))[0] in (200, 201)  # Teams re-delivers it
    stranger = message(
        "/help", user=ALEX, service_url=app.connector.service_url, tenant_id=OTHER_TENANT
    )
    assert (await app.send(stranger))[0] == 403

    status, text = await scrape(app)
    assert status == 200
    samples = parse(text)

    turns = "fc_turns_total"
    assert value(samples, turns, type="installationUpdate", outcome="ok") == 3
    assert value(samples, turns, type="conversationUpdate", outcome="ok") == 1
    assert value(samples, turns, type="invoke", outcome="ok") == 3  # submit, confirm, approve
    assert value(samples, turns, type="message", outcome="ok") == 1
    assert value(samples, turns, type="message", outcome="redelivered") == 1
    assert value(samples, "fc_turn_duration_seconds_count", type="invoke") == 3
    assert value(samples, "fc_refused_activities_total", reason="tenant") == 1
    assert value(samples, "fc_http_responses_total", route="/api/messages", status="403") == 1

    assert value(samples, "fc_job_runs_total", kind="provision", outcome="retry") >= 1
    assert value(samples, "fc_job_runs_total", kind="provision", outcome="succeeded") >= 1
    assert value(samples, "fc_job_duration_seconds_count", kind="provision") >= 2
    assert value(samples, "fc_jobs", kind="provision", state="succeeded") >= 1

    graph = "fc_graph_requests_total"
    assert value(samples, graph, method="POST", endpoint="/invitations", status="429") == 1
    assert value(samples, graph, method="POST", endpoint="/invitations", status="201") == 1
    assert value(samples, graph, method="POST", endpoint="/teams/{id}/channels", status="201") == 1
    assert all("@" not in dict(labels).get("endpoint", "") for _name, labels in samples)
    assert (
        value(
            samples,
            "fc_graph_request_duration_seconds_count",
            method="POST",
            endpoint="/invitations",
        )
        == 2
    )

    assert value(samples, "fc_engagements", state="active") == 1
    assert value(samples, "fc_engagements", state="pending_approval") == 0


async def test_metrics_need_the_configured_bearer_token(running_app: RunningApp) -> None:
    assert (await scrape(running_app, token=None))[0] == 401
    assert (await scrape(running_app, token="wrong-token"))[0] == 401
    status, text = await scrape(running_app)
    assert status == 200 and "# TYPE fc_turns_total counter" in text


def test_metrics_are_served_without_a_token_in_dev_mode_only() -> None:
    request = make_mocked_request("GET", "/metrics")
    assert MetricsAccess("", open_without_token=True).admits(request)
    assert not MetricsAccess("", open_without_token=False).admits(request)
    assert not MetricsAccess(METRICS_TOKEN).admits(request)
    bearer = make_mocked_request(
        "GET", "/metrics", headers={"Authorization": f"bearer {METRICS_TOKEN}"}
    )
    assert MetricsAccess(METRICS_TOKEN).admits(bearer)


async def test_log_lines_carry_one_correlation_id_per_turn_and_per_job_run(
    running_app: RunningApp, json_log: io.StringIO
) -> None:
    app = running_app
    await provision_one(app)
    entries = [json.loads(line) for line in json_log.getvalue().splitlines()]

    turn_lines = [e for e in entries if e["logger"] == "bot.handler" and "turn:" in e["message"]]
    # Three installs and the team's conversationUpdate, the submit, its confirm and the approval.
    assert len(turn_lines) == 7
    turn_ids = [e["correlation_id"] for e in turn_lines]
    assert len(set(turn_ids)) == 7 and all(i.startswith("turn-") for i in turn_ids)

    job_lines = [
        e for e in entries if e["logger"] == "jobs.worker" and "succeeded" in e["message"]
    ]
    assert {e["job_kind"] for e in job_lines} >= {"route_approval", "provision"}
    job_ids = {e["correlation_id"] for e in job_lines}
    assert len(job_ids) == len(job_lines) and all(i.startswith("job-") for i in job_ids)
    assert not job_ids & set(turn_ids)
    for line in job_lines:
        assert f"job {line['job_id']} " in line["message"]

    # Whatever else was logged inside a job run (Graph calls, the connector) has its id.
    by_id: dict[str, set[str]] = {}
    for entry in entries:
        if "correlation_id" in entry:
            by_id.setdefault(entry["correlation_id"], set()).add(entry["logger"])
    provision = next(e for e in job_lines if e["job_kind"] == "provision")
    assert len(by_id[provision["correlation_id"]]) >= 2, by_id[provision["correlation_id"]]

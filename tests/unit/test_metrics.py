"""The metrics registry renders what Prometheus' own parser reads back, with the right numbers;
label values stay bounded whatever the input."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.metrics import (
    Metrics,
    Registry,
    activity_type_label,
    graph_endpoint,
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_counters_and_gauges_render_as_prometheus_text_with_escaped_labels() -> None:
    registry = Registry()
    turns = registry.counter("fc_turns_total", "Turns.", ("type", "outcome"))
    depth = registry.gauge("fc_depth", "Depth.", ("kind",))
    turns.inc("message", "ok")
    turns.inc("message", "ok")
    turns.inc('in"voke\\x\n', "error", amount=3)
    depth.set(7, "provision")

    parsed = samples(registry.render())

    assert parsed[("fc_turns_total", (("outcome", "ok"), ("type", "message")))] == 2
    assert parsed[("fc_turns_total", (("outcome", "error"), ("type", 'in"voke\\x\n')))] == 3
    assert parsed[("fc_depth", (("kind", "provision"),))] == 7


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    registry = Registry()
    latency = registry.histogram("fc_latency_seconds", "Latency.", ("op",), buckets=(0.1, 1.0))
    for value in (0.05, 0.5, 0.5, 3.0):
        latency.observe(value, "get")

    parsed = samples(registry.render())

    def bucket(le: str) -> float:
        return parsed[("fc_latency_seconds_bucket", (("le", le), ("op", "get")))]

    assert (bucket("0.1"), bucket("1.0"), bucket("+Inf")) == (1, 3, 4)
    assert parsed[("fc_latency_seconds_count", (("op", "get"),))] == 4
    assert parsed[("fc_latency_seconds_sum", (("op", "get"),))] == pytest.approx(4.05)


def test_gauge_replace_drops_series_that_are_gone() -> None:
    registry = Registry()
    states = registry.gauge("fc_engagements", "By state.", ("state",))
    states.replace([(("active",), 2), (("pending_approval",), 1)])
    states.replace([(("active",), 3)])
    text = registry.render()
    assert 'fc_engagements{state="active"} 3' in text
    assert "pending_approval" not in text


def test_a_metric_refuses_wrong_labels_negative_increments_and_duplicate_names() -> None:
    registry = Registry()
    counter = registry.counter("fc_x_total", "X.", ("a",))
    with pytest.raises(ValueError, match="takes labels"):
        counter.inc("one", "two")
    with pytest.raises(ValueError, match="only goes up"):
        counter.inc("one", amount=-1)
    with pytest.raises(ValueError, match="twice"):
        registry.counter("fc_x_total", "Again.")
    with pytest.raises(ValueError, match="invalid"):
        registry.counter("fc x", "Bad name.")


async def test_collectors_run_before_each_rendering() -> None:
    metrics = Metrics()
    seen = []

    async def collect() -> None:
        seen.append(1)
        metrics.engagements.replace([(("active",), float(len(seen)))])

    metrics.registry.add_collector(collect)
    first = samples(await metrics.render())
    second = samples(await metrics.render())
    assert first[("fc_engagements", (("state", "active"),))] == 1
    assert second[("fc_engagements", (("state", "active"),))] == 2


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/invitations", "/invitations"),
        (
            "/teams/0f7e2b1c-aaaa-bbbb-cccc-1234567890ab/channels/19:x@thread.tacv2/members",
            "/teams/{id}/channels/{id}/members",
        ),
        ("/users/jane_doe#EXT#@contoso.onmicrosoft.com", "/users/{id}"),
        ("/users/alex/checkMemberGroups", "/users/{id}/checkMemberGroups"),
        ("/groups/g-1/members/$ref", "/groups/{id}/members/$ref"),
        ("/users/abc/sponsors/$ref", "/users/{id}/sponsors/$ref"),
        ("/teams/t/channels/c/messages", "/teams/{id}/channels/{id}/messages"),
    ],
)
def test_graph_paths_become_templates_without_ids(path: str, template: str) -> None:
    assert graph_endpoint(path) == template


def test_unknown_activity_types_are_folded_into_other() -> None:
    assert activity_type_label("message") == "message"
    assert activity_type_label("invoke") == "invoke"
    assert activity_type_label("x" * 10_000) == "other"
    assert activity_type_label(42) == "other"
    assert activity_type_label(None) == "other"

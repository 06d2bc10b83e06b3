"""The app's counters, histograms and gauges, rendered for `GET /metrics` in Prometheus' text
exposition format (version 0.0.4). Pure Python: no client library, nothing but core.

The bot, the worker and the Graph client record into one `Metrics`; gauges that describe
stored data (engagements by state, jobs by kind and state) are filled by collectors that run
when the endpoint is scraped. Label values come from bounded sets only (activity types are
folded to a known list, Graph paths to templates), so a hostile caller cannot grow the series.
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. Turns answer in milliseconds; Graph calls and jobs take up to tens of seconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

LabelValues = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


class _Metric(abc.ABC):
    kind = ""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str]) -> None:
        if not _NAME.match(name) or not all(_LABEL.match(label) for label in label_names):
            raise ValueError(f"invalid metric or label name in {name}{tuple(label_names)}")
        self.name = name
        self.help = help_text
        self.label_names = tuple(label_names)

    def _key(self, values: Sequence[str]) -> LabelValues:
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {tuple(values)}")
        return tuple(str(v) for v in values)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {_escape(self.help)}", f"# TYPE {self.name} {self.kind}"]

    @abc.abstractmethod
    def lines(self) -> list[str]:
        """The metric's sample lines in the exposition format."""


class _SingleValueMetric(_Metric):
    """One number per combination of label values (counters and gauges)."""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, label_names)
        self._values: dict[LabelValues, float] = {}

    def value(self, *label_values: str) -> float:
        return self._values.get(self._key(label_values), 0.0)

    def lines(self) -> list[str]:
        return [
            f"{self.name}{_labels(self.label_names, key)} {_number(value)}"
            for key, value in sorted(self._values.items())
        ]


class Counter(_SingleValueMetric):
    """A count that only goes up (per label values)."""

    kind = "counter"

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(label_values)
        self._values[key] = self._values.get(key, 0.0) + amount


class Gauge(_SingleValueMetric):
    """A value read at scrape time; `replace` sets all series at once, so states that have
    emptied show 0 or disappear instead of keeping an old number."""

    kind = "gauge"

    def set(self, value: float, *label_values: str) -> None:
        self._values[self._key(label_values)] = value

    def replace(self, values: Iterable[tuple[LabelValues, float]]) -> None:
        self._values = {self._key(key): value for key, value in values}


@dataclass
class _Series:
    counts: list[int]  # per bucket, not cumulative
    total: float = 0.0
    count: int = 0


class Histogram(_Metric):
    """Observations counted into cumulative `le` buckets, with their sum and count."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        label_names: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, label_names)
        if "le" in self.label_names:
            raise ValueError("'le' is the bucket label")
        self.buckets = tuple(sorted(buckets))
        self._series: dict[LabelValues, _Series] = {}

    def observe(self, value: float, *label_values: str) -> None:
        key = self._key(label_values)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series([0] * len(self.buckets))
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                series.counts[index] += 1
                break
        series.total += value
        series.count += 1

    def count(self, *label_values: str) -> int:
        series = self._series.get(self._key(label_values))
        return series.count if series is not None else 0

    def lines(self) -> list[str]:
        out: list[str] = []
        names = (*self.label_names, "le")
        for key, series in sorted(self._series.items()):
            running = 0
            for bound, in_bucket in zip(self.buckets, series.counts, strict=True):
                running += in_bucket
                le = repr(float(bound))  # "1.0", as Prometheus' own clients write it
                out.append(f"{self.name}_bucket{_labels(names, (*key, le))} {running}")
            out.append(f"{self.name}_bucket{_labels(names, (*key, '+Inf'))} {series.count}")
            out.append(f"{self.name}_sum{_labels(self.label_names, key)} {series.total!r}")
            out.append(f"{self.name}_count{_labels(self.label_names, key)} {series.count}")
        return out


Collector = Callable[[], Awaitable[None]]


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._collectors: list[Collector] = []

    def _add(self, metric: _Metric) -> None:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} is registered twice")
        self._metrics[metric.name] = metric

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        metric = Counter(name, help_text, labels)
        self._add(metric)
        return metric

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        metric = Gauge(name, help_text, labels)
        self._add(metric)
        return metric

    def histogram(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        metric = Histogram(name, help_text, labels, buckets)
        self._add(metric)
        return metric

    def add_collector(self, collect: Collector) -> None:
        """`collect` runs before each rendering (it sets gauges from stored data)."""
        self._collectors.append(collect)

    async def collect(self) -> None:
        for collect in self._collectors:
            await collect()

    def render(self) -> str:
        out: list[str] = []
        for metric in self._metrics.values():
            out.extend(metric.header())
            out.extend(metric.lines())
        return "\n".join(out) + "\n"


# Activity types Teams sends; anything else is counted as "other".
ACTIVITY_TYPES = frozenset(
    {
        "message",
        "invoke",
        "conversationUpdate",
        "installationUpdate",
        "messageReaction",
        "messageUpdate",
        "messageDelete",
        "event",
        "typing",
        "endOfConversation",
    }
)


def activity_type_label(activity_type: object) -> str:
    return (
        activity_type
        if isinstance(activity_type, str) and activity_type in ACTIVITY_TYPES
        else "other"
    )


# A path segment that names a collection, a navigation property or an action ("teams",
# "members", "$ref", "microsoft.graph.checkMemberGroups"); ids, e-mail addresses, thread ids
# and GUIDs are not.
_PROPERTY = re.compile(r"^(\$[a-z]+|[a-zA-Z][a-zA-Z.]*)$")


def graph_endpoint(api_path: str) -> str:
    """`/teams/1234-.../channels/19:x@thread.tacv2/members` -> `/teams/{id}/channels/{id}/members`.

    Graph paths alternate a collection and a key; a key position keeps its text only for
    `$ref` and namespaced actions, and a segment that is not a plain word is always a key."""
    segments = [s for s in api_path.split("?")[0].split("/") if s]
    out: list[str] = []
    for index, segment in enumerate(segments):
        word = bool(_PROPERTY.match(segment))
        keeps = word and (index % 2 == 0 or segment.startswith("$") or "." in segment)
        out.append(segment if keeps else "{id}")
    return "/" + "/".join(out)


class Metrics:
    """Every instrument of the app, in one registry."""

    def __init__(self) -> None:
        registry = self.registry = Registry()
        self.http_responses = registry.counter(
            "fc_http_responses_total",
            "HTTP responses of the bot's endpoints, by route and status.",
            ("route", "status"),
        )
        self.turns = registry.counter(
            "fc_turns_total",
            "Turns (inbound activities that reached the bot), by activity type and outcome "
            "(ok, error, redelivered).",
            ("type", "outcome"),
        )
        self.turn_seconds = registry.histogram(
            "fc_turn_duration_seconds", "Time to handle one turn, by activity type.", ("type",)
        )
        self.refused_activities = registry.counter(
            "fc_refused_activities_total",
            "Activities refused before any handler ran, by reason (tenant: not served).",
            ("reason",),
        )
        self.job_runs = registry.counter(
            "fc_job_runs_total",
            "Job runs, by kind and outcome (succeeded, retry, failed, lease_lost, released).",
            ("kind", "outcome"),
        )
        self.job_seconds = registry.histogram(
            "fc_job_duration_seconds", "Time one job run took, by kind.", ("kind",)
        )
        self.graph_requests = registry.counter(
            "fc_graph_requests_total",
            "Microsoft Graph requests, by method, endpoint template and HTTP status "
            "(429: throttled; 'error': no response).",
            ("method", "endpoint", "status"),
        )
        self.graph_seconds = registry.histogram(
            "fc_graph_request_duration_seconds",
            "Microsoft Graph request latency, by method and endpoint template.",
            ("method", "endpoint"),
        )
        self.engagements = registry.gauge(
            "fc_engagements", "Engagements by state (read at scrape time).", ("state",)
        )
        self.jobs = registry.gauge(
            "fc_jobs",
            "Jobs in the job table by kind and state (read at scrape time).",
            ("kind", "state"),
        )

    async def render(self) -> str:
        await self.registry.collect()
        return self.registry.render()

"""Cards of the admin commands: paged lists of engagements and of audit records, one
engagement's timeline (/show), the program report (/report), the export links (/export) and
the tenant's intake policy (/policy).

Paged lists end in Previous / Next buttons (`verbs.LIST_PAGE`) that carry the command, its
arguments and the page to show; the handler runs the command again, checking the admin's
rights as for a typed one. Names, titles and details from users or the directory are clipped
(`clip`) and shown escaped (`plain`, through text_block and fact_set). A card with many long
rows is built again with shorter excerpts until it fits in a Teams message (`CARD_BUDGET`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cards import verbs
from cards.common import CARD_BUDGET as CARD_BUDGET
from cards.common import (
    MESSAGE_MAX,
    REASON_MAX,
    SHORT_MAX,
    Card,
    adaptive_card,
    clip,
    date_range,
    fact_set,
    fitted,
    format_date,
    heading,
    state_label,
    summary_facts,
    text_block,
    title_block,
)
from cards.common import card_size as card_size
from cards.engagement import outcome_line
from core import texts
from core.admin import Page, ProgramReport, Timeline
from core.audit_actions import COMMAND_PREFIX
from core.model import AuditOutcome, AuditRecord, Engagement, EngagementState, engagement_ref
from core.policy import PolicyLine, PolicyView

# CARD_BUDGET and card_size (re-exported above) moved to cards.common: every card fits them now.
TITLE_MAX = 300  # a list's title (the bot's, which may name a team)
ARGS_MAX = 500  # a list command's arguments, carried by Previous / Next
REPORT_TEAMS_MAX = 15  # teams listed by name in the report; the rest are counted
REPORT_NAME_MAX = 80  # a team's name in the report
# A policy value as shown: a domain list may be long (200 domains); shorter if the card would
# not fit otherwise.
POLICY_VALUE_MAX = 1000
POLICY_VALUE_STEPS = (POLICY_VALUE_MAX, 300, 100)
PREVIOUS_ID = "admin.page.previous"
NEXT_ID = "admin.page.next"
FAILED_STATES = frozenset(
    {EngagementState.PROVISIONING_FAILED, EngagementState.OFFBOARDING_FAILED}
)
_OUTCOME_TEXTS = {
    AuditOutcome.REFUSED: texts.AUDIT_REFUSED,
    AuditOutcome.FAILED: texts.AUDIT_FAILED,
}


@dataclass(frozen=True)
class Excerpts:
    """How much of each user-supplied text a card shows: names, titles and actions in a row,
    a record's detail (0: none), and the names and titles in the timeline's summary."""

    text: int
    detail: int
    summary: int = SHORT_MAX


# Tried in order until the card fits CARD_BUDGET; the first is what a normal card shows.
EXCERPTS = (
    Excerpts(120, 200),
    Excerpts(60, 100),
    Excerpts(30, 40, summary=100),
    Excerpts(16, 0, summary=40),
)
# An engagement's names and titles, shortened in the timeline's summary of a card too big.
_NAMES = (
    "project_title",
    "requester_name",
    "freelancer_name",
    "freelancer_email",
    "team_name",
    "channel_name",
    "approver_name",
    "decided_by_name",
    "ended_by_name",
)
_REASONS = ("decision_reason", "end_reason", "failure_reason")


# --- the cards ---------------------------------------------------------------------------------


def engagement_page_card(
    title: str,
    page: Page[Engagement],
    *,
    command: str,
    args: str,
    empty_text: str,
    today: date,
) -> Card:
    """A page of an admin list of engagements (/requests, /active, /expiring): one compact row
    each (ref, project, freelancer and team, status, dates or how soon an active one ends),
    the page number, and Previous / Next while there are such pages."""

    def build(excerpts: Excerpts) -> Card:
        body = [title_block(clip(title, TITLE_MAX))]
        if not page.items:
            body.append(text_block(clip(empty_text, MESSAGE_MAX)))
        body.extend(_engagement_row(item, today, excerpts) for item in page.items)
        body.extend(_page_line(page))
        return adaptive_card(body, actions=_page_actions(page, command, args))

    return _fitted(build)


def audit_page_card(
    title: str,
    page: Page[AuditRecord],
    *,
    command: str,
    args: str,
    empty_text: str,
) -> Card:
    """A page of the audit log (/audit): one row per record (time in UTC, the engagement, the
    action, who, refusals and failures marked, the detail), the page number and Previous /
    Next while there are such pages."""

    def build(excerpts: Excerpts) -> Card:
        body = [title_block(clip(title, TITLE_MAX))]
        if not page.items:
            body.append(text_block(clip(empty_text, MESSAGE_MAX)))
        body.extend(_audit_row(record, excerpts, with_ref=True) for record in page.items)
        body.extend(_page_line(page))
        return adaptive_card(body, actions=_page_actions(page, command, args))

    return _fitted(build)


def timeline_card(timeline: Timeline) -> Card:
    """/show FC-12: the engagement's summary and its audit records, oldest first (the newest
    ones; how many earlier ones there are is said at the end)."""

    def build(excerpts: Excerpts) -> Card:
        engagement = _shortened(timeline.engagement, excerpts.summary)
        body: list[Card] = [
            title_block(heading(engagement)),
            summary_facts(engagement, approver=True),
        ]
        if engagement.state in FAILED_STATES and engagement.failure_reason:
            reason = clip(engagement.failure_reason, REASON_MAX)
            body.append(fact_set([(texts.FACT_REASON, reason)]))
        outcome = outcome_line(engagement)
        if outcome:
            body.append(text_block(outcome, subtle=True))
        body.append(text_block(texts.TIMELINE_TITLE, weight="bolder", spacing="medium"))
        if not timeline.records:
            body.append(text_block(texts.AUDIT_EMPTY))
        body.extend(_audit_row(record, excerpts, with_ref=False) for record in timeline.records)
        if timeline.earlier > 0:
            earlier = texts.TIMELINE_EARLIER.format(count=timeline.earlier, ref=engagement.ref)
            body.append(text_block(earlier, subtle=True, spacing="medium"))
        return adaptive_card(body)

    return _fitted(build)


def report_card(report: ProgramReport) -> Card:
    """/report: engagements by state, the medians and the rejection rate of the report's
    window, what ends soon and waits long, and active freelancers by team."""
    by_state = [
        (texts.STATE_LABELS[state.value], str(report.by_state.get(state, 0)))
        for state in EngagementState
    ]
    by_state.append((texts.REPORT_TOTAL, str(report.total)))
    figures = [
        (
            texts.REPORT_MEDIAN_DECISION,
            _median(report.median_to_decision, texts.REPORT_MEDIAN_DECIDED, report.decisions),
        ),
        (
            texts.REPORT_MEDIAN_PROVISIONED,
            _median(
                report.median_to_provisioned, texts.REPORT_MEDIAN_SET_UP, report.provisionings
            ),
        ),
        (texts.REPORT_REJECTION_RATE, _rate(report)),
        (texts.REPORT_ENDING.format(days=report.ending_days), str(report.ending_soon)),
        (texts.REPORT_WAITING.format(hours=report.waiting_hours), str(report.waiting_long)),
    ]
    body: list[Card] = [
        title_block(texts.REPORT_TITLE),
        text_block(
            texts.REPORT_GENERATED.format(
                at=utc_time(report.generated_at), days=report.window_days
            ),
            subtle=True,
        ),
        _section(texts.REPORT_BY_STATE),
        fact_set(by_state),
        _section(texts.REPORT_FIGURES),
        fact_set(figures),
        _section(texts.REPORT_ACTIVE_BY_TEAM),
    ]
    teams = sorted(report.active_by_team, key=lambda team: (-team[1], team[0].casefold()))
    if not teams:
        body.append(text_block(texts.REPORT_NONE_ACTIVE))
    else:
        body.append(
            fact_set(
                (clip(name, REPORT_NAME_MAX) or texts.REPORT_UNNAMED_TEAM, str(count))
                for name, count in teams[:REPORT_TEAMS_MAX]
            )
        )
    more = len(teams) - REPORT_TEAMS_MAX
    if more > 0:
        text = texts.REPORT_MORE_TEAM if more == 1 else texts.REPORT_MORE_TEAMS.format(count=more)
        body.append(text_block(text, subtle=True, spacing="none"))
    return adaptive_card(body)


def export_card(links: Sequence[tuple[str, str]], *, expires_at: datetime) -> Card:
    """/export: one download button per (title, url); the links work until `expires_at`."""
    body = [
        title_block(texts.EXPORT_TITLE),
        text_block(texts.EXPORT_BODY.format(expires=utc_time(expires_at))),
    ]
    actions: list[Card] = [
        {"type": "Action.OpenUrl", "title": clip(title, SHORT_MAX), "url": url}
        for title, url in links
        if title.strip() and url
    ]
    return adaptive_card(body, actions=actions)


def policy_card(view: PolicyView, *, message: str | None = None) -> Card:
    """/policy: every key of the tenant's intake policy with its value in force, where the
    value comes from (the default, or who set it and when) and what the key does. `message`
    (what /policy set or reset changed) is shown above the keys."""

    def build(value_max: int) -> Card:
        body = [title_block(texts.POLICY_TITLE), text_block(texts.POLICY_INTRO)]
        if message:
            body.append(
                text_block(clip(message, MESSAGE_MAX), weight="bolder", element_id="message")
            )
        body.extend(_policy_line(line, value_max) for line in view.lines)
        return adaptive_card(body)

    return fitted(build, POLICY_VALUE_STEPS)


# --- values ------------------------------------------------------------------------------------


def utc_time(value: datetime) -> str:
    """2026-11-26 14:05, in UTC (a naive datetime is taken to be UTC already)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M")


_DAY = 86_400
_HOUR = 3_600
_MINUTE = 60
# The two units a duration is shown in, largest first: (unit, its text, the next smaller one).
_UNITS = (
    (_DAY, texts.DURATION_DAYS, _HOUR, texts.DURATION_HOURS),
    (_HOUR, texts.DURATION_HOURS, _MINUTE, texts.DURATION_MINUTES),
    (_MINUTE, texts.DURATION_MINUTES, 1, texts.DURATION_SECONDS),
)


def duration(value: timedelta) -> str:
    """A duration in its two largest units, rounded to the smaller: "2 d 4 h", "3 h 20 min",
    "5 min 30 s", "45 s" (the smaller left out when it is 0: "2 d")."""
    seconds = max(0, round(value.total_seconds()))
    for unit, unit_text, smaller, smaller_text in _UNITS:
        rounded = round(seconds / smaller) * smaller
        if rounded >= unit:
            count, rest = divmod(rounded, unit)
            shown = unit_text.format(count=count)
            if rest:
                shown += " " + smaller_text.format(count=rest // smaller)
            return shown
    return texts.DURATION_SECONDS.format(count=seconds)


def percent(rate: float) -> str:
    """0.125 -> 12.5%, 1/3 -> 33.3%, 1.0 -> 100%."""
    return texts.REPORT_PERCENT.format(value=f"{round(rate * 100, 1):g}")


def action_label(action: str, limit: int = SHORT_MAX) -> str:
    """The readable label of an audited action; "command.requests" reads "/requests command";
    an action without a label shows its name."""
    label = texts.AUDIT_ACTION_LABELS.get(action)
    if label is not None:
        return label
    if action.startswith(COMMAND_PREFIX) and action != COMMAND_PREFIX:
        command = clip(action.removeprefix(COMMAND_PREFIX), limit)
        return texts.AUDIT_COMMAND_LABEL.format(command=command)
    return clip(action, limit)


def ends_text(engagement: Engagement, today: date) -> str:
    """For an active engagement, how soon it ends; for the others, their dates."""
    if engagement.state is not EngagementState.ACTIVE:
        return date_range(engagement)
    days = (engagement.end_date - today).days
    end = format_date(engagement.end_date)
    if days < 0:
        return texts.ROW_ENDS_OVERDUE.format(date=end)
    if days == 0:
        return texts.ROW_ENDS_TODAY.format(date=end)
    if days == 1:
        return texts.ROW_ENDS_TOMORROW.format(date=end)
    return texts.ROW_ENDS_IN_DAYS.format(days=days, date=end)


# --- parts -------------------------------------------------------------------------------------


def _engagement_row(engagement: Engagement, today: date, excerpts: Excerpts) -> Card:
    people = texts.ROW_PEOPLE.format(
        freelancer=clip(engagement.freelancer_name, excerpts.text),
        team=clip(engagement.team_name, excerpts.text),
    )
    failed = engagement.state in FAILED_STATES
    return _row(
        [text_block(engagement.ref, weight="bolder")],
        [
            text_block(clip(engagement.project_title, excerpts.text)),
            _small(people),
            _small(ends_text(engagement, today)),
        ],
        [text_block(state_label(engagement), color="attention" if failed else None)],
    )


def _audit_row(record: AuditRecord, excerpts: Excerpts, *, with_ref: bool) -> Card:
    action = action_label(record.action, excerpts.text)
    outcome = _OUTCOME_TEXTS.get(record.outcome)
    if outcome is not None:
        action = texts.AUDIT_ROW_OUTCOME.format(action=action, outcome=outcome)
    values = {
        "time": utc_time(record.at),
        "actor": clip(record.actor_name.strip(), excerpts.text) or texts.SOMEONE,
    }
    if with_ref and record.engagement_id is not None:
        meta = texts.AUDIT_ROW_META_REF.format(ref=engagement_ref(record.engagement_id), **values)
    else:
        meta = texts.AUDIT_ROW_META.format(**values)
    items = [
        text_block(action, weight="bolder", color=None if outcome is None else "attention"),
        _small(meta),
    ]
    detail = clip(record.detail.strip(), excerpts.detail) if excerpts.detail else ""
    if detail:
        items.append(text_block(detail, size="small", spacing="none"))
    return {"type": "Container", "separator": True, "items": items}


def _row(left: list[Card], middle: list[Card], right: list[Card]) -> Card:
    return {
        "type": "ColumnSet",
        "separator": True,
        "columns": [
            {"type": "Column", "width": "auto", "items": left},
            {"type": "Column", "width": "stretch", "items": middle},
            {"type": "Column", "width": "auto", "items": right},
        ],
    }


def _shortened(engagement: Engagement, limit: int) -> Engagement:
    """A copy of `engagement` whose names and titles are at most `limit` characters long (its
    reasons twice that), for the summary of a card that would be too big otherwise."""
    if limit >= SHORT_MAX:
        return engagement
    changes: dict[str, Any] = {}
    for name, most in [(name, limit) for name in _NAMES] + [(r, 2 * limit) for r in _REASONS]:
        value = getattr(engagement, name)
        if value:
            changes[name] = clip(value, most)
    return replace(engagement, **changes)


def _policy_line(line: PolicyLine, value_max: int) -> Card:
    # The key as admins type it in /policy set, on a line of its own (a FactSet would break the
    # long key names in its narrow title column), then its value.
    value = clip(line.value, value_max) or texts.POLICY_NONE
    items = [
        text_block(line.key.value, weight="bolder"),
        text_block(value, spacing="none"),
        _small(policy_source(line)),
    ]
    help_text = texts.POLICY_KEY_HELP.get(line.key.value)
    if help_text:
        items.append(_small(help_text))
    return {"type": "Container", "separator": True, "items": items}


def policy_source(line: PolicyLine) -> str:
    """ "default", or "set by Ada Admin on 3 Mar 2025" (a key is set only with who and when)."""
    if line.set_by is None or line.set_at is None:
        return texts.POLICY_SOURCE_DEFAULT
    name = clip(line.set_by.strip(), SHORT_MAX) or texts.SOMEONE
    return texts.POLICY_SOURCE_SET.format(name=name, date=format_date(line.set_at))


def _small(text: str) -> Card:
    return text_block(text, subtle=True, size="small", spacing="none")


def _section(text: str) -> Card:
    return text_block(text, weight="bolder", spacing="medium")


def _page_line(page: Page[Any]) -> list[Card]:
    """The "Page 2" line, unless a first page is the only one and empty."""
    if not page.items and not page.has_previous and not page.has_next:
        return []
    return [text_block(texts.LIST_PAGE.format(page=page.number), subtle=True, spacing="medium")]


def _page_actions(page: Page[Any], command: str, args: str) -> list[Card]:
    actions = []
    if page.has_previous:
        actions.append(
            _page_action(PREVIOUS_ID, texts.LIST_PREVIOUS, command, args, page.number - 1)
        )
    if page.has_next:
        actions.append(_page_action(NEXT_ID, texts.LIST_NEXT, command, args, page.number + 1))
    return actions


def _page_action(action_id: str, title: str, command: str, args: str, number: int) -> Card:
    return {
        "type": "Action.Execute",
        "id": action_id,
        "title": title,
        "verb": verbs.LIST_PAGE,
        "data": {
            verbs.LIST_COMMAND: command,
            verbs.LIST_ARGS: clip(args, ARGS_MAX, mark=False),
            verbs.LIST_PAGE_NUMBER: number,
        },
        "associatedInputs": "none",
    }


def _median(value: timedelta | None, template: str, count: int) -> str:
    if value is None:
        return texts.REPORT_NO_DATA
    return template.format(duration=duration(value), count=count)


def _rate(report: ProgramReport) -> str:
    if report.rejection_rate is None:
        return texts.REPORT_NO_DATA
    return texts.REPORT_RATE_VALUE.format(
        percent=percent(report.rejection_rate), rejected=report.rejected, decided=report.decisions
    )


def _fitted(build: Callable[[Excerpts], Card]) -> Card:
    """The card with the longest excerpts that fits CARD_BUDGET (else the shortest)."""
    return fitted(build, EXCERPTS)

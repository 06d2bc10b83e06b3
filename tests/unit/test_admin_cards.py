"""The admin commands' cards (paged engagement lists, the audit log, /show's timeline, /report,
/export): Previous / Next only where there are such pages, carrying the command, its arguments
and the page to show; readable action labels, outcomes and durations; every state in the report;
hostile and huge user content shown literally, bounded, and within Teams' message size."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

import core.audit_actions
from cards import verbs
from cards.admin import (
    ARGS_MAX,
    CARD_BUDGET,
    REPORT_TEAMS_MAX,
    action_label,
    audit_page_card,
    card_size,
    duration,
    engagement_page_card,
    export_card,
    percent,
    report_card,
    timeline_card,
    utc_time,
)
from core import texts
from core.admin import Page, ProgramReport, Timeline
from core.model import AuditOutcome, AuditRecord, Engagement, EngagementState
from tests.unit.test_cards import (
    APPROVER,
    EVIL,
    REQUESTER,
    STRANGER,
    TENANT,
    TODAY,
    Walk,
    active,
    decided,
    ended,
    engagement,
    has_live_markdown,
    unescape,
)

Card = dict[str, Any]
Builder = Callable[[], Card]
TEAMS_MESSAGE_LIMIT = 28_000  # bytes Teams accepts in one message, card included
OPEN_URL_PROPS = {"type", "id", "title", "url", "iconUrl", "style", "tooltip", "isEnabled"}
PAGE_DATA_KEYS = {verbs.LIST_COMMAND, verbs.LIST_ARGS, verbs.LIST_PAGE_NUMBER}
AT = datetime(2026, 11, 26, 14, 5, 33, tzinfo=UTC)
GENERATED = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
EXPIRES = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
LINKS = [
    (texts.EXPORT_ENGAGEMENTS, "https://bot.contoso.com/exports/engagements?token=abc"),
    (texts.EXPORT_AUDIT, "https://bot.contoso.com/exports/audit?token=def"),
]
EMOJI = "🧑\u200d💻"
CONTROL = "Jane\x1b[31m Doe\u202e\r\nnext"


class AdminWalk(Walk):
    """The unit tests' walker, which also knows Action.OpenUrl (the export links)."""

    def _action(self, action: Card, *, counted: bool = True) -> None:
        if action["type"] == "Action.OpenUrl":
            assert set(action) <= OPEN_URL_PROPS, set(action) - OPEN_URL_PROPS
            assert action["title"] and action["url"].startswith("https://")
            self.actions.append(action)
            return
        super()._action(action, counted=counted)


def check(card: Card) -> AdminWalk:
    """What every admin card must pass: valid AC 1.5, unique ids, plain JSON, no private ids,
    page actions carrying only the command, its arguments and the page, and under 28 KB."""
    walk = AdminWalk(card)
    assert len(walk.ids) == len(set(walk.ids)), f"duplicate ids: {walk.ids}"
    assert json.loads(json.dumps(card)) == card
    dumped = json.dumps(card)
    for private in (TENANT, REQUESTER, APPROVER, STRANGER):
        assert private not in dumped
    for action in walk.actions:
        if action["type"] == "Action.Execute":
            assert action["verb"] == verbs.LIST_PAGE
            assert set(action["data"]) == PAGE_DATA_KEYS
    assert card_size(card) <= CARD_BUDGET < TEAMS_MESSAGE_LIMIT
    return walk


# --- fixtures ------------------------------------------------------------------------------


def record(**changes: Any) -> AuditRecord:
    base = AuditRecord(
        at=AT,
        actor_id=APPROVER,
        actor_name="Alex Approver",
        action=core.audit_actions.ENGAGEMENT_APPROVED,
        outcome=AuditOutcome.OK,
        engagement_id=7,
        detail="Looks good",
        id=1,
    )
    return replace(base, **changes)


def engagements(count: int = 3) -> list[Engagement]:
    return [engagement(id=n + 1, project_title=f"Project {n + 1}") for n in range(count)]


def page_of(items: list[Any], number: int = 1, *, has_next: bool = False) -> Page[Any]:
    return Page(tuple(items), number, has_next=has_next)


def requests_page(number: int = 1, *, has_next: bool = False, count: int = 3) -> Card:
    return engagement_page_card(
        texts.REQUESTS_TITLE,
        page_of(engagements(count), number, has_next=has_next),
        command="/requests",
        args="pending",
        empty_text=texts.LIST_EMPTY,
        today=TODAY,
    )


def audit_page(
    records: list[AuditRecord], number: int = 1, *, has_next: bool = False, args: str = "last 50"
) -> Card:
    return audit_page_card(
        texts.AUDIT_TITLE.format(last=50),
        page_of(records, number, has_next=has_next),
        command="/audit",
        args=args,
        empty_text=texts.AUDIT_EMPTY,
    )


def timeline(
    subject: Engagement | None = None, records: list[AuditRecord] | None = None, earlier: int = 0
) -> Timeline:
    subject = subject or active()
    if records is None:
        records = [
            record(at=AT, action=core.audit_actions.ENGAGEMENT_SUBMITTED, actor_name="Rita"),
            record(at=AT + timedelta(hours=2)),
            record(at=AT + timedelta(hours=3), action=core.audit_actions.PROVISIONING_COMPLETED),
        ]
    return Timeline(subject, tuple(records), earlier)


def report(**changes: Any) -> ProgramReport:
    base = ProgramReport(
        generated_at=GENERATED,
        window_days=90,
        by_state={EngagementState.ACTIVE: 3, EngagementState.PENDING_APPROVAL: 2},
        decisions=8,
        median_to_decision=timedelta(hours=3, minutes=20),
        provisionings=5,
        median_to_provisioned=timedelta(days=2, hours=4),
        rejected=1,
        rejection_rate=0.125,
        active_by_team=(("Marketing", 2), ("Engineering", 1)),
        ending_days=30,
        ending_soon=4,
        waiting_hours=48,
        waiting_long=1,
    )
    return replace(base, **changes)


def empty_report() -> ProgramReport:
    return ProgramReport(
        generated_at=GENERATED,
        window_days=90,
        by_state={},
        decisions=0,
        median_to_decision=None,
        provisionings=0,
        median_to_provisioned=None,
        rejected=0,
        rejection_rate=None,
    )


def rows(card: Card) -> list[Card]:
    """The rows of a list: engagements are ColumnSets, audit records Containers."""
    return [element for element in card["body"] if element["type"] in {"ColumnSet", "Container"}]


def shown(card: Card) -> str:
    return check(card).shown_text


def facts(card: Card) -> dict[str, str]:
    return {unescape(title): unescape(value) for title, value in check(card).facts}


def buttons(card: Card) -> dict[str, Card]:
    return {action["title"]: action for action in check(card).actions}


def in_state(state: EngagementState, number: int) -> Engagement:
    return decided(state, id=number, project_title=f"Project {number}")


def huge(text: str) -> str:
    return (text * (2000 // len(text) + 1))[:2000]


# Every admin card in each of its shapes: the official validator and the Chromium renderer
# (tests/cards) check these too.
ADMIN_CARDS: dict[str, Builder] = {
    "admin/requests/first_page": lambda: requests_page(1, has_next=True),
    "admin/requests/middle_page": lambda: requests_page(2, has_next=True),
    "admin/requests/last_page": lambda: requests_page(3),
    "admin/requests/every_state": lambda: engagement_page_card(
        texts.REQUESTS_TITLE,
        page_of([in_state(state, n + 1) for n, state in enumerate(EngagementState)]),
        command="/requests",
        args="all",
        empty_text=texts.LIST_EMPTY,
        today=TODAY,
    ),
    "admin/requests/empty": lambda: engagement_page_card(
        texts.REQUESTS_TITLE,
        page_of([]),
        command="/requests",
        args="",
        empty_text=texts.LIST_EMPTY,
        today=TODAY,
    ),
    "admin/expiring/soon": lambda: engagement_page_card(
        texts.EXPIRING_TITLE.format(days=30),
        page_of([active(id=n, end_date=TODAY + timedelta(days=n - 2)) for n in range(1, 5)]),
        command="/expiring",
        args="30",
        empty_text=texts.LIST_EMPTY,
        today=TODAY,
    ),
    "admin/audit/first_page": lambda: audit_page(
        [record(id=n) for n in range(10)], 1, has_next=True
    ),
    "admin/audit/middle_page": lambda: audit_page(
        [
            record(),
            record(action="command.requests", engagement_id=None, detail="pending; page 2"),
            record(outcome=AuditOutcome.REFUSED, action=core.audit_actions.DECISION_REFUSED),
            record(outcome=AuditOutcome.FAILED, action=core.audit_actions.PROVISIONING_FAILED),
            record(action="something.new", detail=""),
        ],
        2,
        has_next=True,
    ),
    "admin/audit/empty": lambda: audit_page([]),
    "admin/timeline": lambda: timeline_card(timeline()),
    "admin/timeline/earlier": lambda: timeline_card(timeline(earlier=12)),
    "admin/timeline/failed": lambda: timeline_card(
        timeline(decided(EngagementState.PROVISIONING_FAILED, failure_reason="Graph said no."))
    ),
    "admin/timeline/pending_no_records": lambda: timeline_card(timeline(engagement(), [])),
    "admin/timeline/ended": lambda: timeline_card(timeline(ended())),
    "admin/timeline/cancelled": lambda: timeline_card(
        timeline(decided(EngagementState.CANCELLED, decided_by_name="Rita Requester"))
    ),
    "admin/timeline/changes_requested": lambda: timeline_card(
        timeline(engagement(state=EngagementState.CHANGES_REQUESTED, decision_reason="Why?"))
    ),
    "admin/report": lambda: report_card(report()),
    "admin/report/many_teams": lambda: report_card(
        report(active_by_team=tuple((f"Team {n}", 40 - n) for n in range(20)))
    ),
    "admin/report/empty": lambda: report_card(empty_report()),
    "admin/export": lambda: export_card(LINKS, expires_at=EXPIRES),
    "admin/export/one_link": lambda: export_card(LINKS[:1], expires_at=EXPIRES),
}


def _evil_engagement(state: EngagementState = EngagementState.ACTIVE) -> Engagement:
    return decided(
        state,
        project_title=EVIL,
        freelancer_name=EVIL,
        requester_name=EVIL,
        approver_name=EVIL,
        decided_by_name=EVIL,
        decision_reason=EVIL,
        failure_reason=EVIL,
        team_name=EVIL,
        channel_name=EVIL,
        end_reason=EVIL,
        ended_by_name=EVIL,
        sponsor_id=REQUESTER,
    )


def _evil_record(**changes: Any) -> AuditRecord:
    return record(actor_name=EVIL, detail=EVIL, **changes)


EVIL_ADMIN_CARDS: dict[str, Builder] = {
    "admin/evil/requests": lambda: engagement_page_card(
        EVIL,
        page_of([_evil_engagement(state) for state in EngagementState], 2, has_next=True),
        command="/requests",
        args=EVIL,
        empty_text=EVIL,
        today=TODAY,
    ),
    "admin/evil/requests-empty": lambda: engagement_page_card(
        EVIL, page_of([]), command="/requests", args="", empty_text=EVIL, today=TODAY
    ),
    "admin/evil/audit": lambda: audit_page_card(
        EVIL,
        page_of(
            [_evil_record(), _evil_record(action=EVIL), _evil_record(action=f"command.{EVIL}")]
        ),
        command="/audit",
        args=EVIL,
        empty_text=EVIL,
    ),
    "admin/evil/timeline": lambda: timeline_card(
        timeline(_evil_engagement(EngagementState.OFFBOARDING_FAILED), [_evil_record()], 3)
    ),
    "admin/evil/report": lambda: report_card(report(active_by_team=((EVIL, 3), ("", 1)))),
    "admin/evil/export": lambda: export_card([(EVIL, LINKS[0][1])], expires_at=EXPIRES),
}


# --- every card ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ADMIN_CARDS))
def test_every_admin_card_is_valid_adaptive_card_1_5_within_the_size_limit(name: str) -> None:
    check(ADMIN_CARDS[name]())


# --- paging --------------------------------------------------------------------------------


def test_first_page_offers_next_but_not_previous() -> None:
    card = requests_page(1, has_next=True)
    assert set(buttons(card)) == {texts.LIST_NEXT}
    assert texts.LIST_PAGE.format(page=1) in shown(card)


def test_middle_page_offers_previous_and_next_carrying_command_args_and_page() -> None:
    found = buttons(requests_page(4, has_next=True))
    assert list(found) == [texts.LIST_PREVIOUS, texts.LIST_NEXT]
    previous, following = found[texts.LIST_PREVIOUS], found[texts.LIST_NEXT]
    assert previous["data"] == {
        verbs.LIST_COMMAND: "/requests",
        verbs.LIST_ARGS: "pending",
        verbs.LIST_PAGE_NUMBER: 3,
    }
    assert following["data"] == {
        verbs.LIST_COMMAND: "/requests",
        verbs.LIST_ARGS: "pending",
        verbs.LIST_PAGE_NUMBER: 5,
    }
    for action in (previous, following):
        assert action["type"] == "Action.Execute"
        assert action["verb"] == verbs.LIST_PAGE


def test_last_page_offers_previous_only() -> None:
    assert set(buttons(requests_page(3))) == {texts.LIST_PREVIOUS}


def test_a_single_page_has_no_buttons() -> None:
    card = requests_page(1)
    assert "actions" not in card
    assert texts.LIST_PAGE.format(page=1) in shown(card)


def test_audit_pages_carry_their_command_and_arguments() -> None:
    found = buttons(audit_page([record()], 2, has_next=True, args="FC-7"))
    assert found[texts.LIST_PREVIOUS]["data"] == {
        verbs.LIST_COMMAND: "/audit",
        verbs.LIST_ARGS: "FC-7",
        verbs.LIST_PAGE_NUMBER: 1,
    }
    assert found[texts.LIST_NEXT]["data"][verbs.LIST_PAGE_NUMBER] == 3
    assert "actions" not in audit_page([record()])


def test_an_empty_list_says_so_without_page_line_or_buttons() -> None:
    card = ADMIN_CARDS["admin/requests/empty"]()
    text = shown(card)
    assert texts.REQUESTS_TITLE in text and texts.LIST_EMPTY in text
    assert texts.LIST_PAGE.format(page=1) not in text
    assert rows(card) == [] and "actions" not in card
    audit = audit_page([])
    assert texts.AUDIT_EMPTY in shown(audit) and "actions" not in audit


def test_an_empty_later_page_still_leads_back() -> None:
    card = engagement_page_card(
        texts.REQUESTS_TITLE,
        page_of([], 7),
        command="/requests",
        args="",
        empty_text=texts.LIST_EMPTY,
        today=TODAY,
    )
    assert texts.LIST_EMPTY in shown(card) and texts.LIST_PAGE.format(page=7) in shown(card)
    assert buttons(card)[texts.LIST_PREVIOUS]["data"][verbs.LIST_PAGE_NUMBER] == 6


# --- engagement rows -----------------------------------------------------------------------


def test_each_engagement_gets_a_row_with_ref_project_freelancer_team_state_and_dates() -> None:
    item = decided(
        EngagementState.PROVISIONING,
        id=12,
        project_title="Data lake",
        freelancer_name="Bo Li",
        team_name="Engineering",
        start_date=date(2025, 4, 1),
        end_date=date(2025, 12, 31),
    )
    card = engagement_page_card(
        "Requests",
        page_of([engagement(), item]),
        command="/requests",
        args="",
        empty_text="-",
        today=TODAY,
    )
    assert len(rows(card)) == 2
    row = rows(card)[1]
    walk = check({**card, "body": [row], "actions": []})
    ref = walk.text_blocks[0]
    assert (unescape(ref["text"]), ref["weight"]) == ("FC-12", "bolder")
    text = walk.shown_text
    for expected in (
        "Data lake",
        "Bo Li",
        "Engineering",
        texts.STATE_LABELS["provisioning"],
        texts.DATE_RANGE.format(start="1 Apr 2025", end="31 Dec 2025"),
    ):
        assert expected in text


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (12, texts.ROW_ENDS_IN_DAYS.format(days=12, date="15 Mar 2025")),
        (1, texts.ROW_ENDS_TOMORROW.format(date="4 Mar 2025")),
        (0, texts.ROW_ENDS_TODAY.format(date="3 Mar 2025")),
        (-2, texts.ROW_ENDS_OVERDUE.format(date="1 Mar 2025")),
    ],
)
def test_an_active_engagement_says_how_soon_it_ends(days: int, expected: str) -> None:
    item = active(end_date=TODAY + timedelta(days=days))
    card = engagement_page_card(
        "Active", page_of([item]), command="/active", args="", empty_text="-", today=TODAY
    )
    assert expected in shown(card)
    assert "10 Mar 2025" not in shown(card)  # the start date: no date range


def test_engagements_that_are_not_active_show_their_dates() -> None:
    card = requests_page(1)
    assert texts.DATE_RANGE.format(start="10 Mar 2025", end="8 Jun 2025") in shown(card)


@pytest.mark.parametrize(
    "state", [EngagementState.PROVISIONING_FAILED, EngagementState.OFFBOARDING_FAILED]
)
def test_failed_engagements_are_marked_in_attention_colour(state: EngagementState) -> None:
    card = engagement_page_card(
        "Failed",
        page_of([decided(state)]),
        command="/requests",
        args="failed",
        empty_text="-",
        today=TODAY,
    )
    (label,) = [
        b for b in check(card).text_blocks if unescape(b["text"]) == texts.STATE_LABELS[state]
    ]
    assert label["color"] == "attention"


# --- audit rows ----------------------------------------------------------------------------


def test_an_audit_row_shows_utc_time_actor_action_ref_and_detail() -> None:
    paris = timezone(timedelta(hours=1))
    card = audit_page([record(at=datetime(2026, 11, 26, 15, 5, 59, tzinfo=paris))])
    (row,) = rows(card)
    walk = check({**card, "body": [row], "actions": []})
    action, meta, detail = (unescape(block["text"]) for block in walk.text_blocks)
    assert action == "Request approved"
    assert meta == texts.AUDIT_ROW_META_REF.format(
        time="2026-11-26 14:05", ref="FC-7", actor="Alex Approver"
    )
    assert detail == "Looks good"
    assert "color" not in walk.text_blocks[0]


def test_a_naive_time_is_taken_as_utc() -> None:
    assert utc_time(datetime(2026, 11, 26, 14, 5)) == "2026-11-26 14:05"


def test_a_record_without_engagement_shows_no_ref() -> None:
    card = audit_page([record(engagement_id=None, action="command.report", detail="")])
    text = shown(card)
    assert "FC-" not in text.replace(texts.AUDIT_TITLE.format(last=50), "")
    assert "/report command" in text


@pytest.mark.parametrize(
    ("outcome", "word"),
    [(AuditOutcome.REFUSED, texts.AUDIT_REFUSED), (AuditOutcome.FAILED, texts.AUDIT_FAILED)],
)
def test_refused_and_failed_records_are_marked_in_attention_colour(
    outcome: AuditOutcome, word: str
) -> None:
    walk = check(audit_page([record(outcome=outcome)]))
    marked = texts.AUDIT_ROW_OUTCOME.format(action="Request approved", outcome=word)
    (mark,) = [b for b in walk.text_blocks if unescape(b["text"]) == marked]
    assert mark["color"] == "attention"


@pytest.mark.parametrize(
    ("action", "label"),
    [
        (core.audit_actions.ENGAGEMENT_SUBMITTED, "Request submitted"),
        (core.audit_actions.GRAPH_GUEST_INVITED, "Guest invited"),
        (core.audit_actions.EXTENDED_BY_ADMIN, "Extended by an admin"),
        ("command.requests", "/requests command"),
        ("command.audit", "/audit command"),
        ("future.thing_happened", "future.thing_happened"),
        ("command.", "command."),
    ],
)
def test_actions_get_readable_labels_and_unknown_ones_their_name(action: str, label: str) -> None:
    assert action_label(action) == label


def test_every_audited_action_has_a_label() -> None:
    names = {
        value
        for name, value in vars(core.audit_actions).items()
        if name.isupper() and isinstance(value, str) and "." in value
    } - {core.audit_actions.COMMAND_PREFIX}
    assert names, "no action names found"
    assert names <= set(texts.AUDIT_ACTION_LABELS), names - set(texts.AUDIT_ACTION_LABELS)
    labels = list(texts.AUDIT_ACTION_LABELS.values())
    assert len(labels) == len(set(labels)), "two actions share a label"


def test_a_long_detail_is_cut_to_about_200_characters() -> None:
    card = audit_page([record(detail="x" * 500)])
    (detail,) = [b for b in check(card).text_blocks if b["text"].startswith("xxx")]
    assert 150 <= len(detail["text"]) <= 200 and detail["text"].endswith("…")


# --- timeline ------------------------------------------------------------------------------


def test_timeline_shows_the_engagement_then_its_records_oldest_first() -> None:
    card = timeline_card(timeline())
    text = shown(card)
    assert text.startswith("FC-7: Website redesign")
    found = facts(card)
    assert found[texts.FACT_FREELANCER].startswith("Jane Doe")
    assert found[texts.FACT_STATE] == texts.STATE_LABELS["active"]
    assert found[texts.FACT_APPROVER] == "Alex Approver"
    assert texts.TIMELINE_TITLE in text
    order = [text.index(label) for label in ("Request submitted", "Request approved")]
    assert order == sorted(order) and text.index(texts.TIMELINE_TITLE) < order[0]
    assert "Set-up completed" in text
    assert len(rows(card)) == 3


def test_timeline_says_how_many_earlier_records_are_not_shown() -> None:
    last = timeline_card(timeline(earlier=12))["body"][-1]
    assert unescape(last["text"]) == texts.TIMELINE_EARLIER.format(count=12, ref="FC-7")
    assert "earlier records" not in shown(timeline_card(timeline(earlier=0)))


def test_timeline_without_records_says_so() -> None:
    assert texts.AUDIT_EMPTY in shown(timeline_card(timeline(engagement(), [])))


def test_timeline_of_a_failed_engagement_gives_the_reason() -> None:
    subject = decided(EngagementState.OFFBOARDING_FAILED, failure_reason="Graph said no.")
    assert facts(timeline_card(timeline(subject)))[texts.FACT_REASON] == "Graph said no."


def test_timeline_of_an_ended_engagement_says_who_ended_it_and_why() -> None:
    ended_fact = facts(timeline_card(timeline(ended())))[texts.FACT_ENDED]
    assert "Rita Requester" in ended_fact and "Contract cancelled" in ended_fact


def _waited(state: EngagementState, **changes: Any) -> Engagement:
    """An engagement whose wait for a decision ended in `state` (as core records it)."""
    return engagement(state=state, decided_at=datetime(2025, 3, 20, 8, 0, tzinfo=UTC), **changes)


@pytest.mark.parametrize(
    ("subject", "line"),
    [
        (
            _waited(
                EngagementState.CANCELLED,
                decided_by_id=REQUESTER,
                decided_by_name="Rita Requester",
            ),
            texts.CANCELLED_BY.format(name="Rita Requester", when="20 Mar 2025"),
        ),
        (_waited(EngagementState.EXPIRED), texts.EXPIRED_ON.format(when="20 Mar 2025")),
        (
            engagement(state=EngagementState.CHANGES_REQUESTED, decision_reason="Shorter"),
            texts.CHANGES_REQUESTED_BY.format(name="Alex Approver", comment="Shorter"),
        ),
        (
            decided(EngagementState.REJECTED, decision_reason="No budget"),
            texts.DECIDED_REJECTED.format(
                name="Alex Approver", when="4 Mar 2025", reason="No budget"
            ),
        ),
    ],
)
def test_timeline_says_how_the_wait_for_a_decision_ended(subject: Engagement, line: str) -> None:
    text = shown(timeline_card(timeline(subject)))
    assert line in text
    # A cancelled request was not approved by the person who cancelled it.
    assert "Approved by" not in text


def test_timeline_of_a_waiting_request_has_no_outcome_line() -> None:
    text = shown(timeline_card(timeline(engagement())))
    assert texts.APPROVAL_WAITING.format(approver="Alex Approver") not in text
    assert "Approved by" not in text


# --- report --------------------------------------------------------------------------------


def test_report_lists_every_state_with_zero_when_absent_and_the_total() -> None:
    found = facts(report_card(report()))
    for state in EngagementState:
        expected = {"active": "3", "pending_approval": "2"}.get(state.value, "0")
        assert found[texts.STATE_LABELS[state.value]] == expected
    assert found[texts.REPORT_TOTAL] == "5"


def test_report_gives_medians_rate_and_counts() -> None:
    card = report_card(report())
    found = facts(card)
    assert found[texts.REPORT_MEDIAN_DECISION] == "3 h 20 min (8 decided)"
    assert found[texts.REPORT_MEDIAN_PROVISIONED] == "2 d 4 h (5 set up)"
    assert found[texts.REPORT_REJECTION_RATE] == "12.5% (1 of 8)"
    assert found[texts.REPORT_ENDING.format(days=30)] == "4"
    assert found[texts.REPORT_WAITING.format(hours=48)] == "1"
    assert found["Marketing"] == "2" and found["Engineering"] == "1"
    text = shown(card)
    assert text.startswith(texts.REPORT_TITLE)
    assert texts.REPORT_GENERATED.format(at="2026-11-26 08:00", days=90) in text


def test_an_empty_report_says_there_is_no_data_yet() -> None:
    card = report_card(empty_report())
    found = facts(card)
    for state in EngagementState:
        assert found[texts.STATE_LABELS[state.value]] == "0"
    assert found[texts.REPORT_TOTAL] == "0"
    for title in (
        texts.REPORT_MEDIAN_DECISION,
        texts.REPORT_MEDIAN_PROVISIONED,
        texts.REPORT_REJECTION_RATE,
    ):
        assert found[title] == texts.REPORT_NO_DATA
    assert texts.REPORT_NONE_ACTIVE in shown(card)


def test_report_names_the_15_biggest_teams_and_counts_the_rest() -> None:
    teams = tuple((f"Team {n:02}", n + 1) for n in range(20))
    card = report_card(report(active_by_team=teams))
    found = facts(card)
    listed = {name for name, _ in teams} & set(found)
    assert listed == {f"Team {n:02}" for n in range(5, 20)}
    assert len(listed) == REPORT_TEAMS_MAX
    assert texts.REPORT_MORE_TEAMS.format(count=5) in shown(card)
    one_more = report_card(report(active_by_team=teams[:16]))
    assert texts.REPORT_MORE_TEAM in shown(one_more)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=45), "45 s"),
        (timedelta(seconds=0), "0 s"),
        (timedelta(seconds=-5), "0 s"),
        (timedelta(minutes=5, seconds=30), "5 min 30 s"),
        (timedelta(minutes=12), "12 min"),
        (timedelta(hours=3, minutes=20), "3 h 20 min"),
        (timedelta(hours=3, minutes=20, seconds=31), "3 h 21 min"),
        (timedelta(minutes=59, seconds=59, milliseconds=600), "1 h"),
        (timedelta(days=2, hours=4), "2 d 4 h"),
        (timedelta(days=2, minutes=20), "2 d"),
        (timedelta(hours=23, minutes=59, seconds=40), "1 d"),
        (timedelta(days=400, hours=1), "400 d 1 h"),
    ],
)
def test_durations_read_like_people_write_them(value: timedelta, text: str) -> None:
    assert duration(value) == text


@pytest.mark.parametrize(
    ("rate", "text"), [(0.125, "12.5%"), (1 / 3, "33.3%"), (1.0, "100%"), (0.0, "0%")]
)
def test_rates_are_percentages(rate: float, text: str) -> None:
    assert percent(rate) == text


# --- export --------------------------------------------------------------------------------


def test_export_card_gives_one_download_button_per_link_and_the_expiry() -> None:
    card = export_card(LINKS, expires_at=EXPIRES)
    walk = check(card)
    assert [(a["type"], a["title"], a["url"]) for a in walk.actions] == [
        ("Action.OpenUrl", title, url) for title, url in LINKS
    ]
    assert texts.EXPORT_TITLE in walk.shown_text
    assert texts.EXPORT_BODY.format(expires="2026-11-26 15:00") in walk.shown_text


# --- hostile and huge content --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EVIL_ADMIN_CARDS))
def test_user_content_cannot_inject_markdown(name: str) -> None:
    walk = check(EVIL_ADMIN_CARDS[name]())
    for text in walk.shown:
        assert not has_live_markdown(text), text
    assert "[click](https" not in json.dumps([walk.shown])


def test_user_content_is_shown_literally() -> None:
    for name in ("admin/evil/requests", "admin/evil/audit", "admin/evil/timeline"):
        assert EVIL in check(EVIL_ADMIN_CARDS[name]()).shown_text, name


def test_control_characters_and_bidi_overrides_are_removed() -> None:
    card = audit_page([record(actor_name=CONTROL, detail=CONTROL)])
    dumped = json.dumps(card, ensure_ascii=False)
    for hidden in ("\x1b", "\u202e", "\r"):
        assert hidden not in dumped
    assert "Jane[31m Doe\nnext" in shown(card)


@pytest.mark.parametrize("text", ["Plain words go on. ", "*_[`<", EMOJI, "مرحبا بالعالم "])
def test_ten_rows_of_huge_fields_stay_within_teams_limit(text: str) -> None:
    big = huge(text)
    items = [
        engagement(
            id=n + 1,
            project_title=big,
            freelancer_name=big,
            team_name=big,
            state=EngagementState.ACTIVE if n % 2 else EngagementState.PENDING_APPROVAL,
        )
        for n in range(10)
    ]
    records = [
        record(id=n, actor_name=big, detail=big, action=big if n % 2 else f"command.{big}")
        for n in range(10)
    ]
    cards = [
        engagement_page_card(
            big,
            page_of(items, 2, has_next=True),
            command="/requests",
            args=big,
            empty_text=big,
            today=TODAY,
        ),
        audit_page_card(
            big, page_of(records, 2, has_next=True), command="/audit", args=big, empty_text=big
        ),
        timeline_card(
            timeline(
                replace(_evil_engagement(), project_title=big, freelancer_name=big),
                [replace(r, id=n) for n, r in enumerate(records * 3)],
                earlier=10**6,
            )
        ),
        report_card(report(active_by_team=tuple((f"{n}{big}", n) for n in range(40)))),
        export_card([(big, LINKS[0][1]), (big, LINKS[1][1])], expires_at=EXPIRES),
    ]
    for card in cards:
        walk = check(card)
        for shown_text in walk.shown:
            assert len(unescape(shown_text)) <= 1100, len(shown_text)
        assert card_size(card) <= CARD_BUDGET


def test_a_normal_page_shows_generous_excerpts() -> None:
    long_title = "A project title that is long enough to need a second line on the card"
    card = engagement_page_card(
        "Requests",
        page_of([engagement(id=n, project_title=long_title) for n in range(1, 11)]),
        command="/requests",
        args="",
        empty_text="-",
        today=TODAY,
    )
    assert shown(card).count(long_title) == 10


def test_a_huge_page_is_shortened_rather_than_refused() -> None:
    big = huge("*_[`<")
    records = [record(id=n, actor_name=big, detail=big) for n in range(10)]
    walk = check(audit_page(records))
    details = [unescape(b["text"]) for b in walk.text_blocks if b.get("size") == "small"]
    assert details and all(len(d) <= 200 for d in details)


@pytest.mark.parametrize("text", ["*_[`<", EMOJI])
def test_a_timeline_with_every_field_huge_shortens_its_summary_too(text: str) -> None:
    big = huge(text)
    names = (
        "project_title",
        "freelancer_name",
        "freelancer_email",
        "requester_name",
        "team_name",
        "channel_name",
        "approver_name",
        "decided_by_name",
        "ended_by_name",
        "end_reason",
        "failure_reason",
        "decision_reason",
    )
    subject = ended(EngagementState.OFFBOARDING_FAILED, **dict.fromkeys(names, big))
    records = [record(id=n, actor_name=big, detail=big, action=big) for n in range(30)]
    card = timeline_card(timeline(subject, records, earlier=99))
    walk = check(card)
    assert texts.FACT_REASON in {unescape(title) for title, _ in walk.facts}
    assert len(rows(card)) == 30
    assert unescape(card["body"][-1]["text"]) == texts.TIMELINE_EARLIER.format(
        count=99, ref="FC-7"
    )


def test_page_buttons_carry_bounded_arguments() -> None:
    card = engagement_page_card(
        "Active",
        page_of(engagements(), 2, has_next=True),
        command="/active",
        args="Marketing " * 500,
        empty_text="-",
        today=TODAY,
    )
    for action in buttons(card).values():
        assert action["data"][verbs.LIST_ARGS].startswith("Marketing Marketing")
        assert len(action["data"][verbs.LIST_ARGS]) <= ARGS_MAX

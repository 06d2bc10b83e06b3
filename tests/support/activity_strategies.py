"""Hypothesis strategies for hostile requests to /api/messages (tests/e2e/test_fuzz_activities).

`ActivityStrategies(world)` holds two strategies of `Case`s (the bytes to POST, the
Content-Type, and the statuses the app may answer with):

* `rejected`: requests the app must refuse, each with its one right status: raw bytes,
  truncated or non-object JSON, invalid UTF-8, lone surrogate escapes, activities without a
  type or an http(s) serviceUrl (missing, null, empty, not a string), without a usable
  conversation id, or with an activity id that cannot go into a URL (400); wrong content
  types (415); bodies over the size limit (413).
* `hostile`: activities the app may accept or refuse (200, 201 or 400, never 5xx): messages
  with command-like, huge or odd Unicode text and tampered card values; Action.Execute invokes
  with the bot's real verbs and random ones, engagement ids tampered (other ids, negative,
  strings, odd digits, huge ints, floats, null); other invoke names (task/fetch, ...); unknown
  activity types and Teams events; install events for teams the bot does not know; all
  optionally mutated (fields deleted, given the wrong JSON type, huge or odd strings, a lone
  surrogate).

Hostile activities come from *outsiders* (users involved in no engagement, with no rights), or
from an *insider* (requester, approver, admin) only as a card action whose engagement id names
no engagement, so that no generated activity is one the app should carry out.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from bot.adapter import MAX_ID_LENGTH
from bot.http import MAX_BODY_BYTES
from cards import verbs as V
from tests.support.activities import (
    DEFAULT_BOT_APP_ID,
    TestTeam,
    TestUser,
    installation_update,
    invoke_action,
    message,
)

JSON_TYPE = "application/json"
# Each is refused with 415 before the body is read.
WRONG_CONTENT_TYPES = (
    "text/plain",
    "text/html; charset=utf-8",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "image/png",
)
ACCEPTED = frozenset({200, 201})
ACCEPTED_OR_400 = frozenset({200, 201, 400})


@dataclass(frozen=True)
class Case:
    """One request: `body` POSTed with `content_type`; `allowed` are the right answers."""

    label: str
    body: bytes
    content_type: str
    allowed: frozenset[int]

    def expected(self) -> frozenset[int]:
        # The content type is checked first (415), then the size (413), then the body.
        if self.content_type != JSON_TYPE:
            return frozenset({415})
        if len(self.body) > MAX_BODY_BYTES:
            return frozenset({413})
        return self.allowed

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # how hypothesis prints a failing example

    def __repr__(self) -> str:  # failing examples in reports: keep them readable
        shown = self.body if len(self.body) <= 600 else self.body[:600] + b"..."
        return (
            f"Case({self.label!r}, {self.content_type!r}, {sorted(self.expected())}, "
            f"{len(self.body)} bytes: {shown!r})"
        )


@dataclass(frozen=True)
class FuzzWorld:
    """What the fuzzed activities aim at: the running app's connector and tenant, the
    engagements that exist, who is involved in them, and the team the bot is installed in."""

    service_url: str
    tenant_id: str
    engagement_ids: Sequence[int]
    insiders: Sequence[TestUser]  # requesters, approvers, admins: never the sender of a change
    outsiders: Sequence[TestUser]  # real directory users involved in nothing
    installed_team: TestTeam
    known_ids: frozenset[str] = field(default_factory=frozenset)  # ids fuzz must not reuse


# --- building blocks --------------------------------------------------------------------------

ODD_CHARACTERS = (
    "\u200f",  # right-to-left mark
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u200b",  # zero-width space
    "\u200d",  # zero-width joiner
    "\ufeff",  # byte order mark
    "\u0007",
    "\u001b[31m",
    "\r\n",
    "\u2028",  # line separator
    "\u0301",  # combining acute accent
    "\U0001f600",
    "\U0001f469\u200d\U0001f4bb",  # ZWJ emoji sequence
    "\U0001f1e9\U0001f1ea",  # flag
    "ﷺ",
    "𒀱",
    "\U000e0041",  # tag character
    "\ufffd",
    "\uffff",
    "<at>Freelance Connector</at>",
    "<script>alert(1)</script>",
    "${{7*7}}",
    "%s%n",
    "\\u0000",
    '"}]',
    "ــ١٢",  # Arabic-Indic digits
    "²",
    "１",  # fullwidth digit one
    "FC-",
    "/",
)

# Leaf values (odd strings, JSON of the wrong type) come from a seeded generator: hypothesis
# draws the seed, which costs one choice instead of dozens. Ten thousand requests a run would
# otherwise spend most of their time in hypothesis' bookkeeping; the structure of every
# activity (who, which verb and id, which fields broken) is still drawn choice by choice.
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def _character(rng: random.Random) -> str:
    """Any character but a surrogate: ASCII, controls, the BMP and the astral planes."""
    roll = rng.random()
    if roll < 0.35:
        code = rng.randint(0x20, 0x7E)
    elif roll < 0.45:
        code = rng.randint(0x01, 0x1F)  # NUL comes rarely, on its own (see unstorable)
    elif roll < 0.8:
        code = rng.randint(0x80, 0xFFFF)
    else:
        code = rng.randint(0x10000, 0x10FFFF)
    return "\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code)


def odd_text_from(seed: int) -> str:
    """Up to four pieces: odd characters (RTL, zero-width, controls, emoji, markup, ...) and
    runs of random characters."""
    rng = random.Random(seed)
    pieces = []
    for _ in range(rng.randint(0, 4)):
        if rng.random() < 0.5:
            pieces.append(rng.choice(ODD_CHARACTERS))
        else:
            pieces.append("".join(_character(rng) for _ in range(rng.randint(1, 6))))
    return "".join(pieces)


LARGE_NUMBERS = (0, -1, 2**31, 2**63, -(2**63) - 1, 10**30, 10**400)
SPECIAL_FLOATS = (0.5, -0.0, 1e308, -1e-308, float("nan"), float("inf"), float("-inf"))


def wrong_json_from(seed: int, depth: int = 0) -> Any:
    """A JSON value of any type: null, booleans, huge or negative numbers, NaN, odd strings,
    and small lists and objects of those."""
    rng = random.Random(seed)
    kind = rng.randrange(8 if depth < 2 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([rng.randint(-(2**40), 2**40), rng.choice(LARGE_NUMBERS)])
    if kind == 3:
        return rng.choice([rng.uniform(-1e9, 1e9), rng.choice(SPECIAL_FLOATS)])
    if kind in (4, 5):
        return odd_text_from(rng.getrandbits(32))
    if kind == 6:
        return [wrong_json_from(rng.getrandbits(32), depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        odd_text_from(rng.getrandbits(32)): wrong_json_from(rng.getrandbits(32), depth + 1)
        for _ in range(rng.randint(0, 3))
    }


def _repeat(unit: str, size: int) -> str:
    unit = unit or "x"
    return (unit * (size // len(unit) + 1))[:size]


def any_text_from(seed: int) -> str:
    """Odd text, random characters, or (one in ten) up to ~100 KB of a short odd unit."""
    rng = random.Random(seed)
    roll = rng.random()
    if roll < 0.1:
        return _repeat(odd_text_from(rng.getrandbits(32)), rng.randint(1_000, 100_000))
    if roll < 0.55:
        return odd_text_from(rng.getrandbits(32))
    return "".join(_character(rng) for _ in range(rng.randint(0, 12)))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128)))


odd_text = SEEDS.map(odd_text_from)
any_text = SEEDS.map(any_text_from)
huge_text = st.builds(
    lambda unit, size: _repeat(odd_text_from(unit), size),
    SEEDS,
    st.integers(min_value=1_000, max_value=100_000),
)
wrong_json: st.SearchStrategy[Any] = SEEDS.map(wrong_json_from)
not_an_object = wrong_json.filter(lambda value: not isinstance(value, dict))
lone_surrogates = st.characters(categories=["Cs"])
# What JSON allows and the app must refuse: text no UTF-8 encoder (a lone surrogate) or no
# PostgreSQL column (NUL) takes.
unstorable = st.one_of(lone_surrogates, st.just("\u0000"))


# Engagement ids as a tampered card would carry them. `resolvable` adds the ones that name an
# existing engagement (for outsiders: refused); insiders only ever get ids that cannot.
def engagement_ids(existing: Sequence[int], *, resolvable: bool) -> st.SearchStrategy[Any]:
    far_away = st.one_of(
        st.integers(max_value=0),
        st.integers(min_value=1_000),
        st.sampled_from([2**31 - 1, 2**31, 2**53 + 1, 2**63, 2**64, 10**30, 10**400, -(2**63)]),
        st.floats().filter(lambda f: not 0.0 <= f <= 1_000.0),
        odd_text.filter(lambda t: not any(unicodedata.category(c)[0] == "N" for c in t)),
        st.integers(min_value=1_000).map(lambda n: f"FC-{n}"),
        st.integers(min_value=1_000).map(str),
        st.sampled_from(["", " ", "FC-", "fc", "-1", "1e3", "0x1", "NaN", "null", "9" * 13]),
        st.just(None),
        st.booleans(),
        st.lists(st.integers(min_value=1_000), max_size=2),
        st.dictionaries(st.just("id"), st.integers(min_value=1_000), max_size=1),
    )
    if not resolvable:
        return far_away
    own = st.sampled_from(list(existing))
    return st.one_of(
        far_away,
        own,
        own,
        own.map(str),
        own.map(lambda n: f"FC-{n}"),
        own.map(lambda n: f"0{n}"),
        own.map(float),
        own.map(lambda n: f" {n} "),
        # Digits that are not ASCII: isdigit() is true for all of them.
        own.map(lambda n: str(n).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))),
        own.map(lambda n: str(n).translate(str.maketrans("0123456789", "０１２３４５６７８９"))),
        own.map(lambda n: str(n).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))),
    )


REAL_VERBS = sorted(V.ALL_VERBS)
verb_names = st.one_of(
    st.sampled_from(REAL_VERBS),
    st.sampled_from(REAL_VERBS).map(str.upper),
    st.sampled_from(REAL_VERBS).map(lambda v: v + " "),
    st.sampled_from(["approve", "engagement.", "", "lifecycle", "admin.page.next"]),
    odd_text,
    wrong_json,
)

COMMAND_WORDS = (
    "/request",
    "new request",
    "/status",
    "/help",
    "/pending",
    "/retry",
    "/revoke",
    "/show",
    "/extend",
    "/audit",
    "/report",
    "/export",
    "/requests",
    "/active",
    "/expiring",
)


def command_text(existing: Sequence[int]) -> st.SearchStrategy[str]:
    arg = st.one_of(
        st.sampled_from(list(existing)).map(lambda n: f"FC-{n}"),
        st.sampled_from(["FC-0", "FC--1", "FC-2147483648", "FC-999999999999", "99999999999999"]),
        st.sampled_from(["last 10", "last -1", "last 99999999999", "all 2", "active 0"]),
        st.sampled_from(["2030-02-30", "9999-12-31", "0001-01-01", "pending", "engagements"]),
        odd_text,
        st.integers().map(str),
    )
    return st.builds(
        lambda word, args: " ".join([word, *args]),
        st.sampled_from(COMMAND_WORDS),
        st.lists(arg, max_size=3),
    )


# --- senders and activity skeletons ------------------------------------------------------------

OTHER_INVOKE_NAMES = (
    "task/fetch",
    "task/submit",
    "composeExtension/query",
    "composeExtension/submitAction",
    "composeExtension/fetchTask",
    "composeExtension/queryLink",
    "composeExtension/selectItem",
    "composeExtension/setting",
    "composeExtension/onCardButtonClicked",
    "composeExtension/querySettingUrl",
    "signin/verifyState",
    "signin/tokenExchange",
    "config/fetch",
    "config/submit",
    "tab/fetch",
    "tab/submit",
    "fileConsent/invoke",
    "actionableMessage/executeAction",
    "message/submitAction",
    "handoff/action",
    "healthCheck",
    "adaptiveCard/ACTION",
    "",
)
UNKNOWN_TYPES = (
    "event",
    "messageReaction",
    "messageUpdate",
    "messageDelete",
    "typing",
    "endOfConversation",
    "deleteUserData",
    "contactRelationUpdate",
    "invokeResponse",
    "trace",
    "handoff",
    "command",
    "commandResult",
    "suggestion",
    "Message",
    "MESSAGE",
    " message",
)
# Events Teams sends and botbuilder's Teams handler reads the value of.
EVENT_NAMES = (
    "application/vnd.microsoft.readReceipt",
    "application/vnd.microsoft.meetingStart",
    "application/vnd.microsoft.meetingEnd",
    "application/vnd.microsoft.meetingParticipantJoin",
    "application/vnd.microsoft.meetingParticipantLeave",
)
INTAKE_FIELDS = (
    "project_title",
    "description",
    "freelancer_name",
    "freelancer_email",
    "start_date",
    "end_date",
    "channel_name",
)


def _usable_in_ids(text: str) -> bool:
    # Conversation ids are built from team ids; control characters make them unusable (400).
    return bool(text) and not any(ord(c) < 32 or ord(c) == 127 for c in text)


def fabricated_user(seed: int) -> TestUser:
    """A user the directory does not know, with an odd name and (sometimes) an odd id."""
    rng = random.Random(seed)
    aad = _uuid(rng) if rng.random() < 0.7 else odd_text_from(rng.getrandbits(32)) or "-"
    return TestUser(aad_id=aad, user_id=f"29:fuzz-{seed}", name=any_text_from(rng.getrandbits(32)))


def foreign_team(seed: int) -> TestTeam:
    """A team the bot is not installed in (its thread id is new, or odd but usable in ids)."""
    rng = random.Random(seed)
    thread = f"19:{rng.getrandbits(128):032x}@thread.tacv2"
    odd = odd_text_from(rng.getrandbits(32))
    if rng.random() < 0.3 and _usable_in_ids(odd):
        thread = odd
    return TestTeam(
        team_id=thread, name=any_text_from(rng.getrandbits(32)), aad_group_id=_uuid(rng)
    )


PLAUSIBLE: dict[str, list[Any]] = {
    V.REJECT_REASON: ["No budget", ""],
    V.REVOKE_REASON: ["Contract cancelled", ""],
    V.NEW_END_DATE: ["2030-01-01", "2020-01-01", "9999-12-31", "2030-02-30", "tomorrow"],
    V.LIST_COMMAND: list(COMMAND_WORDS),
    V.LIST_ARGS: ["", "all", "active 2", "FC-1"],
    V.LIST_PAGE_NUMBER: [0, 1, 2, -1, 10**9],
    "project_title": ["Website redesign"],
    "description": ["Landing pages"],
    "freelancer_name": ["Jane Doe"],
    "freelancer_email": ["jane@freelance.example", "jane@", "@example.com"],
    "start_date": ["2030-01-01", "1999-12-31", "9999-99-99"],
    "end_date": ["2030-06-01", "2000-01-01"],
    "channel_name": ["Website redesign", "General", ""],
    # Keys the handler does not read (an id under the wrong name).
    "engagementId": [1, "FC-1"],
    "id": [2, "2"],
}


def form_values(seed: int, names: Sequence[str]) -> dict[str, Any]:
    """Some of `names`, each plausible, odd text or JSON of the wrong type."""
    rng = random.Random(seed)
    values: dict[str, Any] = {}
    for name in rng.sample(list(names), rng.randint(0, min(3, len(names)))):
        roll = rng.random()
        if roll < 0.35:
            values[name] = rng.choice(PLAUSIBLE[name])
        elif roll < 0.7:
            values[name] = any_text_from(rng.getrandbits(32))
        else:
            values[name] = wrong_json_from(rng.getrandbits(32))
    return values


ACTION_DATA_KEYS = (
    V.REJECT_REASON,
    V.REVOKE_REASON,
    V.NEW_END_DATE,
    V.LIST_COMMAND,
    V.LIST_ARGS,
    V.LIST_PAGE_NUMBER,
    "engagementId",
    "id",
)
fabricated_users = SEEDS.map(fabricated_user)
reply_to_ids = st.sampled_from([None, "1700000000000", "f:card-message", "", "0"])
other_invoke_names = st.one_of(st.sampled_from(OTHER_INVOKE_NAMES), odd_text)
unknown_type_names = st.one_of(st.sampled_from(UNKNOWN_TYPES), odd_text.filter(bool))
event_names = st.one_of(st.sampled_from(EVENT_NAMES), any_text)
action_types = st.one_of(st.sampled_from(["Action.Submit", ""]), wrong_json)
odd_members = st.lists(st.fixed_dictionaries({"id": odd_text}), max_size=3)
team_event_types = st.sampled_from(
    ["teamMemberAdded", "teamRenamed", "channelCreated", "teamDeleted", "x"]
)
# Not n == 0: hypothesis draws the bounds of a range far more often than the values between.
one_in_ten = st.integers(0, 9).map(lambda n: n == 3)
one_in_forty = st.integers(0, 39).map(lambda n: n == 7)


class ActivityStrategies:
    """The strategies for one `FuzzWorld`, each built once: hypothesis works out a strategy's
    properties the first time it draws from it, and strategies built inside every draw cost
    more time than sending the requests."""

    def __init__(self, world: FuzzWorld) -> None:
        self.world = world
        known = world.known_ids
        installed = world.installed_team
        self.outsider = st.one_of(st.sampled_from(list(world.outsiders)), fabricated_users).filter(
            lambda user: user.aad_id not in known
        )
        self.insider = st.sampled_from(list(world.insiders))
        self.tenant = st.sampled_from(
            [world.tenant_id, world.tenant_id, "72f988bf-86f1-41af-91ab-2d7cd011db47", ""]
        )
        # Teams the bot is not installed in.
        self.foreign_team = SEEDS.map(foreign_team).filter(
            lambda team: team.team_id != installed.team_id
        )
        # Keyword arguments for the activity builders: personal chat, group chat or channel.
        self.conversation = st.one_of(
            st.just({"conversation_type": "personal"}),
            st.just({"conversation_type": "groupChat"}),
            st.builds(
                lambda team: {"conversation_type": "channel", "team": team}, self.foreign_team
            ),
            st.just({"conversation_type": "channel", "team": installed}),
        )
        self.any_ids = engagement_ids(world.engagement_ids, resolvable=True)
        self.no_ids = engagement_ids(world.engagement_ids, resolvable=False)
        self.intake_data = self._intake_data()
        self.outsider_data = self._action_data(self.any_ids)
        self.insider_data = self._action_data(self.no_ids)
        self.command_text = command_text(world.engagement_ids)
        self.message_value = st.one_of(
            st.none(),
            st.builds(
                lambda verb, i: {"verb": verb, V.ENGAGEMENT_ID: i}, verb_names, self.any_ids
            ),
            st.dictionaries(st.text(max_size=10), wrong_json, max_size=3),
        )
        self.card_action = _card_actions(self)
        self.message = _messages(self)
        self.hostile = _hostile_cases(self)
        self.rejected = _rejected_cases(self)

    def _intake_data(self) -> st.SearchStrategy[dict[str, Any]]:
        """Intake forms that can never be valid: the team is never one the bot is installed
        in."""
        installed = self.world.installed_team
        team = st.one_of(
            st.uuids().map(str), odd_text, wrong_json, st.just(installed.team_id)
        ).filter(lambda t: t != installed.aad_group_id)
        return st.builds(
            lambda seed, team_id: {**form_values(seed, INTAKE_FIELDS), "team_id": team_id},
            SEEDS,
            team,
        )

    @staticmethod
    def _action_data(ids: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        extra = SEEDS.map(lambda seed: form_values(seed, ACTION_DATA_KEYS))
        return st.one_of(st.builds(lambda i, e: {V.ENGAGEMENT_ID: i, **e}, ids, extra), extra)


@st.composite
def _card_actions(draw: st.DrawFn, s: ActivityStrategies) -> dict[str, Any]:
    """An adaptiveCard/action invoke, from an outsider or, with an id that names nothing, from
    an insider."""
    insider = draw(st.booleans())
    user = draw(s.insider if insider else s.outsider)
    verb = draw(verb_names)
    if verb == V.INTAKE_SUBMIT:
        data = draw(s.intake_data)
    else:
        data = draw(s.insider_data if insider else s.outsider_data)
    activity = invoke_action(
        "placeholder",
        data,
        user=user,
        service_url=s.world.service_url,
        tenant_id=draw(s.tenant),
        reply_to_id=draw(reply_to_ids),
        trigger=draw(st.sampled_from(["manual", "automatic"])),
        **draw(s.conversation),
    )
    action = activity["value"]["action"]
    action["verb"] = verb
    if draw(one_in_ten):
        action["type"] = draw(action_types)
    if draw(one_in_ten):
        # The value's shape itself: not an object, no action, an action that is not an object.
        shape = draw(st.integers(0, 3))
        if shape == 0:
            activity["value"] = draw(not_an_object)
        elif shape == 1:
            activity["value"] = {}
        elif shape == 2:
            activity["value"] = {"action": draw(not_an_object)}
        else:
            activity["value"]["trigger"] = draw(wrong_json)
    return activity


@st.composite
def _other_invokes(draw: st.DrawFn, s: ActivityStrategies) -> dict[str, Any]:
    """Invokes the bot does not implement (messaging extensions, task modules, sign-in, ...)."""
    activity = draw(s.card_action)
    activity["from"] = draw(s.outsider).account()
    activity["name"] = draw(other_invoke_names)
    activity["value"] = draw(wrong_json)
    return activity


@st.composite
def _messages(draw: st.DrawFn, s: ActivityStrategies) -> dict[str, Any]:
    return message(
        draw(st.one_of(s.command_text, any_text)),
        user=draw(s.outsider),
        service_url=s.world.service_url,
        tenant_id=draw(s.tenant),
        mention_bot=draw(st.booleans()),
        value=draw(s.message_value),
        reply_to_id=draw(reply_to_ids),
        **draw(s.conversation),
    )


@st.composite
def _install_events(draw: st.DrawFn, s: ActivityStrategies) -> dict[str, Any]:
    """installationUpdate / conversationUpdate from outsiders: personal, or for a team the bot
    does not know."""
    user = draw(s.outsider)
    team = draw(st.one_of(st.none(), s.foreign_team))
    activity = installation_update(
        user=user,
        action=draw(st.sampled_from(["add", "remove"])),
        team=team,
        service_url=s.world.service_url,
        tenant_id=draw(s.tenant),
    )
    if draw(st.booleans()):
        activity["type"] = "conversationUpdate"
        activity.pop("action", None)
        members = draw(st.integers(0, 2))
        if members == 0:
            activity["membersAdded"] = [{"id": f"28:{DEFAULT_BOT_APP_ID}"}]
        elif members == 1:
            activity["membersAdded"] = [{"id": user.user_id, "aadObjectId": user.aad_id}]
        else:
            activity["membersAdded"] = draw(odd_members)
        if team is not None:
            activity["channelData"]["eventType"] = draw(team_event_types)
    return activity


@st.composite
def _unknown_types(draw: st.DrawFn, s: ActivityStrategies) -> dict[str, Any]:
    activity = draw(s.message)
    activity["type"] = draw(unknown_type_names)
    if draw(st.booleans()):
        activity["name"] = draw(event_names)
        activity["value"] = draw(wrong_json)
    return activity


# --- mutations -------------------------------------------------------------------------------

DELETABLE = (
    "id",
    "timestamp",
    "localTimestamp",
    "channelId",
    "from",
    "recipient",
    "conversation",
    "channelData",
    "entities",
    "locale",
    "text",
    "replyToId",
    "name",
    "value",
)
TOP_LEVEL = (*DELETABLE, "textFormat", "attachments", "membersAdded", "action", "serviceUrl")
NESTED_STRINGS = (
    ("id",),
    ("text",),
    ("name",),
    ("locale",),
    ("replyToId",),
    ("from", "id"),
    ("from", "name"),
    ("from", "aadObjectId"),
    ("recipient", "id"),
    ("conversation", "id"),
    ("conversation", "conversationType"),
    ("conversation", "tenantId"),
    ("channelData", "tenant", "id"),
    ("channelData", "team", "id"),
    ("channelData", "channel", "id"),
    ("channelData", "eventType"),
)
NESTED_ANY = (
    *NESTED_STRINGS,
    ("from",),
    ("conversation", "isGroup"),
    ("channelData", "tenant"),
    ("channelData", "team"),
    ("channelData", "settings"),
    ("entities", 0),
    ("entities", 0, "mentioned"),
    ("value", "action", "data"),
    ("value", "action", "verb"),
)


def _set(activity: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = activity
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if isinstance(key, int) and isinstance(node, list) and len(node) > key:
            node = node[key]
        if not isinstance(node, (dict, list)):
            return
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and len(node) > last:
        node[last] = value


Mutation = Callable[[dict[str, Any]], None]


def mutations(*, keep_value: bool) -> st.SearchStrategy[Mutation]:
    """One change to an activity. With `keep_value` the card payload (`value`) is left alone,
    so that an insider's invoke keeps naming no engagement."""
    protected = {"value"} if keep_value else set()

    def delete(name: str) -> Mutation:
        return lambda activity: None if name in protected else activity.pop(name, None)

    def replace(path: tuple[str | int, ...], value: Any) -> Mutation:
        if path[0] in protected:
            return lambda activity: None
        return lambda activity: _set(activity, path, value)

    return st.one_of(
        st.builds(delete, st.sampled_from(DELETABLE)),
        st.builds(lambda name, v: replace((name,), v), st.sampled_from(TOP_LEVEL), wrong_json),
        st.builds(replace, st.sampled_from(NESTED_ANY), wrong_json),
        st.builds(replace, st.sampled_from(NESTED_STRINGS), any_text),
    )


# --- encoding ----------------------------------------------------------------------------------


def _encode(activity: Any, ascii_only: bool) -> tuple[bytes, bool]:
    """The JSON bytes of `activity` and whether they are valid UTF-8. With `ascii_only`, every
    non-ASCII character is a \\u escape (lone surrogates too); otherwise the text is UTF-8 and a
    lone surrogate becomes bytes no UTF-8 decoder accepts."""
    text = json.dumps(activity, ensure_ascii=ascii_only)
    try:
        return text.encode("utf-8"), True
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass"), False


UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def _unstorable(value: Any) -> bool:
    """A NUL or a lone surrogate in any string of `value` (keys too)."""
    if isinstance(value, str):
        return bool(UNSTORABLE_CHARACTER.search(value))
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


def _case(label: str, activity: Any, ascii_only: bool, allowed: frozenset[int]) -> Case:
    body, utf8 = _encode(activity, ascii_only)
    # Not UTF-8, or (as the app reads it: an escaped pair is one character) text with a NUL or
    # a lone surrogate.
    if not utf8 or _unstorable(json.loads(body)):
        allowed = frozenset({400})
    return Case(label, body, JSON_TYPE, allowed)


def _well_formed_action(value: Any) -> bool:
    if not isinstance(value, dict) or not isinstance(value.get("action"), dict):
        return False
    return bool(value["action"].get("type") == "Action.Execute")


HOSTILE_KINDS = ("card action", "message", "other invoke", "install event", "unknown type")
any_mutations = st.lists(mutations(keep_value=False), max_size=3)
mutations_keeping_value = st.lists(mutations(keep_value=True), max_size=3)


def _hostile_cases(s: ActivityStrategies) -> st.SearchStrategy[Case]:
    other_invokes, install_events, unknown_types = (
        _other_invokes(s),
        _install_events(s),
        _unknown_types(s),
    )
    # Card actions and messages reach the most code: they are drawn more often.
    kinds = st.sampled_from(
        [
            ("card action", s.card_action),
            ("card action", s.card_action),
            ("card action", s.card_action),
            ("message", s.message),
            ("message", s.message),
            ("other invoke", other_invokes),
            ("install event", install_events),
            ("unknown type", unknown_types),
        ]
    )

    @st.composite
    def hostile(draw: st.DrawFn) -> Case:
        kind, strategy = draw(kinds)
        activity = draw(strategy)
        insider = (activity.get("from") or {}).get("aadObjectId") in s.world.known_ids
        changes = draw(mutations_keeping_value if insider else any_mutations)
        for change in changes:
            change(activity)
        if draw(one_in_forty):
            text = f"{draw(odd_text)}{draw(unstorable)}"
            _set(activity, draw(st.sampled_from(NESTED_STRINGS)), text)
        allowed = ACCEPTED_OR_400
        if not changes:
            if kind == "message":
                allowed = frozenset({201})
            elif kind == "card action" and _well_formed_action(activity.get("value")):
                allowed = frozenset({200})
        label = f"{kind}{' mutated' if changes else ''}"
        return _case(label, activity, draw(st.booleans()), allowed)

    return hostile()


# --- requests that must be refused ------------------------------------------------------------

REJECTED_KINDS = (
    "raw bytes",
    "not an object",
    "truncated",
    "invalid utf-8",
    "NUL or lone surrogate",
    "no type",
    "no serviceUrl",
    "no conversation",
    "unusable id",
    "wrong content type",
    "too large",
)
INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80")
NOT_A_STRING = st.one_of(
    st.just(None), st.just(""), st.lists(wrong_json, max_size=2), st.integers(), st.booleans()
)
NOT_A_SERVICE_URL = st.one_of(
    NOT_A_STRING,
    odd_text.filter(lambda t: not t.startswith(("http://", "https://"))),
    st.sampled_from(["127.0.0.1", "ftp://x/", "//x/", "javascript:x"]),
)
# Too long, or with a control character (they go into a URL and a header of every reply).
UNUSABLE_IDS = st.one_of(
    st.builds(lambda n: "a" * n, st.integers(MAX_ID_LENGTH + 1, MAX_ID_LENGTH + 5_000)),
    huge_text.filter(lambda t: len(t) > MAX_ID_LENGTH),
    st.builds(
        lambda a, c, b: f"{a}{c}{b}",
        st.text(max_size=5),
        st.sampled_from(["\r\n", "\n", "\r", "\u0000", "\u001f", "\u007f", "\t"]),
        st.text(max_size=5),
    ),
)
NO_CONVERSATION = st.one_of(
    st.just({}),
    st.just(None),
    not_an_object,
    st.builds(lambda v: {"id": v}, NOT_A_STRING),
    st.builds(lambda v: {"id": v}, UNUSABLE_IDS),
)


def _rejected_cases(s: ActivityStrategies) -> st.SearchStrategy[Case]:
    valid_activities = st.one_of(s.card_action, s.message, _install_events(s))

    @st.composite
    def rejected(draw: st.DrawFn) -> Case:
        kind = draw(st.sampled_from(REJECTED_KINDS))
        bad = frozenset({400})
        if kind == "raw bytes":
            return Case(kind, draw(st.binary(max_size=2_000)), JSON_TYPE, bad)
        if kind == "not an object":
            return _case(kind, draw(not_an_object), draw(st.booleans()), bad)
        activity = draw(valid_activities)
        if kind == "truncated":
            body, _ = _encode(activity, True)
            return Case(kind, body[: draw(st.integers(0, len(body) - 1))], JSON_TYPE, bad)
        if kind == "invalid utf-8":
            body, _ = _encode(activity, False)
            at = draw(st.integers(0, len(body)))
            return Case(
                kind, body[:at] + draw(st.sampled_from(INVALID_UTF8)) + body[at:], JSON_TYPE, bad
            )
        if kind == "NUL or lone surrogate":
            bad_character = draw(unstorable)
            _set(activity, draw(st.sampled_from(NESTED_STRINGS)), f"x{bad_character}y")
            activity["text"] = f"/help {bad_character}"
            return _case(kind, activity, True, bad)
        if kind in ("no type", "no serviceUrl"):
            name = "type" if kind == "no type" else "serviceUrl"
            if draw(st.booleans()):
                activity.pop(name)
            else:
                activity[name] = draw(NOT_A_STRING if name == "type" else NOT_A_SERVICE_URL)
            return _case(kind, activity, draw(st.booleans()), bad)
        if kind == "no conversation":
            if draw(st.booleans()):
                activity.pop("conversation")
            else:
                activity["conversation"] = draw(NO_CONVERSATION)
            return _case(kind, activity, draw(st.booleans()), bad)
        if kind == "unusable id":
            activity["id"] = draw(UNUSABLE_IDS)
            return _case(kind, activity, draw(st.booleans()), bad)
        if kind == "wrong content type":
            body, _ = _encode(activity, True)
            body = draw(st.one_of(st.just(body), st.binary(max_size=200)))
            return Case(kind, body, draw(st.sampled_from(WRONG_CONTENT_TYPES)), frozenset({415}))
        # Too large: a text that makes the body just over the limit, up to 200 KB over it.
        target = draw(st.integers(MAX_BODY_BYTES + 1, MAX_BODY_BYTES + 200_000))
        unit = draw(st.sampled_from(["x", "é", "\U0001f600", "\u200f", "<at>"]))
        ascii_only = draw(st.booleans())
        activity["text"] = ""
        base = len(_encode(activity, ascii_only)[0])
        cost = len(_encode(unit, ascii_only)[0]) - 2  # without the quotes
        activity["text"] = unit * (-(-(target - base) // cost))
        return _case(kind, activity, ascii_only, frozenset({413}))

    return rejected()

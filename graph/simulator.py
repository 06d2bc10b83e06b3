"""A local stand-in for the Microsoft Graph v1.0 endpoints that GraphDirectory calls.

Faithful to /work/shared/platform/graph-teams-facts.md sections A1-A10, A13 and F: Graph's
JSON shapes and error body, channel-name rules, app-only private-channel rules,
team-before-channel membership, guest roles, replication delay after an invitation, offboarding
(membership removal, disabling and soft-deleting users), sponsors and the guest's invitation
redemption state. Also security groups (nestable), the transitive group-membership check
POST /users/{id}/checkMemberGroups (Learn "user: checkMemberGroups") and the flattened member
list GET /groups/{id}/transitiveMembers[/microsoft.graph.user] (Learn "List group transitive
members"); a team is a Microsoft 365 group whose members are its team members (owners
included). Every token is treated as an application (app-only) token. Used by dev mode and by
the tests; state lives in memory.

Test control happens through the Python API (seed, add_user, add_team, add_group,
add_group_member, inject_fault, set_limits, set_faults, redeem_invitation, ...); `requests`
records every request that reached the server, with its answer. With `control_api=True` a
small HTTP control API under /_control does the same for a simulator in another process (seed,
config, redeem, requests, state).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import dataclasses
import json
import math
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from aiohttp import web

from graph.rate_limits import GraphLimits, ThrottleState, api_path, charges

Clock = Callable[[], float]
Stage = Callable[[web.Request], Awaitable[None]]

API_PREFIX = "/v1.0"
CONTROL_PREFIX = "/_control"
DEFAULT_TENANT_ID = "00000000-0000-0000-0000-0000000000f1"
DEFAULT_TENANT_DOMAIN = "contoso"
_GRAPH_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;charset=utf-8"
_MEMBER_TYPE = "#microsoft.graph.aadUserConversationMember"
_NAME_TAKEN = "Channel name already existed, please use other name"
_REFERENCE_EXISTS = (
    "One or more added object references already exist for the following modified "
    "properties: 'sponsors'."
)
_USER_TYPE = "#microsoft.graph.user"
_GROUP_TYPE = "#microsoft.graph.group"
# checkMemberGroups takes at most this many group ids per request (Learn).
MAX_CHECK_MEMBER_GROUPS = 20
# GET /groups/{id}/transitiveMembers: "returns up to 100 member objects by default. The maximum
# page size that you can request through the $top query parameter is 999 objects" (Learn "List
# group transitive members"). A $top outside 1..999 is 400 Request_UnsupportedQuery "Invalid
# page size specified: '1000'. Must be between 1 and 999 inclusive." (as quoted in public
# client code, e.g. turbot/steampipe-plugin-azuread).
DEFAULT_MEMBERS_PAGE_SIZE = 100
MAX_MEMBERS_PAGE_SIZE = 999
# OData cast segments after transitiveMembers, by the type they keep. Graph takes the
# namespace-qualified name and its alias ("graph.user" is what msgraph-sdk sends).
_MEMBER_CASTS = {
    "user": "user",
    "group": "group",
    "device": "other",
    "orgcontact": "other",
    "serviceprincipal": "other",
    "application": "other",
}
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# Guests' invitation redemption state, `externalUserState` (facts F).
PENDING_ACCEPTANCE = "PendingAcceptance"
ACCEPTED = "Accepted"
_MAX_CHANNEL_NAME = 50
_MAX_PRIVATE_MEMBERS_AT_CREATE = 200
# Private channels a team may have, deleted ones included: they stay restorable and keep
# counting for 30 days (facts A4, Teams "Limits and specifications", stored version). Microsoft
# announced in 2025 that private channels would instead count towards the 1,000 channels of
# a team (rolled out October 2025 - April 2026, reported by topedia.com and admindroid.com),
# hence the per-simulator knob `private_channel_limit` (None: no separate cap).
MAX_PRIVATE_CHANNELS_PER_TEAM = 30
# Graph documents no error for exceeding the private channel limit. This is the answer
# reported for the sibling per-team channel limit: 403, code "Forbidden" (earlier
# "ResourceLimitExceeded"), message "This team has exceeded the Max allowed channels"
# (microsoftgraph/microsoft-graph-docs#7288, 2020; the 403 again in #14003, 2021). The exact
# text for private channels is not documented; this reuses that one.
_CHANNEL_LIMIT_CODE = "Forbidden"
_CHANNEL_LIMIT_MESSAGE = "This team has exceeded the Max allowed channels"
# A key-as-segment starting with "$" reads as an OData system segment: Graph's user-get page
# says /users/$x@y.com fails with 400 (the fix is /users('$x@y.com'), not modelled); message as
# reported in microsoftgraph/msgraph-sdk-dotnet#2635.
_DOLLAR_KEY_MESSAGE = (
    "The request URI is not valid. Since the segment 'users' refers to a collection, this "
    "must be the last segment in the request URI or it must be followed by an function or "
    "action that can be bound to it otherwise all intermediate segments must refer to a "
    "single resource."
)
# Teams channel-name restrictions (facts A4).
_FORBIDDEN_CHANNEL_CHARS = set("~#%&*{}+/\\:<>?|'\",")
_RESERVED_CHANNEL_NAMES = frozenset(
    {"forms", "con", "conin$", "conout$", "prn", "aux", "nul", "desktop.ini"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)
_USER_DEFAULT_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
# Status -> Graph's error code and message for scripted faults.
_FAULT_BODIES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Bad request."),
    401: ("InvalidAuthenticationToken", "Access token has expired or is not yet valid."),
    403: ("Forbidden", "Insufficient privileges to complete the operation."),
    404: ("NotFound", "Resource not found."),
    409: ("Conflict", "The request conflicts with the current state of the resource."),
    429: ("TooManyRequests", "Too many requests. Please retry again later."),
    500: ("InternalServerError", "An internal server error occurred."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
    504: ("GatewayTimeout", "The gateway timed out."),
}


class GraphHttpError(Exception):
    """Raised by the simulator's handlers; rendered as Graph's error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.outcome = ""  # how the simulator came to answer so (RecordedRequest.outcome)


# --- state ---------------------------------------------------------------------------------


@dataclass
class SimUser:
    id: str
    display_name: str
    mail: str | None
    other_mails: list[str]
    user_type: str
    account_enabled: bool
    manager_id: str | None
    user_principal_name: str
    invited_at: float | None = None  # clock() at invitation; drives the replication delay
    # Guests: PendingAcceptance until they redeem, then Accepted; None for members (facts F).
    external_user_state: str | None = None
    external_user_state_change_date_time: str | None = None
    sponsor_ids: list[str] = field(default_factory=list)  # users or groups (teams' group ids)
    deleted_date_time: str | None = None  # set when soft-deleted (DELETE /users/{id})


@dataclass
class SimMember:
    id: str  # the opaque membership id, not the user id
    user_id: str
    roles: list[str]


@dataclass
class SimChannel:
    id: str
    display_name: str
    description: str | None
    membership_type: str  # "standard" | "private" | "shared"
    created_date_time: str
    members: dict[str, SimMember] = field(default_factory=dict)  # private/shared only
    deleted: bool = False


@dataclass
class SimTeam:
    id: str  # = the Microsoft 365 group id
    display_name: str
    members: dict[str, SimMember] = field(default_factory=dict)
    channels: list[SimChannel] = field(default_factory=list)  # General first

    @property
    def thread_id(self) -> str:
        return self.channels[0].id


@dataclass
class SimGroup:
    """A security group: members are user ids and (nested) security group ids. Microsoft 365
    groups (teams) cannot be members of other groups, nor contain groups."""

    id: str
    display_name: str
    member_ids: list[str] = field(default_factory=list)


# Stand-ins whose rendering names every property a user or a group has ($select checks).
_SAMPLE_USER = SimUser(
    id="",
    display_name="",
    mail=None,
    other_mails=[],
    user_type="Member",
    account_enabled=True,
    manager_id=None,
    user_principal_name="",
)
_SAMPLE_GROUP = SimGroup(id="", display_name="")


@dataclass
class SimInvitation:
    id: str
    invited_user_email_address: str
    invited_user_display_name: str | None
    invite_redirect_url: str
    send_invitation_message: bool
    invited_user_id: str
    invite_redeem_url: str
    status: str = "PendingAcceptance"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # decoded, including /v1.0
    query: dict[str, str]
    json: Any  # parsed body, None without one
    headers: Mapping[str, str]  # case-insensitive; the Authorization value is redacted
    time: float = 0.0  # time.monotonic() when it arrived, to check pacing (Retry-After)
    status: int | None = None  # the status answered (None while in flight)
    # Why the simulator answered as it did without Graph's logic deciding: "throttled:<key>",
    # "fault", "fault-after-apply", "timeout", "timeout-after-apply", "scripted"; "" otherwise.
    outcome: str = ""


@dataclass
class _Exchange:
    """What the pipeline learnt about a request, for the handlers."""

    request_id: str
    json: Any = None
    json_error: bool = False


_EXCHANGE = web.RequestKey("graph_exchange", _Exchange)


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    remaining: int
    retry_after: int | None
    code: str
    message: str


def _path_regex(pattern: str) -> re.Pattern[str]:
    """`*` matches one path segment, `**` any number of them."""
    out = []
    for part in re.split(r"(\*\*|\*)", pattern):
        if part == "**":
            out.append(".*")
        elif part == "*":
            out.append("[^/]*")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _new_guid() -> str:
    return str(uuid.uuid4())


# --- $filter parsing (only the filters the adapter uses) ---------------------------------

_STRING = r"'((?:[^']|'')*)'"
_USER_MAIL = re.compile(rf"^\s*mail\s+eq\s+{_STRING}\s*$", re.I)
_USER_OTHER_MAILS = re.compile(
    rf"^\s*otherMails/any\(\s*(\w+)\s*:\s*(\w+)\s+eq\s+{_STRING}\s*\)\s*$", re.I
)
_CHANNEL_NAME = re.compile(rf"^\s*displayName\s+eq\s+{_STRING}\s*$", re.I)
_CHANNEL_TYPE = re.compile(rf"^\s*membershipType\s+eq\s+{_STRING}\s*$", re.I)
_MEMBER_USER_ID = re.compile(
    rf"^\s*(\()?\s*microsoft\.graph\.aadUserConversationMember/userId\s+eq\s+{_STRING}\s*(\))?\s*$",
    re.I,
)
_BIND = re.compile(r"/users(?:\('([^']+)'\)|/([^/?#()]+))$")
# A directory object reference in "@odata.id" (sponsors/$ref): users, groups or directoryObjects.
_REF = re.compile(r"/(users|groups|directoryObjects)(?:\('([^']+)'\)|/([^/?#()]+))$")


def _unquote_odata(value: str) -> str:
    return value.replace("''", "'")


def _unsupported_query() -> GraphHttpError:
    return GraphHttpError(400, "Request_UnsupportedQuery", "Unsupported Query.")


class GraphSimulator:
    """In-memory Microsoft Graph stand-in served by aiohttp under /v1.0.

    Knobs: `replication_delay_s` (a freshly invited guest is 404 for team/channel member adds
    for that long, measured with `clock`), `guest_team_add_forbidden` (403 when adding a guest
    to a team, facts A6), `invited_guest_mail` (whether an invitation fills the new guest's
    `mail`; `otherMails` is always filled), `accepted_token` (None accepts any bearer token),
    `limits` (throttling per graph.rate_limits: 429 with Graph's body and an integer
    Retry-After; None = off), `private_channel_limit` (private channels per team, deleted ones
    included; None = no separate cap), `latency_s` (added to every answer), `fault_rate` /
    `timeout_rate` / `timeout_hang_s` / `applied_fault_share` / `seed` (random 503/504 and
    timeouts, see set_faults). `requests` records every request with its answer's status.
    """

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT_ID,
        tenant_domain: str = DEFAULT_TENANT_DOMAIN,
        clock: Clock = time.monotonic,
        replication_delay_s: float = 0.0,
        guest_team_add_forbidden: bool = False,
        invited_guest_mail: bool = True,
        accepted_token: str | None = None,
        limits: GraphLimits | None = None,
        private_channel_limit: int | None = MAX_PRIVATE_CHANNELS_PER_TEAM,
        latency_s: float = 0.0,
        fault_rate: float = 0.0,
        timeout_rate: float = 0.0,
        timeout_hang_s: float = 30.0,
        applied_fault_share: float = 0.5,
        seed: int | None = None,
        control_api: bool = False,
    ) -> None:
        self.tenant_id = tenant_id
        self.tenant_domain = tenant_domain
        self.clock = clock
        self.replication_delay_s = replication_delay_s
        self.guest_team_add_forbidden = guest_team_add_forbidden
        self.invited_guest_mail = invited_guest_mail
        self.accepted_token = accepted_token
        self.private_channel_limit = private_channel_limit
        self.latency_s = latency_s
        self.fault_rate = fault_rate
        self.timeout_rate = timeout_rate
        self.timeout_hang_s = timeout_hang_s
        self.applied_fault_share = applied_fault_share
        self._rng = random.Random(seed)
        self._throttle: ThrottleState | None = None
        self.set_limits(limits)
        self.requests: list[RecordedRequest] = []
        self._users: dict[str, SimUser] = {}
        self._teams: dict[str, SimTeam] = {}
        self._groups: dict[str, SimGroup] = {}  # security groups; teams are groups too
        self._invitations: list[SimInvitation] = []
        # Soft-deleted users, restorable for 30 days in Entra (facts A10); restore is not modelled.
        self._deleted_users: dict[str, SimUser] = {}
        self._faults: list[_Fault] = []
        self._tokens_seen: list[str] = []
        # The request pipeline: each stage may raise GraphHttpError. Random faults and
        # timeouts come after it (they may let the handler apply the change first).
        self._stages: list[Stage] = [self._authenticate, self._scripted_fault, self._rate_limit]
        self._runner: web.AppRunner | None = None
        self.base_url: str | None = None
        self.control_api = control_api
        self.app = self._build_app()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = any free port); returns the base url ending in /v1.0."""
        if self._runner is not None:
            raise RuntimeError("GraphSimulator is already running")
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base_url = f"http://{shown_host}:{bound_port}{API_PREFIX}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.base_url = None

    # --- test control: seeding -----------------------------------------------------------

    def add_user(
        self,
        display_name: str,
        *,
        id: str | None = None,
        mail: str | None = None,
        other_mails: Iterable[str] = (),
        user_type: str = "Member",
        account_enabled: bool = True,
        manager_id: str | None = None,
        user_principal_name: str | None = None,
        external_user_state: str | None = None,
    ) -> str:
        """A user made outside Graph's validation. A seeded guest has redeemed its invitation
        (`external_user_state` Accepted) unless said otherwise; invited guests start
        PendingAcceptance (see POST /invitations)."""
        user_id = id or _new_guid()
        if user_id in self._users:
            raise ValueError(f"user {user_id} exists")
        if user_principal_name is None:
            if user_type == "Guest" and mail:
                user_principal_name = self._guest_upn(mail)
            elif mail:
                user_principal_name = mail
            else:
                user_principal_name = f"{user_id}@{self.tenant_domain}.onmicrosoft.com"
        self._users[user_id] = SimUser(
            id=user_id,
            display_name=display_name,
            mail=mail,
            other_mails=list(other_mails),
            user_type=user_type,
            account_enabled=account_enabled,
            manager_id=manager_id,
            user_principal_name=user_principal_name,
        )
        if external_user_state is None and user_type == "Guest":
            external_user_state = ACCEPTED
        if external_user_state is not None:
            self._set_external_state(self._users[user_id], external_user_state)
        return user_id

    def add_team(
        self,
        display_name: str,
        *,
        id: str | None = None,
        owners: Iterable[str] = (),
        members: Iterable[str] = (),
    ) -> str:
        """A team with its General channel; owners and members are user ids."""
        team_id = id or _new_guid()
        if team_id in self._teams or self._security_group(team_id) is not None:
            raise ValueError(f"a team or group {team_id} exists")
        team = SimTeam(id=team_id, display_name=display_name)
        team.channels.append(
            SimChannel(
                id=self._new_channel_id(),
                display_name="General",
                description=f"{display_name} general channel",
                membership_type="standard",
                created_date_time=_now_iso(),
            )
        )
        self._teams[team_id] = team
        for user_id in owners:
            self._add_membership(
                team.members, team.thread_id, self._require_user(user_id), ["owner"]
            )
        for user_id in members:
            self._add_membership(team.members, team.thread_id, self._require_user(user_id), [])
        return team_id

    def add_team_member(self, team_id: str, user_id: str, *, owner: bool = False) -> None:
        """A team membership made outside Graph (for arranging a test)."""
        team = self._require_team(team_id)
        roles = ["owner"] if owner else []
        self._add_membership(team.members, team.thread_id, self._require_user(user_id), roles)

    def add_channel(
        self,
        team_id: str,
        display_name: str,
        *,
        membership_type: str = "standard",
        description: str | None = None,
        owners: Iterable[str] = (),
        members: Iterable[str] = (),
        id: str | None = None,
    ) -> str:
        """A channel made outside Graph's validation (for arranging a test)."""
        team = self._require_team(team_id)
        channel = SimChannel(
            id=id or self._new_channel_id(),
            display_name=display_name,
            description=description,
            membership_type=membership_type,
            created_date_time=_now_iso(),
        )
        team.channels.append(channel)
        if membership_type != "standard":
            for user_id in owners:
                self._add_membership(
                    channel.members, channel.id, self._require_user(user_id), ["owner"]
                )
            for user_id in members:
                self._add_membership(channel.members, channel.id, self._require_user(user_id), [])
        return channel.id

    def delete_channel(self, team_id: str, channel_id: str) -> None:
        """Soft delete: the channel disappears but its name stays reserved (facts A4)."""
        self._require_channel(self._require_team(team_id), channel_id).deleted = True

    def set_account_enabled(self, user_id: str, enabled: bool) -> None:
        """What PATCH /users/{id} {"accountEnabled": ...} does: a disabled user is 404 for
        team and channel member adds (facts A6, A7)."""
        self._require_user(user_id).account_enabled = enabled

    def delete_user(self, user_id: str) -> None:
        """What DELETE /users/{id} does: soft delete (see deleted_users)."""
        self._soft_delete(self._require_user(user_id))

    def add_sponsor(self, user_id: str, sponsor_id: str) -> None:
        """Record a sponsor (a user or a team's group id) without Graph's checks."""
        sponsors = self._require_user(user_id).sponsor_ids
        if sponsor_id not in sponsors:
            sponsors.append(sponsor_id)

    def add_group(
        self,
        group_id: str | None = None,
        display_name: str = "Security group",
        member_ids: Sequence[str] = (),
    ) -> str:
        """A security group made outside Graph (for arranging a test); returns its id.

        Members are user ids or ids of other security groups (nesting). A team (a Microsoft 365
        group) cannot be a member: Entra does not nest Microsoft 365 groups."""
        new_id = group_id or _new_guid()
        if not _GUID.fullmatch(new_id):
            raise ValueError(f"group id {new_id!r} is not a GUID, as Entra object ids are")
        lowered = new_id.lower()
        if (
            self._security_group(new_id) is not None
            or any(t.lower() == lowered for t in self._teams)
            or self._find_user(new_id) is not None
        ):
            raise ValueError(f"a directory object {new_id} exists")
        if isinstance(member_ids, str):
            raise TypeError("member_ids must be a sequence of ids, not a string")
        group = SimGroup(id=new_id, display_name=display_name)
        # Members are checked before the group exists, so it cannot contain itself.
        group.member_ids = list(dict.fromkeys(self._group_member_id(m) for m in member_ids))
        self._groups[new_id] = group
        return new_id

    def add_group_member(self, group_id: str, member_id: str) -> None:
        """Add a user or a security group (nesting) to a security group; already a member is
        quiet."""
        group = self._require_group(group_id)
        canonical = self._group_member_id(member_id)
        if canonical == group.id:
            raise ValueError(f"group {group.id} cannot be a member of itself")
        if canonical not in group.member_ids:
            group.member_ids.append(canonical)

    def remove_group_member(self, group_id: str, member_id: str) -> None:
        """Remove a direct member (user or group) from a security group."""
        group = self._require_group(group_id)
        lowered = member_id.lower()
        for existing in group.member_ids:
            if existing.lower() == lowered:
                group.member_ids.remove(existing)
                return
        raise KeyError(f"{member_id} is not a member of group {group.id}")

    def redeem_invitation(self, user_id: str) -> None:
        """The guest redeems its invitation in a browser (there is no API for it, facts A1):
        `externalUserState` becomes Accepted."""
        user = self._require_user(user_id)
        if user.user_type != "Guest":
            raise ValueError(f"user {user_id} is not a guest")
        self._set_external_state(user, ACCEPTED)

    def seed(
        self,
        *,
        users: Iterable[Mapping[str, Any]] = (),
        teams: Iterable[Mapping[str, Any]] = (),
        groups: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        """Bulk add_user / add_team / add_group (in that order; a group may name groups
        listed before it); each mapping holds that method's keyword arguments."""
        for spec in users:
            self.add_user(**spec)
        for spec in teams:
            self.add_team(**spec)
        for spec in groups:
            self.add_group(**spec)

    def inject_fault(
        self,
        method: str,
        path_pattern: str,
        status: int,
        *,
        times: int = 1,
        retry_after: int | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next `times` matching requests with `status` and Graph's error body.

        `method` is an HTTP method or "*"; `path_pattern` is matched against the path after
        /v1.0, where `*` stands for one segment and `**` for any ("/teams/*/members").
        `retry_after` becomes an integer Retry-After header.
        """
        default_code, default_message = _FAULT_BODIES.get(
            status, (HTTPStatus(status).phrase.replace(" ", ""), HTTPStatus(status).phrase)
        )
        self._faults.append(
            _Fault(
                method=method.upper(),
                pattern=_path_regex(path_pattern),
                status=status,
                remaining=times,
                retry_after=retry_after,
                code=code or default_code,
                message=message or default_message,
            )
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    def set_limits(self, limits: GraphLimits | None) -> None:
        """Throttle at `limits` (graph.rate_limits.DOCUMENTED_LIMITS for Graph's documented
        numbers) from now on, with full buckets; None turns throttling off."""
        self.limits = limits
        self._throttle = ThrottleState(limits, self.clock) if limits is not None else None

    def set_faults(
        self,
        *,
        fault_rate: float | None = None,
        timeout_rate: float | None = None,
        timeout_hang_s: float | None = None,
        applied_fault_share: float | None = None,
        latency_s: float | None = None,
        seed: int | None = None,
    ) -> None:
        """Random faults: `fault_rate` of requests answer 503 or 504; `timeout_rate` of them
        hang for `timeout_hang_s` (past the client's timeout) and then answer 504. Of the
        504s and timeouts, `applied_fault_share` made their change before failing, as a
        gateway timeout in front of a slow backend does. `latency_s` delays every answer."""
        if fault_rate is not None:
            self.fault_rate = fault_rate
        if timeout_rate is not None:
            self.timeout_rate = timeout_rate
        if timeout_hang_s is not None:
            self.timeout_hang_s = timeout_hang_s
        if applied_fault_share is not None:
            self.applied_fault_share = applied_fault_share
        if latency_s is not None:
            self.latency_s = latency_s
        if seed is not None:
            self._rng = random.Random(seed)

    def applied_writes(self) -> dict[tuple[str, ...], int]:
        """How many times each write took effect (answered 2xx, or failed after applying).

        Provisioning: ("invitation", email), ("channel", team, name), ("team_member", team,
        user), ("channel_member", team, channel, user). Lifecycle: ("remove_team_member",
        team, membership), ("remove_channel_member", team, channel, membership),
        ("account_enabled", user, "true"|"false"), ("delete_user", user), ("sponsor", user,
        sponsor), ("rename_channel", team, channel, name). More than 1 is a duplicate; note
        that a deliberate re-sent invitation is another ("invitation", email) write (see
        invitations_sent)."""
        counts: dict[tuple[str, ...], int] = {}
        for r in self.requests:
            ok = r.status is not None and 200 <= r.status < 300
            if r.method not in ("POST", "PATCH", "DELETE") or not (
                ok or r.outcome.endswith("after-apply")
            ):
                continue
            key = self._write_key(r.method, api_path(r.path), r.json)
            if key is not None:
                counts[key] = counts.get(key, 0) + 1
        return counts

    def duplicate_writes(self) -> dict[tuple[str, ...], int]:
        return {key: n for key, n in self.applied_writes().items() if n > 1}

    @staticmethod
    def _write_key(method: str, path: str, body: Any) -> tuple[str, ...] | None:
        body = body if isinstance(body, dict) else {}
        parts = [p for p in path.split("/") if p]
        if method == "DELETE":
            if len(parts) == 4 and parts[0] == "teams" and parts[2] == "members":
                return ("remove_team_member", parts[1], parts[3])
            if len(parts) == 6 and parts[0] == "teams" and parts[4] == "members":
                return ("remove_channel_member", parts[1], parts[3], parts[5])
            if len(parts) == 2 and parts[0] == "users":
                return ("delete_user", parts[1].lower())
            return None
        if method == "PATCH":
            if len(parts) == 2 and parts[0] == "users" and "accountEnabled" in body:
                enabled = str(body["accountEnabled"]).lower()
                return ("account_enabled", parts[1].lower(), enabled)
            channel = len(parts) == 4 and parts[0] == "teams" and parts[2] == "channels"
            if channel and "displayName" in body:
                name = str(body["displayName"]).lower()
                return ("rename_channel", parts[1], parts[3], name)
            return None
        if parts[-2:] == ["sponsors", "$ref"] and len(parts) == 4:
            ref = body.get("@odata.id")
            found = _REF.search(ref) if isinstance(ref, str) else None
            sponsor = (found.group(2) or found.group(3)).lower() if found else ""
            return ("sponsor", parts[1].lower(), sponsor)
        bind = body.get("user@odata.bind")
        match = _BIND.search(bind) if isinstance(bind, str) else None
        user = (match.group(1) or match.group(2)).lower() if match else ""
        if parts == ["invitations"]:
            return ("invitation", str(body.get("invitedUserEmailAddress", "")).lower())
        if len(parts) == 3 and parts[0] == "teams" and parts[2] == "channels":
            return ("channel", parts[1], str(body.get("displayName", "")).lower())
        if len(parts) == 3 and parts[0] == "teams" and parts[2] == "members":
            return ("team_member", parts[1], user)
        if len(parts) == 5 and parts[0] == "teams" and parts[4] == "members":
            return ("channel_member", parts[1], parts[3], user)
        return None

    def answered(self, status: int | None = None) -> list[RecordedRequest]:
        """Recorded requests that got an answer (with `status`, if given)."""
        return [
            r
            for r in self.requests
            if r.status is not None and (status is None or r.status == status)
        ]

    # --- test control: read-only views (copies) -------------------------------------------

    @property
    def users(self) -> dict[str, SimUser]:
        return copy.deepcopy(self._users)

    def user(self, user_id: str) -> SimUser | None:
        found = self._users.get(user_id)
        return copy.deepcopy(found) if found else None

    @property
    def team_ids(self) -> list[str]:
        return list(self._teams)

    def channels(self, team_id: str, *, include_deleted: bool = False) -> list[SimChannel]:
        team = self._require_team(team_id)
        return [copy.deepcopy(c) for c in team.channels if include_deleted or not c.deleted]

    def team_members(self, team_id: str) -> list[SimMember]:
        return [copy.deepcopy(m) for m in self._require_team(team_id).members.values()]

    def channel_members(self, team_id: str, channel_id: str) -> list[SimMember]:
        team = self._require_team(team_id)
        channel = self._require_channel(team, channel_id)
        source = team.members if channel.membership_type == "standard" else channel.members
        return [copy.deepcopy(m) for m in source.values()]

    @property
    def invitations(self) -> list[SimInvitation]:
        return copy.deepcopy(self._invitations)

    def invitations_sent(self, email: str) -> int:
        """How many invitations (first or re-sent) asked Microsoft to e-mail `email`."""
        wanted = email.lower()
        return sum(
            i.send_invitation_message and i.invited_user_email_address.lower() == wanted
            for i in self._invitations
        )

    def deleted_users(self) -> dict[str, SimUser]:
        """Soft-deleted users (Entra's deleted items), by id, with `deleted_date_time`."""
        return copy.deepcopy(self._deleted_users)

    def group_members(self, group_id: str) -> list[str]:
        """Direct members (user and group ids) of a security group, in the order added."""
        return list(self._require_group(group_id).member_ids)

    def sponsors(self, user_id: str) -> list[str]:
        """Ids of the user's sponsors, in the order they were added."""
        return list(self._require_user(user_id).sponsor_ids)

    @property
    def tokens_seen(self) -> list[str]:
        """Bearer tokens received, in order (kept out of `requests`)."""
        return list(self._tokens_seen)

    # --- helpers --------------------------------------------------------------------------

    def _require_user(self, user_id: str) -> SimUser:
        try:
            return self._users[user_id]
        except KeyError:
            raise KeyError(f"no user {user_id}") from None

    def _require_team(self, team_id: str) -> SimTeam:
        try:
            return self._teams[team_id]
        except KeyError:
            raise KeyError(f"no team {team_id}") from None

    def _security_group(self, group_id: str) -> SimGroup | None:
        found = self._groups.get(group_id)
        if found is not None:
            return found
        lowered = group_id.lower()
        for group in self._groups.values():
            if group.id.lower() == lowered:
                return group
        return None

    def _require_group(self, group_id: str) -> SimGroup:
        group = self._security_group(group_id)
        if group is None:
            raise KeyError(f"no group {group_id}")
        return group

    def _group_member_id(self, member_id: str) -> str:
        """The canonical id of a user or security group that may join a security group."""
        if (user := self._find_user(member_id)) is not None:
            return user.id
        if (group := self._security_group(member_id)) is not None:
            return group.id
        if any(t.lower() == member_id.lower() for t in self._teams):
            raise ValueError(
                f"{member_id} is a team (a Microsoft 365 group); Microsoft 365 groups cannot "
                "be members of other groups"
            )
        raise KeyError(f"no user or group {member_id}")

    def _groups_of(self, object_id: str) -> set[str]:
        """Ids of every group `object_id` (a user or a security group) is a member of,
        transitively: teams (Microsoft 365 groups, direct members only) and security groups
        through any depth of nesting."""
        found = {team.id for team in self._teams.values() if object_id in team.members}
        frontier = [object_id]
        while frontier:
            member = frontier.pop()
            for group in self._groups.values():
                if member in group.member_ids and group.id not in found:
                    found.add(group.id)
                    frontier.append(group.id)
        return found

    @staticmethod
    def _require_channel(team: SimTeam, channel_id: str) -> SimChannel:
        for channel in team.channels:
            if channel.id == channel_id:
                return channel
        raise KeyError(f"no channel {channel_id} in team {team.id}")

    def _guest_upn(self, mail: str) -> str:
        return f"{mail.replace('@', '_')}#EXT#@{self.tenant_domain}.onmicrosoft.com"

    @staticmethod
    def _new_channel_id() -> str:
        return f"19:{uuid.uuid4().hex}@thread.tacv2"

    def _membership_id(self, thread_id: str, user_id: str) -> str:
        raw = f"0#1##{self.tenant_id}##{thread_id}##{user_id}"
        return base64.b64encode(raw.encode()).decode()

    def _add_membership(
        self, members: dict[str, SimMember], thread_id: str, user: SimUser, roles: list[str]
    ) -> SimMember:
        existing = members.get(user.id)
        if existing is not None:
            return existing
        shown_roles = list(roles)
        # Graph reports guests with the "guest" role whatever was asked for (facts A6).
        if user.user_type == "Guest" and "guest" not in shown_roles:
            shown_roles = [*shown_roles, "guest"]
        member = SimMember(
            id=self._membership_id(thread_id, user.id), user_id=user.id, roles=shown_roles
        )
        members[user.id] = member
        return member

    @staticmethod
    def _set_external_state(user: SimUser, state: str) -> None:
        user.external_user_state = state
        user.external_user_state_change_date_time = _now_iso()

    def _soft_delete(self, user: SimUser) -> None:
        """Move the user to deleted items and drop its team and channel memberships, as Entra
        and Teams do. Entra would restore group memberships with the user; restore is not
        modelled, so neither is that."""
        del self._users[user.id]
        user.deleted_date_time = _now_iso()
        self._deleted_users[user.id] = user
        for team in self._teams.values():
            team.members.pop(user.id, None)
            for channel in team.channels:
                channel.members.pop(user.id, None)
        for group in self._groups.values():
            if user.id in group.member_ids:
                group.member_ids.remove(user.id)

    def _find_user(self, key: str) -> SimUser | None:
        if key in self._users:
            return self._users[key]
        lowered = key.lower()
        for user in self._users.values():
            if user.id.lower() == lowered or user.user_principal_name.lower() == lowered:
                return user
        return None

    def _find_by_email(self, email: str) -> SimUser | None:
        lowered = email.lower()
        for user in self._users.values():
            if (user.mail or "").lower() == lowered or lowered in (
                m.lower() for m in user.other_mails
            ):
                return user
        return None

    def _not_yet_replicated(self, user: SimUser) -> bool:
        if user.invited_at is None:
            return False
        return self.clock() < user.invited_at + self.replication_delay_s

    # --- HTTP: app and pipeline -----------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._pipeline])
        p = API_PREFIX
        app.router.add_get(f"{p}/users", self._list_users)
        app.router.add_get(f"{p}/users/{{user_id}}", self._get_user)
        app.router.add_patch(f"{p}/users/{{user_id}}", self._patch_user)
        app.router.add_delete(f"{p}/users/{{user_id}}", self._delete_user)
        app.router.add_get(f"{p}/users/{{user_id}}/manager", self._get_manager)
        app.router.add_get(f"{p}/users/{{user_id}}/sponsors", self._list_sponsors)
        app.router.add_post(f"{p}/users/{{user_id}}/sponsors/$ref", self._post_sponsor_ref)
        app.router.add_post(f"{p}/users/{{user_id}}/checkMemberGroups", self._check_member_groups)
        app.router.add_post(
            f"{p}/directoryObjects/{{object_id}}/checkMemberGroups", self._check_member_groups
        )
        transitive = f"{p}/groups/{{group_id}}/transitiveMembers"
        app.router.add_get(transitive, self._list_transitive_members)
        app.router.add_get(f"{transitive}/{{cast}}", self._list_transitive_members)
        app.router.add_post(f"{p}/invitations", self._post_invitation)
        app.router.add_get(f"{p}/teams/{{team_id}}/channels", self._list_channels)
        app.router.add_post(f"{p}/teams/{{team_id}}/channels", self._post_channel)
        app.router.add_patch(f"{p}/teams/{{team_id}}/channels/{{channel_id}}", self._patch_channel)
        app.router.add_get(f"{p}/teams/{{team_id}}/members", self._list_team_members)
        app.router.add_post(f"{p}/teams/{{team_id}}/members", self._post_team_member)
        app.router.add_delete(
            f"{p}/teams/{{team_id}}/members/{{membership_id}}", self._delete_team_member
        )
        members = f"{p}/teams/{{team_id}}/channels/{{channel_id}}/members"
        app.router.add_get(members, self._list_channel_members)
        app.router.add_post(members, self._post_channel_member)
        app.router.add_delete(f"{members}/{{membership_id}}", self._delete_channel_member)
        if self.control_api:
            app.router.add_post(f"{CONTROL_PREFIX}/seed", self._control_seed)
            app.router.add_post(f"{CONTROL_PREFIX}/config", self._control_config)
            app.router.add_post(f"{CONTROL_PREFIX}/redeem", self._control_redeem)
            app.router.add_get(f"{CONTROL_PREFIX}/requests", self._control_requests)
            app.router.add_get(f"{CONTROL_PREFIX}/state", self._control_state)
        return app

    # --- control API (HTTP, for a simulator in another process) ----------------------------

    async def _control_seed(self, request: web.Request) -> web.Response:
        """Body: {"users": [add_user kwargs], "teams": [add_team kwargs], "groups":
        [add_group kwargs]}."""
        body = await request.json()
        before = (set(self._users), set(self._teams), set(self._groups))
        self.seed(
            users=body.get("users", ()),
            teams=body.get("teams", ()),
            groups=body.get("groups", ()),
        )
        made: dict[str, list[str]] = {
            "users": [u for u in self._users if u not in before[0]],
            "teams": [t for t in self._teams if t not in before[1]],
        }
        if "groups" in body:  # only then, so older callers see the answer they know
            made["groups"] = [g for g in self._groups if g not in before[2]]
        return web.json_response(made)

    async def _control_config(self, request: web.Request) -> web.Response:
        """Body: any of "limits" ("documented" or null), "latency_s", "fault_rate",
        "timeout_rate", "timeout_hang_s", "applied_fault_share", "seed",
        "replication_delay_s", "guest_team_add_forbidden", "private_channel_limit" (a number
        or null), "clear_requests" (true)."""
        body = await request.json()
        if "limits" in body:
            self.set_limits(GraphLimits() if body["limits"] == "documented" else None)
        self.set_faults(
            **{
                key: body[key]
                for key in (
                    "fault_rate",
                    "timeout_rate",
                    "timeout_hang_s",
                    "applied_fault_share",
                    "latency_s",
                    "seed",
                )
                if key in body
            }
        )
        if "replication_delay_s" in body:
            self.replication_delay_s = float(body["replication_delay_s"])
        if "guest_team_add_forbidden" in body:
            self.guest_team_add_forbidden = bool(body["guest_team_add_forbidden"])
        if "private_channel_limit" in body:
            limit = body["private_channel_limit"]
            self.private_channel_limit = None if limit is None else int(limit)
        if body.get("clear_requests"):
            self.requests.clear()
        return web.json_response({"ok": True})

    async def _control_redeem(self, request: web.Request) -> web.Response:
        """Body: {"user_id": guest id}: the guest redeems its invitation (redeem_invitation)."""
        body = await request.json()
        user_id = body.get("user_id") if isinstance(body, dict) else None
        if not isinstance(user_id, str) or user_id not in self._users:
            return web.json_response({"error": f"no user {user_id}"}, status=404)
        try:
            self.redeem_invitation(user_id)
        except ValueError as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response({"ok": True})

    async def _control_requests(self, request: web.Request) -> web.Response:
        """Every request received, in order, with its answer's status."""
        return web.json_response(
            [
                {
                    "method": r.method,
                    "path": r.path,
                    "query": r.query,
                    "json": r.json,
                    "time": r.time,
                    "status": r.status,
                    "outcome": r.outcome,
                }
                for r in self.requests
            ]
        )

    async def _control_state(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "invitations": [i.invited_user_email_address for i in self._invitations],
                "channels": {
                    t.id: [c.display_name for c in t.channels] for t in self._teams.values()
                },
                "duplicate_writes": [
                    {"write": list(key), "times": n} for key, n in self.duplicate_writes().items()
                ],
                "deleted_users": list(self._deleted_users),
                "sponsors": {
                    u.id: list(u.sponsor_ids) for u in self._users.values() if u.sponsor_ids
                },
                "external_user_states": {
                    u.id: u.external_user_state
                    for u in self._users.values()
                    if u.external_user_state is not None
                },
                "groups": {g.id: list(g.member_ids) for g in self._groups.values()},
            }
        )

    @web.middleware
    async def _pipeline(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)  # the control API is not Graph: no pipeline
        request_id = _new_guid()
        request[_EXCHANGE] = _Exchange(request_id=request_id)
        index = await self._record(request)
        response: web.StreamResponse
        outcome = ""
        try:
            for stage in self._stages:
                await stage(request)
            await self._random_fault(request, handler)
            response = await handler(request)
        except GraphHttpError as error:
            outcome = error.outcome
            response = self._error_response(request, error)
        except web.HTTPMethodNotAllowed:
            response = self._error_response(
                request,
                GraphHttpError(
                    405,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                ),
            )
        except web.HTTPNotFound:
            segment = request.path.rstrip("/").rsplit("/", 1)[-1]
            response = self._error_response(
                request,
                GraphHttpError(
                    400, "BadRequest", f"Resource not found for the segment '{segment}'."
                ),
            )
        response.headers["request-id"] = request_id
        client_request_id = request.headers.get("client-request-id", request_id)
        response.headers["client-request-id"] = client_request_id
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        self.requests[index] = dataclasses.replace(
            self.requests[index], status=response.status, outcome=outcome
        )
        return response

    async def _random_fault(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> None:
        """Maybe fail this request at random (see set_faults)."""
        if self.fault_rate <= 0 and self.timeout_rate <= 0:
            return
        draw = self._rng.random()
        if draw < self.fault_rate:
            status = self._rng.choice((503, 504))
            applied = status == 504 and self._rng.random() < self.applied_fault_share
            if applied:
                applied = await self._apply_quietly(request, handler)
            code, message = _FAULT_BODIES[status]
            error = GraphHttpError(status, code, message)
            error.outcome = "fault-after-apply" if applied else "fault"
            raise error
        if draw < self.fault_rate + self.timeout_rate:
            applied = self._rng.random() < self.applied_fault_share
            if applied:
                applied = await self._apply_quietly(request, handler)
            await asyncio.sleep(self.timeout_hang_s)
            code, message = _FAULT_BODIES[504]
            error = GraphHttpError(504, code, message)
            error.outcome = "timeout-after-apply" if applied else "timeout"
            raise error

    @staticmethod
    async def _apply_quietly(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> bool:
        """Run the request's handler, dropping its answer; True if it took effect (2xx). A
        request Graph would have refused (an existing sponsor's 400, say) changed nothing, so
        its fault is a plain fault: counting it as applied made a false duplicate."""
        try:
            response = await handler(request)
        except (GraphHttpError, web.HTTPException):
            return False
        return 200 <= response.status < 300

    async def _rate_limit(self, request: web.Request) -> None:
        if self._throttle is None:
            return
        path = api_path(request.path)
        refused = self._throttle.admit(charges(request.method, path, request.query))
        if refused is None:
            return
        wait_s, key = refused
        seconds = max(1, math.ceil(wait_s))  # integer seconds, as Graph sends (facts B6)
        headers = {"Retry-After": str(seconds)}
        if key.startswith("identity"):
            headers["x-ms-throttle-scope"] = (
                f"Tenant_Application/{'ReadWrite' if 'writes' in key else 'All'}/"
                f"{_new_guid()}/{self.tenant_id}"
            )
            headers["x-ms-throttle-information"] = (
                "WriteLimitExceeded" if "writes" in key else "ResourceUnitLimitExceeded"
            )
        error = GraphHttpError(
            429,
            "TooManyRequests",
            f"Too many requests from Identifier:{self.tenant_id} under category:{key}. "
            "Please try again later.",
            headers=headers,
        )
        error.outcome = f"throttled:{key}"
        raise error

    async def _record(self, request: web.Request) -> int:
        body: Any = None
        exchange = request[_EXCHANGE]
        if request.can_read_body:
            raw = await request.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    exchange.json_error = True
        exchange.json = body
        headers = request.headers.copy()  # case-insensitive, like HTTP
        if "Authorization" in headers:
            headers["Authorization"] = "<redacted>"
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                json=body,
                headers=headers,
                time=time.monotonic(),
            )
        )
        return len(self.requests) - 1

    async def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise GraphHttpError(
                401,
                "InvalidAuthenticationToken",
                "Access token is empty.",
                headers={"WWW-Authenticate": 'Bearer realm=""'},
            )
        self._tokens_seen.append(token)
        if self.accepted_token is not None and token != self.accepted_token:
            raise GraphHttpError(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
                headers={"WWW-Authenticate": 'Bearer realm=""'},
            )

    async def _scripted_fault(self, request: web.Request) -> None:
        path = request.path[len(API_PREFIX) :] if request.path.startswith(API_PREFIX) else ""
        for fault in self._faults:
            if fault.method not in ("*", request.method) or not fault.pattern.fullmatch(path):
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(int(fault.retry_after))
            error = GraphHttpError(fault.status, fault.code, fault.message, headers=headers)
            error.outcome = "scripted"
            raise error

    def _error_response(self, request: web.Request, error: GraphHttpError) -> web.Response:
        exchange = request.get(_EXCHANGE)
        request_id = exchange.request_id if exchange else _new_guid()
        body = {
            "error": {
                "code": error.code,
                "message": error.message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": request.headers.get("client-request-id", request_id),
                },
            }
        }
        return web.json_response(body, status=error.status, headers=error.headers)

    def _context(self, request: web.Request, fragment: str) -> str:
        return f"{request.scheme}://{request.host}{API_PREFIX}/$metadata#{fragment}"

    @staticmethod
    def _json(payload: Any, status: int = 200) -> web.Response:
        return web.Response(
            status=status, body=json.dumps(payload).encode(), headers={"Content-Type": _GRAPH_JSON}
        )

    @staticmethod
    def _body(request: web.Request) -> dict[str, Any]:
        exchange = request[_EXCHANGE]
        body = exchange.json
        if exchange.json_error or not isinstance(body, dict):
            raise GraphHttpError(
                400,
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type header is set "
                "and payload is of valid JSON format.",
            )
        return body

    @staticmethod
    def _select(request: web.Request, entity: dict[str, Any], type_name: str) -> dict[str, Any]:
        raw = request.query.get("$select")
        if not raw:
            return entity
        wanted = [p.strip() for p in raw.split(",") if p.strip()]
        known = {k.lower(): k for k in entity}
        out: dict[str, Any] = {}
        if "@odata.type" in entity:
            out["@odata.type"] = entity["@odata.type"]
        for prop in wanted:
            key = known.get(prop.lower())
            if key is None:
                raise GraphHttpError(
                    400,
                    "BadRequest",
                    f"Could not find a property named '{prop}' on type "
                    f"'microsoft.graph.{type_name}'.",
                )
            out[key] = entity[key]
        return out

    @staticmethod
    def _top(request: web.Request, items: list[Any]) -> list[Any]:
        raw = request.query.get("$top")
        if raw is None:
            return items
        if not raw.isdigit():
            raise GraphHttpError(400, "BadRequest", f"Invalid $top value '{raw}'.")
        return items[: int(raw)]

    def _check_query_options(self, request: web.Request, allowed: set[str]) -> None:
        for key in request.query:
            if key.startswith("$") and key not in allowed:
                raise _unsupported_query()

    # --- users ----------------------------------------------------------------------------

    def _user_json(self, user: SimUser, *, typed: bool = False) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "businessPhones": [],
            "displayName": user.display_name,
            "givenName": None,
            "jobTitle": None,
            "mail": user.mail,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": None,
            "surname": None,
            "userPrincipalName": user.user_principal_name,
            "id": user.id,
            # Returned only when $select names them, like Graph.
            "userType": user.user_type,
            "accountEnabled": user.account_enabled,
            "otherMails": list(user.other_mails),
            "externalUserState": user.external_user_state,
            "externalUserStateChangeDateTime": user.external_user_state_change_date_time,
        }
        if typed:
            entity = {"@odata.type": "#microsoft.graph.user", **entity}
        return entity

    def _render_user(self, request: web.Request, user: SimUser, *, typed: bool = False) -> Any:
        entity = self._user_json(user, typed=typed)
        if request.query.get("$select"):
            return self._select(request, entity, "user")
        keep = {"@odata.type", *_USER_DEFAULT_PROPERTIES}
        return {k: v for k, v in entity.items() if k in keep}

    def _user_not_found(self, key: str) -> GraphHttpError:
        return GraphHttpError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{key}' does not exist or one of its queried reference-property objects "
            "are not present.",
        )

    async def _get_user(self, request: web.Request) -> web.Response:
        """GET /users/{id | userPrincipalName}: by object id or UPN, case-insensitively; 404
        Request_ResourceNotFound for anything else (facts A3)."""
        self._check_query_options(request, {"$select"})
        key = request.match_info["user_id"]
        if key.startswith("$"):
            raise GraphHttpError(400, "BadRequest", _DOLLAR_KEY_MESSAGE)
        user = self._find_user(key)
        if user is None:
            raise self._user_not_found(key)
        payload: dict[str, Any] = {"@odata.context": self._context(request, "users/$entity")}
        payload.update(self._render_user(request, user))
        return self._json(payload)

    async def _get_manager(self, request: web.Request) -> web.Response:
        self._check_query_options(request, {"$select"})
        key = request.match_info["user_id"]
        user = self._find_user(key)
        if user is None:
            raise self._user_not_found(key)
        manager = self._users.get(user.manager_id) if user.manager_id else None
        if manager is None:
            raise self._user_not_found("manager")
        payload: dict[str, Any] = {
            "@odata.context": self._context(request, "directoryObjects/$entity")
        }
        payload.update(self._render_user(request, manager, typed=True))
        return self._json(payload)

    async def _list_users(self, request: web.Request) -> web.Response:
        self._check_query_options(request, {"$select", "$filter", "$top"})
        users = list(self._users.values())
        raw_filter = request.query.get("$filter")
        if raw_filter is not None:
            if match := _USER_MAIL.match(raw_filter):
                wanted = _unquote_odata(match.group(1)).lower()
                users = [u for u in users if (u.mail or "").lower() == wanted]
            elif (match := _USER_OTHER_MAILS.match(raw_filter)) and match.group(1) == match.group(
                2
            ):
                wanted = _unquote_odata(match.group(3)).lower()
                users = [u for u in users if wanted in (m.lower() for m in u.other_mails)]
            else:
                raise _unsupported_query()
        rendered = [self._render_user(request, u) for u in self._top(request, users)]
        return self._json({"@odata.context": self._context(request, "users"), "value": rendered})

    def _live_user(self, request: web.Request) -> SimUser:
        key = request.match_info["user_id"]
        user = self._find_user(key)
        if user is None:
            raise self._user_not_found(key)
        return user

    async def _patch_user(self, request: web.Request) -> web.Response:
        """Only `accountEnabled` is modelled (facts A9); 204 without a body."""
        user = self._live_user(request)
        body = self._body(request)
        enabled: bool | None = None
        for prop, value in body.items():
            if prop == "@odata.type":
                if str(value).lower() != _USER_TYPE.lower():
                    raise GraphHttpError(
                        400, "BadRequest", f"Unsupported type '{value}' for a user update."
                    )
            elif prop == "accountEnabled":
                if not isinstance(value, bool):
                    raise GraphHttpError(
                        400,
                        "BadRequest",
                        f"Cannot convert the literal '{value}' to the expected type "
                        "'Edm.Boolean'.",
                    )
                enabled = value
            elif prop in self._user_json(user):
                # A real, updatable-or-not property that this stand-in does not model.
                raise GraphHttpError(
                    400,
                    "BadRequest",
                    f"The Graph simulator does not model updating the user property '{prop}'.",
                )
            else:
                raise GraphHttpError(
                    400,
                    "Request_BadRequest",
                    f"Property '{prop}' does not exist as a declared property or extension "
                    "property.",
                )
        if enabled is not None:
            user.account_enabled = enabled
        return web.Response(status=204)

    async def _delete_user(self, request: web.Request) -> web.Response:
        """Soft delete (facts A10): gone from /users and from e-mail look-ups, its memberships
        dropped, kept in deleted items (deleted_users)."""
        self._soft_delete(self._live_user(request))
        return web.Response(status=204)

    def _directory_object(
        self, object_id: str, kind: str = "directoryObjects"
    ) -> SimUser | SimTeam | None:
        """The user (or the team's group) a reference names, None when it does not exist."""
        if kind in ("users", "directoryObjects") and (user := self._find_user(object_id)):
            return user
        if kind in ("groups", "directoryObjects"):
            return self._teams.get(object_id)
        return None

    def _render_directory_object(self, request: web.Request, obj: SimUser | SimTeam) -> Any:
        if isinstance(obj, SimUser):
            return self._render_user(request, obj, typed=True)
        entity = {"@odata.type": _GROUP_TYPE, "id": obj.id, "displayName": obj.display_name}
        if request.query.get("$select"):
            return self._select(request, entity, "directoryObject")
        return entity

    async def _list_sponsors(self, request: web.Request) -> web.Response:
        """GET /users/{id}/sponsors: typed users (and groups) (facts F)."""
        self._check_query_options(request, {"$select", "$top"})
        user = self._live_user(request)
        # A deleted sponsor stops being listed (its reference is kept for a restore).
        found = [self._directory_object(s) for s in user.sponsor_ids]
        value = [self._render_directory_object(request, o) for o in found if o is not None]
        return self._json(
            {
                "@odata.context": self._context(request, "directoryObjects"),
                "value": self._top(request, value),
            }
        )

    async def _post_sponsor_ref(self, request: web.Request) -> web.Response:
        """POST /users/{id}/sponsors/$ref {"@odata.id": ".../users/{sponsor-id}"} → 204;
        an existing sponsor is Graph's 400 for duplicate references (facts F)."""
        user = self._live_user(request)
        body = self._body(request)
        ref = body.get("@odata.id")
        match = _REF.search(ref) if isinstance(ref, str) else None
        if match is None:
            raise GraphHttpError(
                400,
                "Request_BadRequest",
                "The request must contain a valid '@odata.id' naming a user or a group.",
            )
        sponsor_key = match.group(2) or match.group(3)
        sponsor = self._directory_object(sponsor_key, match.group(1))
        if sponsor is None:
            raise self._user_not_found(sponsor_key)
        if sponsor.id in user.sponsor_ids:
            raise GraphHttpError(400, "Request_BadRequest", _REFERENCE_EXISTS)
        user.sponsor_ids.append(sponsor.id)
        return web.Response(status=204)

    # --- group membership checks ----------------------------------------------------------

    def _check_subject(self, request: web.Request) -> str:
        """The id of the object whose memberships are checked: a user (by id or UPN) under
        /users, a user or a group under /directoryObjects; 404 when there is none."""
        if "user_id" in request.match_info:
            return self._live_user(request).id
        key = request.match_info["object_id"]
        if (user := self._find_user(key)) is not None:
            return user.id
        if (group := self._security_group(key)) is not None:
            return group.id
        for team_id in self._teams:
            if team_id.lower() == key.lower():
                return team_id  # a Microsoft 365 group: a member of no group
        raise self._user_not_found(key)

    @staticmethod
    def _requested_group_ids(body: Mapping[str, Any]) -> list[str]:
        unknown = sorted(set(body) - {"groupIds"})
        if unknown:
            raise GraphHttpError(
                400,
                "BadRequest",
                f"The parameter '{unknown[0]}' in the request payload is not a valid parameter "
                "for the operation 'checkMemberGroups'.",
            )
        ids = body.get("groupIds")
        if not isinstance(ids, list) or any(not isinstance(i, str) for i in ids):
            raise GraphHttpError(
                400,
                "Request_BadRequest",
                "The parameter 'groupIds' is required and must be a collection of strings.",
            )
        if not 1 <= len(ids) <= MAX_CHECK_MEMBER_GROUPS:
            raise GraphHttpError(
                400,
                "Request_BadRequest",
                f"The 'groupIds' collection must contain between 1 and "
                f"{MAX_CHECK_MEMBER_GROUPS} group ids; it has {len(ids)}.",
            )
        for group_id in ids:
            if not _GUID.fullmatch(group_id):
                raise GraphHttpError(
                    400, "Request_BadRequest", f"Invalid object identifier '{group_id}'."
                )
        return ids

    async def _check_member_groups(self, request: web.Request) -> web.Response:
        """POST /users/{id}/checkMemberGroups (and /directoryObjects/{id}/...) {"groupIds":
        [1..20 ids]} → 200 {"value": the subset the object is a member of, transitively}.
        Ids of groups that do not exist are simply not in the answer."""
        self._check_query_options(request, set())
        subject = self._check_subject(request)
        requested = self._requested_group_ids(self._body(request))
        memberships = {g.lower(): g for g in self._groups_of(subject)}
        value: list[str] = []
        for group_id in requested:
            found = memberships.get(group_id.lower())
            if found is not None and found not in value:
                value.append(found)
        return self._json(
            {
                "@odata.context": self._context(request, "Collection(Edm.String)"),
                "value": value,
            }
        )

    # --- group members (transitive) ------------------------------------------------------

    def _group_or_team(self, key: str) -> SimGroup | SimTeam | None:
        """A security group or a team's Microsoft 365 group, by id (case-insensitively)."""
        if (group := self._security_group(key)) is not None:
            return group
        lowered = key.lower()
        for team in self._teams.values():
            if team.id.lower() == lowered:
                return team
        return None

    def _transitive_members(self, group: SimGroup | SimTeam) -> list[SimUser | SimGroup]:
        """Every member, nested groups flattened: the users and the security groups met on the
        way, each once, nearest first. A team's group has its team members (owners too: Teams
        makes a team's owners members of its group) and no nested groups."""
        if isinstance(group, SimTeam):
            return [self._users[uid] for uid in group.members if uid in self._users]
        found: list[SimUser | SimGroup] = []
        seen = {group.id}
        queue = list(group.member_ids)
        while queue:
            member_id = queue.pop(0)
            if member_id in seen:
                continue
            seen.add(member_id)
            if (user := self._users.get(member_id)) is not None:
                found.append(user)
            elif (nested := self._groups.get(member_id)) is not None:
                found.append(nested)
                queue.extend(nested.member_ids)
        return found

    @staticmethod
    def _member_cast(request: web.Request, group: SimGroup | SimTeam) -> str | None:
        """The type kept by the OData cast segment ("user", "group", "other"), None without
        one. Casting a Microsoft 365 group's members to groups is Graph's documented 400
        Request_UnsupportedQuery: such a group cannot hold groups."""
        segment = request.match_info.get("cast")
        if segment is None:
            return None
        name = segment.lower().removeprefix("microsoft.")
        kept = None
        if name.startswith("graph."):
            kept = _MEMBER_CASTS.get(name.removeprefix("graph."))
        if kept is None:
            raise GraphHttpError(
                400, "BadRequest", f"Resource not found for the segment '{segment}'."
            )
        if kept == "group" and isinstance(group, SimTeam):
            raise GraphHttpError(
                400,
                "Request_UnsupportedQuery",
                "The specified type cast is not supported for the members of a Microsoft 365 "
                "group: it cannot have groups as members.",
            )
        return kept

    @staticmethod
    def _page_size(request: web.Request) -> int:
        raw = request.query.get("$top")
        if raw is None:
            return DEFAULT_MEMBERS_PAGE_SIZE
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_MEMBERS_PAGE_SIZE:
            raise GraphHttpError(
                400,
                "Request_UnsupportedQuery",
                f"Invalid page size specified: '{raw}'. Must be between 1 and "
                f"{MAX_MEMBERS_PAGE_SIZE} inclusive.",
            )
        return int(raw)

    @staticmethod
    def _skip_offset(request: web.Request) -> int:
        """Where the page starts: Graph's $skiptoken is opaque; this one wraps an offset."""
        token = request.query.get("$skiptoken")
        if token is None:
            return 0
        try:
            decoded = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4))
            prefix, _, number = decoded.decode().partition(":")
            if prefix != "offset" or not number.isdigit():
                raise ValueError(token)
        except ValueError:
            raise GraphHttpError(
                400, "Request_BadRequest", f"Invalid skip token '{token}'."
            ) from None
        return int(number)

    @staticmethod
    def _next_link(request: web.Request, offset: int) -> str:
        """The request's own URL (path and query options) with a $skiptoken for `offset`."""
        token = base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")
        query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
        query["$skiptoken"] = token
        encoded = "&".join(f"{k}={quote(v, safe=',$')}" for k, v in query.items())
        return f"{request.scheme}://{request.host}{quote(request.path)}?{encoded}"

    @staticmethod
    def _group_json(group: SimGroup) -> dict[str, Any]:
        return {
            "@odata.type": _GROUP_TYPE,
            "id": group.id,
            "displayName": group.display_name,
            "description": None,
            "groupTypes": [],
            "mail": None,
            "mailEnabled": False,
            "mailNickname": group.display_name.replace(" ", ""),
            "securityEnabled": True,
        }

    def _render_member(self, request: web.Request, member: SimUser | SimGroup) -> Any:
        """A member in an uncast (directoryObject) listing: typed; $select may name properties
        of users or of groups, and each object shows those it has."""
        if isinstance(member, SimUser):
            entity = self._user_json(member, typed=True)
            if not request.query.get("$select"):
                return self._render_user(request, member, typed=True)
        else:
            entity = self._group_json(member)
            if not request.query.get("$select"):
                return entity
        raw = request.query.get("$select", "")
        wanted = [p.strip() for p in raw.split(",") if p.strip()]
        known = {k.lower() for k in self._user_json(_SAMPLE_USER)} | {
            k.lower() for k in self._group_json(_SAMPLE_GROUP)
        }
        for prop in wanted:
            if prop.lower() not in known:
                raise GraphHttpError(
                    400,
                    "BadRequest",
                    f"Could not find a property named '{prop}' on type "
                    "'microsoft.graph.directoryObject'.",
                )
        chosen = {p.lower() for p in wanted}
        return {k: v for k, v in entity.items() if k == "@odata.type" or k.lower() in chosen}

    async def _list_transitive_members(self, request: web.Request) -> web.Response:
        """GET /groups/{id}/transitiveMembers, optionally cast (/microsoft.graph.user or its
        alias /graph.user, /microsoft.graph.group, ...): the group's members with nested groups
        flattened (Learn "List group transitive members"). Users render as in GET /users
        ($select honoured; uncast listings type every object), pages of $top (default 100,
        1..999) linked by @odata.nextLink; `@odata.count` with $count=true and the
        ConsistencyLevel: eventual header (without the header Graph ignores $count=true). The
        documentation has asked for both with an OData cast ("advanced query"); Graph's
        current page no longer says so, so a cast without them is answered too. $filter,
        $search and $orderby are not modelled (400 Request_UnsupportedQuery). An unknown group
        is 404 Request_ResourceNotFound; an id that is not a GUID is 400."""
        self._check_query_options(request, {"$select", "$top", "$count", "$skiptoken"})
        key = request.match_info["group_id"]
        if not _GUID.fullmatch(key):
            raise GraphHttpError(400, "Request_BadRequest", f"Invalid object identifier '{key}'.")
        group = self._group_or_team(key)
        if group is None:
            raise self._user_not_found(key)
        cast = self._member_cast(request, group)
        count = request.query.get("$count")
        if count is not None and count.lower() not in ("true", "false"):
            raise GraphHttpError(
                400, "BadRequest", f"Invalid value '{count}' for the $count query option."
            )
        page_size = self._page_size(request)
        offset = self._skip_offset(request)
        members = self._transitive_members(group)
        if cast == "user":
            members = [m for m in members if isinstance(m, SimUser)]
        elif cast == "group":
            members = [m for m in members if isinstance(m, SimGroup)]
        elif cast == "other":
            members = []
        page = members[offset : offset + page_size]
        selected = request.query.get("$select")
        if cast == "user":
            fragment = f"users({selected})" if selected else "users"
            value = [self._render_user(request, m) for m in page if isinstance(m, SimUser)]
        else:
            fragment = "groups" if cast == "group" else "directoryObjects"
            value = [self._render_member(request, m) for m in page]
        payload: dict[str, Any] = {"@odata.context": self._context(request, fragment)}
        eventual = request.headers.get("ConsistencyLevel", "").lower() == "eventual"
        if eventual and (count or "").lower() == "true":
            payload["@odata.count"] = len(members)
        if offset + page_size < len(members):
            payload["@odata.nextLink"] = self._next_link(request, offset + page_size)
        payload["value"] = value
        return self._json(payload)

    # --- invitations ----------------------------------------------------------------------

    async def _post_invitation(self, request: web.Request) -> web.Response:
        body = self._body(request)
        email = body.get("invitedUserEmailAddress")
        redirect = body.get("inviteRedirectUrl")
        if not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            raise GraphHttpError(
                400, "BadRequest", "The invited user email address is missing or invalid."
            )
        if not isinstance(redirect, str) or not redirect:
            raise GraphHttpError(400, "BadRequest", "The invite redirect URL is required.")
        display_name = body.get("invitedUserDisplayName")
        send_message = bool(body.get("sendInvitationMessage", False))
        existing = self._find_by_email(email)
        if existing is not None and existing.user_type != "Guest":
            raise GraphHttpError(
                400,
                "BadRequest",
                "The invited user already exists in the directory as a member of this "
                "organization.",
            )
        reset_redemption = body.get("resetRedemption", False) is True
        if existing is None:
            # Only live users are looked at: a guest deleted earlier sits in deleted items and
            # a new guest object is created. Simplification: real Graph has been reported to
            # refuse this with "already exists" until the deleted guest is purged (facts A10).
            user_id = self.add_user(
                display_name if isinstance(display_name, str) and display_name else email,
                mail=email if self.invited_guest_mail else None,
                other_mails=[email],
                user_type="Guest",
                user_principal_name=self._guest_upn(email),
                external_user_state=PENDING_ACCEPTANCE,
            )
            guest = self._users[user_id]
            guest.invited_at = self.clock()
        else:
            # Re-invite (e.g. re-sending the e-mail): Graph answers with the same guest object
            # and its redemption state stays, unless resetRedemption asks to start over
            # (facts A1, A2, F).
            guest = existing
            if reset_redemption:
                self._set_external_state(guest, PENDING_ACCEPTANCE)
        invitation = SimInvitation(
            id=_new_guid(),
            invited_user_email_address=email,
            invited_user_display_name=display_name if isinstance(display_name, str) else None,
            invite_redirect_url=redirect,
            send_invitation_message=send_message,
            invited_user_id=guest.id,
            invite_redeem_url=(
                "https://login.microsoftonline.com/redeem?rd="
                + quote(
                    f"https://invitations.microsoft.com/redeem/?tenant={self.tenant_id}"
                    f"&user={guest.id}&ticket={uuid.uuid4().hex}",
                    safe="",
                )
            ),
        )
        self._invitations.append(invitation)
        payload: dict[str, Any] = {
            "@odata.context": self._context(request, "invitations/$entity"),
            "id": invitation.id,
            "inviteRedeemUrl": invitation.invite_redeem_url,
            "invitedUserDisplayName": invitation.invited_user_display_name,
            "invitedUserType": "Guest",
            "invitedUserEmailAddress": email,
            "sendInvitationMessage": send_message,
            "resetRedemption": reset_redemption,
            "inviteRedirectUrl": redirect,
            "status": invitation.status,
            "invitedUserMessageInfo": {
                "messageLanguage": None,
                "customizedMessageBody": None,
                "ccRecipients": [],
            },
            "invitedUser": {"id": guest.id},
        }
        return self._json(payload, status=201)

    # --- teams and channels ---------------------------------------------------------------

    def _team(self, request: web.Request) -> SimTeam:
        team_id = request.match_info["team_id"]
        team = self._teams.get(team_id)
        if team is None:
            raise GraphHttpError(404, "NotFound", f"No team found with Group Id {team_id}")
        return team

    def _channel(self, request: web.Request, team: SimTeam) -> SimChannel:
        channel_id = request.match_info["channel_id"]
        for channel in team.channels:
            if channel.id == channel_id and not channel.deleted:
                return channel
        raise GraphHttpError(404, "NotFound", f"Channel {channel_id} not found in team {team.id}.")

    def _channel_json(self, request: web.Request, team: SimTeam, channel: SimChannel) -> Any:
        membership_type = channel.membership_type
        prefer = request.headers.get("Prefer", "").lower()
        # `shared` sits after unknownFutureValue in the evolvable enum (facts A4).
        if membership_type == "shared" and "include-unknown-enum-members" not in prefer:
            membership_type = "unknownFutureValue"
        entity = {
            "id": channel.id,
            "createdDateTime": channel.created_date_time,
            "displayName": channel.display_name,
            "description": channel.description,
            "isFavoriteByDefault": None,
            "email": "",
            "tenantId": self.tenant_id,
            "webUrl": (
                f"https://teams.microsoft.com/l/channel/{quote(channel.id, safe='')}/"
                f"{quote(channel.display_name)}?groupId={team.id}&tenantId={self.tenant_id}"
            ),
            "membershipType": membership_type,
        }
        return self._select(request, entity, "channel")

    async def _list_channels(self, request: web.Request) -> web.Response:
        self._check_query_options(request, {"$select", "$filter"})
        team = self._team(request)
        channels = [c for c in team.channels if not c.deleted]
        raw_filter = request.query.get("$filter")
        if raw_filter is not None:
            if match := _CHANNEL_NAME.match(raw_filter):
                wanted = _unquote_odata(match.group(1)).lower()
                channels = [c for c in channels if c.display_name.lower() == wanted]
            elif match := _CHANNEL_TYPE.match(raw_filter):
                wanted = _unquote_odata(match.group(1)).lower()
                channels = [c for c in channels if c.membership_type == wanted]
            else:
                raise _unsupported_query()
        payload: dict[str, Any] = {
            "@odata.context": self._context(request, f"teams('{team.id}')/channels"),
            "value": [self._channel_json(request, team, c) for c in channels],
        }
        return self._json(payload)

    @staticmethod
    def _validate_channel_name(name: Any) -> str:
        if not isinstance(name, str) or not name.strip():
            raise GraphHttpError(400, "BadRequest", "Channel displayName is required.")
        if len(name) > _MAX_CHANNEL_NAME:
            raise GraphHttpError(
                400,
                "BadRequest",
                f"Channel name cannot be longer than {_MAX_CHANNEL_NAME} characters.",
            )
        bad = sorted({ch for ch in name if ch in _FORBIDDEN_CHANNEL_CHARS})
        controls = [ch for ch in name if ord(ch) < 0x20 or 0x80 <= ord(ch) <= 0x9F]
        lowered = name.lower()
        if (
            bad
            or controls
            or ".." in name
            or lowered in _RESERVED_CHANNEL_NAMES
            or "_vti_" in lowered
            or name.startswith(("_", "."))
            or name.endswith(".")
        ):
            raise GraphHttpError(
                400,
                "BadRequest",
                "Channel name contains invalid characters or words. Names can't contain "
                "~ # % & * { } + / \\ : < > ? | ' \" , or .., can't be a reserved word and "
                "can't start with _ or . or end with .",
            )
        return name

    def _bound_user(self, member: Mapping[str, Any]) -> SimUser | None:
        bind = member.get("user@odata.bind")
        if not isinstance(bind, str) or not (match := _BIND.search(bind)):
            raise GraphHttpError(
                400, "BadRequest", "Bind property 'user@odata.bind' is missing or malformed."
            )
        return self._find_user(match.group(1) or match.group(2))

    @staticmethod
    def _roles(member: Mapping[str, Any]) -> list[str]:
        roles = member.get("roles", [])
        if not isinstance(roles, list) or any(not isinstance(r, str) for r in roles):
            raise GraphHttpError(400, "BadRequest", "roles must be a list of strings.")
        return [r.lower() for r in roles]

    @staticmethod
    def _require_member_type(member: Mapping[str, Any]) -> None:
        if not isinstance(member, Mapping) or "@odata.type" not in member:
            raise GraphHttpError(
                400,
                "BadRequest",
                "'odata.type' must be specified in the request body for each member.",
            )
        if str(member["@odata.type"]).lower() != _MEMBER_TYPE.lower():
            raise GraphHttpError(
                400, "BadRequest", f"Unsupported member type '{member['@odata.type']}'."
            )

    async def _post_channel(self, request: web.Request) -> web.Response:
        team = self._team(request)
        body = self._body(request)
        name = self._validate_channel_name(body.get("displayName"))
        membership_type = str(body.get("membershipType", "standard"))
        if membership_type not in ("standard", "private", "shared"):
            raise GraphHttpError(
                400, "BadRequest", f"Invalid membershipType value '{membership_type}'."
            )
        # Deleted channels keep their name reserved.
        if any(c.display_name.lower() == name.lower() for c in team.channels):
            raise GraphHttpError(400, "NameAlreadyExists", _NAME_TAKEN)
        description = body.get("description")
        owners: list[SimUser] = []
        if membership_type != "standard":
            members = body.get("members")
            if not isinstance(members, list) or not members:
                raise GraphHttpError(
                    400,
                    "BadRequest",
                    f"Cannot create a {membership_type} channel: no members specified when "
                    "calling from an Application.",
                )
            if membership_type == "private" and len(members) > _MAX_PRIVATE_MEMBERS_AT_CREATE:
                raise GraphHttpError(
                    400,
                    "BadRequest",
                    f"A private channel can have at most {_MAX_PRIVATE_MEMBERS_AT_CREATE} "
                    "members at creation.",
                )
            for member in members:
                self._require_member_type(member)
                roles = self._roles(member)
                user = self._bound_user(member)
                if user is None or not user.account_enabled or self._not_yet_replicated(user):
                    raise GraphHttpError(
                        404, "NotFound", "The user specified as member was not found."
                    )
                # Only owners are honoured at create; others join afterwards (facts A4).
                if "owner" not in roles:
                    continue
                if user.id not in team.members:
                    raise GraphHttpError(
                        400,
                        "BadRequest",
                        f"User {user.id} is not part of team {team.id}; a channel owner must "
                        "be a member of the team first.",
                    )
                if user.user_type == "Guest":
                    raise GraphHttpError(400, "BadRequest", "Guests cannot be channel owners.")
                owners.append(user)
            if not owners:
                raise GraphHttpError(
                    400,
                    "BadRequest",
                    f"Cannot create a {membership_type} channel: no owner specified when "
                    "calling from an Application.",
                )
            if membership_type == "shared" and len(owners) != 1:
                raise GraphHttpError(
                    400, "BadRequest", "A shared channel must be created with exactly one owner."
                )
        if membership_type == "private" and self._private_channels_full(team):
            raise GraphHttpError(403, _CHANNEL_LIMIT_CODE, _CHANNEL_LIMIT_MESSAGE)
        channel = SimChannel(
            id=self._new_channel_id(),
            display_name=name,
            description=description if isinstance(description, str) else None,
            membership_type=membership_type,
            created_date_time=_now_iso(),
        )
        team.channels.append(channel)
        for owner in owners:
            self._add_membership(channel.members, channel.id, owner, ["owner"])
        context = f"teams('{team.id}')/channels/$entity"
        payload: dict[str, Any] = {"@odata.context": self._context(request, context)}
        payload.update(self._channel_json(request, team, channel))
        return self._json(payload, status=201)

    def _private_channels_full(self, team: SimTeam) -> bool:
        """Whether the team has as many private channels as allowed. Deleted ones count: they
        are restorable for 30 days (facts A4); standard and shared channels do not."""
        if self.private_channel_limit is None:
            return False
        private = sum(1 for c in team.channels if c.membership_type == "private")
        return private >= self.private_channel_limit

    async def _patch_channel(self, request: web.Request) -> web.Response:
        """PATCH displayName (and description): the create rules for names apply, a name
        that a channel of the team has (or had) is 400 NameAlreadyExists; 204."""
        team = self._team(request)
        channel = self._channel(request, team)
        body = self._body(request)
        unknown = sorted(set(body) - {"@odata.type", "displayName", "description"})
        if unknown:
            raise GraphHttpError(
                400,
                "BadRequest",
                f"The Graph simulator does not model updating the channel property "
                f"'{unknown[0]}'.",
            )
        description = body.get("description", channel.description)
        if description is not None and not isinstance(description, str):
            raise GraphHttpError(400, "BadRequest", "Channel description must be a string.")
        name = channel.display_name
        if "displayName" in body:
            name = self._validate_channel_name(body["displayName"])
            # Deleted channels keep their name reserved, as at create (facts A4).
            if any(
                c is not channel and c.display_name.lower() == name.lower() for c in team.channels
            ):
                raise GraphHttpError(400, "NameAlreadyExists", _NAME_TAKEN)
        channel.display_name = name
        channel.description = description
        return web.Response(status=204)

    # --- memberships ----------------------------------------------------------------------

    def _member_json(self, team: SimTeam, member: SimMember) -> dict[str, Any]:
        user = self._users.get(member.user_id)
        return {
            "@odata.type": _MEMBER_TYPE,
            "id": member.id,
            "roles": list(member.roles),
            "displayName": user.display_name if user else None,
            "visibleHistoryStartDateTime": "0001-01-01T00:00:00Z",
            "userId": member.user_id,
            "email": user.mail if user else None,
            "tenantId": self.tenant_id,
        }

    def _filter_members(self, request: web.Request, members: list[SimMember]) -> list[SimMember]:
        self._check_query_options(request, {"$filter", "$top", "$select"})
        raw_filter = request.query.get("$filter")
        if raw_filter is None:
            return members
        match = _MEMBER_USER_ID.match(raw_filter)
        if not match or bool(match.group(1)) != bool(match.group(3)):
            raise _unsupported_query()
        wanted = _unquote_odata(match.group(2)).lower()
        return [m for m in members if m.user_id.lower() == wanted]

    def _members_payload(
        self, request: web.Request, team: SimTeam, members: list[SimMember], context: str
    ) -> web.Response:
        chosen = self._top(request, self._filter_members(request, members))
        value = [
            self._select(request, self._member_json(team, m), "aadUserConversationMember")
            for m in chosen
        ]
        return self._json({"@odata.context": self._context(request, context), "value": value})

    def _member_to_add(self, body: Mapping[str, Any], *, what: str) -> tuple[SimUser, list[str]]:
        self._require_member_type(body)
        roles = self._roles(body)
        if roles not in ([], ["owner"]):
            raise GraphHttpError(400, "BadRequest", "roles must be 'owner' or empty.")
        user = self._bound_user(body)
        # Disabled users and guests Teams does not know yet both answer 404 (facts A6, A13).
        if user is None or not user.account_enabled or self._not_yet_replicated(user):
            raise GraphHttpError(404, "NotFound", f"The user to add to the {what} was not found.")
        if user.user_type == "Guest" and "owner" in roles:
            raise GraphHttpError(400, "BadRequest", "Guest users cannot be owners.")
        return user, roles

    async def _list_team_members(self, request: web.Request) -> web.Response:
        team = self._team(request)
        return self._members_payload(
            request, team, list(team.members.values()), f"teams('{team.id}')/members"
        )

    async def _post_team_member(self, request: web.Request) -> web.Response:
        team = self._team(request)
        user, roles = self._member_to_add(self._body(request), what="team")
        if user.user_type == "Guest" and self.guest_team_add_forbidden:
            raise GraphHttpError(403, "Forbidden", "An unknown error has occurred.")
        member = self._add_membership(team.members, team.thread_id, user, roles)
        payload: dict[str, Any] = {
            "@odata.context": self._context(request, f"teams('{team.id}')/members/$entity")
        }
        payload.update(self._member_json(team, member))
        return self._json(payload, status=201)

    async def _list_channel_members(self, request: web.Request) -> web.Response:
        team = self._team(request)
        channel = self._channel(request, team)
        source = team.members if channel.membership_type == "standard" else channel.members
        context = f"teams('{team.id}')/channels('{channel.id}')/members"
        return self._members_payload(request, team, list(source.values()), context)

    async def _post_channel_member(self, request: web.Request) -> web.Response:
        team = self._team(request)
        channel = self._channel(request, team)
        if channel.membership_type == "standard":
            raise GraphHttpError(
                400,
                "BadRequest",
                "Members can be added only to private or shared channels.",
            )
        user, roles = self._member_to_add(self._body(request), what="channel")
        if user.id not in team.members:
            raise GraphHttpError(
                400,
                "BadRequest",
                f"User {user.id} is not a member of team {team.id}; add the user to the team "
                "before adding them to a channel.",
            )
        if "owner" in roles and user.id not in channel.members:
            raise GraphHttpError(
                400, "BadRequest", "To make a user a channel owner, add them as a member first."
            )
        member = self._add_membership(channel.members, channel.id, user, roles)
        if "owner" in roles and "owner" not in member.roles:
            member.roles.insert(0, "owner")
        context = f"teams('{team.id}')/channels('{channel.id}')/members/$entity"
        payload: dict[str, Any] = {"@odata.context": self._context(request, context)}
        payload.update(self._member_json(team, member))
        return self._json(payload, status=201)

    @staticmethod
    def _membership(members: dict[str, SimMember], membership_id: str, where: str) -> SimMember:
        for member in members.values():
            if member.id == membership_id:
                return member
        raise GraphHttpError(
            404, "NotFound", f"Membership {membership_id} was not found in {where}."
        )

    async def _delete_team_member(self, request: web.Request) -> web.Response:
        """DELETE /teams/{id}/members/{membership-id} → 204 (facts A8)."""
        team = self._team(request)
        member = self._membership(
            team.members, request.match_info["membership_id"], f"team {team.id}"
        )
        del team.members[member.user_id]
        return web.Response(status=204)

    async def _delete_channel_member(self, request: web.Request) -> web.Response:
        """DELETE /teams/{id}/channels/{id}/members/{membership-id} → 204; private and shared
        channels only, and a private channel keeps its last owner (facts A8)."""
        team = self._team(request)
        channel = self._channel(request, team)
        if channel.membership_type == "standard":
            raise GraphHttpError(
                400,
                "BadRequest",
                "Members can be removed only from private or shared channels.",
            )
        member = self._membership(
            channel.members, request.match_info["membership_id"], f"channel {channel.id}"
        )
        owners = [m for m in channel.members.values() if "owner" in m.roles]
        if channel.membership_type == "private" and owners == [member]:
            raise GraphHttpError(
                400, "BadRequest", "The last owner of a private channel cannot be removed."
            )
        del channel.members[member.user_id]
        return web.Response(status=204)


def main(argv: list[str] | None = None) -> None:
    """`python -m graph.simulator [--port P] [--documented-limits] [--latency S]
    [--private-channel-limit N|none]`: an empty simulator with the control API on 127.0.0.1,
    for tests and benchmarks that want Graph in a process of its own. Prints its base URL on
    the first line of stdout."""
    import argparse

    def channel_limit(text: str) -> int | None:
        return None if text.lower() == "none" else int(text)

    parser = argparse.ArgumentParser(description="Microsoft Graph simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--documented-limits", action="store_true")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--tenant-id", default=DEFAULT_TENANT_ID)
    parser.add_argument("--token", default=None, help="the only bearer token accepted")
    parser.add_argument(
        "--private-channel-limit",
        type=channel_limit,
        default=MAX_PRIVATE_CHANNELS_PER_TEAM,
        help="private channels per team, deleted ones included ('none': no separate cap)",
    )
    args = parser.parse_args(argv)

    async def serve() -> None:
        sim = GraphSimulator(
            tenant_id=args.tenant_id,
            limits=GraphLimits() if args.documented_limits else None,
            latency_s=args.latency,
            accepted_token=args.token,
            private_channel_limit=args.private_channel_limit,
            control_api=True,
        )
        print(await sim.start(args.host, args.port), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()

"""A local Bot Connector (the `serviceUrl` a Teams bot talks back to), recording every call.

It serves the REST surface of graph-teams-facts C6 from a background thread with its own event
loop: botbuilder posts replies with blocking `requests`, so a stand-in on the bot's own loop
would deadlock. Answers follow the Bot Framework / Teams documentation: 201 `{id}` for sent
activities, `{id, activityId, serviceUrl}` for created conversations, Teams' error shape
`{"error": {"code", "message"}}` for failures.

Example::

    connector = ConnectorStandIn()
    service_url = connector.start()                  # "http://127.0.0.1:PORT/"
    connector.seed_team("19:general@thread.tacv2", "Contoso", aad_group_id="group-guid")
    connector.forbid_conversation("29:never-installed")    # 403 on createConversation
    ... drive the bot with activities whose serviceUrl is service_url ...
    reply = await connector.wait_for_activity(lambda a: a.get("text") == "echo: hi")
    assert connector.calls[-1].bearer_token == "outbound-token-1"
    connector.stop()

`calls`, `activities()` and the other getters return snapshots and may be used from any thread.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.background import BackgroundServer

NOT_INSTALLED_CODE = "ForbiddenOperationException"
NOT_INSTALLED_MESSAGE = "Bot isn't installed in user's personal scope"


@dataclass(frozen=True)
class RecordedCall:
    """One request the stand-in received, and the status it answered with."""

    method: str
    path: str  # decoded, e.g. /v3/conversations/a:1xyz/activities/1700000000001
    query: dict[str, str]
    headers: dict[str, str]
    json: Any  # the parsed body, or None when there was none or it was not JSON
    time: float  # time.time() when the request arrived
    status: int
    match: dict[str, str] = field(default_factory=dict)  # route parameters, e.g. conversation_id

    @property
    def authorization(self) -> str | None:
        for name, value in self.headers.items():
            if name.lower() == "authorization":
                return value
        return None

    @property
    def bearer_token(self) -> str | None:
        header = self.authorization
        if header and header.startswith("Bearer "):
            return header[len("Bearer ") :]
        return None

    @property
    def operation(self) -> str:
        """The C6 operation name, e.g. "ReplyToActivity"; "" for unknown routes."""
        return self.match.get("operation", "")


@dataclass(frozen=True)
class CreatedConversation:
    """A createConversation call the stand-in accepted."""

    id: str
    activity_id: str | None
    tenant_id: str | None  # read from tenantId/tenantID/channelData.tenant.id
    member_ids: list[str]
    is_group: bool
    channel_id: str | None  # channelData.channel.id when a channel thread was created
    parameters: dict[str, Any]  # the ConversationParameters as sent


@dataclass
class _Failure:
    method: str
    path: re.Pattern[str]
    status: int
    body: Any
    headers: dict[str, str]
    remaining: int


def _error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def _get_ci(mapping: Any, key: str) -> Any:
    """`mapping[key]`, matching the key case-insensitively: botbuilder-python sends `tenantID`,
    Teams sends `tenantId`, and the real (.NET) service accepts both."""
    if not isinstance(mapping, dict):
        return None
    for name, value in mapping.items():
        if name.lower() == key.lower():
            return value
    return None


class ConnectorStandIn:
    """A Bot Connector on 127.0.0.1 for tests; see the module docstring."""

    def __init__(self, *, strict_activity_ids: bool = False) -> None:
        """`strict_activity_ids`: answer 404 ActivityNotFoundInConversation to replies,
        updates and deletes of activity ids the stand-in did not hand out. Off by default
        because tests usually invent the ids of the activities they send to the bot."""
        self._strict = strict_activity_ids
        self._lock = threading.Lock()
        self._calls: list[RecordedCall] = []
        self._conversations: list[CreatedConversation] = []
        self._personal: dict[str, str] = {}  # user id -> personal conversation id
        self._known_activities: set[tuple[str, str]] = set()
        self._teams: dict[str, dict[str, Any]] = {}
        self._team_channels: dict[str, list[dict[str, Any]]] = {}
        self._members: dict[str, list[dict[str, Any]]] = {}
        self._forbidden: dict[str, tuple[int, str, str]] = {}
        self._failures: list[_Failure] = []
        self._delays: list[tuple[str, re.Pattern[str], float]] = []
        self._ids = itertools.count(1)
        self._server = BackgroundServer(self._app(), name="connector")

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> str:
        """Start serving; return the service URL (with a trailing slash, as Teams sends it)."""
        self._server.start()
        return self.service_url

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> ConnectorStandIn:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/"

    def reset(self) -> None:
        """Forget recorded calls and conversations (seeded teams, members and failures stay)."""
        with self._lock:
            self._calls.clear()
            self._conversations.clear()
            self._personal.clear()
            self._known_activities.clear()

    # -- configuration ------------------------------------------------------------------

    def seed_team(
        self,
        team_id: str,
        name: str,
        *,
        aad_group_id: str,
        channels: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        """Make GET /v3/teams/{team_id} answer `{id, name, aadGroupId}`; `channels` ({id, name})
        are listed by GET /v3/teams/{team_id}/conversations after the General channel."""
        with self._lock:
            self._teams[team_id] = {"id": team_id, "name": name, "aadGroupId": aad_group_id}
            # Teams lists the General channel with the team's id and no name.
            self._team_channels[team_id] = [{"id": team_id, "name": None}] + [
                dict(channel) for channel in channels
            ]

    def set_members(self, conversation_id: str, members: Iterable[Mapping[str, Any]]) -> None:
        """The TeamsChannelAccount dicts (id "29:...", name, aadObjectId, ...) that
        GET /members and /pagedmembers return for `conversation_id` (or a team id)."""
        with self._lock:
            self._members[conversation_id] = [dict(member) for member in members]

    def forbid_conversation(
        self,
        user_id: str,
        *,
        status: int = 403,
        code: str = NOT_INSTALLED_CODE,
        message: str = NOT_INSTALLED_MESSAGE,
    ) -> None:
        """Refuse createConversation for a member with this id ("29:...") or aadObjectId,
        by default as Teams does when the app is not installed for the user."""
        with self._lock:
            self._forbidden[user_id] = (status, code, message)

    def allow_conversation(self, user_id: str) -> None:
        with self._lock:
            self._forbidden.pop(user_id, None)

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        status: int,
        *,
        code: str | None = None,
        message: str = "Injected failure",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests whose method matches and whose decoded path
        matches the regex `path_pattern` (re.search) with `status`. The body is `body` if given,
        else Teams' error shape with `code` (default from the status: 429 Throttled,
        412 PreconditionFailed, 5xx ServiceError, else BadArgument). Use `headers` for
        Retry-After."""
        default_codes = {429: "Throttled", 412: "PreconditionFailed", 404: "NotFound"}
        if body is None:
            error_code = code or default_codes.get(
                status, "ServiceError" if status >= 500 else "BadArgument"
            )
            body = {"error": {"code": error_code, "message": message}}
        with self._lock:
            self._failures.append(
                _Failure(
                    method.upper(),
                    re.compile(path_pattern),
                    status,
                    body,
                    dict(headers or {}),
                    times,
                )
            )

    def delay(self, method: str, path_pattern: str, seconds: float) -> None:
        """Answer every request whose method matches and whose decoded path matches the regex
        `path_pattern` only after `seconds` (a slow Bot Connector, so a turn takes long)."""
        with self._lock:
            self._delays.append((method.upper(), re.compile(path_pattern), seconds))

    # -- what was recorded ----------------------------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    @property
    def conversations(self) -> list[CreatedConversation]:
        with self._lock:
            return list(self._conversations)

    def activities(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        """Bodies of the activities the bot sent and the stand-in accepted (SendToConversation,
        ReplyToActivity, and the activity of a CreateConversation), oldest first."""
        result: list[dict[str, Any]] = []
        for call in self.calls:
            if call.status >= 300:
                continue
            if call.operation in ("SendToConversation", "ReplyToActivity"):
                if conversation_id is None or call.match["conversation_id"] == conversation_id:
                    result.append(call.json)
            elif call.operation == "CreateConversation" and isinstance(call.json, dict):
                activity = call.json.get("activity")
                if activity and conversation_id is None:
                    result.append(activity)
        return result

    def updates(self, conversation_id: str | None = None) -> list[RecordedCall]:
        """Accepted UpdateActivity calls (`call.match["activity_id"]`, `call.json`)."""
        return [
            call
            for call in self.calls
            if call.operation == "UpdateActivity"
            and call.status < 300
            and (conversation_id is None or call.match["conversation_id"] == conversation_id)
        ]

    # A timeout parameter (ASYNC109) rather than asyncio.timeout(): the wait polls a list that
    # another thread fills, and one call with a deadline reads best in tests.
    async def wait_for(
        self,
        predicate: Callable[[RecordedCall], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> RecordedCall:
        """The first recorded call matching `predicate`, waiting (polling) up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for call in self.calls:
                if predicate(call):
                    return call
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no matching connector call within {timeout} s; got: {self._summary()}"
                )
            await asyncio.sleep(0.02)

    async def wait_for_activity(
        self,
        predicate: Callable[[dict[str, Any]], bool] = lambda _a: True,
        timeout: float = 5.0,  # noqa: ASYNC109 (see wait_for)
    ) -> dict[str, Any]:
        """The first sent activity (see `activities`) matching `predicate`, waiting up to
        `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for activity in self.activities():
                if predicate(activity):
                    return activity
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no matching activity within {timeout} s; got: {self._summary()}"
                )
            await asyncio.sleep(0.02)

    def _summary(self) -> str:
        return ", ".join(f"{c.method} {c.path} -> {c.status}" for c in self.calls) or "no calls"

    # -- the server -------------------------------------------------------------------------

    def _new_id(self) -> str:
        # Teams activity ids are millisecond timestamps; the counter keeps them unique.
        return f"{int(time.time() * 1000)}{next(self._ids):04d}"

    def _app(self) -> web.Application:
        routes: list[tuple[str, str, str, Callable[..., Any]]] = [
            ("POST", "/v3/conversations", "CreateConversation", self._create_conversation),
            (
                "POST",
                "/v3/conversations/{conversation_id}/activities",
                "SendToConversation",
                self._send_activity,
            ),
            (
                "POST",
                "/v3/conversations/{conversation_id}/activities/{activity_id}",
                "ReplyToActivity",
                self._send_activity,
            ),
            (
                "PUT",
                "/v3/conversations/{conversation_id}/activities/{activity_id}",
                "UpdateActivity",
                self._update_activity,
            ),
            (
                "DELETE",
                "/v3/conversations/{conversation_id}/activities/{activity_id}",
                "DeleteActivity",
                self._delete_activity,
            ),
            (
                "GET",
                "/v3/conversations/{conversation_id}/members",
                "GetConversationMembers",
                self._get_members,
            ),
            (
                "GET",
                "/v3/conversations/{conversation_id}/members/{member_id}",
                "GetConversationMember",
                self._get_member,
            ),
            (
                "GET",
                "/v3/conversations/{conversation_id}/pagedmembers",
                "GetConversationPagedMembers",
                self._get_paged_members,
            ),
            ("GET", "/v3/teams/{team_id}", "FetchTeamDetails", self._get_team),
            ("GET", "/v3/teams/{team_id}/conversations", "FetchChannelList", self._get_channels),
        ]
        app = web.Application(middlewares=[self._record])
        for method, path, operation, handler in routes:
            # An id may hold any character but "/" (aiohttp's default also refuses "{" and "}").
            path = re.sub(r"\{(\w+)\}", r"{\1:[^/]+}", path)
            app.router.add_route(method, path, handler, name=operation)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        arrived = time.time()
        text = await request.text() if request.can_read_body else ""
        try:
            body: Any = await request.json() if text else None
        except ValueError:
            body = None
        match = dict(request.match_info)
        route = request.match_info.route
        if route.name:
            match["operation"] = route.name
        with self._lock:
            delays = [
                seconds
                for method, pattern, seconds in self._delays
                if method == request.method and pattern.search(request.path)
            ]
        if delays:
            await asyncio.sleep(max(delays))
        response = self._injected_failure(request)
        if response is None:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # unknown routes, wrong methods
                response = exc
        with self._lock:
            self._calls.append(
                RecordedCall(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers=dict(request.headers),
                    json=body,
                    time=arrived,
                    status=response.status,
                    match=match,
                )
            )
        if isinstance(response, web.HTTPException):
            raise response
        return response

    def _injected_failure(self, request: web.Request) -> web.Response | None:
        with self._lock:
            for failure in self._failures:
                if failure.method == request.method and failure.path.search(request.path):
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    return web.json_response(
                        failure.body, status=failure.status, headers=failure.headers
                    )
        return None

    async def _create_conversation(self, request: web.Request) -> web.Response:
        params = await request.json()
        if not isinstance(params, dict):
            return _error(400, "BadArgument", "ConversationParameters expected")
        members = [m for m in (_get_ci(params, "members") or []) if isinstance(m, dict)]
        member_ids = [str(_get_ci(m, "id") or "") for m in members]
        channel_data = _get_ci(params, "channelData")
        tenant_id = _get_ci(params, "tenantId") or _get_ci(_get_ci(channel_data, "tenant"), "id")
        channel_id = _get_ci(_get_ci(channel_data, "channel"), "id")
        is_group = bool(_get_ci(params, "isGroup"))
        with self._lock:
            for member in members:
                for key in ("id", "aadObjectId"):
                    refusal = self._forbidden.get(str(_get_ci(member, key) or ""))
                    if refusal is not None:
                        return _error(*refusal)
        if not channel_id and not member_ids:
            return _error(400, "BadArgument", "Conversation must have members or a channel")
        activity = _get_ci(params, "activity")
        activity_id = self._new_id() if activity else None
        with self._lock:
            if channel_id:
                # A new thread in a channel: its id is the channel's plus the root message id.
                conversation_id = f"{channel_id};messageid={activity_id or self._new_id()}"
            elif not is_group and len(member_ids) == 1:
                # Teams hands back the same 1:1 conversation for the same user.
                conversation_id = self._personal.setdefault(
                    member_ids[0], f"a:1{uuid.uuid4().hex}"
                )
            else:
                conversation_id = f"19:{uuid.uuid4().hex}@thread.v2"
            if activity_id:
                self._known_activities.add((conversation_id, activity_id))
            self._conversations.append(
                CreatedConversation(
                    id=conversation_id,
                    activity_id=activity_id,
                    tenant_id=tenant_id,
                    member_ids=member_ids,
                    is_group=is_group,
                    channel_id=channel_id,
                    parameters=params,
                )
            )
        body: dict[str, Any] = {"id": conversation_id, "serviceUrl": self.service_url}
        if activity_id:
            body["activityId"] = activity_id
        return web.json_response(body, status=201)

    def _unknown_activity(self, request: web.Request) -> web.Response | None:
        key = (request.match_info["conversation_id"], request.match_info["activity_id"])
        with self._lock:
            if self._strict and key not in self._known_activities:
                return _error(404, "ActivityNotFoundInConversation", "The activity was not found")
        return None

    async def _send_activity(self, request: web.Request) -> web.Response:
        if "activity_id" in request.match_info:
            refusal = self._unknown_activity(request)
            if refusal is not None:
                return refusal
        try:
            activity = await request.json()
        except ValueError:
            activity = None
        if not isinstance(activity, dict) or not activity.get("type"):
            return _error(400, "BadArgument", "An activity with a type is required")
        activity_id = self._new_id()
        with self._lock:
            self._known_activities.add((request.match_info["conversation_id"], activity_id))
        return web.json_response({"id": activity_id}, status=201)

    async def _update_activity(self, request: web.Request) -> web.Response:
        refusal = self._unknown_activity(request)
        if refusal is not None:
            return refusal
        return web.json_response({"id": request.match_info["activity_id"]}, status=200)

    async def _delete_activity(self, request: web.Request) -> web.Response:
        refusal = self._unknown_activity(request)
        if refusal is not None:
            return refusal
        with self._lock:
            self._known_activities.discard(
                (request.match_info["conversation_id"], request.match_info["activity_id"])
            )
        return web.Response(status=200)

    def _members_of(self, conversation_id: str) -> list[dict[str, Any]] | None:
        with self._lock:
            members = self._members.get(conversation_id)
            return None if members is None else [dict(m) for m in members]

    async def _get_members(self, request: web.Request) -> web.Response:
        members = self._members_of(request.match_info["conversation_id"])
        if members is None:
            return _error(404, "ConversationNotFound", "Conversation not found.")
        return web.json_response(members)

    async def _get_member(self, request: web.Request) -> web.Response:
        members = self._members_of(request.match_info["conversation_id"])
        if members is None:
            return _error(404, "ConversationNotFound", "Conversation not found.")
        wanted = request.match_info["member_id"]
        for member in members:
            if wanted in (member.get("id"), member.get("aadObjectId")):
                return web.json_response(member)
        # The stand-in's choice of code; the Teams error table does not list this case.
        return _error(404, "NotFound", "The member was not found in the conversation.")

    async def _get_paged_members(self, request: web.Request) -> web.Response:
        members = self._members_of(request.match_info["conversation_id"])
        if members is None:
            return _error(404, "ConversationNotFound", "Conversation not found.")
        try:
            page_size = max(1, int(request.query.get("pageSize", "200")))
            start = int(request.query.get("continuationToken") or 0)
        except ValueError:
            return _error(400, "BadArgument", "Invalid pageSize or continuationToken")
        page: dict[str, Any] = {"members": members[start : start + page_size]}
        if start + page_size < len(members):
            page["continuationToken"] = str(start + page_size)
        return web.json_response(page)

    async def _get_team(self, request: web.Request) -> web.Response:
        with self._lock:
            team = self._teams.get(request.match_info["team_id"])
        if team is None:
            return _error(404, "ConversationNotFound", "Conversation not found.")
        return web.json_response(team)

    async def _get_channels(self, request: web.Request) -> web.Response:
        with self._lock:
            channels = self._team_channels.get(request.match_info["team_id"])
        if channels is None:
            return _error(404, "ConversationNotFound", "Conversation not found.")
        return web.json_response({"conversations": channels})

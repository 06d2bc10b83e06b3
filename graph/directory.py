"""core.ports.Directory on msgraph-sdk, and the mapping of Graph failures to core errors."""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, TypeVar

import aiohttp
import httpx
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration

# The package exports no public name for its "only https is supported" error.
from kiota_authentication_azure._exceptions import KiotaAuthenticationError
from msgraph.generated.groups.item.transitive_members.graph_user import (
    graph_user_request_builder as transitive_users,
)
from msgraph.generated.models.aad_user_conversation_member import AadUserConversationMember
from msgraph.generated.models.channel import Channel
from msgraph.generated.models.channel_membership_type import ChannelMembershipType
from msgraph.generated.models.conversation_member import ConversationMember
from msgraph.generated.models.directory_object import DirectoryObject
from msgraph.generated.models.invitation import Invitation
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.user import User
from msgraph.generated.teams.item.channels.channels_request_builder import ChannelsRequestBuilder
from msgraph.generated.teams.item.channels.item.members.members_request_builder import (
    MembersRequestBuilder as ChannelMembersRequestBuilder,
)
from msgraph.generated.teams.item.members.members_request_builder import (
    MembersRequestBuilder as TeamMembersRequestBuilder,
)
from msgraph.generated.users.item.check_member_groups import (
    check_member_groups_post_request_body as check_member_groups_body,
)
from msgraph.generated.users.item.manager.manager_request_builder import ManagerRequestBuilder
from msgraph.generated.users.item.sponsors.sponsors_request_builder import SponsorsRequestBuilder
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph.graph_service_client import GraphServiceClient

from core.errors import (
    ChannelNameTaken,
    DirectoryError,
    NotYetReplicated,
    PermanentDirectoryError,
    PrivateChannelLimitReached,
    Throttled,
    TransientDirectoryError,
    UserGone,
)
from core.ports import ChannelInfo, DirectoryUser, GuestInvitation
from graph.client import GLOBAL_GRAPH_URL

T = TypeVar("T")

USER_FIELDS = ["id", "displayName", "mail", "userType", "accountEnabled"]
# Returned only when $select names them (facts F).
INVITATION_STATE_FIELDS = ["id", "externalUserState", "externalUserStateChangeDateTime"]
CHANNEL_FIELDS = ["id", "displayName", "description", "membershipType"]
# Without it Graph reports shared channels as "unknownFutureValue" (facts A4).
_PREFER_ENUMS = ("Prefer", "include-unknown-enum-members")
_MEMBER_ODATA_TYPE = "#microsoft.graph.aadUserConversationMember"
_TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504})
# Graph's page size for directory object lists: $top may ask for 1..999 (Learn "List group
# transitive members": "up to 100 member objects by default", at most 999 through $top).
MAX_GRAPH_PAGE_SIZE = 999
# Filtering a directory relationship on its OData type (the /microsoft.graph.user cast) is an
# "advanced query": Graph's documentation asks for the ConsistencyLevel: eventual header and
# $count=true with it (Learn "List group transitive members", request headers; "Advanced query
# capabilities on Microsoft Entra ID objects", "Use of OData cast with transitive members
# list"). Sent always: Graph accepts them where they are not needed.
_CONSISTENCY_EVENTUAL = ("ConsistencyLevel", "eventual")
# What the user cast returns: users, and agent users (a kind of user, msgraph-sdk's AgentUser).
_USER_TYPES = frozenset({"#microsoft.graph.user", "#microsoft.graph.agentuser"})
# POST /users/{id}/checkMemberGroups takes at most 20 group ids per request (Learn).
MAX_GROUPS_PER_CHECK = 20
_MAX_DETAIL = 300
# Teams' per-team cap on private channels, deleted ones included for 30 days (facts A4). Only
# named in the message of PrivateChannelLimitReached; Graph does the counting.
TEAMS_PRIVATE_CHANNEL_LIMIT = 30

# find_user_by_identifier: which identifiers may go into the /users/{id | userPrincipalName}
# path. Object ids are GUIDs. A UPN is at most 113 characters, has one "@" that is not first,
# and its name part uses only A-Z a-z 0-9 ' . - _ ! # ^ ~ (Microsoft 365 "Prepare for directory
# synchronization", userPrincipalName). Anything else cannot be a key, and some of it would
# change the URL's meaning ("/", "?", a leading "$" that Graph reads as a system segment), so
# it only goes to the quoted `mail eq` filter.
_OBJECT_ID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_UPN = re.compile(r"[A-Za-z0-9'._!#^~-]+@[A-Za-z0-9.-]+")
_MAX_UPN = 113
# RFC 5321 caps an address at 254 characters: longer is nobody's e-mail, UPN or id.
_MAX_IDENTIFIER = 254
# No id, UPN or e-mail address holds a control character (C0, DEL or C1).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Operation:
    """What a Graph call does, in words an admin reads, and the permission it needs."""

    description: str
    permission: str
    # Member adds answer 404 while a fresh guest is not known to Teams yet (facts A13).
    not_found_is_replication: bool = False
    # A 404 means the user (the guest, or the sponsor named) is not in the directory (any
    # more): UserGone.
    not_found_is_user_gone: bool = False
    # Creating a private channel: Graph's "exceeded the Max allowed channels" refusal means the
    # team is full (PrivateChannelLimitReached), not a missing permission.
    over_limit_is_private_channels: bool = False
    forbidden_hint: str = ""


GET_USER = Operation("read a user from the directory", "User.Read.All")
GET_MANAGER = Operation("read a user's manager from the directory", "User.Read.All")
FIND_USER = Operation("look up a user by e-mail address", "User.Read.All")
INVITE_GUEST = Operation(
    "invite the freelancer as a guest",
    "User.Invite.All",
    forbidden_hint=(
        " App-only invitations also fail when B2B invitations are disabled or restricted to"
        " admins in the Entra external collaboration settings."
    ),
)
_LIST_CHANNELS_PERMISSION = (
    "Channel.ReadBasic.All (or the resource-specific ChannelSettings.Read.Group)"
)
FIND_CHANNEL = Operation("list the team's channels", _LIST_CHANNELS_PERMISSION)
LIST_CHANNELS = Operation("list the team's channels", _LIST_CHANNELS_PERMISSION)
CREATE_CHANNEL = Operation(
    "create the private channel",
    "Channel.Create (or the resource-specific Channel.Create.Group granted in the team)",
    over_limit_is_private_channels=True,
)
FIND_TEAM_MEMBER = Operation("list the team's members", "TeamMember.Read.All")
ADD_TEAM_MEMBER = Operation(
    "add the guest to the team",
    "TeamMember.ReadWriteNonOwnerRole.All",
    not_found_is_replication=True,
    forbidden_hint=(
        " If it is granted: Microsoft Graph has been reported to refuse adding guests to a"
        " team with application permissions; add the guest to the team by hand (or ask a"
        " team owner) and retry."
    ),
)
FIND_CHANNEL_MEMBER = Operation("list the channel's members", "ChannelMember.Read.All")
ADD_CHANNEL_MEMBER = Operation(
    "add the guest to the private channel",
    "ChannelMember.ReadWrite.All (or the resource-specific ChannelMember.ReadWrite.Group)",
    not_found_is_replication=True,
)
# Lifecycle (facts A8-A10, F).
REMOVE_TEAM_MEMBER = Operation(
    "remove the guest from the team",
    # By symmetry with adding (facts A8 and E5 ask to verify it in a real tenant).
    "TeamMember.ReadWriteNonOwnerRole.All",
)
REMOVE_CHANNEL_MEMBER = Operation(
    "remove the guest from the private channel",
    "ChannelMember.ReadWrite.All (or the resource-specific ChannelMember.ReadWrite.Group)",
)
_ACCOUNT_PERMISSION = "User.EnableDisableAccount.All (together with User.Read.All)"
DISABLE_USER = Operation(
    "disable the guest's account", _ACCOUNT_PERMISSION, not_found_is_user_gone=True
)
ENABLE_USER = Operation(
    "re-enable the guest's account", _ACCOUNT_PERMISSION, not_found_is_user_gone=True
)
DELETE_USER = Operation("delete the guest from the directory", "User.ReadWrite.All")
LIST_SPONSORS = Operation(
    "read the guest's sponsors", "User.Read.All", not_found_is_user_gone=True
)
ADD_SPONSOR = Operation(
    "record the requester as the guest's sponsor",
    "User.ReadWrite.All",
    not_found_is_user_gone=True,
)
GET_INVITATION_STATE = Operation(
    "read whether the guest has accepted the invitation",
    "User.Read.All",
    not_found_is_user_gone=True,
)
RESEND_INVITATION = Operation(
    "send the freelancer the invitation again",
    "User.Invite.All",
    forbidden_hint=INVITE_GUEST.forbidden_hint,
)
CHECK_MEMBER_GROUPS = Operation(
    "check which groups a user is a member of",
    "GroupMember.Read.All together with User.Read.All (or Directory.Read.All)",
)
# GET /groups/{id}/transitiveMembers/microsoft.graph.user (Learn "List group transitive
# members"): least privileged application permission GroupMember.Read.All. Members whose type
# the app may not read come back with only their id and type ("limited information"), so the
# user properties (accountEnabled among them) need User.Read.All as well.
LIST_GROUP_MEMBERS = Operation(
    "list the members of a group",
    "GroupMember.Read.All together with User.Read.All (or Directory.Read.All)",
)
RENAME_CHANNEL = Operation(
    "rename the private channel",
    "ChannelSettings.ReadWrite.All (or the resource-specific ChannelSettings.ReadWrite.Group)",
)


# --- error mapping -----------------------------------------------------------------------


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def retry_after_seconds(headers: Mapping[str, str] | None) -> int | None:
    """Retry-After as whole seconds: delta-seconds, or an HTTP date turned into a delta."""
    raw = _header(headers, "Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return int(raw)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, math.ceil((when - datetime.now(UTC)).total_seconds()))


def _graph_code_and_message(error: APIError) -> tuple[str | None, str | None]:
    if isinstance(error, ODataError) and error.error is not None:
        return error.error.code, error.error.message
    return None, error.message


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _status_text(status: int, code: str | None, message: str | None) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "HTTP error"
    text = f"{status} {phrase}"
    if code and code.lower() != phrase.replace(" ", "").lower():
        text += f", {code}"
    if message:
        text += f": {_clip(message)}"
    return text


def _is_name_taken(code: str | None, message: str | None) -> bool:
    return (code or "").lower() == "namealreadyexists" or "already existed" in (
        message or ""
    ).lower()


def _is_channel_limit(code: str | None, message: str | None) -> bool:
    """Graph's refusal to create a channel in a team that has as many as Teams allows.

    Graph documents no error for the private channel limit. For the per-team channel limit
    it was reported as 403, code "Forbidden" (earlier "ResourceLimitExceeded"), message "This
    team has exceeded the Max allowed channels" (microsoftgraph/microsoft-graph-docs#7288,
    2020; #14003, 2021), so both codes and that message's words are recognised, on 400 too.
    """
    text = (message or "").lower()
    return (code or "").lower() == "resourcelimitexceeded" or (
        "exceeded" in text and "channels" in text
    )


def _is_reference_taken(error: BaseException) -> bool:
    """Graph's 400 for adding a reference (a sponsor) that is there already."""
    if not isinstance(error, APIError) or error.response_status_code != 400:
        return False
    _, message = _graph_code_and_message(error)
    return "object references already exist" in (message or "").lower()


def map_graph_error(error: BaseException, operation: Operation) -> DirectoryError:
    """Translate a failed Graph call into the core error the job worker acts on.

    Handles kiota/msgraph APIError (ODataError), transport errors (httpx, aiohttp,
    timeouts) and credential errors; anything else is returned as a permanent error
    without its details. Messages carry Graph's code and message but never a token.
    """
    op = operation
    if isinstance(error, APIError):
        status = error.response_status_code
        code, message = _graph_code_and_message(error)
        if status is None:
            return PermanentDirectoryError(
                f"Microsoft Graph failed to {op.description}: {_clip(message or 'no details')}.",
                code=code,
            )
        detail = _status_text(status, code, message)
        if status == 429:
            seconds = retry_after_seconds(error.response_headers)
            wait = f"; retry after {seconds} s" if seconds is not None else ""
            return Throttled(
                f"Microsoft Graph is throttling requests to {op.description} ({detail}){wait}.",
                status=status,
                code=code,
                retry_after=seconds,
            )
        if status in _TRANSIENT_STATUSES or (status >= 500 and status != 501):
            return TransientDirectoryError(
                f"Microsoft Graph could not {op.description} right now ({detail}).",
                status=status,
                code=code,
                retry_after=retry_after_seconds(error.response_headers),
            )
        if status == 404 and op.not_found_is_replication:
            return NotYetReplicated(
                f"Microsoft Graph could not {op.description} because it does not find the user "
                f"yet ({detail}); a freshly invited guest takes a while to reach Teams.",
                status=status,
                code=code,
            )
        if status == 404 and op.not_found_is_user_gone:
            return UserGone(
                f"Microsoft Graph could not {op.description}: the user is not in the directory "
                f"(any more); it was deleted, or never existed ({detail}).",
                status=status,
                code=code,
            )
        if status == 400 and _is_name_taken(code, message):
            return ChannelNameTaken(
                f"Microsoft Graph refused to {op.description}: a channel with that name exists "
                f"or existed in the team ({detail}).",
                status=status,
                code=code,
            )
        if (
            op.over_limit_is_private_channels
            and status in (400, 403)
            and _is_channel_limit(code, message)
        ):
            return PrivateChannelLimitReached(
                f"Microsoft Graph refused to {op.description}: the team has reached Teams' "
                f"limit of {TEAMS_PRIVATE_CHANNEL_LIMIT} private channels (deleted ones count "
                "for 30 days after deletion; a team also holds at most 1,000 channels of all "
                f"kinds) ({detail}). Choose another team, or delete private channels this team "
                "no longer needs and retry once they stop counting.",
                status=status,
                code=code,
            )
        if status == 401:
            return PermanentDirectoryError(
                f"Microsoft Graph refused to {op.description} ({detail}). Check the app's Graph "
                "credentials (tenant id, client id, secret or certificate); the app "
                f"registration also needs the application permission {op.permission} with "
                "admin consent.",
                status=status,
                code=code,
            )
        if status == 403:
            return PermanentDirectoryError(
                f"Microsoft Graph refused to {op.description} ({detail}). The app registration "
                f"needs the application permission {op.permission}, granted with admin "
                f"consent.{op.forbidden_hint}",
                status=status,
                code=code,
            )
        if status == 404:
            return PermanentDirectoryError(
                f"Microsoft Graph could not {op.description}: not found ({detail}).",
                status=status,
                code=code,
            )
        return PermanentDirectoryError(
            f"Microsoft Graph refused to {op.description} ({detail}).", status=status, code=code
        )
    if isinstance(error, httpx.TimeoutException | TimeoutError):
        return TransientDirectoryError(
            f"Microsoft Graph did not answer in time while trying to {op.description}."
        )
    if isinstance(error, httpx.TransportError | aiohttp.ClientError | ServiceRequestError):
        return TransientDirectoryError(
            f"Could not reach Microsoft Graph to {op.description} "
            f"({type(error).__name__}: {_clip(str(error)) or 'no details'})."
        )
    if isinstance(error, ClientAuthenticationError):
        return PermanentDirectoryError(
            f"Could not get an access token for Microsoft Graph to {op.description}. Check the "
            "app's Graph credentials (tenant id, client id, secret, certificate or managed "
            f"identity). ({type(error).__name__}: {_clip(error.message or '')})"
        )
    if isinstance(error, KiotaAuthenticationError):
        return PermanentDirectoryError(
            f"Microsoft Graph client refused to {op.description}: {_clip(str(error))}. "
            "The Graph base URL must use https (plain http only for localhost)."
        )
    return PermanentDirectoryError(
        f"Unexpected failure while trying to {op.description} ({type(error).__name__})."
    )


_GRAPH_FAILURES: tuple[type[BaseException], ...] = (
    APIError,
    httpx.TransportError,
    aiohttp.ClientError,
    TimeoutError,
    ServiceRequestError,
    ClientAuthenticationError,
    KiotaAuthenticationError,
)


# --- the adapter -------------------------------------------------------------------------


def _odata_string(value: str) -> str:
    """A string literal for $filter: single quotes are escaped by doubling them."""
    return "'" + value.replace("'", "''") + "'"


def _user_bind(graph_root: str, user_id: str) -> str:
    # The bind names the user on the cloud the request goes to (national clouds have their own
    # Graph host), so it is built from the client's base URL, not the global one.
    return f"{graph_root}/users('{user_id}')"


def _member_body(graph_root: str, user_id: str, roles: list[str]) -> AadUserConversationMember:
    return AadUserConversationMember(
        odata_type=_MEMBER_ODATA_TYPE,
        roles=roles,
        additional_data={"user@odata.bind": _user_bind(graph_root, user_id)},
    )


def _member_filter(user_id: str) -> str:
    return f"(microsoft.graph.aadUserConversationMember/userId eq {_odata_string(user_id)})"


def _is_upn(key: str) -> bool:
    """Whether `key` can be a user principal name, and so a /users/{key} path segment."""
    return len(key) <= _MAX_UPN and _UPN.fullmatch(key) is not None


def _to_user(obj: DirectoryObject | None) -> DirectoryUser | None:
    if obj is None or not obj.id:
        return None
    if isinstance(obj, User):
        return DirectoryUser(
            id=obj.id,
            display_name=obj.display_name or "",
            mail=obj.mail,
            user_type=obj.user_type or "Member",
            # Not returned means not asked for; only an explicit false disables.
            account_enabled=obj.account_enabled is not False,
        )
    data: dict[str, Any] = obj.additional_data or {}
    return DirectoryUser(
        id=obj.id,
        display_name=str(data.get("displayName") or ""),
        mail=data.get("mail"),
        user_type=str(data.get("userType") or "Member"),
        account_enabled=data.get("accountEnabled") is not False,
    )


def _to_channel(channel: Channel) -> ChannelInfo:
    membership = channel.membership_type
    return ChannelInfo(
        id=channel.id or "",
        display_name=channel.display_name or "",
        description=channel.description,
        membership_type=str(membership.value) if membership is not None else "standard",
    )


def _membership_of(members: list[ConversationMember] | None, user_id: str) -> str | None:
    wanted = user_id.lower()
    for member in members or []:
        if (
            isinstance(member, AadUserConversationMember)
            and (member.user_id or "").lower() == wanted
            and member.id
        ):
            return member.id
    return None


def _prefer_enums(config: RequestConfiguration[Any]) -> RequestConfiguration[Any]:
    config.headers.add(*_PREFER_ENUMS)
    return config


def _eventual(config: RequestConfiguration[Any]) -> RequestConfiguration[Any]:
    config.headers.add(*_CONSISTENCY_EVENTUAL)
    return config


class GraphDirectory:
    """core.ports.Directory over Microsoft Graph v1.0 with application permissions.

    Every failure leaves as a core.errors.DirectoryError (see map_graph_error); lookups
    answer None where Graph says 404.
    """

    def __init__(self, client: GraphServiceClient) -> None:
        self._client = client
        base_url = getattr(client.request_adapter, "base_url", "") or GLOBAL_GRAPH_URL
        self._graph_root = str(base_url).rstrip("/")

    @staticmethod
    async def _call(operation: Operation, call: Awaitable[T]) -> T:
        try:
            return await call
        except _GRAPH_FAILURES as exc:
            raise map_graph_error(exc, operation) from exc

    @staticmethod
    async def _lookup(operation: Operation, call: Awaitable[T]) -> T | None:
        try:
            return await call
        except APIError as exc:
            if exc.response_status_code == 404:
                return None
            raise map_graph_error(exc, operation) from exc
        except _GRAPH_FAILURES as exc:
            raise map_graph_error(exc, operation) from exc

    @staticmethod
    async def _gone_ok(operation: Operation, call: Awaitable[None]) -> None:
        """A removal: 404 means it is gone already, which is what was wanted."""
        try:
            await call
        except APIError as exc:
            if exc.response_status_code == 404:
                return
            raise map_graph_error(exc, operation) from exc
        except _GRAPH_FAILURES as exc:
            raise map_graph_error(exc, operation) from exc

    @staticmethod
    def _unexpected(operation: Operation, what: str) -> PermanentDirectoryError:
        return PermanentDirectoryError(
            f"Microsoft Graph answered without {what} when asked to {operation.description}."
        )

    # --- users ----------------------------------------------------------------------------

    async def get_user(self, user_id: str) -> DirectoryUser | None:
        query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=USER_FIELDS)
        user = await self._lookup(
            GET_USER,
            self._client.users.by_user_id(user_id).get(
                request_configuration=RequestConfiguration(query_parameters=query)
            ),
        )
        return _to_user(user)

    async def get_manager(self, user_id: str) -> DirectoryUser | None:
        query = ManagerRequestBuilder.ManagerRequestBuilderGetQueryParameters(select=USER_FIELDS)
        manager = await self._lookup(
            GET_MANAGER,
            self._client.users.by_user_id(user_id).manager.get(
                request_configuration=RequestConfiguration(query_parameters=query)
            ),
        )
        return _to_user(manager)

    async def find_user_by_email(self, email: str) -> DirectoryUser | None:
        literal = _odata_string(email.strip())
        # Invited guests are reliably found through otherMails (Entra's own guidance, A2).
        for condition in (f"mail eq {literal}", f"otherMails/any(x:x eq {literal})"):
            query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                filter=condition, select=USER_FIELDS
            )
            page = await self._call(
                FIND_USER,
                self._client.users.get(
                    request_configuration=RequestConfiguration(query_parameters=query)
                ),
            )
            for user in (page.value if page else None) or []:
                found = _to_user(user)
                if found is not None:
                    return found
        return None

    async def find_user_by_identifier(self, identifier: str) -> DirectoryUser | None:
        """A user by object id, user principal name or e-mail address, as an admin types it.

        An object id or a well-formed UPN is read first with GET /users/{key}. When that
        finds nobody and the key is not an object id, the `mail eq` filter is tried with the
        value quoted; input that cannot be a path key ("/", "?", spaces, a leading "$" ...)
        goes to the filter only. Blank, over-long or control-character input matches nobody
        and sends nothing."""
        key = identifier.strip()
        if not key or len(key) > _MAX_IDENTIFIER or _CONTROL.search(key):
            return None
        if _OBJECT_ID.fullmatch(key):
            # An object id is nobody's e-mail address: no filter after a 404.
            return await self._get_user_by_key(key)
        if _is_upn(key):
            found = await self._get_user_by_key(key)
            if found is not None:
                return found
        return await self._find_by_mail(key)

    async def _get_user_by_key(self, key: str) -> DirectoryUser | None:
        """GET /users/{key}; None when Graph has no such user (404) or will not take the key
        (400: the look-up then goes on to the mail filter rather than failing)."""
        query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=USER_FIELDS)
        # Kiota percent-encodes the key, so a guest's "#EXT#" reaches Graph as %23EXT%23 and
        # is not cut off as a URL fragment (facts A3).
        call = self._client.users.by_user_id(key).get(
            request_configuration=RequestConfiguration(query_parameters=query)
        )
        try:
            user = await call
        except APIError as exc:
            if exc.response_status_code in (400, 404):
                return None
            raise map_graph_error(exc, GET_USER) from exc
        except _GRAPH_FAILURES as exc:
            raise map_graph_error(exc, GET_USER) from exc
        return _to_user(user)

    async def _find_by_mail(self, address: str) -> DirectoryUser | None:
        query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            filter=f"mail eq {_odata_string(address)}", select=USER_FIELDS
        )
        page = await self._call(
            FIND_USER,
            self._client.users.get(
                request_configuration=RequestConfiguration(query_parameters=query)
            ),
        )
        for user in (page.value if page else None) or []:
            found = _to_user(user)
            if found is not None:
                return found
        return None

    async def invite_guest(
        self, *, email: str, display_name: str, redirect_url: str
    ) -> GuestInvitation:
        return await self._invite(
            INVITE_GUEST, email=email, display_name=display_name, redirect_url=redirect_url
        )

    async def resend_invitation(
        self, *, email: str, display_name: str, redirect_url: str
    ) -> GuestInvitation:
        # Re-sending is a new POST /invitations for the same e-mail with the message on; Graph
        # answers with the existing guest (facts A2, F).
        return await self._invite(
            RESEND_INVITATION, email=email, display_name=display_name, redirect_url=redirect_url
        )

    async def _invite(
        self, operation: Operation, *, email: str, display_name: str, redirect_url: str
    ) -> GuestInvitation:
        body = Invitation(
            invited_user_email_address=email,
            invited_user_display_name=display_name,
            invite_redirect_url=redirect_url,
            send_invitation_message=True,
        )
        invitation = await self._call(operation, self._client.invitations.post(body))
        if invitation is None or invitation.invited_user is None or not invitation.invited_user.id:
            raise self._unexpected(operation, "the invited user's id")
        return GuestInvitation(
            invited_user_id=invitation.invited_user.id,
            redeem_url=invitation.invite_redeem_url,
            status=invitation.status or "PendingAcceptance",
        )

    async def set_account_enabled(self, user_id: str, enabled: bool) -> None:
        operation = ENABLE_USER if enabled else DISABLE_USER
        await self._call(
            operation, self._client.users.by_user_id(user_id).patch(User(account_enabled=enabled))
        )

    async def delete_user(self, user_id: str) -> None:
        await self._gone_ok(DELETE_USER, self._client.users.by_user_id(user_id).delete())

    async def list_sponsor_ids(self, user_id: str) -> list[str]:
        query = SponsorsRequestBuilder.SponsorsRequestBuilderGetQueryParameters(select=["id"])
        page = await self._call(
            LIST_SPONSORS,
            self._client.users.by_user_id(user_id).sponsors.get(
                request_configuration=RequestConfiguration(query_parameters=query)
            ),
        )
        return [obj.id for obj in (page.value if page else None) or [] if obj.id]

    async def add_sponsor(self, user_id: str, sponsor_id: str) -> None:
        body = ReferenceCreate(odata_id=f"{self._graph_root}/users/{sponsor_id}")
        try:
            await self._client.users.by_user_id(user_id).sponsors.ref.post(body)
        except _GRAPH_FAILURES as exc:
            if _is_reference_taken(exc):
                return  # a sponsor already: what was wanted
            raise map_graph_error(exc, ADD_SPONSOR) from exc

    async def get_invitation_state(self, user_id: str) -> str | None:
        query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
            select=INVITATION_STATE_FIELDS
        )
        user = await self._call(
            GET_INVITATION_STATE,
            self._client.users.by_user_id(user_id).get(
                request_configuration=RequestConfiguration(query_parameters=query)
            ),
        )
        if user is None:
            raise self._unexpected(GET_INVITATION_STATE, "the user")
        return user.external_user_state or None

    async def check_member_groups(self, user_id: str, group_ids: Sequence[str]) -> set[str]:
        """The given group ids the user is a member of, transitively (nested security groups;
        a team's members are members of its group). More than 20 ids go in several requests;
        none makes no request; an unknown user (404) is a member of none. Ids compare
        case-insensitively and come back as the caller spelt them."""
        if isinstance(group_ids, str):
            raise TypeError("group_ids must be a sequence of group ids, not a string")
        # One request per 20 distinct ids (GUIDs are case-insensitive).
        distinct: dict[str, str] = {}
        for group_id in group_ids:
            distinct.setdefault(group_id.lower(), group_id)
        unique = list(distinct.values())
        if not unique:
            return set()
        check = self._client.users.by_user_id(user_id).check_member_groups
        member_of: set[str] = set()
        for start in range(0, len(unique), MAX_GROUPS_PER_CHECK):
            chunk = unique[start : start + MAX_GROUPS_PER_CHECK]
            body = check_member_groups_body.CheckMemberGroupsPostRequestBody(group_ids=chunk)
            answer = await self._lookup(CHECK_MEMBER_GROUPS, check.post(body))
            if answer is None:
                return set()  # 404: no such user (any more), so a member of no group
            member_of.update(g.lower() for g in answer.value or [])
        return {g for g in group_ids if g.lower() in member_of}

    async def list_group_members(self, group_id: str, *, limit: int = 100) -> list[DirectoryUser]:
        """The enabled member users of an Entra group, nested groups flattened, at most
        `limit`, in Graph's order; an unknown group (404) has none.

        GET /groups/{id}/transitiveMembers/microsoft.graph.user (msgraph-sdk spells the cast
        with its alias, /graph.user) with $select, $count=true, ConsistencyLevel: eventual
        and $top = `limit` (at most 999), then @odata.nextLink page after page until `limit`
        enabled users are found. Pages are not made larger than needed: msgraph-sdk spends a
        few milliseconds of CPU on each user it parses (msgraph-sdk-python#584), the event
        loop blocked meanwhile. The cast keeps users only (no nested groups, devices,
        contacts or service principals); disabled accounts (accountEnabled false) are
        skipped here, since Graph lists them. A team's id is its Microsoft 365 group's id:
        its owners and members. The answer comes from Graph's eventually consistent index, so
        a membership changed moments ago may not show yet. A failure on any page raises (no
        partial list)."""
        if limit <= 0 or not group_id.strip():
            return []
        members = self._client.groups.by_group_id(group_id).transitive_members.graph_user
        query = transitive_users.GraphUserRequestBuilder.GraphUserRequestBuilderGetQueryParameters(
            select=USER_FIELDS,
            top=min(limit, MAX_GRAPH_PAGE_SIZE),
            count=True,
        )
        page = await self._lookup(
            LIST_GROUP_MEMBERS,
            members.get(
                request_configuration=_eventual(RequestConfiguration(query_parameters=query))
            ),
        )
        found: list[DirectoryUser] = []
        seen: set[str] = set()
        followed: set[str] = set()
        while page is not None:
            for obj in page.value or []:
                if obj.odata_type and obj.odata_type.lower() not in _USER_TYPES:
                    continue  # not a user, whatever the cast promised
                user = _to_user(obj)
                if user is None or not user.account_enabled or user.id.lower() in seen:
                    continue
                seen.add(user.id.lower())
                found.append(user)
                if len(found) >= limit:
                    return found
            next_link = page.odata_next_link
            # A link seen before would loop for ever; Graph's links carry the query already.
            if not next_link or next_link in followed:
                break
            followed.add(next_link)
            page = await self._lookup(
                LIST_GROUP_MEMBERS,
                members.with_url(next_link).get(
                    request_configuration=_eventual(RequestConfiguration())
                ),
            )
            if page is None:
                return []  # the group is gone (404) while being read: it has none now
        return found

    # --- channels -------------------------------------------------------------------------

    async def find_channel(self, team_id: str, display_name: str) -> ChannelInfo | None:
        query = ChannelsRequestBuilder.ChannelsRequestBuilderGetQueryParameters(
            filter=f"displayName eq {_odata_string(display_name)}", select=CHANNEL_FIELDS
        )
        config = _prefer_enums(RequestConfiguration(query_parameters=query))
        page = await self._call(
            FIND_CHANNEL,
            self._client.teams.by_team_id(team_id).channels.get(request_configuration=config),
        )
        wanted = display_name.casefold()
        for channel in (page.value if page else None) or []:
            if (channel.display_name or "").casefold() == wanted and channel.id:
                return _to_channel(channel)
        return None

    async def list_channels(self, team_id: str) -> Sequence[ChannelInfo]:
        """Every channel Graph lists for the team (deleted ones are not), page after page."""
        channels = self._client.teams.by_team_id(team_id).channels
        query = ChannelsRequestBuilder.ChannelsRequestBuilderGetQueryParameters(
            select=CHANNEL_FIELDS
        )
        # The Prefer header on every page, or shared channels come back as unknownFutureValue.
        config = _prefer_enums(RequestConfiguration(query_parameters=query))
        page = await self._call(LIST_CHANNELS, channels.get(request_configuration=config))
        found: list[ChannelInfo] = []
        followed: set[str] = set()
        while page is not None:
            found.extend(_to_channel(c) for c in page.value or [] if c.id)
            next_link = page.odata_next_link
            # A link seen before would loop for ever; Graph's links carry the query already.
            if not next_link or next_link in followed:
                break
            followed.add(next_link)
            page = await self._call(
                LIST_CHANNELS,
                channels.with_url(next_link).get(
                    request_configuration=_prefer_enums(RequestConfiguration())
                ),
            )
        return found

    async def create_private_channel(
        self, team_id: str, *, display_name: str, description: str, owner_id: str
    ) -> ChannelInfo:
        body = Channel(
            odata_type="#Microsoft.Graph.channel",
            display_name=display_name,
            description=description,
            membership_type=ChannelMembershipType.Private,
            # App-only creation needs an owner who is already in the team (facts A4).
            members=[_member_body(self._graph_root, owner_id, ["owner"])],
        )
        config = _prefer_enums(RequestConfiguration())
        channel = await self._call(
            CREATE_CHANNEL,
            self._client.teams.by_team_id(team_id).channels.post(
                body, request_configuration=config
            ),
        )
        if channel is None or not channel.id:
            raise self._unexpected(CREATE_CHANNEL, "the new channel's id")
        return _to_channel(channel)

    async def rename_channel(self, team_id: str, channel_id: str, display_name: str) -> None:
        channel = self._client.teams.by_team_id(team_id).channels.by_channel_id(channel_id)
        await self._call(RENAME_CHANNEL, channel.patch(Channel(display_name=display_name)))

    # --- memberships ----------------------------------------------------------------------

    async def find_team_member(self, team_id: str, user_id: str) -> str | None:
        query = TeamMembersRequestBuilder.MembersRequestBuilderGetQueryParameters(
            filter=_member_filter(user_id)
        )
        page = await self._call(
            FIND_TEAM_MEMBER,
            self._client.teams.by_team_id(team_id).members.get(
                request_configuration=RequestConfiguration(query_parameters=query)
            ),
        )
        return _membership_of(page.value if page else None, user_id)

    async def add_team_member(self, team_id: str, user_id: str) -> str:
        member = await self._call(
            ADD_TEAM_MEMBER,
            self._client.teams.by_team_id(team_id).members.post(
                _member_body(self._graph_root, user_id, [])
            ),
        )
        if member is None or not member.id:
            raise self._unexpected(ADD_TEAM_MEMBER, "a membership id")
        return member.id

    async def find_channel_member(self, team_id: str, channel_id: str, user_id: str) -> str | None:
        query = ChannelMembersRequestBuilder.MembersRequestBuilderGetQueryParameters(
            filter=_member_filter(user_id)
        )
        members = self._client.teams.by_team_id(team_id).channels.by_channel_id(channel_id).members
        page = await self._call(
            FIND_CHANNEL_MEMBER,
            members.get(request_configuration=RequestConfiguration(query_parameters=query)),
        )
        return _membership_of(page.value if page else None, user_id)

    async def add_channel_member(self, team_id: str, channel_id: str, user_id: str) -> str:
        members = self._client.teams.by_team_id(team_id).channels.by_channel_id(channel_id).members
        member = await self._call(
            ADD_CHANNEL_MEMBER, members.post(_member_body(self._graph_root, user_id, []))
        )
        if member is None or not member.id:
            raise self._unexpected(ADD_CHANNEL_MEMBER, "a membership id")
        return member.id

    async def remove_team_member(self, team_id: str, membership_id: str) -> None:
        members = self._client.teams.by_team_id(team_id).members
        await self._gone_ok(
            REMOVE_TEAM_MEMBER, members.by_conversation_member_id(membership_id).delete()
        )

    async def remove_channel_member(
        self, team_id: str, channel_id: str, membership_id: str
    ) -> None:
        members = self._client.teams.by_team_id(team_id).channels.by_channel_id(channel_id).members
        await self._gone_ok(
            REMOVE_CHANNEL_MEMBER, members.by_conversation_member_id(membership_id).delete()
        )

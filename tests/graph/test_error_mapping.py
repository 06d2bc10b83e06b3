"""map_graph_error: which Graph failure becomes which core error, and what the admin reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from kiota_abstractions.api_error import APIError
from msgraph.generated.models.o_data_errors.main_error import MainError
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from core.errors import (
    ChannelNameTaken,
    NotYetReplicated,
    PermanentDirectoryError,
    PrivateChannelLimitReached,
    Throttled,
    TransientDirectoryError,
    UserGone,
)
from graph.directory import (
    ADD_CHANNEL_MEMBER,
    ADD_SPONSOR,
    ADD_TEAM_MEMBER,
    CREATE_CHANNEL,
    DELETE_USER,
    DISABLE_USER,
    ENABLE_USER,
    GET_INVITATION_STATE,
    GET_USER,
    INVITE_GUEST,
    LIST_CHANNELS,
    LIST_SPONSORS,
    REMOVE_CHANNEL_MEMBER,
    REMOVE_TEAM_MEMBER,
    RENAME_CHANNEL,
    RESEND_INVITATION,
    Operation,
    map_graph_error,
    retry_after_seconds,
)


def odata(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> ODataError:
    return ODataError(
        error=MainError(code=code, message=message),
        response_status_code=status,
        response_headers=headers or {},
    )


def test_429_is_throttled_with_integer_retry_after() -> None:
    error = map_graph_error(
        odata(429, "TooManyRequests", "Please retry again later.", {"retry-after": "2"}),
        ADD_TEAM_MEMBER,
    )

    assert type(error) is Throttled
    assert error.retry_after == 2
    assert (error.status, error.code) == (429, "TooManyRequests")
    assert "retry after 2 s" in error.message


def test_429_without_retry_after_has_none() -> None:
    error = map_graph_error(odata(429, "TooManyRequests", "Slow down."), GET_USER)

    assert isinstance(error, Throttled)
    assert error.retry_after is None


def test_retry_after_as_http_date_becomes_seconds() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    seconds = retry_after_seconds({"Retry-After": when})

    assert seconds is not None and 28 <= seconds <= 31
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds(None) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient_but_not_throttled(status: int) -> None:
    error = map_graph_error(odata(status, "ServiceUnavailable", "Try later."), INVITE_GUEST)

    assert type(error) is TransientDirectoryError
    assert error.status == status
    assert "invite the freelancer as a guest" in error.message


def test_503_retry_after_is_kept() -> None:
    error = map_graph_error(
        odata(503, "ServiceUnavailable", "Try later.", {"Retry-After": "9"}), GET_USER
    )

    assert isinstance(error, TransientDirectoryError)
    assert error.retry_after == 9


@pytest.mark.parametrize("operation", [ADD_TEAM_MEMBER, ADD_CHANNEL_MEMBER])
def test_404_on_membership_add_is_not_yet_replicated(operation: Operation) -> None:
    error = map_graph_error(odata(404, "NotFound", "User not found."), operation)

    assert type(error) is NotYetReplicated


@pytest.mark.parametrize(
    "operation", [DISABLE_USER, ENABLE_USER, LIST_SPONSORS, ADD_SPONSOR, GET_INVITATION_STATE]
)
def test_404_on_a_user_lifecycle_call_is_user_gone(operation: Operation) -> None:
    error = map_graph_error(
        odata(404, "Request_ResourceNotFound", "Resource 'x' does not exist."), operation
    )

    assert type(error) is UserGone
    assert isinstance(error, PermanentDirectoryError)
    assert (error.status, error.code) == (404, "Request_ResourceNotFound")
    assert operation.description in error.message
    assert "Resource 'x' does not exist." in error.message


@pytest.mark.parametrize("operation", [GET_USER, CREATE_CHANNEL, RENAME_CHANNEL])
def test_404_is_not_user_gone_where_the_operation_does_not_say_so(operation: Operation) -> None:
    error = map_graph_error(odata(404, "NotFound", "Gone."), operation)

    assert type(error) is PermanentDirectoryError


def test_duplicate_name_on_rename_is_channel_name_taken() -> None:
    error = map_graph_error(
        odata(400, "NameAlreadyExists", "Channel name already existed, please use other name"),
        RENAME_CHANNEL,
    )

    assert type(error) is ChannelNameTaken
    assert "rename the private channel" in error.message


def test_404_elsewhere_is_permanent() -> None:
    error = map_graph_error(odata(404, "NotFound", "No team found."), CREATE_CHANNEL)

    assert type(error) is PermanentDirectoryError
    assert "not found" in error.message


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("NameAlreadyExists", "Channel name already existed, please use other name"),
        ("BadRequest", "Channel name already existed, please use other name"),
    ],
)
def test_duplicate_channel_name_is_channel_name_taken(code: str, message: str) -> None:
    error = map_graph_error(odata(400, code, message), CREATE_CHANNEL)

    assert type(error) is ChannelNameTaken
    assert error.code == code


def test_other_400_is_permanent_with_graphs_code_and_message() -> None:
    error = map_graph_error(
        odata(400, "BadRequest", "User x is not part of team y."), CREATE_CHANNEL
    )

    assert type(error) is PermanentDirectoryError
    assert error.message == (
        "Microsoft Graph refused to create the private channel "
        "(400 Bad Request: User x is not part of team y.)."
    )


def test_403_names_operation_and_application_permission() -> None:
    error = map_graph_error(
        odata(403, "Forbidden", "An unknown error has occurred."), ADD_TEAM_MEMBER
    )

    assert type(error) is PermanentDirectoryError
    assert error.message.startswith(
        "Microsoft Graph refused to add the guest to the team "
        "(403 Forbidden: An unknown error has occurred.). The app registration needs the "
        "application permission TeamMember.ReadWriteNonOwnerRole.All"
    )


@pytest.mark.parametrize(
    ("operation", "permission"),
    [
        (INVITE_GUEST, "User.Invite.All"),
        (CREATE_CHANNEL, "Channel.Create"),
        (ADD_CHANNEL_MEMBER, "ChannelMember.ReadWrite.All"),
        (GET_USER, "User.Read.All"),
        (REMOVE_TEAM_MEMBER, "TeamMember.ReadWriteNonOwnerRole.All"),
        (REMOVE_CHANNEL_MEMBER, "ChannelMember.ReadWrite.All"),
        (DISABLE_USER, "User.EnableDisableAccount.All"),
        (DELETE_USER, "User.ReadWrite.All"),
        (ADD_SPONSOR, "User.ReadWrite.All"),
        (LIST_SPONSORS, "User.Read.All"),
        (GET_INVITATION_STATE, "User.Read.All"),
        (RESEND_INVITATION, "User.Invite.All"),
        (RENAME_CHANNEL, "ChannelSettings.ReadWrite.All"),
    ],
)
def test_401_and_403_name_the_permission_of_each_operation(
    operation: Operation, permission: str
) -> None:
    for status in (401, 403):
        error = map_graph_error(odata(status, "Denied", "No."), operation)
        assert type(error) is PermanentDirectoryError
        assert permission in error.message
        assert error.status == status


def test_409_is_permanent_and_shows_a_code_that_differs_from_the_status() -> None:
    error = map_graph_error(odata(409, "Request_MultipleObjectsWithSameKey", "Dup."), INVITE_GUEST)

    assert type(error) is PermanentDirectoryError
    assert "(409 Conflict, Request_MultipleObjectsWithSameKey: Dup.)" in error.message


def test_plain_api_error_without_odata_body_keeps_status() -> None:
    error = map_graph_error(
        APIError("The server returned an unexpected status code", 502, {}), GET_USER
    )

    assert type(error) is TransientDirectoryError
    assert error.status == 502
    assert error.code is None


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("All connection attempts failed"),
        httpx.ReadTimeout("timed out"),
        TimeoutError(),
    ],
)
def test_connection_errors_and_timeouts_are_transient(failure: BaseException) -> None:
    error = map_graph_error(failure, GET_USER)

    assert type(error) is TransientDirectoryError


def test_credential_failure_is_permanent_and_points_at_credentials() -> None:
    error = map_graph_error(
        ClientAuthenticationError("AADSTS7000215: Invalid client secret provided."), GET_USER
    )

    assert type(error) is PermanentDirectoryError
    assert "credentials" in error.message


# --- the private channel limit (Graph documents no error; see graph/directory.py) -----------


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (403, "Forbidden", "This team has exceeded the Max allowed channels"),
        (403, "ResourceLimitExceeded", "Limit reached."),
        (400, "BadRequest", "This team has exceeded the Max allowed channels"),
    ],
)
def test_a_full_team_on_channel_create_is_private_channel_limit_reached(
    status: int, code: str, message: str
) -> None:
    error = map_graph_error(odata(status, code, message), CREATE_CHANNEL)

    assert type(error) is PrivateChannelLimitReached
    assert isinstance(error, PermanentDirectoryError)
    assert (error.status, error.code) == (status, code)
    assert "limit of 30 private channels" in error.message
    assert "deleted ones count for 30 days" in error.message
    assert message in error.message  # Graph's own words stay visible


def test_a_permission_403_on_channel_create_still_names_the_permission() -> None:
    error = map_graph_error(
        odata(403, "Forbidden", "Insufficient privileges to complete the operation."),
        CREATE_CHANNEL,
    )

    assert type(error) is PermanentDirectoryError
    assert "Channel.Create" in error.message


def test_the_limit_words_on_other_operations_are_a_plain_permanent_error() -> None:
    for operation in (ADD_CHANNEL_MEMBER, RENAME_CHANNEL, LIST_CHANNELS):
        error = map_graph_error(
            odata(403, "Forbidden", "This team has exceeded the Max allowed channels"), operation
        )

        assert type(error) is PermanentDirectoryError

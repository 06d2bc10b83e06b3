"""Errors the domain raises and the errors adapters translate into."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: a rule of the domain refused the operation. `str()` is user-facing."""


class NotFound(DomainError):
    pass


class NotAuthorised(DomainError):
    """The actor may not do this. Nothing changed."""


class InvalidTransition(DomainError):
    """The engagement is not in a state that allows the action."""


class InvalidInput(DomainError):
    """What the user typed is not acceptable (the message says why). Nothing changed."""


class StaleVersion(DomainError):
    """Compare-and-set lost: somebody changed the engagement first."""


class DuplicateSubmission(DomainError):
    """The same card submission was stored already (Teams re-delivery or a double click)."""


class ServiceUnavailable(DomainError):
    """Something the answer depends on (e.g. Graph, for admin rights) cannot answer now."""


class NoConversation(DomainError):
    """The bot has no conversation with that user (the app is not installed for them)."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"no conversation with user {user_id}")
        self.user_id = user_id


# --- errors of the Directory port (Microsoft Graph behind it) -------------------------------


class DirectoryError(Exception):
    """A Directory call failed. `status` and `code` are Graph's, `message` is safe to show."""

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class TransientDirectoryError(DirectoryError):
    """Worth retrying later (5xx, timeouts, connection errors)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class Throttled(TransientDirectoryError):
    """429: wait at least `retry_after` seconds."""


class NotYetReplicated(TransientDirectoryError):
    """404 for an object we just created: directory replication has not caught up yet."""


class PermanentDirectoryError(DirectoryError):
    """Retrying will not help (400, 403, ...). The message says what an admin must fix."""


class UserGone(PermanentDirectoryError):
    """The directory user does not exist (any more): deleted, or never was."""


class ChannelNameTaken(PermanentDirectoryError):
    """Graph's 400 for a channel name that exists (or existed) in the team."""


class PrivateChannelLimitReached(PermanentDirectoryError):
    """The team cannot have another private channel: Teams caps them per team, and deleted
    ones keep counting for 30 days. An admin must pick another team or free a slot."""


# --- errors of the Notifier port (Bot Connector behind it) ----------------------------------


class DeliveryError(Exception):
    """A message could not be delivered through the Bot Connector."""


class TransientDeliveryError(DeliveryError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    pass

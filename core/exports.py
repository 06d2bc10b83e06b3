"""CSV exports of engagements and of the audit log, and the signed links that serve them.

A link carries what is exported, for whom, and until when, signed with HMAC-SHA256; nothing is
stored for it, so any replica that shares the key can serve it. The download checks the
signature, the expiry and, again, that the holder is still an admin.
"""

from __future__ import annotations

import base64
import binascii
import csv
import enum
import hashlib
import hmac
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core import texts
from core.errors import InvalidInput
from core.model import AuditRecord, Engagement, engagement_ref


class ExportKind(enum.StrEnum):
    ENGAGEMENTS = "engagements"
    AUDIT = "audit"


@dataclass(frozen=True)
class ExportGrant:
    kind: ExportKind
    actor_id: str
    expires_at: datetime

    def file_name(self, now: datetime) -> str:
        return f"freelance-connector-{self.kind.value}-{now:%Y%m%d-%H%M%S}.csv"


class ExportLinks:
    """Signs and checks export grants. A grant's token is `payload.signature`, both
    base64url; the payload is compact JSON (kind, actor id, expiry in Unix seconds)."""

    def __init__(self, key: bytes, *, ttl: timedelta = timedelta(minutes=15)) -> None:
        if len(key) < 16:
            raise ValueError("the export signing key needs at least 16 bytes")
        self._key = key
        self.ttl = ttl

    def sign(self, kind: ExportKind, actor_id: str, now: datetime) -> tuple[str, ExportGrant]:
        expires = now + self.ttl
        payload = json.dumps(
            {"k": kind.value, "a": actor_id, "e": int(expires.timestamp())},
            separators=(",", ":"),
        ).encode()
        token = f"{_b64(payload)}.{_b64(self._mac(payload))}"
        grant = ExportGrant(kind, actor_id, datetime.fromtimestamp(int(expires.timestamp()), UTC))
        return token, grant

    def verify(self, token: str, now: datetime) -> ExportGrant:
        """The grant a token carries; InvalidInput (with the message to show) when the token
        is malformed, forged, or expired."""
        payload_part, dot, signature_part = token.partition(".")
        if not dot or len(token) > 1_000:
            raise InvalidInput(texts.EXPORT_LINK_INVALID)
        try:
            payload = _unb64(payload_part)
            signature = _unb64(signature_part)
        except (binascii.Error, ValueError):
            raise InvalidInput(texts.EXPORT_LINK_INVALID) from None
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise InvalidInput(texts.EXPORT_LINK_INVALID)
        try:
            data = json.loads(payload)
            grant = ExportGrant(
                ExportKind(data["k"]),
                str(data["a"]),
                datetime.fromtimestamp(int(data["e"]), UTC),
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidInput(texts.EXPORT_LINK_INVALID) from None
        if now >= grant.expires_at:
            raise InvalidInput(texts.EXPORT_LINK_EXPIRED)
        return grant

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- CSV ----------------------------------------------------------------------------------------

ENGAGEMENT_COLUMNS: Sequence[str] = (
    "ref",
    "state",
    "project_title",
    "freelancer_name",
    "freelancer_email",
    "team_name",
    "channel_name",
    "start_date",
    "end_date",
    "requester_name",
    "requester_id",
    "approver_name",
    "approver_id",
    "decided_by_name",
    "decided_at",
    "decision_reason",
    "provisioned_at",
    "ended_at",
    "end_reason",
    "failure_reason",
    "created_at",
    "updated_at",
)

AUDIT_COLUMNS: Sequence[str] = (
    "id",
    "at",
    "actor_name",
    "actor_id",
    "action",
    "outcome",
    "engagement",
    "detail",
)

# A cell starting with one of these is a formula to Excel and LibreOffice (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    text = str(getattr(value, "value", value))
    return "'" + text if text.startswith(_FORMULA_START) else text


def engagement_row(engagement: Engagement) -> list[str]:
    values: dict[str, object] = {
        name: getattr(engagement, name, None) for name in ENGAGEMENT_COLUMNS if name != "ref"
    }
    values["ref"] = engagement.ref
    return [csv_cell(values[name]) for name in ENGAGEMENT_COLUMNS]


def audit_row(record: AuditRecord) -> list[str]:
    engagement = engagement_ref(record.engagement_id) if record.engagement_id else ""
    return [
        csv_cell(value)
        for value in (
            record.id,
            record.at,
            record.actor_name,
            record.actor_id,
            record.action,
            record.outcome,
            engagement,
            record.detail,
        )
    ]


def csv_text(rows: Iterable[Sequence[str]]) -> str:
    """Rows as CSV text (RFC 4180: CRLF line ends, quotes where needed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue()

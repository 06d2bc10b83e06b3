"""Every setting of the app, read from environment variables (names in the README).

Only app.py, manifest/build.py and tests import this module; packages receive plain values or
small config objects.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

GUID_PATTERN = r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/freelance-connector.db"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and says what is expected."""


def _split_ids(value: object) -> object:
    if isinstance(value, str):
        return frozenset(
            part.strip() for part in value.replace(";", ",").split(",") if part.strip()
        )
    return value


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Bot Framework (names as Azure Bot Service and the Bot Framework samples use them).
    app_id: str = ""
    app_password: str = Field(default="", repr=False)
    app_type: str = "MultiTenant"
    app_tenant_id: str = ""
    openid_metadata_url: str = ""
    channel_login_url: str = ""

    # Microsoft Graph.
    graph_base_url: str = ""
    graph_token: str = Field(default="", repr=False)
    graph_tenant_id: str = ""
    graph_client_id: str = ""
    graph_client_secret: str = Field(default="", repr=False)
    graph_certificate_path: str = ""
    graph_use_managed_identity: bool = False
    # Client-side pacing at Graph's documented limits (graph/rate_limits.py), and this
    # replica's share of them (1 / number of replicas that call Graph for the same tenant).
    graph_rate_limit: bool = True
    graph_rate_limit_share: float = Field(default=1.0, gt=0, le=1)
    graph_timeout_s: float = Field(default=30.0, gt=0)

    # Program.
    database_url: str = DEFAULT_DATABASE_URL
    admin_ids: frozenset[str] = frozenset()
    # Tenants whose activities are served; empty: see `served_tenant_ids`.
    allowed_tenant_ids: frozenset[str] = frozenset()
    default_approver: str = ""
    invite_redirect_url: str = "https://teams.microsoft.com"

    # Administration: members of this Entra group are admins too (checked in Graph, the answer
    # kept ADMIN_GROUP_CACHE_S seconds).
    admin_group_id: str = ""
    admin_group_cache_s: float = Field(default=300.0, ge=0, le=86400)
    # The KPIs' time window (medians and rejection rate of /report).
    report_window_days: int = Field(default=90, ge=1, le=3650)
    # /export: the address Teams users reach the app at (links point there), the key that signs
    # the links (every replica needs the same one), and how long a link works.
    public_base_url: str = ""
    export_signing_key: str = Field(default="", repr=False)
    export_link_minutes: int = Field(default=15, ge=1, le=1440)

    # Lifecycle (see core.config.ProgramConfig for what each does).
    program_time_zone: str = "UTC"
    end_reminder_days: tuple[int, ...] = (7, 1)
    reminder_hour: int = Field(default=9, ge=0, le=23)
    max_engagement_days: int = Field(default=365, ge=1, le=3650)
    disable_guests_on_end: bool = True
    guest_delete_after_days: int = Field(default=30, ge=0, le=3650)
    ended_channel_prefix: str = Field(default="", max_length=20)
    invitation_nudge_days: int = Field(default=3, ge=0, le=365)
    invitation_nudge_limit: int = Field(default=3, ge=0, le=100)

    # Approvals: reminders, escalation to the approver's manager, expiry (hours).
    approval_reminder_hours: float = Field(default=24, gt=0, le=24 * 365)
    approval_reminder_limit: int = Field(default=3, ge=0, le=100)
    approval_escalation_hours: float = Field(default=72, gt=0, le=24 * 365)
    approval_expiry_hours: float = Field(default=168, gt=0, le=24 * 365)

    # Server and worker.
    host: str = "127.0.0.1"
    port: int = Field(default=3978, ge=0, le=65535)
    worker_enabled: bool = True
    # Jobs waiting for Graph's rate limits hold a slot, so this is well above the CPU count.
    worker_concurrency: int = Field(default=32, ge=1, le=256)
    worker_poll_interval_s: float = Field(default=0.5, gt=0)
    job_lease_s: float = Field(default=60.0, gt=0)
    job_max_attempts: int = Field(default=8, ge=1)
    job_retry_base_s: float = Field(default=2.0, ge=0)
    job_retry_max_s: float = Field(default=300.0, gt=0)
    job_replication_retry_base_s: float = Field(default=10.0, ge=0)
    job_replication_max_attempts: int = Field(default=10, ge=1)
    log_level: str = "INFO"
    # "json" (one object per line, for a log pipeline) or "text"; empty: text in dev mode,
    # JSON otherwise.
    log_format: str = ""
    # GET /metrics wants `Authorization: Bearer METRICS_TOKEN`; without a token it is served
    # in dev mode only (the bot's port faces the internet in production).
    metrics_token: str = Field(default="", repr=False)
    # SIGTERM: stop accepting, then let running turns and jobs finish for this long; jobs still
    # running then are released for another replica.
    shutdown_timeout_s: float = Field(default=20.0, ge=0, le=600)

    # Accept unauthenticated requests while talking to a real Graph (a local stand-in is fine
    # without this). Only for isolated test rigs: anyone who can reach the port could act as
    # any user.
    allow_unauthenticated: bool = False

    # Dev mode only: the in-process Graph simulator.
    dev_graph_port: int = Field(default=0, ge=0, le=65535)
    dev_graph_replication_delay_s: float = Field(default=0.0, ge=0)
    dev_graph_throttle: bool = True

    _split = field_validator("admin_ids", "allowed_tenant_ids", mode="before")(_split_ids)

    @field_validator("end_reminder_days", mode="before")
    @classmethod
    def _reminder_days(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.replace(";", ",").split(",")]
            try:
                days = tuple(int(part) for part in parts if part)
            except ValueError:
                raise ValueError("must be whole numbers of days, like 7,1") from None
            value = days
        if isinstance(value, tuple) and any(not isinstance(d, int) or d < 1 for d in value):
            raise ValueError("must be whole numbers of days of at least 1, like 7,1")
        return value

    @field_validator("program_time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value[:40]!r}; use an IANA name") from None
        return value

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("https://", "http://localhost", "http://127.0.0.1")):
            raise ValueError("must be an https:// address (http only for localhost)")
        return value

    @field_validator("export_signing_key", "metrics_token")
    @classmethod
    def _long_key(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("must be at least 32 characters (a random secret)")
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("", "json", "text"):
            raise ValueError("must be json or text")
        return value

    @field_validator("admin_group_id")
    @classmethod
    def _group_guid(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(
            r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", value
        ):
            raise ValueError("must be the group's object id (a GUID)")
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        # Only these two have the ON CONFLICT and row-locking SQL storage/ relies on; say so
        # at start-up rather than with a NotImplementedError on the first write.
        if not value.startswith(("sqlite", "postgres")):
            scheme = value.split(":", 1)[0][:30]
            raise ValueError(f"must be a SQLite or PostgreSQL URL, not {scheme!r}")
        return value

    @field_validator("app_type")
    @classmethod
    def _known_app_type(cls, value: str) -> str:
        allowed = {"MultiTenant", "SingleTenant", "UserAssignedMSI"}
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(sorted(allowed))}")
        return value

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" if self.log_format else not self.dev_mode

    @property
    def secrets(self) -> list[str]:
        """Values that must never appear in a log line (the log formatter removes them)."""
        values = [
            self.app_password,
            self.graph_token,
            self.graph_client_secret,
            self.export_signing_key,
            self.metrics_token,
        ]
        password = urlsplit(self.database_url).password
        if password:
            # As written in the URL (percent-encoded) and as the driver receives it.
            values += [password, unquote(password)]
        return [value for value in values if value]

    @property
    def auth_enabled(self) -> bool:
        return bool(self.app_id)

    @property
    def export_base_url(self) -> str:
        """Where /export links point: PUBLIC_BASE_URL; in dev mode the local port without it;
        "" (exports off) otherwise."""
        if self.public_base_url:
            return self.public_base_url
        return f"http://127.0.0.1:{self.port}" if self.dev_mode else ""

    def export_key(self) -> bytes:
        """EXPORT_SIGNING_KEY; else one derived from the bot's password (the same on every
        replica); else a random key for this process only (links then work only on the
        replica that made them, and not after a restart)."""
        if self.export_signing_key:
            return self.export_signing_key.encode()
        if self.app_password:
            label = b"freelance-connector/export-links"
            return hmac.new(self.app_password.encode(), label, hashlib.sha256).digest()
        return os.urandom(32)

    @property
    def served_tenant_ids(self) -> frozenset[str]:
        """ALLOWED_TENANT_IDS when given; else a single-tenant bot serves its own tenant only,
        and a multi-tenant one (or dev mode) every tenant (empty set)."""
        if self.allowed_tenant_ids:
            return self.allowed_tenant_ids
        if self.auth_enabled and self.app_type != "MultiTenant" and self.app_tenant_id:
            return frozenset({self.app_tenant_id})
        return frozenset()

    @property
    def graph_configured(self) -> bool:
        return bool(self.graph_base_url or self._graph_credentials)

    @property
    def _graph_credentials(self) -> list[str]:
        chosen = {
            "GRAPH_TOKEN": bool(self.graph_token),
            "GRAPH_CLIENT_SECRET": bool(self.graph_client_secret),
            "GRAPH_CERTIFICATE_PATH": bool(self.graph_certificate_path),
            "GRAPH_USE_MANAGED_IDENTITY": self.graph_use_managed_identity,
        }
        return [name for name, given in chosen.items() if given]

    @property
    def dev_mode(self) -> bool:
        """Neither bot credentials nor Graph configured: auth off and the Graph simulator
        in-process. Configuring only one of the two is an error, never a silent fallback."""
        return not self.auth_enabled and not self.graph_configured

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field_name, env_name in ENV_NAMES.items():
            raw = env.get(env_name)
            if raw is not None and raw.strip() != "":
                values[field_name] = raw.strip()
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                name = ENV_NAMES.get(str(err["loc"][0]), str(err["loc"][0])) if err["loc"] else ""
                problems.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
            raise SettingsError("Invalid settings: " + "; ".join(problems)) from None
        settings.check_consistency()
        return settings

    def check_consistency(self) -> None:
        if self.auth_enabled and not self.graph_configured:
            raise SettingsError(
                "MicrosoftAppId is set but Microsoft Graph is not configured: set "
                "GRAPH_TENANT_ID, GRAPH_CLIENT_ID and one credential (GRAPH_CLIENT_SECRET, "
                "GRAPH_CERTIFICATE_PATH or GRAPH_USE_MANAGED_IDENTITY). The Graph simulator "
                "only runs in dev mode, with neither set."
            )
        credentials = self._graph_credentials
        if len(credentials) > 1:
            raise SettingsError(
                "Set only one Graph credential; found " + ", ".join(credentials) + "."
            )
        if self.graph_base_url and not credentials:
            raise SettingsError(
                "GRAPH_BASE_URL is set but no Graph credential is: set GRAPH_TOKEN for a local "
                "stand-in, or GRAPH_CLIENT_SECRET, GRAPH_CERTIFICATE_PATH or "
                "GRAPH_USE_MANAGED_IDENTITY."
            )
        if self.graph_configured and not self.auth_enabled and not self.allow_unauthenticated:
            raise SettingsError(
                "Microsoft Graph is configured but MicrosoftAppId is not, so anyone who can "
                "reach the bot could act as any user. Set MicrosoftAppId and "
                "MicrosoftAppPassword, or ALLOW_UNAUTHENTICATED=true for an isolated test rig."
            )
        if self.auth_enabled and self.app_type != "UserAssignedMSI" and not self.app_password:
            raise SettingsError(
                "MicrosoftAppPassword is required when MicrosoftAppId is set "
                "(or set MicrosoftAppType=UserAssignedMSI)."
            )
        if self.app_type == "SingleTenant" and self.auth_enabled and not self.app_tenant_id:
            raise SettingsError(
                "MicrosoftAppTenantId is required when MicrosoftAppType is SingleTenant."
            )
        uses_secret = bool(self.graph_client_secret or self.graph_certificate_path)
        if uses_secret and not (self.graph_tenant_id and self.graph_client_id):
            raise SettingsError(
                "GRAPH_TENANT_ID and GRAPH_CLIENT_ID are required with GRAPH_CLIENT_SECRET or "
                "GRAPH_CERTIFICATE_PATH."
            )
        if self.graph_certificate_path and not Path(self.graph_certificate_path).is_file():
            raise SettingsError(
                f"GRAPH_CERTIFICATE_PATH: no file at {self.graph_certificate_path}."
            )


# Field name -> environment variable. The README's settings table lists the same names.
ENV_NAMES: dict[str, str] = {
    "app_id": "MicrosoftAppId",
    "app_password": "MicrosoftAppPassword",
    "app_type": "MicrosoftAppType",
    "app_tenant_id": "MicrosoftAppTenantId",
    "openid_metadata_url": "BOT_OPENID_METADATA_URL",
    "channel_login_url": "BOT_CHANNEL_LOGIN_URL",
    "graph_base_url": "GRAPH_BASE_URL",
    "graph_token": "GRAPH_TOKEN",
    "graph_tenant_id": "GRAPH_TENANT_ID",
    "graph_client_id": "GRAPH_CLIENT_ID",
    "graph_client_secret": "GRAPH_CLIENT_SECRET",
    "graph_certificate_path": "GRAPH_CERTIFICATE_PATH",
    "graph_use_managed_identity": "GRAPH_USE_MANAGED_IDENTITY",
    "graph_rate_limit": "GRAPH_RATE_LIMIT",
    "graph_rate_limit_share": "GRAPH_RATE_LIMIT_SHARE",
    "graph_timeout_s": "GRAPH_TIMEOUT_S",
    "database_url": "DATABASE_URL",
    "admin_ids": "ADMIN_IDS",
    "allowed_tenant_ids": "ALLOWED_TENANT_IDS",
    "default_approver": "DEFAULT_APPROVER",
    "invite_redirect_url": "INVITE_REDIRECT_URL",
    "admin_group_id": "ADMIN_GROUP_ID",
    "admin_group_cache_s": "ADMIN_GROUP_CACHE_S",
    "report_window_days": "REPORT_WINDOW_DAYS",
    "public_base_url": "PUBLIC_BASE_URL",
    "export_signing_key": "EXPORT_SIGNING_KEY",
    "export_link_minutes": "EXPORT_LINK_MINUTES",
    "program_time_zone": "PROGRAM_TIME_ZONE",
    "end_reminder_days": "END_REMINDER_DAYS",
    "reminder_hour": "REMINDER_HOUR",
    "max_engagement_days": "MAX_ENGAGEMENT_DAYS",
    "disable_guests_on_end": "DISABLE_GUESTS_ON_END",
    "guest_delete_after_days": "GUEST_DELETE_AFTER_DAYS",
    "ended_channel_prefix": "ENDED_CHANNEL_PREFIX",
    "invitation_nudge_days": "INVITATION_NUDGE_DAYS",
    "invitation_nudge_limit": "INVITATION_NUDGE_LIMIT",
    "approval_reminder_hours": "APPROVAL_REMINDER_HOURS",
    "approval_reminder_limit": "APPROVAL_REMINDER_LIMIT",
    "approval_escalation_hours": "APPROVAL_ESCALATION_HOURS",
    "approval_expiry_hours": "APPROVAL_EXPIRY_HOURS",
    "host": "HOST",
    "port": "PORT",
    "worker_enabled": "WORKER_ENABLED",
    "worker_concurrency": "WORKER_CONCURRENCY",
    "worker_poll_interval_s": "WORKER_POLL_INTERVAL_S",
    "job_lease_s": "JOB_LEASE_S",
    "job_max_attempts": "JOB_MAX_ATTEMPTS",
    "job_retry_base_s": "JOB_RETRY_BASE_S",
    "job_retry_max_s": "JOB_RETRY_MAX_S",
    "job_replication_retry_base_s": "JOB_REPLICATION_RETRY_BASE_S",
    "job_replication_max_attempts": "JOB_REPLICATION_MAX_ATTEMPTS",
    "log_level": "LOG_LEVEL",
    "log_format": "LOG_FORMAT",
    "metrics_token": "METRICS_TOKEN",
    "shutdown_timeout_s": "SHUTDOWN_TIMEOUT_S",
    "allow_unauthenticated": "ALLOW_UNAUTHENTICATED",
    "dev_graph_port": "DEV_GRAPH_PORT",
    "dev_graph_replication_delay_s": "DEV_GRAPH_REPLICATION_DELAY_S",
    "dev_graph_throttle": "DEV_GRAPH_THROTTLE",
}

"""Correlation ids for log lines, and the JSON log format.

A turn and a job run each open a `log_scope` with a fresh correlation id; every log line
written inside it (by our code, botbuilder, httpx or SQLAlchemy, in this task or in tasks it
starts) carries that id, so one `correlation_id` filter shows all a turn or a job did.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO

_scope: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("log_scope", default={})  # noqa: B039 (never mutated: each scope sets a new dict)


def new_correlation_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@contextlib.contextmanager
def log_scope(**fields: str) -> Iterator[dict[str, str]]:
    """Add `fields` (e.g. correlation_id, job_kind) to every log record written inside."""
    merged = {**_scope.get(), **{k: v for k, v in fields.items() if v}}
    token = _scope.set(merged)
    try:
        yield merged
    finally:
        _scope.reset(token)


def current_scope() -> dict[str, str]:
    return dict(_scope.get())


class ScopeFilter(logging.Filter):
    """Copies the current scope onto each record (`record.correlation_id` etc.), so that
    handlers and formatters see it even when the record is formatted later."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = _scope.get()
        record.log_scope = scope
        record.correlation_id = scope.get("correlation_id", "-")
        return True


# Attributes every LogRecord has; anything else a caller passed with `extra=` is logged too.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "log_scope", "correlation_id", "taskName"}
)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the scope's
    fields (correlation_id, ...), `extra=` fields, and the formatted exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        scope = getattr(record, "log_scope", None)
        entry.update(scope if scope is not None else _scope.get())
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=repr)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s]: %(message)s"

# Bearer tokens in headers that a library logs at DEBUG, and JWTs anywhere (Bot Framework and
# Graph access tokens are JWTs; we never know their values in advance).
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
REDACTED = "[redacted]"


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then removes configured secrets, bearer tokens and JWTs from the
    finished line (exception text included). Our code never logs a secret; this catches what a
    library logs at DEBUG (msrest logs request headers there)."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._inner = inner
        # Longest first, so a secret that contains another is removed whole. Short values
        # ("1", "true") are not secrets and would shred every line.
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(self._inner.format(record))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
        return _JWT.sub(REDACTED, text)


def log_handler(
    *, json_lines: bool, secrets: Iterable[str] = (), stream: IO[str] | None = None
) -> logging.Handler:
    """A handler writing JSON lines (production) or readable text (dev mode) to `stream`
    (stderr), both with the correlation id and with `secrets` redacted."""
    inner = JsonLogFormatter() if json_lines else logging.Formatter(TEXT_FORMAT)
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScopeFilter())
    handler.setFormatter(RedactingFormatter(inner, secrets))
    return handler


def configure_logging(level: str, *, json_lines: bool, secrets: Iterable[str] = ()) -> None:
    """Root logging for the process: `log_handler` as the only handler."""
    handler = log_handler(json_lines=json_lines, secrets=secrets)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())

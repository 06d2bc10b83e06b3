"""Log lines carry the correlation id of the turn or job they were written in, come out as one
JSON object per line, and lose configured secrets, bearer tokens and JWTs on the way out."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from core.log_context import REDACTED, log_handler, log_scope, new_correlation_id

SECRET = "s3cr3t-value-for-tests-only-0123456789"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcHAifQ.c2lnbmF0dXJl"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = log_handler(json_lines=True, secrets=[SECRET, "short"], stream=stream)
    logger = logging.getLogger("tests.log_context")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_a_json_object_with_the_scope_fields(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("outside")
    with log_scope(correlation_id="turn-1", activity_type="message"):
        logger.warning("inside %s", "args", extra={"engagement": 7})
    (outside, inside) = lines(stream)
    assert outside["message"] == "outside" and "correlation_id" not in outside
    assert inside["message"] == "inside args"
    assert inside["level"] == "WARNING"
    assert inside["logger"] == "tests.log_context"
    assert inside["correlation_id"] == "turn-1"
    assert inside["activity_type"] == "message"
    assert inside["engagement"] == 7
    assert str(inside["time"]).endswith("+00:00")


def test_exceptions_are_kept_in_one_line(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed")
    assert len(stream.getvalue().splitlines()) == 1
    (entry,) = lines(stream)
    assert "RuntimeError: boom" in str(entry["exception"])


async def test_concurrent_tasks_keep_their_own_correlation_ids(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured

    async def turn(name: str) -> None:
        with log_scope(correlation_id=name):
            for step in range(3):
                await asyncio.sleep(0)
                logger.info("%s step %d", name, step)
                # Tasks started inside the scope inherit it.
                await asyncio.create_task(asyncio.sleep(0))

    await asyncio.gather(*(turn(f"turn-{n}") for n in range(5)))
    entries = lines(stream)
    assert len(entries) == 15
    for entry in entries:
        assert str(entry["message"]).startswith(str(entry["correlation_id"]) + " ")


def test_secrets_bearer_tokens_and_jwts_are_redacted_also_in_exceptions(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.debug("headers: {'Authorization': 'Bearer opaque-token-123'}")
    logger.info("password=%s", SECRET)
    logger.info("token %s", JWT)
    try:
        raise ValueError(f"bad secret {SECRET}")
    except ValueError:
        logger.exception("failed")
    logger.info("a short value is not a secret: short")
    text = stream.getvalue()
    assert SECRET not in text
    assert JWT not in text and "eyJ" not in text
    assert "opaque-token-123" not in text
    assert text.count(REDACTED) == 4
    assert "not a secret: short" in text


def test_correlation_ids_are_unique_and_say_what_they_belong_to() -> None:
    ids = {new_correlation_id("turn") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("turn-") for i in ids)

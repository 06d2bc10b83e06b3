"""Remembering how to reach a user on every message (EngagementService.record_user_seen), on
real SQLite: the first message stores the chat, a change is stored at once, and a user seen
unchanged recently costs no database round trip (the memo behind the fast /help turns)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core import engagements
from core.config import ProgramConfig
from core.engagements import SEEN_MEMO_TTL, EngagementService
from core.model import UserConversation
from storage.repositories import SqlStorage, open_storage
from tests.support.clock import FakeClock


class CountingStorage:
    """The real storage, counting the transactions opened through it."""

    def __init__(self, inner: SqlStorage) -> None:
        self._inner = inner
        self.transactions = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        self.transactions += 1
        async with self._inner.transaction() as tx:
            yield tx


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[CountingStorage]:
    store = await open_storage(f"sqlite+aiosqlite:///{tmp_path / 'fc.db'}")
    yield CountingStorage(store)
    await store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(storage: CountingStorage, clock: FakeClock) -> EngagementService:
    return EngagementService(storage, clock, ProgramConfig())  # type: ignore[arg-type]


def chat(aad_id: str = "aad-alex", conversation_id: str = "a:1") -> UserConversation:
    return UserConversation(
        aad_id=aad_id,
        user_id=f"29:{aad_id}",
        name="Alex",
        tenant_id="tenant-1",
        service_url="https://smba.example/",
        reference={"conversation": {"id": conversation_id}},
    )


async def stored(storage: CountingStorage, aad_id: str) -> UserConversation | None:
    async with storage._inner.transaction() as tx:
        return await tx.conversations.get_user(aad_id)


async def test_first_message_stores_the_chat(
    service: EngagementService, storage: CountingStorage
) -> None:
    await service.record_user_seen(chat())
    assert await stored(storage, "aad-alex") == chat()


async def test_same_user_unchanged_again_soon_costs_no_database_round_trip(
    service: EngagementService, storage: CountingStorage, clock: FakeClock
) -> None:
    await service.record_user_seen(chat())
    before = storage.transactions
    for _ in range(5):
        clock.advance(60)
        await service.record_user_seen(chat())
    assert storage.transactions == before


async def test_a_changed_chat_is_stored_at_once_despite_the_memo(
    service: EngagementService, storage: CountingStorage
) -> None:
    await service.record_user_seen(chat())
    await service.record_user_seen(chat(conversation_id="a:2"))
    assert await stored(storage, "aad-alex") == chat(conversation_id="a:2")


async def test_after_the_memo_expires_the_user_is_checked_against_the_database_again(
    service: EngagementService, storage: CountingStorage, clock: FakeClock
) -> None:
    await service.record_user_seen(chat())
    # Another replica stored a newer chat meanwhile; this one's memo must not hide it forever.
    async with storage._inner.transaction() as tx:
        await tx.conversations.save_user(replace(chat(), name="Alex (renamed)"))
        await tx.commit()
    clock.advance(SEEN_MEMO_TTL.total_seconds() + 1)
    before = storage.transactions
    await service.record_user_seen(chat())
    assert storage.transactions == before + 1
    assert await stored(storage, "aad-alex") == chat()


async def test_the_memo_stays_bounded_and_forgets_the_least_recent_user(
    service: EngagementService, storage: CountingStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engagements, "SEEN_MEMO_SIZE", 3)
    for n in range(4):
        await service.record_user_seen(chat(aad_id=f"aad-{n}"))
    before = storage.transactions
    await service.record_user_seen(chat(aad_id="aad-3"))  # still remembered
    assert storage.transactions == before
    await service.record_user_seen(chat(aad_id="aad-0"))  # forgotten: checked again
    assert storage.transactions == before + 1

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.repositories import SqlStorage, open_storage
from tests.support.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def storage(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqlStorage]:
    store = await open_storage(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}", clock=clock)
    yield store
    await store.close()

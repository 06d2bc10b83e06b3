"""A running Graph simulator seeded with the dev directory, for fixtures."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from graph.dev_seed import seed_dev_directory
from graph.simulator import GraphSimulator


@contextlib.asynccontextmanager
async def running_simulator(**options: Any) -> AsyncIterator[GraphSimulator]:
    """`GraphSimulator(**options)`, seeded, serving on 127.0.0.1 until the block ends."""
    simulator = GraphSimulator(**options)
    seed_dev_directory(simulator)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()

"""Fixtures for the Graph simulator and adapter unit tests: a manual clock, a running
simulator seeded with the dev directory, and an aiohttp session that talks to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from graph.simulator import GraphSimulator
from tests.support.clock import ManualClock
from tests.support.simulator import running_simulator

TOKEN = "sim-test-token"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[GraphSimulator]:
    async with running_simulator(clock=clock) as simulator:
        yield simulator


@pytest.fixture
async def http(sim: GraphSimulator) -> AsyncIterator[aiohttp.ClientSession]:
    assert sim.base_url is not None
    async with aiohttp.ClientSession(
        base_url=sim.base_url.removesuffix("/v1.0"),
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as session:
        yield session

"""Fixtures for GraphDirectory over real msgraph-sdk HTTP against a running Graph simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from msgraph.graph_service_client import GraphServiceClient

from graph.client import GraphSettings, build_graph_client, close_graph_client
from graph.directory import GraphDirectory
from graph.simulator import GraphSimulator
from tests.support.clock import ManualClock
from tests.support.simulator import running_simulator

GRAPH_TOKEN = "test-token"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[GraphSimulator]:
    async with running_simulator(clock=clock, accepted_token=GRAPH_TOKEN) as simulator:
        yield simulator


@pytest.fixture
async def graph_client(sim: GraphSimulator) -> AsyncIterator[GraphServiceClient]:
    assert sim.base_url is not None
    client = build_graph_client(GraphSettings(base_url=sim.base_url, static_token=GRAPH_TOKEN))
    try:
        yield client
    finally:
        await close_graph_client(client)


@pytest.fixture
def directory(graph_client: GraphServiceClient) -> GraphDirectory:
    return GraphDirectory(graph_client)

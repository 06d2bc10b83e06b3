"""The Graph simulator and the Graph adapter on it, for use cases that ask the directory (the
review group's members decide a second stage)."""

from __future__ import annotations

from tests.integration.conftest import clock, directory, graph_client, sim  # noqa: F401

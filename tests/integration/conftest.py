"""Fixtures shared by the control-plane integration tests: a control server on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pco_writer.control import ControlServer


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """The control server's data root (a test module may override it)."""
    return tmp_path


@pytest.fixture
def server(data_root: Path) -> Iterator[ControlServer]:
    """A control server on 127.0.0.1 and a free port; no writer may outlive the test."""
    srv = ControlServer("127.0.0.1", 0, data_root=data_root).start()
    yield srv
    srv.stop(timeout=5.0)
    assert not any(run["alive"] for run in srv.controller.runs()), "a writer outlived the test"


@pytest.fixture
def http(server: ControlServer) -> Iterator[httpx.Client]:
    """An HTTP client of that server."""
    with httpx.Client(base_url=server.url, timeout=5) as client:
        yield client

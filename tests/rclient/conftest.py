"""PSI's real pco_rclient 0.4.11, unchanged, against our servers: what the tests here share.

The client is a test fixture, not part of the project (GPL-3.0): ``./scripts/test`` installs
it from ``../shared/vendor/pco_rclient-0.4.11`` when that folder is there. Without it, these
tests skip and say why, as the tests of the real pco.edge capture do.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# the cameras and waits of the integration tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from _rclient import rclient_or_skip  # noqa: E402

from pco_writer.control import ControlServer  # noqa: E402


@pytest.fixture
def rclient() -> Any:
    """The ``pco_rclient`` package."""
    return rclient_or_skip()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlServer]:
    """A control server on a free port with ``tmp_path`` as its data root."""
    srv = ControlServer("127.0.0.1", 0, data_root=tmp_path).start()
    yield srv
    srv.stop(timeout=5.0)
    assert not any(run["alive"] for run in srv.controller.runs()), "a writer outlived the test"

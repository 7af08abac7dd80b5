"""Where PSI's real pco_rclient comes from in the tests, and skipping when it is not there."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest

VENDOR = Path(__file__).resolve().parents[3] / "shared" / "vendor" / "pco_rclient-0.4.11"
VERSION = "0.4.11"


def rclient_or_skip() -> Any:
    """The real client's module, or skip saying why it is not there."""
    if not VENDOR.is_dir():
        pytest.skip(f"PSI's pco_rclient is not at {VENDOR} (no ../shared beside this checkout)")
    try:
        version = importlib.metadata.version("pco_rclient")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("pco_rclient is not installed here; ./scripts/test installs it from ../shared")
    if version != VERSION:
        pytest.skip(f"pco_rclient {version} is installed, these tests are for {VERSION}")
    import pco_rclient

    return pco_rclient

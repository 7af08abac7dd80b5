"""Starts the control server refused: the latest one per writer port, until the next start.

pco_rclient learns why a start failed only from ``GET /error``, and reads the status of the
last run from ``GET /finished``: after a refused start both say ``error`` with the reason,
until a later start is accepted (a newer run hides an older refusal). A start refused because
a writer for the camera still runs is not recorded: that run is the camera's state.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from pco_writer.statistics import iso_now

__all__ = ["Refusal", "Refusals", "requested_port"]


@dataclass(frozen=True)
class Refusal:
    """A refused start request."""

    port: int | None
    """The writer port the request named (None: it named none)."""
    error: str
    """Why it was refused, as the start request was answered."""
    error_time: str
    """When (ISO 8601, local time)."""
    at: float
    """When (monotonic), to compare with the start of runs."""

    def answer(self) -> dict[str, Any]:
        """The keys pco_rclient reads from ``/error`` and ``/finished``."""
        return {"status": "error", "error": self.error, "error_time": self.error_time}


class Refusals:
    """The latest refusal per writer port."""

    def __init__(self) -> None:
        self._latest: dict[int | None, Refusal] = {}
        self._lock = threading.Lock()

    def record(self, port: int | None, message: str) -> Refusal:
        """Remember a refused start for ``port``."""
        refusal = Refusal(port, message, iso_now(), time.monotonic())
        with self._lock:
            self._latest[port] = refusal
        return refusal

    def latest(self, ports: list[int] | None, since: float = float("-inf")) -> Refusal | None:
        """The newest refusal for one of ``ports`` (None: any) made after ``since``."""
        with self._lock:
            found = [r for p, r in self._latest.items() if ports is None or p in ports]
        newest = max(found, key=lambda r: r.at, default=None)
        return newest if newest is not None and newest.at > since else None


def requested_port(body: Any) -> int | None:
    """The writer port a request body names, if it names one that reads as a number."""
    if not isinstance(body, dict):
        return None
    for key in ("writer_rest_port", "rest_api_port"):
        try:
            return int(body[key])
        except (KeyError, TypeError, ValueError):
            continue
    return None

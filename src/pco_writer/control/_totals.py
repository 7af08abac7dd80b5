"""The counts of every run of a camera added up, so that they outlive the writer processes.

A writer's statistics own its counts; :class:`Counts` is the same numbers read from a
statistics dictionary, and :class:`Totals` adds up those of the runs that have ended. The
counters of ``/metrics`` are the totals plus the latest statistics of the runs still going.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pco_writer.exit_record import end_kind
from pco_writer.statistics import LATENCY_BOUNDS_S

__all__ = ["Counts", "Totals"]


@dataclass
class Counts:
    """Frame counts of one or more runs, and their write latency histogram."""

    received: int = 0
    written: int = 0
    lost: Counter[str] = field(default_factory=Counter)
    """Frames of the runs' ranges not in a file, by reason (``never_received``, ``killed``...)."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Frames received and placed but not written, by reason (part of ``lost``)."""
    invalid: Counter[str] = field(default_factory=Counter)
    """Messages that were no frame of the run, by reason."""
    runs: Counter[str] = field(default_factory=Counter)
    """Ended runs by the kind of their end reason (:func:`pco_writer.exit_record.end_kind`)."""
    latency_bounds: tuple[float, ...] = LATENCY_BOUNDS_S
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_S) + 1))
    latency_sum: float = 0.0

    @classmethod
    def of(cls, stats: dict[str, Any]) -> Counts:
        """The counts in one run's statistics (as ``GET /statistics`` answers them)."""
        lost = Counter({k: int(v) for k, v in (stats.get("lost_by_reason") or {}).items()})
        counts = cls(
            received=int(stats.get("n_received_frames", 0)),
            written=int(stats.get("n_written_frames", 0)),
            lost=lost,
            dropped=Counter({k: v for k, v in lost.items() if k != "never_received"}),
            invalid=Counter({k: int(v) for k, v in (stats.get("invalid_by_reason") or {}).items()}),
        )
        latency = stats.get("write_latency") or {}
        if tuple(latency.get("bounds_s", ())) == counts.latency_bounds:
            counts.latency_counts = [int(n) for n in latency["counts"]]
            counts.latency_sum = float(latency.get("sum_s", 0.0))
        return counts

    def add(self, other: Counts) -> None:
        """Add another's counts to these."""
        self.received += other.received
        self.written += other.written
        self.lost.update(other.lost)
        self.dropped.update(other.dropped)
        self.invalid.update(other.invalid)
        self.runs.update(other.runs)
        self.latency_counts = [a + b for a, b in zip(self.latency_counts, other.latency_counts,
                                                     strict=True)]  # fmt: skip
        self.latency_sum += other.latency_sum

    def copy(self) -> Counts:
        """An independent copy."""
        out = Counts()
        out.add(self)
        return out


class Totals:
    """The counts of the ended runs, per camera (thread-safe)."""

    def __init__(self) -> None:
        self._per_camera: dict[str, Counts] = {}
        self._lock = threading.Lock()

    def add_run(self, camera: str, stats: dict[str, Any], end_reason: str) -> None:
        """A run has ended with these final statistics and this end reason."""
        counts = Counts.of(stats)
        counts.runs[end_kind(end_reason)] += 1
        with self._lock:
            self._per_camera.setdefault(camera, Counts()).add(counts)

    def with_running(self, camera: str, running: Iterable[dict[str, Any]]) -> Counts:
        """The camera's totals plus the latest statistics of its runs still going."""
        with self._lock:
            out = self._per_camera.get(camera, Counts()).copy()
        for stats in running:
            out.add(Counts.of(stats))
        return out

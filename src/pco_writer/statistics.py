"""The statistics of one acquisition, assembled from the facts each part owns.

- the receiver owns :class:`StreamCounts`: valid frames handed to the buffer, and messages
  rejected at the door (not valid Array-1.0) by reason;
- the frame ledger (:mod:`pco_writer.ledger`) owns what became of each frame;
- the writer owns the :class:`Timeline`, its status and the files, and the
  :class:`LatencyHistogram` of its writes.

:func:`statistics` reads them into the one dictionary the REST API, the control server and
pco_rclient see. Nothing here is a second copy of a count.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pco_writer.ledger import LedgerSnapshot

__all__ = ["LATENCY_BOUNDS_S", "LatencyHistogram", "StreamCounts", "Timeline", "iso_now",
           "statistics"]  # fmt: skip

LATENCY_BOUNDS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""The upper bounds of the write latency buckets, in seconds (a last bucket takes the rest)."""


def iso_now() -> str:
    """Local time as ISO 8601 with the UTC offset, to the millisecond."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


@dataclass
class StreamCounts:
    """What the receiver saw. Written by the receiver thread only (plain ints under the GIL).

    Attributes:
        n_received: valid messages handed to the buffer.
        invalid_by_reason: messages rejected at the door (not valid Array-1.0), by reason.
        t_first: monotonic time of the first valid message, 0 before it.
    """

    n_received: int = 0
    invalid_by_reason: Counter[str] = field(default_factory=Counter)
    t_first: float = 0.0

    def count_received(self) -> None:
        """Count a valid frame handed to the buffer."""
        if not self.n_received:
            self.t_first = time.monotonic()
        self.n_received += 1

    def count_invalid(self, reason: str) -> int:
        """Count a rejected message under its reason; returns that reason's count."""
        self.invalid_by_reason[reason] += 1
        return self.invalid_by_reason[reason]


@dataclass
class Timeline:
    """When the acquisition started and ended (wall clock for people, monotonic for rates)."""

    start_time: str = field(default_factory=iso_now)
    end_time: str = ""
    t_start: float = field(default_factory=time.monotonic)
    t_end: float = 0.0

    def finish(self) -> None:
        """Record the end."""
        self.end_time = iso_now()
        self.t_end = time.monotonic()

    @property
    def duration_sec(self) -> float:
        """Seconds from the start to the end (or to now, while running)."""
        return (self.t_end or time.monotonic()) - self.t_start

    def rate(self, n: int, since: float) -> float:
        """``n`` frames per second from the monotonic time ``since`` to the end (or now)."""
        if n == 0 or not since:
            return 0.0
        elapsed = (self.t_end or time.monotonic()) - since
        return round(n / elapsed, 3) if elapsed > 0 else 0.0


@dataclass
class LatencyHistogram:
    """How long frames took from their receipt to their file, one observation per batch.

    Written by the writer thread only; read from any thread (a snapshot may be one
    observation behind in one of its numbers, never inconsistent in a way that matters).

    Attributes:
        bounds: upper bounds of the buckets, seconds, increasing.
        counts: observations per bucket; one more than ``bounds`` (the last: above them all).
        total: the sum of the observations, seconds.
    """

    bounds: tuple[float, ...] = LATENCY_BOUNDS_S
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        """Count one observation (an upper bound is inclusive, as Prometheus' ``le``)."""
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    @classmethod
    def sum_of(cls, snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Several writers' :meth:`as_dict` snapshots added up (those of other bounds left out)."""
        total = cls()
        for snap in snapshots:
            if tuple(snap.get("bounds_s", ())) == total.bounds:
                total.counts = [a + int(b) for a, b in zip(total.counts, snap["counts"],
                                                           strict=True)]  # fmt: skip
                total.total += float(snap.get("sum_s", 0.0))
        return total.as_dict()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``bounds_s``, ``counts`` (per bucket, not cumulative), ``sum_s``."""
        return {"bounds_s": list(self.bounds), "counts": list(self.counts),
                "sum_s": round(self.total, 6)}  # fmt: skip


def statistics(
    identity: dict[str, Any],
    stream: StreamCounts,
    ledger: LedgerSnapshot,
    timeline: Timeline,
) -> dict[str, Any]:
    """The statistics of an acquisition as one JSON-ready dictionary (no value is None).

    ``n_lost_frames`` counts every frame of the acquisition's range that is not in a file,
    whatever the cause (``lost_by_reason`` splits it: never received, killed, ...), so it
    equals the number of ids in ``missing_frame_ids``. ``invalid_by_reason`` counts messages
    that are no frame of the acquisition: malformed ones and valid ones that do not belong.
    """
    invalid = stream.invalid_by_reason + Counter(ledger.rejected_by_reason)
    return {
        **identity,
        "n_received_frames": stream.n_received,
        "n_written_frames": ledger.n_written,
        "n_lost_frames": ledger.n_lost,
        "lost_by_reason": ledger.lost_by_reason,
        "n_dropped_frames": ledger.n_dropped,
        "n_invalid_frames": sum(invalid.values()),
        "invalid_by_reason": dict(invalid),
        "first_frame_id": ledger.first_frame_id,
        "start_time": timeline.start_time,
        "end_time": timeline.end_time,
        "duration_sec": round(timeline.duration_sec, 3),
        "receiving_rate": timeline.rate(stream.n_received, stream.t_first),
        "writing_rate": timeline.rate(ledger.n_written, stream.t_first),
    }

"""Counters of one acquisition, updated by the data-plane threads and read by the control plane.

Each counter has a single writer thread (the receiver or the HDF5 writer), so plain integer
updates under the GIL are enough; readers take a consistent-enough :meth:`snapshot`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["AcquisitionStats", "iso_now"]


def iso_now() -> str:
    """Local time as ISO 8601 with the UTC offset, to the millisecond."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


@dataclass
class AcquisitionStats:
    """What happened in one acquisition, from its start.

    Rates are frames per second, averaged from the first received frame.
    """

    n_frames: int = 0
    dataset_name: str = ""
    output_file: str = ""
    user_id: int = -1
    n_received_frames: int = 0
    n_written_frames: int = 0
    n_invalid_frames: int = 0
    invalid_by_reason: Counter[str] = field(default_factory=Counter)
    n_lost_frames: int = 0
    n_dropped_frames: int = 0
    first_frame_id: int = -1
    start_time: str = field(default_factory=iso_now)
    end_time: str = ""
    end_reason: str = ""
    files: list[str] = field(default_factory=list)
    _t_start: float = field(default_factory=time.monotonic, repr=False)
    _t_first: float = field(default=0.0, repr=False)
    _t_last_write: float = field(default=0.0, repr=False)
    _t_end: float = field(default=0.0, repr=False)

    def count_invalid(self, reason: str) -> None:
        """Count a rejected message under its reason."""
        self.n_invalid_frames += 1
        self.invalid_by_reason[reason] += 1

    def count_received(self, first_frame_id: int) -> None:
        """Count a valid frame handed to the buffer."""
        if self.n_received_frames == 0:
            self._t_first = time.monotonic()
            self.first_frame_id = first_frame_id
        self.n_received_frames += 1

    def count_written(self, n: int) -> None:
        """Count frames whose chunks are in the file."""
        self.n_written_frames += n
        self._t_last_write = time.monotonic()

    def finish(self, end_reason: str) -> None:
        """Record the end of the acquisition."""
        self.end_reason = end_reason
        self.end_time = iso_now()
        self._t_end = time.monotonic()

    @property
    def duration_sec(self) -> float:
        """Seconds from the start to the end (or to now, while running)."""
        return (self._t_end or time.monotonic()) - self._t_start

    @property
    def receiving_rate(self) -> float:
        """Frames received per second since the first frame."""
        return self._rate(self.n_received_frames)

    @property
    def writing_rate(self) -> float:
        """Frames written per second since the first frame."""
        return self._rate(self.n_written_frames)

    def _rate(self, n: int) -> float:
        if n == 0 or not self._t_first:
            return 0.0
        elapsed = (self._t_end or time.monotonic()) - self._t_first
        return round(n / elapsed, 3) if elapsed > 0 else 0.0

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of every counter (no value is ever None)."""
        return {
            "n_frames": self.n_frames,
            "n_received_frames": self.n_received_frames,
            "n_written_frames": self.n_written_frames,
            "n_lost_frames": self.n_lost_frames,
            "n_invalid_frames": self.n_invalid_frames,
            "invalid_by_reason": dict(self.invalid_by_reason),
            "n_dropped_frames": self.n_dropped_frames,
            "first_frame_id": self.first_frame_id,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration_sec": round(self.duration_sec, 3),
            "receiving_rate": self.receiving_rate,
            "writing_rate": self.writing_rate,
            "dataset_name": self.dataset_name,
            "output_file": self.output_file,
            "files": list(self.files),
            "user_id": self.user_id,
            "end_reason": self.end_reason,
        }

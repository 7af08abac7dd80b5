"""Where the frames of a multi-writer acquisition are: part file rows as strided runs of ids.

Each writer of a multi-writer acquisition writes the frames ZeroMQ deals it into its own part
file, in the order they come (compact rows). ZeroMQ deals round-robin, skipping a writer whose
queue is full, so the ids of one part's rows mostly step by the number of writers, with a new
step after each skip. A :class:`PartRows` keeps one part's rows as runs ``first_id + k * stride
<- first_row + k``: a handful per skip, not one per frame, and exactly what a virtual dataset
maps with one regular hyperslab each (docs/decisions/0042-several-writers.md). Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["IdRun", "PartRows", "clip", "expand"]


@dataclass(frozen=True)
class IdRun:
    """Rows ``first_row .. first_row + count - 1`` of a part hold ids ``first_id + k * stride``.

    Attributes:
        first_id: the frame id of the first row.
        stride: how the id steps from row to row (>= 1).
        count: how many rows.
        first_row: the first row in the part file.
    """

    first_id: int
    stride: int
    count: int
    first_row: int

    @property
    def last_id(self) -> int:
        """The frame id of the last row."""
        return self.first_id + (self.count - 1) * self.stride

    def ids(self) -> range:
        """The frame ids of the rows, in row order."""
        return range(self.first_id, self.last_id + 1, self.stride)

    def as_list(self) -> list[int]:
        """``[first_id, stride, count, first_row]``, for JSON."""
        return [self.first_id, self.stride, self.count, self.first_row]


class PartRows:
    """The rows of one part file, in order, as :class:`IdRun` runs; appended to as rows come."""

    def __init__(self) -> None:
        self._runs: list[list[int]] = []  # [first_id, stride, count, first_row], the last open
        self.n_rows = 0
        """One past the last row added."""

    def append(self, frame_id: int, row: int | None = None) -> None:
        """Row ``row`` (default: the next one) holds ``frame_id``; rows only go up."""
        row = self.n_rows if row is None else row
        runs = self._runs
        if runs and row == self.n_rows:
            last = runs[-1]
            first, stride, count, _ = last
            step = frame_id - (first + (count - 1) * stride)
            if count == 1 and step >= 1:  # a second row fixes the run's stride
                last[1], last[2] = step, 2
                self.n_rows += 1
                return
            if step == stride:
                last[2] += 1
                self.n_rows += 1
                return
        runs.append([frame_id, 1, 1, row])
        self.n_rows = row + 1

    def extend(self, frame_ids: Iterable[int]) -> None:
        """The next rows hold ``frame_ids``, in order."""
        for frame_id in frame_ids:
            self.append(frame_id)

    def runs(self, since: int = 0) -> list[IdRun]:
        """The runs from the ``since``-th on (the last one may still grow)."""
        return [IdRun(*run) for run in self._runs[since:]]

    def __len__(self) -> int:
        return len(self._runs)


def clip(run: IdRun, lo: int, hi: int) -> IdRun | None:
    """The part of ``run`` whose ids lie in ``lo .. hi - 1``, or None."""
    skip = max(0, -(-(lo - run.first_id) // run.stride))  # rows before the first id >= lo
    last = min(run.count, -(-(hi - run.first_id) // run.stride))  # rows with an id < hi
    if last <= skip:
        return None
    return IdRun(run.first_id + skip * run.stride, run.stride, last - skip, run.first_row + skip)


def expand(runs: Iterable[IdRun]) -> Iterator[tuple[int, int]]:
    """``(frame_id, row)`` of every row of ``runs``."""
    for run in runs:
        for k, frame_id in enumerate(run.ids()):
            yield frame_id, run.first_row + k

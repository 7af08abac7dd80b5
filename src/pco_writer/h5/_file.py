"""The seam between the sink and a file layout: what one output file must do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from pco_writer.buffer import ReceivedFrame

__all__ = ["FileEnd", "FileLayout", "FrameFile", "MissingFrames", "Rows"]

LISTED_MIN = 100_000
"""``missing_frame_ids`` lists at least this many ids..."""
LISTED_PER_FRAME = 16
"""...and this many more per frame in the file: what a file spends on frames that never came
stays proportional to what came (``missing_frame_ranges`` always has them all)."""


@dataclass(frozen=True)
class MissingFrames:
    """The frame ids of one file's range that are not in it, as runs.

    Attributes:
        runs: ``(first_id, last_id)`` of each run of missing ids, inclusive, in order.
        n_in_file: frames in the file (bounds how many ids are listed one by one).
    """

    runs: Sequence[tuple[int, int]] = ()
    n_in_file: int = 0

    @property
    def count(self) -> int:
        """How many ids are missing."""
        return sum(last - first + 1 for first, last in self.runs)

    @property
    def n_listed(self) -> int:
        """How many of them :meth:`ids` lists (all, unless there are very many)."""
        return min(self.count, LISTED_MIN + LISTED_PER_FRAME * self.n_in_file)

    def ids(self) -> npt.NDArray[np.uint64]:
        """The first :attr:`n_listed` missing ids, in order."""
        left, parts = self.n_listed, []
        for first, last in self.runs:
            if left <= 0:
                break
            n = min(last - first + 1, left)
            parts.append(np.arange(first, first + n, dtype=np.uint64))
            left -= n
        return np.concatenate(parts) if parts else np.zeros(0, np.uint64)

    def ranges(self) -> npt.NDArray[np.uint64]:
        """The runs as an ``(n, 2)`` array of first and last id."""
        return np.asarray(self.runs, np.uint64).reshape(-1, 2)

    @staticmethod
    def bytes_at_most(n_missing: int, n_runs: int, n_in_file: int) -> int:
        """What storing ``n_missing`` ids in ``n_runs`` runs takes in a file, at most."""
        return 8 * min(n_missing, LISTED_MIN + LISTED_PER_FRAME * n_in_file) + 16 * n_runs


class Rows(Protocol):
    """Which rows of a file hold a frame, in the file's own (local) row numbers."""

    def runs(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The runs of rows in ``lo .. hi - 1`` that hold a frame."""
        ...


@dataclass(frozen=True)
class FileEnd:
    """What a file records when it is closed.

    Attributes:
        end_reason: how the acquisition ended (``completed``, ``stopped``, ``error: ...``).
        missing: the ids of its range that are not in it.
    """

    end_reason: str
    missing: MissingFrames = field(default_factory=MissingFrames)


class FrameFile(Protocol):
    """One output file of an acquisition, owned by the writer thread.

    Attributes:
        path: the file.
        first_index: the acquisition index of the file's first frame.
        n_written: frames written to it so far.
    """

    path: Path
    first_index: int
    n_written: int

    @property
    def is_open(self) -> bool:
        """True once the file was created and until it is closed."""
        ...

    @property
    def n_unflushed(self) -> int:
        """Frames written since the last flush (their per-frame values are not yet stored)."""
        ...

    def create(self, first: ReceivedFrame) -> None:
        """Create the file for frames like ``first``, if not yet (:meth:`write` does too)."""
        ...

    def write(self, frames: Sequence[ReceivedFrame]) -> None:
        """Write a batch of frames that all belong to this file (created on first call)."""
        ...

    def fileno(self) -> int | None:
        """The open file's descriptor (for write-behind), None before it is created."""
        ...

    def flush(self) -> None:
        """Make what was written readable after a crash."""
        ...

    def close(self, end: FileEnd) -> None:
        """Record how the acquisition ended in this file, then close it."""
        ...


class FileLayout(Protocol):
    """Makes the files of one acquisition in a given layout (tomcat, nxtomo, a user file)."""

    name: str

    def check(self, path: Path, dataset_name: str) -> None:
        """Refuse before anything is written (taken dataset name, unwritable place).

        Raises:
            DatasetExistsError, OutputError, LayoutError.
        """
        ...

    def open(
        self, path: Path, dataset_name: str, first_index: int, n_requested: int, rows: Rows
    ) -> FrameFile:
        """A file object for ``path``; the HDF5 file itself is created on the first write.

        ``rows`` says which of its rows hold a frame (the frame ledger knows).
        """
        ...

    def closing_reserve(self, n_unflushed: int) -> int:
        """Bytes to keep free so that a file with ``n_unflushed`` frames not yet flushed can
        still be flushed and closed (a full disk in the middle makes it unreadable)."""
        ...

"""The seam between the sink and a file layout: what one output file must do."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from pco_writer.buffer import ReceivedFrame

__all__ = ["FileLayout", "FrameFile"]


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

    def write(self, frames: Sequence[ReceivedFrame]) -> None:
        """Write a batch of frames that all belong to this file (created on first call)."""
        ...

    def fileno(self) -> int | None:
        """The open file's descriptor (for write-behind), None before it is created."""
        ...

    def flush(self) -> None:
        """Make what was written readable after a crash."""
        ...

    def close(self, end_reason: str, missing_frame_ids: npt.NDArray[np.uint64]) -> None:
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

    def open(self, path: Path, dataset_name: str, first_index: int, n_requested: int) -> FrameFile:
        """A file object for ``path``; the HDF5 file itself is created on the first write."""
        ...

    def closing_reserve(self, n_unflushed: int) -> int:
        """Bytes to keep free so that a file with ``n_unflushed`` frames not yet flushed can
        still be flushed and closed (a full disk in the middle makes it unreadable)."""
        ...

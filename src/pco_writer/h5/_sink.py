"""The HDF5 sink: routes frames to the file of their index, rolls over, flushes on a cadence."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pco_writer.buffer import ReceivedFrame
from pco_writer.errors import OutputError
from pco_writer.h5._file import FileLayout, FrameFile
from pco_writer.h5._open import ALIGN_FROM, PAGE
from pco_writer.h5._paths import OutputFiles
from pco_writer.h5._space import closing_reserve, space_left
from pco_writer.h5._writeback import WINDOW_BYTES, WriteBehind
from pco_writer.sequence import FrameSequence

__all__ = ["H5Sink"]

log = logging.getLogger(__name__)

# Write-behind looks at the file after every this many bytes (ADR 0005): a batch of 64 pco.edge
# frames (700 MB) written in one go left that much dirty before the disk was asked for any.
_WRITE_BEHIND_STEP = WINDOW_BYTES // 4


@dataclass
class H5Sink:
    """Writes an acquisition's frames into one or more TOMCAT files.

    Args:
        files: where each file goes.
        dataset_name: the dataset name in every file.
        sequence: the acquisition's frame bookkeeping (first id, gaps); read only.
        layout: makes each file (``H5Layout`` of the tomcat, nxtomo or a user layout).
        flush_interval: seconds between flushes; bounds what a crash can lose.
    """

    files: OutputFiles
    dataset_name: str
    sequence: FrameSequence
    layout: FileLayout
    flush_interval: float = 1.0
    written_paths: list[str] = field(default_factory=list)
    _current: FrameFile | None = field(default=None, init=False)
    _writeback: WriteBehind | None = field(default=None, init=False)
    _space_credit: int = field(default=0, init=False)
    _closed_numbers: set[int] = field(default_factory=set, init=False)
    _last_flush: float = field(default_factory=time.monotonic, init=False)

    def check(self) -> None:
        """Refuse before receiving anything: a taken dataset name, no place, a full disk."""
        path = self.files.path(1)
        self.layout.check(path, self.dataset_name)
        with _os_errors():
            left = space_left(path)
        if left < closing_reserve(0):
            raise OutputError(
                f"disk full: only {left / 1e6:.1f} MB left for {path}; free space first"
            )

    def write(self, frames: Sequence[ReceivedFrame]) -> None:
        """Write a batch of frames, in order, to the files they belong to."""
        start = 0
        for i in range(1, len(frames) + 1):
            if i == len(frames) or self._number(frames[i]) != self._number(frames[start]):
                self._write_run(frames[start:i])
                start = i

    def flush_if_due(self) -> None:
        """Flush the open file when the flush interval has passed."""
        now = time.monotonic()
        if now - self._last_flush >= self.flush_interval:
            self._last_flush = now
            if self._current is not None:
                with _os_errors():
                    self._current.flush()

    def close(self, end_reason: str) -> None:
        """Close the open file, recording the end reason and its missing frame ids."""
        if self._current is not None:
            self._close_current(end_reason)

    def _write_run(self, frames: Sequence[ReceivedFrame]) -> None:
        number = self._number(frames[0])
        if number in self._closed_numbers:
            log.error("frames %s arrived after their file was closed", [f.index for f in frames])
            return
        self._check_space(number, frames)
        if self._current is None or self._number_of(self._current) != number:
            self._roll_to(number, frames[0])
        assert self._current is not None
        with _os_errors():
            for part in _by_bytes(frames, _WRITE_BEHIND_STEP):
                self._current.write(part)
                self._write_behind()

    def _check_space(self, number: int, frames: Sequence[ReceivedFrame]) -> None:
        """Refuse a batch that would leave too little room to close the file (disk full)."""
        path = self.files.path(number)
        current = self._current
        n_in_file = current.n_written if current and self._number_of(current) == number else 0
        batch = sum(f.nbytes + (PAGE if f.nbytes >= ALIGN_FROM else 0) for f in frames)
        need = batch + closing_reserve(n_in_file + len(frames))
        if batch + need <= self._space_credit:  # known room: no system call for this batch
            self._space_credit -= batch
            return
        with _os_errors():
            left = space_left(path)
        # Ask again once half of what is known to be spare has been written (or another
        # process filled the disk faster; then the next check still comes well before it).
        self._space_credit = max(0, (left - need) // 2)
        if left < need:
            raise OutputError(
                f"disk full: {left / 1e6:.1f} MB left for {path}, the next {len(frames)} "
                f"frame(s) and closing the file need {need / 1e6:.1f} MB; stopped writing "
                f"(the file keeps the {n_in_file} frame(s) written); free space, then start "
                "a new acquisition"
            )

    def _write_behind(self) -> None:
        if self._writeback is None and self._current is not None:
            fd = self._current.fileno()
            self._writeback = WriteBehind(fd) if fd is not None else None
        if self._writeback is not None:
            self._writeback.advance()

    def _roll_to(self, number: int, first: ReceivedFrame) -> None:
        if self._current is not None:
            self._close_current("completed")
        path = self.files.path(number)
        if number > 1:
            self.layout.check(path, self.dataset_name)
        first_index = self.files.first_index(number)
        share = self._share(first_index)
        self._current = self.layout.open(path, self.dataset_name, first_index, share)
        self.written_paths.append(str(path))

    def _close_current(self, end_reason: str) -> None:
        current = self._current
        assert current is not None
        self._current = None
        self._writeback = None
        self._closed_numbers.add(self._number_of(current))
        with _os_errors():
            current.close(end_reason, self._missing_ids(current))

    def _missing_ids(self, f: FrameFile) -> npt.NDArray[np.uint64]:
        missing = self.sequence.missing_indices()
        mine = missing[missing >= f.first_index]
        if self.files.max_frames_per_file:
            mine = mine[mine < f.first_index + self.files.max_frames_per_file]
        return (mine + self.sequence.first_frame_id).astype(np.uint64)

    def _share(self, first_index: int) -> int:
        per_file, n_frames = self.files.max_frames_per_file, self.sequence.n_frames
        if n_frames == 0:
            return per_file
        return min(per_file, n_frames - first_index) if per_file else n_frames

    def _number(self, frame: ReceivedFrame) -> int:
        return self.files.file_number(frame.index)

    def _number_of(self, f: FrameFile) -> int:
        return self.files.file_number(f.first_index)


def _by_bytes(frames: Sequence[ReceivedFrame], limit: int) -> Iterator[Sequence[ReceivedFrame]]:
    """Consecutive runs of ``frames`` of at most ``limit`` bytes (at least one frame each)."""
    start, size = 0, 0
    for i, f in enumerate(frames):
        if size and size + f.nbytes > limit:
            yield frames[start:i]
            start, size = i, 0
        size += f.nbytes
    if start < len(frames):
        yield frames[start:]


@contextmanager
def _os_errors() -> Iterator[None]:
    """Turn h5py's OSError (disk full, file gone) into an OutputError that says so."""
    try:
        yield
    except OSError as exc:
        raise OutputError(
            f"writing the HDF5 file failed: {exc}; check the disk space and "
            "permissions of the output folder"
        ) from exc

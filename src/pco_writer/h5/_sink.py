"""The HDF5 sink: routes frames to the file of their index, rolls over, flushes on a cadence."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pco_writer.buffer import ReceivedFrame
from pco_writer.errors import OutputError
from pco_writer.h5._file import FileLayout, FrameFile
from pco_writer.h5._open import ALIGN_FROM, PAGE
from pco_writer.h5._paths import OutputFiles
from pco_writer.h5._space import space_left
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

    With roll-over, the file before the newest one stays open while frames of it are still
    missing, so that a frame overtaken by the next file's first frames is still written. A
    file is closed once all its frames are in, when a frame two files further on arrives,
    or at the end; a frame for a closed file is dropped and counted. Each file lists the ids
    of its range that are not in it; the last file also lists those of any file number that
    never got a frame (so every id is listed once, by one file).

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
    data_root: Path | None = None
    """Every file must lie below it once links are followed (None: anywhere)."""
    written_paths: list[str] = field(default_factory=list)
    n_written: int = 0
    """Frames written so far (also those of a batch that failed half-way)."""
    n_dropped: int = 0
    """Frames that arrived after their file was closed: not written."""
    _open: dict[int, FrameFile] = field(default_factory=dict, init=False)
    _writeback: dict[int, WriteBehind | None] = field(default_factory=dict, init=False)
    _space_credit: int = field(default=0, init=False)
    _closed_numbers: set[int] = field(default_factory=set, init=False)
    _written: bytearray = field(default_factory=bytearray, init=False)  # by index: 1 = in a file
    _last_flush: float = field(default_factory=time.monotonic, init=False)

    def check(self) -> None:
        """Refuse before receiving anything: a taken dataset name, no place, a full disk."""
        path = self.files.path(1)
        self._check_place(path)
        self.layout.check(path, self.dataset_name)
        for number in self._later_files_there():  # one that holds the name already
            self.layout.check(self.files.path(number), self.dataset_name)
        with _os_errors():
            left = space_left(path)
        if left < self.layout.closing_reserve(0):
            raise OutputError(
                f"disk full: only {left / 1e6:.1f} MB left for {path}; free space first"
            )

    def write(self, frames: Sequence[ReceivedFrame]) -> int:
        """Write a batch of frames, in order, to the files they belong to.

        Returns:
            How many were written; the others came after their file was closed.
        """
        start, written = 0, 0
        for i in range(1, len(frames) + 1):
            if i == len(frames) or self._number(frames[i]) != self._number(frames[start]):
                written += self._write_run(frames[start:i])
                start = i
        return written

    def flush_if_due(self) -> None:
        """Flush the open files when the flush interval has passed."""
        now = time.monotonic()
        if now - self._last_flush >= self.flush_interval:
            self._last_flush = now
            with _os_errors():
                for f in self._open.values():
                    f.flush()

    def close(self, end_reason: str) -> None:
        """Close the open files, recording the end reason and their missing frame ids.

        Every open file is closed even when closing one of them fails; the first error is
        raised after.
        """
        errors: list[Exception] = []
        for number in sorted(self._open):
            try:
                self._close(number, end_reason, final=number == max(self._open))
            except Exception as exc:  # noqa: BLE001 - re-raised below, once all are closed
                errors.append(exc)
        if errors:
            raise errors[0]

    def _write_run(self, frames: Sequence[ReceivedFrame]) -> int:
        number = self._number(frames[0])
        if number in self._closed_numbers:
            self.n_dropped += len(frames)
            log.error(
                "frame(s) %s arrived after their file %s was closed: not written (counted as "
                "dropped; the file lists them as missing)",
                [f.index + self.sequence.first_frame_id for f in frames], self.files.path(number),
            )  # fmt: skip
            return 0
        self._check_space(number, frames)
        target = self._open.get(number)
        if target is None:
            target = self._roll_to(number, frames[0])
        with _os_errors():
            for part in _by_bytes(frames, _WRITE_BEHIND_STEP):
                target.write(part)
                self._mark_written(part)
                self.n_written += len(part)
                self._write_behind(number, target)
        if number < max(self._open) and self._is_complete(number):
            self._close(number, "completed")  # the overtaken frames are all in
        return len(frames)

    def _check_space(self, number: int, frames: Sequence[ReceivedFrame]) -> None:
        """Refuse a batch that would leave too little room to close the file (disk full)."""
        path = self.files.path(number)
        current = self._open.get(number)
        n_in_file = current.n_written if current is not None else 0
        batch = sum(f.nbytes + (PAGE if f.nbytes >= ALIGN_FROM else 0) for f in frames)
        need = batch + self._closing_reserve(number, len(frames))
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

    def _closing_reserve(self, number: int, n_more: int) -> int:
        """Room to flush and close every open file, ``n_more`` frames into file ``number``."""
        unflushed = {k: f.n_unflushed for k, f in self._open.items()}
        unflushed[number] = unflushed.get(number, 0) + n_more
        reserve = sum(self.layout.closing_reserve(n) for n in unflushed.values())
        return reserve + 8 * self.sequence.n_lost  # the missing_frame_ids written at close

    def _write_behind(self, number: int, f: FrameFile) -> None:
        if number not in self._writeback:
            fd = f.fileno()
            self._writeback[number] = WriteBehind(fd) if fd is not None else None
        behind = self._writeback[number]
        if behind is not None:
            behind.advance()

    def _roll_to(self, number: int, first: ReceivedFrame) -> FrameFile:
        for older in sorted(k for k in self._open if k < number):
            if older < number - 1 or self._is_complete(older):
                self._close(older, "completed")
        path = self.files.path(number)
        self._check_place(path)  # again: a link may have been placed since the start
        if number > 1:
            self.layout.check(path, self.dataset_name)
        first_index = self.files.first_index(number)
        opened = self.layout.open(path, self.dataset_name, first_index, self._share(first_index))
        self._open[number] = opened
        self.written_paths.append(str(path))
        return opened

    def _check_place(self, path: Path) -> None:
        if self.data_root is None:
            return
        with _os_errors():
            real, root = path.resolve(), self.data_root.resolve()
        if not real.is_relative_to(root):
            raise OutputError(
                f"output file {path} leads to {real}, outside the data root {root}; remove "
                "the link, or choose a file below the data root"
            )

    def _is_complete(self, number: int) -> bool:
        f = self._open[number]
        return 0 < self._share(f.first_index) <= f.n_written

    def _close(self, number: int, end_reason: str, final: bool = False) -> None:
        f = self._open.pop(number)
        self._writeback.pop(number, None)
        missing = self._missing_ids(number, f, final)
        self._closed_numbers.add(number)
        with _os_errors():
            f.close(end_reason, missing)

    def _mark_written(self, frames: Sequence[ReceivedFrame]) -> None:
        written, top = self._written, max(f.index for f in frames)
        if top >= len(written):
            written.extend(bytes(max(top + 1 - len(written), len(written))))
        for f in frames:
            written[f.index] = 1

    def _missing_ids(self, number: int, f: FrameFile, final: bool) -> npt.NDArray[np.uint64]:
        """The ids of this file's range that are not in it, and for the acquisition's last
        file (``final``) also those of every file number that never got a frame.

        From what was written, not from what was received: the receiver runs ahead of the
        writer, and a frame can be received and still not reach its file (late, killed).
        """
        per_file = self.files.max_frames_per_file
        last = self.sequence.last_index + 1
        lo, hi = (0, last) if final or not per_file else (f.first_index, f.first_index + per_file)
        flags = np.zeros(max(0, hi - lo), np.uint8)
        known = self._written[lo:hi]
        flags[: len(known)] = np.frombuffer(known, np.uint8)
        missing = np.flatnonzero(flags == 0) + lo
        if final and per_file:  # other files list their own ranges
            numbers = missing // per_file + 1
            opened = set(self._open) | self._closed_numbers  # a closed file was open once
            others = np.fromiter(opened - {number}, np.int64)
            missing = missing[~np.isin(numbers, others)]
        return (missing + self.sequence.first_frame_id).astype(np.uint64)

    def _later_files_there(self) -> list[int]:
        """Numbers (> 1) of the roll-over files that exist already and that this acquisition
        would write: one directory listing, whatever ``n_frames`` is."""
        per_file, n_frames = self.files.max_frames_per_file, self.sequence.n_frames
        if not per_file:
            return []
        last = -(-n_frames // per_file) if n_frames else None
        return [k for k in self.files.existing_numbers() if 1 < k <= (last or k)]

    def _share(self, first_index: int) -> int:
        per_file, n_frames = self.files.max_frames_per_file, self.sequence.n_frames
        if n_frames == 0:
            return per_file
        return min(per_file, n_frames - first_index) if per_file else n_frames

    def _number(self, frame: ReceivedFrame) -> int:
        return self.files.file_number(frame.index)


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

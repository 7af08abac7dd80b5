"""The HDF5 sink: routes frames to the file of their index, rolls over, flushes on a cadence."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pco_writer.buffer import ReceivedFrame
from pco_writer.errors import OutputError
from pco_writer.folders import make_folders
from pco_writer.h5._file import FileEnd, FileLayout, FrameFile, MissingFrames
from pco_writer.h5._open import ALIGN_FROM, PAGE
from pco_writer.h5._paths import OutputFiles
from pco_writer.h5._space import DiskFullError, SpaceKeeper, space_left
from pco_writer.h5._writeback import WINDOW_BYTES, WriteBehind
from pco_writer.ledger import FrameLedger
from pco_writer.runs import RunSet

__all__ = ["H5Sink"]

log = logging.getLogger(__name__)

# Write-behind looks at the file after every this many bytes (ADR 0005): a batch of 64 pco.edge
# frames (700 MB) written in one go left that much dirty before the disk was asked for any.
_WRITE_BEHIND_STEP = WINDOW_BYTES // 4


@dataclass
class _LedgerRows:
    """The rows of one file that hold a frame, read from the frame ledger (local numbers)."""

    ledger: FrameLedger
    first_index: int

    def runs(self, lo: int, hi: int) -> list[tuple[int, int]]:
        first = self.first_index
        return [(a - first, b - first) for a, b in self.ledger.written_runs(first + lo, first + hi)]


@dataclass
class H5Sink:
    """Writes an acquisition's frames into one or more files, recording each in the ledger.

    With roll-over, the file before the newest one stays open while frames of it are still
    missing, so that a frame overtaken by the next file's first frames is still written. A
    file is closed once all its frames are in, when a frame two files further on arrives,
    or at the end; a frame for a closed file is dropped and recorded so. Each file lists the
    ids of its range that are not in it; the last file also lists those of any file number
    that never got a frame (so every id is listed once, by one file).

    Args:
        files: where each file goes.
        dataset_name: the dataset name in every file.
        ledger: the acquisition's frame ledger: where frames go (first id, gaps), and where
            this sink records each frame as written or dropped.
        layout: makes each file (``H5Layout`` of the tomcat, nxtomo or a user layout).
        flush_interval: seconds between flushes; bounds what a crash can lose.
    """

    files: OutputFiles
    dataset_name: str
    ledger: FrameLedger
    layout: FileLayout
    flush_interval: float = 1.0
    data_root: Path | None = None
    """Every file must lie below it once links are followed (None: anywhere)."""
    written_paths: list[str] = field(default_factory=list)
    _open: dict[int, FrameFile] = field(default_factory=dict, init=False)
    _writeback: dict[int, WriteBehind | None] = field(default_factory=dict, init=False)
    _space: dict[int, SpaceKeeper] = field(default_factory=dict, init=False)
    _closed_numbers: set[int] = field(default_factory=set, init=False)
    _last_flush: float = field(default_factory=time.monotonic, init=False)
    _recorded: int = field(default=0, init=False)  # frames recorded as written or dropped

    def check(self) -> None:
        """Refuse before receiving anything: a taken dataset name, no place, a full disk."""
        path = self.files.path(1)
        self._check_place(path)
        self._make_folder(path)
        self.layout.check(path, self.dataset_name)
        for number in self._later_files_there():  # one that holds the name already
            self.layout.check(self.files.path(number), self.dataset_name)
        with _os_errors():
            left = space_left(path)
        if left < self.layout.closing_reserve(0):
            raise OutputError(
                f"disk full: only {left / 1e6:.1f} MB left for {path}; free space first"
            )

    def write(self, frames: Sequence[ReceivedFrame]) -> None:
        """Write a batch of placed frames, in order, to the files they belong to.

        Each frame is recorded in the ledger as written or dropped (late for a closed file);
        when writing fails, the frames not written are recorded as dropped, then it raises.
        """
        before = self._recorded
        try:
            start = 0
            for i in range(1, len(frames) + 1):
                if i == len(frames) or self._number(frames[i]) != self._number(frames[start]):
                    self._write_run(frames[start:i])
                    start = i
        except BaseException as exc:
            reason = "disk_full" if isinstance(exc, DiskFullError) else "write_failed"
            self._dropped(len(frames) - (self._recorded - before), reason)
            raise

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

    def _write_run(self, frames: Sequence[ReceivedFrame]) -> None:
        number = self._number(frames[0])
        if number in self._closed_numbers:
            self._dropped(len(frames), "file_closed")
            log.error(
                "frame(s) %s arrived after their file %s was closed: not written (recorded as "
                "dropped; the file lists them as missing)",
                [f.index + self.ledger.first_frame_id for f in frames], self.files.path(number),
            )  # fmt: skip
            return
        target = self._open.get(number)
        if target is None:  # a new file: only if the disk has the room, then made at once
            self._keep_room(number, None, frames)
            target = self._roll_to(number, frames[0])
            with _os_errors():
                target.create(frames[0])
        self._keep_room(number, target, frames)  # on the file itself, before a chunk
        with _os_errors():
            for part in _by_bytes(frames, _WRITE_BEHIND_STEP):
                target.write(part)
                self.ledger.record_written(f.index for f in part)
                self._recorded += len(part)
                self._write_behind(number, target)
        if number < max(self._open) and self._is_complete(number):
            self._close(number, "completed")  # the overtaken frames are all in

    def _dropped(self, n: int, reason: str) -> None:
        self.ledger.record_dropped(n, reason)
        self._recorded += n

    def _keep_room(
        self, number: int, target: FrameFile | None, frames: Sequence[ReceivedFrame]
    ) -> None:
        """Refuse a batch unless it and the room to close every open file are on the disk."""
        batch = sum(f.nbytes + (PAGE if f.nbytes >= ALIGN_FROM else 0) for f in frames)
        need = batch + self._closing_reserve(number, len(frames))
        path = self.files.path(number)
        keeper = self._space.get(number)
        if keeper is None:
            keeper = self._space[number] = SpaceKeeper(path)
        fd = target.fileno() if target is not None else None
        with _os_errors():
            keeper.keep(fd, batch, need, n_in_file=target.n_written if target else 0)

    def _closing_reserve(self, number: int, n_more: int) -> int:
        """Room to flush and close every open file, ``n_more`` frames into file ``number``."""
        unflushed = {k: f.n_unflushed for k, f in self._open.items()}
        unflushed[number] = unflushed.get(number, 0) + n_more
        reserve = sum(self.layout.closing_reserve(n) for n in unflushed.values())
        ledger = self.ledger
        n_missing = ledger.covered - ledger.n_written
        return reserve + MissingFrames.bytes_at_most(
            n_missing, ledger.n_written_runs + 1, ledger.n_written
        )

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
        rows = _LedgerRows(self.ledger, first_index)
        opened = self.layout.open(
            path, self.dataset_name, first_index, self._share(first_index), rows
        )
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

    def _make_folder(self, path: Path) -> None:
        """``mkdir -p`` the output folder, below the data root (every file of a run is in it)."""
        for folder in make_folders(path.parent.absolute(), self.data_root):
            log.info("created folder %s", folder)

    def _is_complete(self, number: int) -> bool:
        f = self._open[number]
        return 0 < self._share(f.first_index) <= f.n_written

    def _close(self, number: int, end_reason: str, final: bool = False) -> None:
        f = self._open.pop(number)
        self._writeback.pop(number, None)
        keeper = self._space.pop(number, None)
        missing = self._missing(number, f, final)
        self._closed_numbers.add(number)
        try:
            with _os_errors():
                f.close(FileEnd(end_reason, missing))
        finally:
            if keeper is not None:
                keeper.release(f.path)

    def _missing(self, number: int, f: FrameFile, final: bool) -> MissingFrames:
        """The ids of this file's range that are not in it, and for the acquisition's last
        file (``final``) also those of every file number that never got a frame.

        From what was written, not from what was received: the receiver runs ahead of the
        writer, and a frame can be received and still not reach its file (late, killed).
        """
        per_file, covered = self.files.max_frames_per_file, self.ledger.covered
        if final or not per_file:
            lo, hi = 0, covered
        else:
            lo, hi = f.first_index, f.first_index + self._share(f.first_index)
        gaps = self.ledger.missing(lo, hi)
        if final and per_file:  # other files list their own ranges
            others = RunSet()
            for k in (set(self._open) | self._closed_numbers) - {number}:
                start = self.files.first_index(k)
                others.add_run(start, start + per_file)
            gaps = [g for a, b in gaps for g in others.gaps(a, b)]
        first = self.ledger.first_frame_id
        return MissingFrames([(a + first, b - 1 + first) for a, b in gaps], f.n_written)

    def _later_files_there(self) -> list[int]:
        """Numbers (> 1) of the roll-over files that exist already and that this acquisition
        would write: one directory listing, whatever ``n_frames`` is."""
        per_file, n_frames = self.files.max_frames_per_file, self.ledger.n_frames
        if not per_file:
            return []
        last = -(-n_frames // per_file) if n_frames else None
        return [k for k in self.files.existing_numbers() if 1 < k <= (last or k)]

    def _share(self, first_index: int) -> int:
        per_file, n_frames = self.files.max_frames_per_file, self.ledger.n_frames
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

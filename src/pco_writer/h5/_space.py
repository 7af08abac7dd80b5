"""Room left for an output file: stop writing while the file can still be closed cleanly.

HDF5 writes its metadata (chunk index, per-frame values, end reason) when a file is flushed
and closed. If the disk fills up in the middle of that, the superblock can already name an
end of file that never reached the disk, and the whole file stops opening ("truncated file").
So the sink refuses a batch that would leave less than a reserve for closing; the acquisition
then ends with an error and the file keeps every frame written before.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import resource
from dataclasses import dataclass
from pathlib import Path

from pco_writer.errors import OutputError
from pco_writer.h5._libc import libc_function

__all__ = ["DiskFullError", "MetadataSize", "SpaceKeeper", "space_left"]

log = logging.getLogger(__name__)

RESERVE_BASE = 512 * 1024
"""Bytes kept free for closing a file whatever its layout (end reason, attributes, links)."""
INDEX_PER_FRAME = 64
"""The frames dataset's chunk index grows by about this much per frame (v1 B-tree)."""
STRING_REF, STRING_HEAP = 16, 48
"""A text value takes a 16-byte reference in its dataset and its bytes in the global heap."""


@dataclass(frozen=True)
class MetadataSize:
    """What a file's metadata adds to its frames, estimated from its layout on the high side.

    Per-frame values are written at each flush, so what must stay free is their bytes for
    the frames since the last flush, a new chunk for every per-frame dataset, and the rest.
    (Measured: the tomcat layout adds ~280 bytes a frame; this gives it 416.)

    Attributes:
        per_frame: bytes per frame.
        per_flush: bytes of one new chunk of every per-frame dataset.
    """

    per_frame: int = INDEX_PER_FRAME
    per_flush: int = 0

    def closing_reserve(self, n_unflushed: int) -> int:
        """Bytes to keep free so that a file with ``n_unflushed`` frames not yet flushed can
        still be flushed and closed."""
        return RESERVE_BASE + self.per_flush + self.per_frame * n_unflushed


def space_left(path: Path) -> int:
    """Bytes that can still be added to ``path``: free space, and the file-size limit.

    The limit (``RLIMIT_FSIZE``, ``ulimit -f``) counts too: past it a write fails like on a
    full disk.
    """
    st = os.statvfs(path.parent)
    left = st.f_bavail * st.f_frsize
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        size = path.stat().st_size if path.exists() else 0
        left = min(left, soft - size)
    return left


class DiskFullError(OutputError):
    """There is no room for the next batch and for closing the file: stopped writing."""


FALLOC_FL_KEEP_SIZE = 1
SLACK = 8 << 20
"""Preallocated beyond what a batch and the close need: HDF5 places some metadata a little
past the end of the file before it writes it."""


_fallocate = libc_function(
    "fallocate", [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
)


class SpaceKeeper:
    """Keeps the room of one output file on the disk itself, so that it can always be closed.

    Before each batch, the blocks for the batch and for closing the file are allocated past
    the end of the file (``fallocate`` with ``FALLOC_FL_KEEP_SIZE``), and the first time also
    the holes below it (HDF5 places the first chunks at aligned addresses past metadata that
    it writes only at the first flush): what HDF5 then writes,
    the batch and at the end its metadata, lands in blocks that are already the file's. When
    they cannot be had, nothing of the batch is written and the file is closed from the room
    kept for it: a disk that another process fills costs no frame already written
    (docs/decisions/0033-disk-full.md). Where the file system cannot preallocate, the free
    space and the file-size limit are checked instead (another process can then still win).

    Args:
        path: the file (its folder's free space is checked while it does not exist yet).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._credit = 0  # bytes known to be free, as of the last look
        self._preallocates = _fallocate is not None
        self._kept_from = 0  # every block below this offset is the file's

    def keep(self, fd: int | None, batch: int, need: int, n_in_file: int) -> None:
        """Make sure ``need`` bytes (``batch`` of them for the next batch) are the file's.

        Raises:
            DiskFullError: there is not that much room; nothing was written.
        """
        self._check_free(batch, need, n_in_file)
        if fd is None or not self._preallocates:
            return
        assert _fallocate is not None
        end = os.fstat(fd).st_size
        start = min(self._kept_from, end)
        if _fallocate(fd, FALLOC_FL_KEEP_SIZE, start, end - start + need + SLACK) == 0:
            self._kept_from = end  # what lies past it was kept just now
            return
        err = ctypes.get_errno()
        if err in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise self._full(need, n_in_file, os.strerror(err))
        self._preallocates = False  # e.g. EOPNOTSUPP: the free-space check must do

    def release(self, path: Path) -> None:
        """Give back the blocks kept past the end of a closed file."""
        if not self._preallocates:
            return
        try:
            os.truncate(path, path.stat().st_size)  # frees what lies past the end
        except OSError as exc:
            log.warning("could not give back the room kept for %s: %s", path, exc)

    def _check_free(self, batch: int, need: int, n_in_file: int) -> None:
        if batch + need <= self._credit:  # known room: no system call for this batch
            self._credit -= batch
            return
        left = space_left(self.path)
        # Ask again once half of what is known to be spare has been written (or another
        # process filled the disk faster; then the next check still comes well before it).
        self._credit = max(0, (left - need) // 2)
        if left < need:
            raise self._full(need, n_in_file, f"{left / 1e6:.1f} MB left")

    def _full(self, need: int, n_in_file: int, why: str) -> DiskFullError:
        return DiskFullError(
            f"disk full: {why} for {self.path}, the next frames and closing the file need "
            f"{need / 1e6:.1f} MB; stopped writing (the file keeps the {n_in_file} frame(s) "
            "written); free space, then start a new acquisition"
        )

"""Write-behind: keep the page cache out of the way of a stream that is written once.

Left alone, the kernel keeps every written page cached, so a long acquisition keeps taking
fresh memory for the page cache. On a virtual machine a fresh page costs a host fault, and
that made plain buffered writes 3-5x slower than the disk (docs/decisions/0004-write-behind.md).
Instead, every window of new bytes is handed to the disk at once (``sync_file_range``); when
the next window is full, the previous one is waited for and dropped from the cache, so the
same few hundred MiB of cache pages are reused for the whole acquisition. As a bonus, at most
two windows of data are ever dirty, which bounds what a power cut can take.
"""

from __future__ import annotations

import ctypes
import logging
import os

from pco_writer.h5._libc import libc_function

__all__ = ["WriteBehind", "WINDOW_BYTES"]

log = logging.getLogger(__name__)

WINDOW_BYTES = 64 << 20
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4


_sync_file_range = libc_function(
    "sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
)


class WriteBehind:
    """Streams the written part of one open file to disk, window by window.

    Args:
        fd: the file's descriptor (owned by HDF5; never closed here).
        window: bytes per window.
    """

    def __init__(self, fd: int, window: int = WINDOW_BYTES) -> None:
        self._fd = fd
        self._window = window
        self._marks = [0]  # ends of the windows handed to the disk
        self._enabled = _sync_file_range is not None and hasattr(os, "posix_fadvise")

    def advance(self) -> None:
        """Call after writing: starts a new window when the file has grown by one."""
        if not self._enabled:
            return
        end = os.fstat(self._fd).st_size
        if end - self._marks[-1] < self._window:
            return
        try:
            self._hand_over(end)
        except OSError as exc:  # never fail a write for a cache hint; say so once
            log.warning("write-behind disabled: %s", exc)
            self._enabled = False

    def _hand_over(self, end: int) -> None:
        assert _sync_file_range is not None
        start = self._marks[-1]
        _check(_sync_file_range(self._fd, start, end - start, _WRITE))
        if len(self._marks) >= 2:
            older = self._marks[-2]
            _check(
                _sync_file_range(
                    self._fd, older, start - older, _WAIT_BEFORE | _WRITE | _WAIT_AFTER
                )
            )
            os.posix_fadvise(self._fd, older, start - older, os.POSIX_FADV_DONTNEED)
        self._marks = [self._marks[-1], end]


def _check(rc: int) -> None:
    if rc != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))

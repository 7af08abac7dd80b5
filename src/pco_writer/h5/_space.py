"""Room left for an output file: stop writing while the file can still be closed cleanly.

HDF5 writes its metadata (chunk index, per-frame values, end reason) when a file is flushed
and closed. If the disk fills up in the middle of that, the superblock can already name an
end of file that never reached the disk, and the whole file stops opening ("truncated file").
So the sink refuses a batch that would leave less than a reserve for closing; the acquisition
then ends with an error and the file keeps every frame written before.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

__all__ = ["space_left", "closing_reserve"]

RESERVE_BASE = 512 * 1024
"""Bytes kept free for closing a file, plus :data:`RESERVE_PER_FRAME` per frame in it."""
RESERVE_PER_FRAME = 128


def closing_reserve(n_frames: int) -> int:
    """Bytes to keep free so that a file of ``n_frames`` frames can still be closed."""
    return RESERVE_BASE + RESERVE_PER_FRAME * n_frames


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

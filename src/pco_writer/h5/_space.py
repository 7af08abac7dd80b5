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
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MetadataSize", "space_left"]

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

"""Opening an output file for a stream of direct chunk writes (ADR 0005).

Large chunks (256 KiB and up) start on a page boundary: a chunk that shares its first and
last page with its neighbours makes the kernel read those pages back from disk once
write-behind has dropped them, which cost a third of the write rate of pco.edge frames.
Small chunks stay packed. HDF5's paged aggregation, which would gather small chunks into
whole pages, was tried and left out (ADR 0006).
"""

from __future__ import annotations

from pathlib import Path

import h5py

from pco_writer.h5 import _swmr

__all__ = ["open_for_frames"]

LIBVER = ("earliest", "v110")  # as the TOMCAT files (docs/decisions/0002-crash-safety.md)
ALIGN_FROM, PAGE = 256 << 10, 4096


def open_for_frames(path: Path, swmr: bool = False) -> h5py.File:
    """Open ``path`` for appending frames, or create it; in the SWMR format with ``swmr``.

    A SWMR file is opened without HDF5's file lock: a reader that follows it (and stays
    between acquisitions) holds a shared lock that would refuse the next acquisition; its
    superblock's "open for writing" flags keep a second writer out instead (ADR 0060).

    Raises:
        OSError: the file cannot be opened or created (not HDF5, no permission...).
    """
    return h5py.File(
        path, "a", libver=_swmr.LIBVER if swmr else LIBVER,
        **({"locking": False} if swmr else {}),  # else HDF5's default (HDF5_USE_FILE_LOCKING)
        rdcc_nbytes=0,  # direct chunk writes only: no chunk cache
        alignment_threshold=ALIGN_FROM, alignment_interval=PAGE,
    )  # fmt: skip

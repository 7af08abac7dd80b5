"""Files a reader can follow while they are written: HDF5's single writer, multiple readers.

One output file with SWMR on (docs/decisions/0060-read-while-it-writes.md):

```
open    libver v110 (superblock 3; HDF5 1.10 and newer read it); the layout creates every
        group, dataset and attribute, with the values known at the start
start   flush, then SWMR on: from now on a reader opens the file with swmr=True
write   extend the frames dataset, direct chunk writes; nothing is created or deleted
flush   the frames dataset first, then the per-frame values (a reader that sees a frame's
        values finds its frame), the live values in place; flush the file
end     the per-frame values of the last frames; the SWMR session ends (close), the file is
        opened again, without SWMR, for what is known only at the end (end reason, missing
        frame ids, parameters, link targets); closed
```

Variable-length text cannot be read by a reader that opened the file before the text was
written (its heap lies past the end the reader knows: "address of object past end of
allocation"), so per-frame text datasets are fixed-length in a SWMR file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pco_writer.h5._superblock import read_superblock

__all__ = [
    "LIBVER",
    "end_session",
    "follows",
    "frames_maxshape",
    "left_open",
    "put_attribute",
    "start_session",
    "text_length",
    "write_in_place",
]

log = logging.getLogger(__name__)

LIBVER = ("v110", "v110")
"""SWMR needs superblock 3 (HDF5 1.10); "latest" would be 2.0's format, which 1.14 cannot read."""
TEXT_BYTES = 64
"""The least length of a per-frame text dataset in a SWMR file (UTF-8 bytes)."""


def follows(path: Path) -> bool:
    """True when ``path`` can be written with SWMR: a new file, or one in the 1.10 format.

    A file written in the HDF5 1.8 format (``--no-swmr``, or by the C++ writer) cannot hold
    a SWMR session; it is appended to in its own format, without SWMR.

    Raises:
        OSError: the file exists and cannot be read.
    """
    if not path.exists():
        return True
    block = read_superblock(path)
    if block is None or block.version >= 3:
        return True  # not HDF5: opening it fails with HDF5's own message
    log.warning(
        "%s is in the HDF5 1.8 format (superblock %d): appending without SWMR, so readers "
        "see this acquisition once it ends",
        path, block.version,
    )  # fmt: skip
    return False


def left_open(path: Path) -> str:
    """Why ``path`` does not open when its superblock says a writer has it; else ""."""
    try:
        block = read_superblock(path)
    except OSError:
        return ""
    if block is None or not block.open_for_writing:
        return ""
    return (
        f"output file {path} is open in a writer, or its writer died: if none runs, "
        f"`pco-writer repair {path}` makes it readable; else choose another file name"
    )


def start_session(f: h5py.File) -> None:
    """Make what was created readable, then let readers in (``swmr=True``)."""
    f.flush()
    f.swmr_mode = True


def end_session(f: h5py.File, **kwargs: Any) -> h5py.File:
    """End the SWMR session of ``f`` and return the file opened again without SWMR.

    HDF5 cannot turn SWMR off, and creating or deleting objects in a SWMR session is not
    supported; the values known only at the end need both. File locking is off for the
    reopening: a reader that follows the file holds a shared lock, which would refuse the
    writer, while the superblock's "open for writing" flag keeps other writers out anyway.

    Raises:
        OSError: the file cannot be opened again.
    """
    path = f.filename
    f.close()
    return h5py.File(path, "r+", libver=LIBVER, locking=False, **kwargs)


def put_attribute(obj: Any, name: str, value: Any) -> None:
    """Set an attribute; in a SWMR session an existing one is written in place."""
    if name in obj.attrs and obj.file.swmr_mode:
        obj.attrs.modify(name, value)
    else:
        obj.attrs[name] = value


def write_in_place(ds: Any, value: Any) -> bool:
    """Write ``value`` into the existing dataset ``ds`` in a SWMR session.

    Returns:
        False when that is not for here: no dataset, no SWMR session, or a value of another
        shape (then the caller replaces the dataset, as outside a session).
    """
    if not isinstance(ds, h5py.Dataset) or not ds.file.swmr_mode:
        return False
    if np.shape(value) != ds.shape:
        return False
    ds[()] = value
    return True


def frames_maxshape(header: Any, swmr: bool) -> tuple[int | None, ...]:
    """The frames dataset's maximum shape: in a SWMR file every dimension is unlimited.

    With one unlimited dimension HDF5 1.10 indexes the chunks in an extensible array, which
    allocates its blocks for every row up to the highest written: a run whose ids jump
    100,000 at a time (issue 12) made 26 MB of index for 200 frames. With more than one it
    takes a version-2 B-tree, which holds only the chunks written (6.4 MB for the 200
    frames' 6.4 MB of pixels), as fast (ADR 0060).
    """
    return (None,) * (1 + len(header.shape)) if swmr else (None, *header.shape)


def text_length(sample: Any) -> int:
    """The fixed length of a per-frame text dataset whose first value is ``sample``.

    Twice the first value's length, at least :data:`TEXT_BYTES`: room for values that vary;
    a later value longer than that is left out like a value that does not fit a dtype.
    """
    n = len(sample.encode("utf-8", "surrogatepass")) if isinstance(sample, str) else 0
    return max(TEXT_BYTES, -(-2 * n // 16) * 16)

"""Per-frame header values, collected in memory and written to HDF5 in batches.

Writing a few values per frame straight into HDF5 costs more than the frame itself for small
frames (the field's writers lose frames that way), so the values are gathered in numpy arrays
by the writer thread and written out only at each flush.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from pco_writer.protocol import FrameHeader

__all__ = ["FrameMetadata", "NO_FRAME", "STRING_FIELDS"]

NO_FRAME = np.iinfo(np.uint64).max  # the `frame` value of an index whose frame never came
STRING_FIELDS = ("htype", "tag", "source", "type", "endianness")
_STR = h5py.string_dtype("utf-8")


@dataclass
class FrameMetadata:
    """The header values of every frame of one file, by local index."""

    ndim: int
    frame: npt.NDArray[np.uint64] = field(init=False)
    shape: npt.NDArray[np.uint64] = field(init=False)
    strings: dict[str, npt.NDArray[np.object_]] = field(init=False)
    extent: int = 0
    _dirty_from: int = 0

    def __post_init__(self) -> None:
        self.frame = np.full(0, NO_FRAME, np.uint64)
        self.shape = np.zeros((0, self.ndim), np.uint64)
        self.strings = {name: np.full(0, "", object) for name in STRING_FIELDS}

    def record(self, local_index: int, header: FrameHeader) -> None:
        """Keep the header values of the frame at ``local_index``."""
        if local_index >= len(self.frame):
            self._grow(local_index + 1)
        self.frame[local_index] = header.frame
        self.shape[local_index] = header.shape
        for name in STRING_FIELDS:
            self.strings[name][local_index] = getattr(header, name)
        self._dirty_from = min(self._dirty_from, local_index)
        self.extent = max(self.extent, local_index + 1)

    def create(self, group: h5py.Group) -> None:
        """Create the empty, extendable per-frame datasets in ``group``."""
        chunk = 4096
        group.create_dataset(
            "frame", (0,), np.uint64, maxshape=(None,), chunks=(chunk,), fillvalue=NO_FRAME
        )
        group.create_dataset(
            "shape", (0, self.ndim), np.uint64, maxshape=(None, self.ndim),
            chunks=(chunk, self.ndim),
        )  # fmt: skip
        for name in STRING_FIELDS:
            group.create_dataset(name, (0,), _STR, maxshape=(None,), chunks=(chunk,))

    def write(self, group: h5py.Group) -> None:
        """Write what changed since the last call into ``group``'s datasets."""
        lo, hi = self._dirty_from, self.extent
        if lo >= hi:
            return
        self._write_slice(group["frame"], self.frame, lo, hi)
        self._write_slice(group["shape"], self.shape, lo, hi)
        for name in STRING_FIELDS:
            self._write_slice(group[name], self.strings[name], lo, hi)
        self._dirty_from = hi

    @staticmethod
    def _write_slice(ds: Any, values: npt.NDArray[Any], lo: int, hi: int) -> None:
        if ds.shape[0] < hi:
            ds.resize(hi, axis=0)
        ds[lo:hi] = values[lo:hi]

    def _grow(self, n: int) -> None:
        size = max(n, 2 * len(self.frame), 1024)
        old = len(self.frame)
        self.frame = np.concatenate([self.frame, np.full(size - old, NO_FRAME, np.uint64)])
        self.shape = np.concatenate([self.shape, np.zeros((size - old, self.ndim), np.uint64)])
        for name in STRING_FIELDS:
            self.strings[name] = np.concatenate(
                [self.strings[name], np.full(size - old, "", object)]
            )

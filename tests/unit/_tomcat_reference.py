"""The TOMCAT writer as first written, before layouts: the reference for the tomcat layout file.

The package writes every layout, tomcat included, with one engine (``h5/_layout_file.py``).
This hand-written TOMCAT writer stays here, in the tests, so that
``test_tomcat_layout_file_writes_what_tomcat_file_writes`` can prove the layout file
reproduces it exactly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from pco_writer.buffer import ReceivedFrame
from pco_writer.errors import DatasetExistsError, OutputError
from pco_writer.h5._file import FileEnd
from pco_writer.h5._space import MetadataSize
from pco_writer.protocol import FrameHeader

EXCHANGE = "exchange"
ACQUISITION = "measurement/acquisition"
_LIBVER = ("earliest", "v110")

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


def check_output_file(path: Path, dataset_name: str) -> None:
    """Refuse before anything is written: a taken dataset name, or a place we cannot write.

    Raises:
        DatasetExistsError: the file already has ``dataset_name``.
        OutputError: the file or its folder cannot be written.
    """
    if path.is_dir():
        raise OutputError(f"output file {path} is a folder; name a file, e.g. {path}/scan.h5")
    if path.exists():
        _check_existing(path, dataset_name)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder of output file {path}: {exc}") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write output file {path}: folder {path.parent} is not writable")


def _check_existing(path: Path, dataset_name: str) -> None:
    if not os.access(path, os.R_OK | os.W_OK):
        raise OutputError(f"cannot append to output file {path}: no permission to read and write")
    try:
        with h5py.File(path, "r") as f:
            taken = f"{EXCHANGE}/{dataset_name}" in f or f"{ACQUISITION}/{dataset_name}" in f
    except OSError as exc:
        raise OutputError(
            f"output file {path} exists but is not a readable HDF5 file ({exc}); "
            "choose another file name"
        ) from None
    if taken:
        raise DatasetExistsError(dataset_name, str(path))


@dataclass
class TomcatFile:
    """Writes the frames of one file; created on the first :meth:`write`.

    Args:
        path: the file; appended to when it exists.
        dataset_name: the name under ``/exchange`` and ``/measurement/acquisition``.
        first_index: the acquisition index of this file's first frame.
        n_requested: frames this file is meant to hold (0: unknown, until stopped).
    """

    path: Path
    dataset_name: str
    first_index: int
    n_requested: int = 0
    n_written: int = 0
    _file: h5py.File | None = field(default=None, init=False, repr=False)
    _data: Any = field(default=None, init=False, repr=False)
    _group: Any = field(default=None, init=False, repr=False)
    _meta: FrameMetadata | None = field(default=None, init=False, repr=False)
    _offset_tail: tuple[int, ...] = field(default=(), init=False, repr=False)

    @property
    def is_open(self) -> bool:
        """True once the file was created and until it is closed."""
        return self._file is not None

    @property
    def n_unflushed(self) -> int:
        return self.n_written  # on the safe side: the reference does not track flushes

    def create(self, first: ReceivedFrame) -> None:
        """Create the file for frames like ``first``, if not yet."""
        if self._file is None:
            self._open(first.header)

    def write(self, frames: Sequence[ReceivedFrame]) -> None:
        """Write the chunks of ``frames`` (all of this file) and keep their header values."""
        self.create(frames[0])
        assert self._meta is not None
        extent = max(f.index for f in frames) - self.first_index + 1
        if extent > self._data.shape[0]:
            self._data.resize(extent, axis=0)
        write_chunk = self._data.id.write_direct_chunk
        tail = self._offset_tail
        for f in frames:
            local = f.index - self.first_index
            write_chunk((local, *tail), f.data)
            self._meta.record(local, f.header)
        self.n_written += len(frames)

    def fileno(self) -> int | None:
        """The open file's descriptor (for write-behind), None before it is created."""
        return int(self._file.id.get_vfd_handle()) if self._file is not None else None

    def flush(self) -> None:
        """Make everything written so far readable after a crash."""
        if self._file is None or self._meta is None:
            return
        self._meta.write(self._group)
        self._data.attrs["image_nr_high"] = self.first_index + self._data.shape[0]
        self._file.flush()

    def close(self, end: FileEnd) -> None:
        """Record how the acquisition ended for this file and close it."""
        if self._file is None:
            return
        try:
            self.flush()
            attrs = self._group.attrs
            attrs["end_reason"] = end.end_reason
            attrs["n_frames_requested"] = np.int64(self.n_requested)
            attrs["n_frames_written"] = np.int64(self.n_written)
            attrs["n_frames_missing"] = np.int64(end.missing.count)
            self._group.create_dataset("missing_frame_ids", data=end.missing.ids())
            self._group.create_dataset("missing_frame_ranges", data=end.missing.ranges())
        finally:
            self._file.close()
            self._file = None

    def _open(self, first: FrameHeader) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = h5py.File(self.path, "a", libver=_LIBVER, rdcc_nbytes=0)
        except OSError as exc:
            raise OutputError(f"cannot open output file {self.path}: {exc}") from None
        self._offset_tail = (0,) * len(first.shape)
        self._data = self._file.create_dataset(
            f"{EXCHANGE}/{self.dataset_name}",
            shape=(0, *first.shape),
            maxshape=(None, *first.shape),
            chunks=(1, *first.shape),
            dtype=first.dtype,
        )
        self._data.attrs["image_nr_low"] = np.int64(self.first_index + 1)
        self._data.attrs["image_nr_high"] = np.int64(self.first_index)
        self._group = self._file.create_group(f"{ACQUISITION}/{self.dataset_name}")
        self._meta = FrameMetadata(len(first.shape))
        self._meta.create(self._group)
        self._file.flush()


class TomcatLayout:
    """A ``FileLayout`` that writes with :class:`TomcatFile`."""

    name = "tomcat"

    def check(self, path: Path, dataset_name: str) -> None:
        check_output_file(path, dataset_name)

    def open(
        self, path: Path, dataset_name: str, first_index: int, n_requested: int, rows: Any
    ) -> Any:
        return TomcatFile(path, dataset_name, first_index, n_requested)

    def closing_reserve(self, n_unflushed: int) -> int:
        return MetadataSize(per_frame=512).closing_reserve(n_unflushed)

"""Part files: what one of several writers of an acquisition writes (ADR 0042).

A part holds the frames one writer got, in the order it wrote them::

    /frames     (rows, y, x)  one chunk per frame, direct chunk writes, compressed as asked
    /frame_id   (rows,)       uint64: the frame id of each row
    /header     (rows,)       the row's Array-1.0 header as JSON without its frame id; empty
                              where it is the row before's (a camera sends the same header)

It is a SWMR file (ADR 0060): the acquisition process reads the rows each part has flushed to
build the master file while the writers go on. Rows are flushed frames first, then their ids
and headers, so a row whose id can be read has its frame.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pco_writer.buffer import ReceivedFrame
from pco_writer.errors import OutputError
from pco_writer.h5 import _swmr
from pco_writer.h5._chunk_write import ChunkWriter
from pco_writer.h5._compress import frames_filter
from pco_writer.h5._file import FileEnd, Rows
from pco_writer.h5._open import open_for_frames
from pco_writer.h5._space import MetadataSize
from pco_writer.h5._virtual import PART_FRAMES
from pco_writer.protocol import FrameHeader

__all__ = ["PART_FRAMES", "PartFile", "PartLayout", "header_text", "part_path", "read_row"]

log = logging.getLogger(__name__)

PART_IDS, PART_HEADERS = "frame_id", "header"
_ROWS_PER_CHUNK = 4096
_TEXT = h5py.string_dtype("utf-8")


def part_path(master_template: str, dataset_name: str, index: int) -> Path:
    """Where writer ``index`` of an acquisition puts its part: beside the master, named after
    it (``scan.h5``, ``scan_%03d.h5`` -> ``scan.data.part0.h5``)."""
    path = Path(master_template.replace("%%", "%"))
    stem = path.stem.split("%")[0].rstrip("_-.") or path.stem.replace("%", "")
    return path.with_name(f"{stem}.{dataset_name}.part{index}.h5")


def header_text(header: FrameHeader) -> str:
    """A header as JSON without its frame id (how a part stores it)."""
    fields: dict[str, Any] = {
        "htype": header.htype, "shape": list(header.shape), "type": header.type,
        "endianness": header.endianness, "source": header.source, "tag": header.tag,
        "encoding": header.encoding, **header.extra,
    }  # fmt: skip
    return json.dumps(fields, separators=(",", ":"))


class PartLayout:
    """The ``FileLayout`` of part files.

    Args:
        compression: the filter of the frames dataset (the chunks come compressed).
        attributes: written on the root of each part (whose acquisition, which writer).
    """

    name = "part"

    def __init__(self, compression: str = "none", attributes: dict[str, Any] | None = None):
        self.compression = compression
        self.attributes = attributes or {}

    def check(self, path: Path, dataset_name: str) -> None:
        """A part is always a new file: one left by an earlier run is refused. Its folder,
        the master's, is made by the sink (``H5Sink.check``, below the data root)."""
        if path.exists():
            raise OutputError(
                f"part file {path} exists already (from an earlier acquisition of this dataset "
                "name?); remove it or choose another dataset name"
            )
        if not path.parent.is_dir():
            raise OutputError(f"cannot write part file {path}: folder {path.parent} does not exist")

    def open(
        self, path: Path, dataset_name: str, first_index: int, n_requested: int, rows: Rows
    ) -> PartFile:
        """A part file object; the file is created on the first write."""
        return PartFile(path, self)

    def closing_reserve(self, n_unflushed: int) -> int:
        """Room to flush ``n_unflushed`` rows' ids and headers and close."""
        return MetadataSize(per_frame=64 + 8 + 96).closing_reserve(n_unflushed)


class PartFile:
    """One part file, written by the writer thread (``FrameFile``)."""

    def __init__(self, path: Path, owner: PartLayout) -> None:
        self.path = path
        self.first_index = 0
        self.n_written = 0
        self._owner = owner
        self._file: h5py.File | None = None
        self._data: Any = None
        self._chunks: Any = None
        self._pending: list[FrameHeader] = []
        self._stored = 0  # rows whose ids and headers are in the file
        self._last: FrameHeader | None = None

    @property
    def is_open(self) -> bool:
        """True once the file was created and until it is closed."""
        return self._file is not None

    @property
    def n_unflushed(self) -> int:
        """Rows whose ids and headers are not yet stored."""
        return len(self._pending)

    def create(self, first: ReceivedFrame) -> None:
        """Create the file for frames like ``first``, if not yet (:meth:`write` does too)."""
        if self._file is None:
            self._create(first.header)

    def write(self, frames: Sequence[ReceivedFrame]) -> None:
        """Write ``frames`` at the next rows (their ``index`` is their row)."""
        self.create(frames[0])
        rows = self.n_written + len(frames)
        self._data.resize(rows, axis=0)
        for f in frames:
            self._chunks.write((f.index, *(0,) * len(f.header.shape)), f.data, f.nbytes)
            self._pending.append(f.header)
        self.n_written = rows

    def fileno(self) -> int | None:
        """The open file's descriptor (for write-behind), None before it is created."""
        return int(self._file.id.get_vfd_handle()) if self._file is not None else None

    def flush(self) -> None:
        """The frames, then their ids and headers: a row whose id is readable has its frame."""
        if self._file is None:
            return
        self._data.flush()
        self._store_pending()
        self._file.flush()

    def close(self, end: FileEnd) -> None:
        """Store the last rows, record how the run ended, close."""
        if self._file is None:
            return
        try:
            self._data.flush()
            self._store_pending()
            self._file = _swmr.end_session(self._file)
            self._file.attrs["end_reason"] = end.end_reason
            self._file.attrs["n_frames_written"] = np.int64(self.n_written)
            self._file.flush()
        finally:
            self._file.close()
            self._file = None

    def _create(self, header: FrameHeader) -> None:
        try:
            self._file = open_for_frames(self.path, swmr=True)
        except OSError as exc:
            raise OutputError(f"cannot create part file {self.path}: {exc}") from None
        f = self._file
        self._data = f.create_dataset(
            PART_FRAMES, shape=(0, *header.shape), maxshape=_swmr.frames_maxshape(header, True),
            chunks=(1, *header.shape), dtype=header.dtype,
            **frames_filter(self._owner.compression),
        )  # fmt: skip
        self._chunks = ChunkWriter(self._data)
        for name, dtype in ((PART_IDS, np.uint64), (PART_HEADERS, _TEXT)):
            f.create_dataset(name, (0,), dtype, maxshape=(None,), chunks=(_ROWS_PER_CHUNK,),
                             compression="gzip", compression_opts=1)  # fmt: skip
        for key, value in self._owner.attributes.items():
            f.attrs[key] = value
        _swmr.start_session(f)

    def _store_pending(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        assert self._file is not None
        lo, hi = self._stored, self._stored + len(pending)
        ids = np.fromiter((h.frame for h in pending), np.uint64, len(pending))
        texts = np.empty(len(pending), object)
        for i, h in enumerate(pending):
            texts[i] = "" if _same_but_id(h, self._last) else header_text(h)
            self._last = h
        for name, values in ((PART_IDS, ids), (PART_HEADERS, texts)):
            ds = self._file[name]
            ds.resize(hi, axis=0)
            ds[lo:hi] = values
        self._stored = hi


def _same_but_id(header: FrameHeader, last: FrameHeader | None) -> bool:
    """True when ``header`` says what ``last`` said but for the frame id."""
    if last is None:
        return False
    return (
        header.shape == last.shape and header.type == last.type
        and header.endianness == last.endianness and header.htype == last.htype
        and header.source == last.source and header.tag == last.tag
        and header.encoding == last.encoding and header.extra == last.extra
    )  # fmt: skip


def read_row(path: Path, row: int) -> Any:
    """The pixels of one row of a closed part file (for a preview after the run)."""
    with h5py.File(path, "r") as f:
        return f[PART_FRAMES][row]

"""The generic engine: writes the files of an acquisition in the shape a layout describes.

```
open (first frame)   refuse a taken dataset name or a frame shape that cannot be appended,
                     then create groups, the frames dataset, per-frame datasets, constants,
                     links (their originals get @target); flush
write (each batch)   one resize, then a direct chunk write per frame; header values to memory
flush (each second)  per-frame values written in one slice each; live writer values; flush
close                parameters, end time and end reason, missing frame ids; flush; close
```

With SWMR (the default) a reader can follow the file from the end of the open on; what
changes for that is in :mod:`._swmr`.

Only the writer thread touches an open file; the file is created on its first frame.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from pco_writer.buffer import ReceivedFrame
from pco_writer.errors import ConfigError, DatasetExistsError, OutputError
from pco_writer.h5 import _swmr
from pco_writer.h5._chunk_write import ChunkWriter
from pco_writer.h5._compress import check_frames_filter, frames_filter
from pco_writer.h5._file import FileEnd, Rows
from pco_writer.h5._layout_values import (
    LIVE,
    MISSING,
    Column,
    Env,
    FileFacts,
    evaluate,
    hdf5_value,
    header_value,
    runs_of,
)
from pco_writer.h5._open import open_for_frames
from pco_writer.h5._space import INDEX_PER_FRAME, STRING_HEAP, STRING_REF, MetadataSize
from pco_writer.h5._virtual import MasterFrames, VirtualFrames
from pco_writer.layouts import Attribute, Dataset, Group, Layout, Link, ParameterSet, Source
from pco_writer.names import SWMR_BY_DEFAULT
from pco_writer.runs import RunSet
from pco_writer.statistics import iso_now

__all__ = ["H5Layout", "LayoutFile"]

log = logging.getLogger(__name__)

_PARAM_DTYPE = {"NX_INT": "int64", "NX_FLOAT": "float64", "NX_BOOLEAN": "bool",
                "NX_CHAR": "string", "NX_DATE_TIME": "string"}  # fmt: skip


class H5Layout:
    """Makes the HDF5 files of one acquisition as ``layout`` describes them.

    Args:
        layout: the layout (built in, or read from a file).
        parameters: the REST parameter values, read when a file is closed.
        compression: the filter of the frames dataset, whose chunks come compressed.
        swmr: write files a reader can follow (SWMR, HDF5 1.10 format), or the 1.8 format.
        virtual: for the master files of several writers: where their frames are (the
            frames dataset is then a virtual dataset over the writers' part files).
    """

    def __init__(
        self,
        layout: Layout,
        parameters: ParameterSet | None = None,
        compression: str = "none",
        swmr: bool = SWMR_BY_DEFAULT,
        virtual: VirtualFrames | None = None,
    ) -> None:
        self.layout = layout
        self.name = layout.name
        self.parameters = parameters or ParameterSet(layout.parameters)
        self.compression = compression
        self.swmr = swmr
        self.virtual = virtual
        self._metadata_size: MetadataSize | None = None

    def check(self, path: Path, dataset_name: str) -> None:
        """Refuse before anything is written: an unmapped or taken dataset name, a bad place.

        Raises:
            ConfigError: the layout has no value for this dataset name (e.g. an image key).
            DatasetExistsError: the file already holds this dataset name.
            OutputError: the file or its folder cannot be written.
        """
        self._check_maps(path, dataset_name)
        check_output_file(path, dataset_name, self.taken_paths(dataset_name))

    def open(
        self, path: Path, dataset_name: str, first_index: int, n_requested: int, rows: Rows
    ) -> LayoutFile:
        """A file object for ``path``; the HDF5 file itself is created on the first write."""
        facts = FileFacts(dataset_name, str(path), first_index, n_requested)
        return LayoutFile(path, self, facts, rows)

    def closing_reserve(self, n_unflushed: int) -> int:
        """See :meth:`FileLayout.closing_reserve`: estimated from the per-frame datasets."""
        if self._metadata_size is None:
            self._metadata_size = metadata_size(self.layout)
        return self._metadata_size.closing_reserve(n_unflushed)

    def taken_paths(self, dataset_name: str) -> list[str]:
        """Paths that exist in a file only when ``dataset_name`` was written to it."""
        paths = [p for p, _ in self.layout.walk() if "{dataset_name}" in p]
        tops = [p for p in paths if not any(p.startswith(q + "/") for q in paths)]
        return [p.replace("{dataset_name}", dataset_name) for p in tops]

    def _check_maps(self, path: Path, dataset_name: str) -> None:
        env = Env(FileFacts(dataset_name, str(path), 0, 0), self.parameters.effective())
        for where, src in _sources(self.layout):
            if (
                src.map is not None
                and src.kind == "writer"
                and src.writer in ("dataset_name", "file_name")
            ):
                try:
                    evaluate(src, env)
                except ConfigError as exc:
                    raise ConfigError(
                        f"{src.writer} {getattr(env.facts, src.writer)!r} does not fit layout "
                        f"{self.name!r} at {where}: {exc}"
                    ) from None


def metadata_size(layout: Layout) -> MetadataSize:
    """What the per-frame datasets of ``layout`` add to a file, per frame and per flush."""
    per_frame, per_flush = INDEX_PER_FRAME, 0
    for _, node in layout.walk():
        if isinstance(node, Dataset) and node.frames is None and node.is_per_frame:
            n = math.prod(3 if d == "ndim" else d for d in node.shape)
            if node.dtype in ("string", None):  # None: a parameter's type, maybe text
                per_frame += n * (STRING_REF + STRING_HEAP)
                per_flush += n * STRING_REF * node.chunk
            else:
                size = n * np.dtype(node.dtype or "float64").itemsize
                per_frame += size
                per_flush += size * node.chunk
    return MetadataSize(per_frame, per_flush)


def check_output_file(path: Path, dataset_name: str, taken: list[str]) -> None:
    """Refuse a folder, an unwritable place, or a file that already has one of ``taken``."""
    try:
        _check_output_file(path, dataset_name, taken)
    except OSError as exc:  # e.g. a name too long, a folder we may not look into
        raise OutputError(
            f"cannot use output file {path}: {exc.strerror or exc}; choose another name or folder"
        ) from None


def _check_output_file(path: Path, dataset_name: str, taken: list[str]) -> None:
    if path.is_dir():
        raise OutputError(f"output file {path} is a folder; name a file, e.g. {path}/scan.h5")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise OutputError(
                f"cannot append to output file {path}: no permission to read and write"
            )
        try:
            with h5py.File(path, "r") as f:
                found = [p for p in taken if p in f]
        except OSError as exc:
            raise OutputError(
                _swmr.left_open(path)
                or f"output file {path} exists but is not a readable HDF5 file ({exc}); "
                "choose another file name"
            ) from None
        if found:
            raise DatasetExistsError(dataset_name, str(path))
        return
    if not path.parent.is_dir():  # H5Sink makes it, below the data root
        raise OutputError(f"cannot write output file {path}: folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write output file {path}: folder {path.parent} is not writable")


class LayoutFile:
    """One output file of an acquisition, written as its layout says.

    Attributes:
        path: the file (appended to when it exists).
        first_index: the acquisition index of this file's first frame.
        n_written: frames written to it so far.
    """

    def __init__(self, path: Path, owner: H5Layout, facts: FileFacts, rows: Rows) -> None:
        self.path = path
        self.first_index = facts.first_index
        self.n_written = 0
        self._owner = owner
        self._layout = owner.layout
        self._facts = facts
        self._rows = rows
        self._file: h5py.File | None = None
        self._data: Any = None
        self._chunks: Any = None  # the ChunkWriter of _data
        self._n_rows = 0  # rows of the frames dataset
        self._tail: tuple[int, ...] = ()
        self._columns: list[Column] = []
        self._pending: list[tuple[int, Any]] = []
        self._header: Any = None
        self._kept: set[str] = set()
        self._existing: set[str] = set()
        self._live = False  # in a SWMR session: readers may follow
        # a master file of several writers: frames mapped, not written (ADR 0042)
        self._master = MasterFrames(path, owner.virtual) if owner.virtual else None

    @property
    def is_open(self) -> bool:
        """True once the file was created and until it is closed."""
        return self._file is not None

    @property
    def n_unflushed(self) -> int:
        """Frames written since the last flush (their per-frame values are not yet stored)."""
        return len(self._pending)

    def create(self, first: ReceivedFrame) -> None:
        """Create the file for frames like ``first``, if not yet (:meth:`write` does too)."""
        if self._file is None:
            self._open(first)

    def write(self, frames: Sequence[ReceivedFrame]) -> None:
        """Write the chunks of ``frames`` (all of this file) and keep their per-frame values."""
        self.create(frames[0])
        facts, offset = self._facts, self._facts.offset
        extent = max(f.index for f in frames) - self.first_index + 1
        pending = self._pending
        if self._master is not None:  # its frames are in the parts: mapped at each flush
            pending.extend((f.index - self.first_index, f.header) for f in frames)
        else:
            self._write_chunks(frames, offset + extent)
        facts.extent = max(facts.extent, extent)
        self.n_written += len(frames)
        facts.n_written = self.n_written

    def _write_chunks(self, frames: Sequence[ReceivedFrame], rows: int) -> None:
        offset = self._facts.offset
        if rows > self._n_rows:  # h5py's Dataset.shape asks HDF5: keep our own count
            self._n_rows = rows
            self._data.resize(rows, axis=0)
        write_chunk, tail, pending = self._chunks.write, self._tail, self._pending
        for f in frames:
            local = f.index - self.first_index
            write_chunk((offset + local, *tail), f.data, f.nbytes)
            pending.append((local, f.header))  # header values are stored at flush

    def fileno(self) -> int | None:
        """The open file's descriptor (for write-behind), None before it is created."""
        return int(self._file.id.get_vfd_handle()) if self._file is not None else None

    def flush(self) -> None:
        """Make everything written so far readable after a crash."""
        if self._file is None:
            return
        if self._live:  # the frames before their values: a reader that sees one sees both
            self._data.flush()
        env = self._env(closing=False)
        self._store_pending(env)
        self._map_frames()
        self._write_values(env, lambda src: bool(_writers(src) & LIVE))
        self._file.flush()
        if self._master is not None:
            self._master.publish()

    def _map_frames(self) -> None:
        """A master: the frames dataset again, over every part row mapped so far."""
        if self._master is not None:
            assert self._file is not None
            facts = self._facts
            self._data = self._master.rebuild(
                self._file, self.first_index, facts.extent, facts.offset
            )

    def close(self, end: FileEnd) -> None:
        """Write what is known only at the end (end reason, parameters), then close."""
        if self._file is None:
            return
        try:
            self._store_pending(self._env(closing=False))
            self._facts.end_reason = end.end_reason
            self._facts.end_time = iso_now()
            self._facts.missing = end.missing
            env = self._env(closing=True)
            self._store_computed(env)
            self._map_frames()
            if self._live:
                self._live = False
                self._file = _swmr.end_session(self._file)
            self._write_values(env, lambda src: src.kind != "value")
            self._link_targets()
            self._file.flush()
        finally:
            self._file.close()
            self._file = None
        if self._master is not None:
            self._master.finish()

    # -- per-frame values ------------------------------------------------------------------

    def _store_pending(self, env: Env) -> None:
        """Write the per-frame values of the frames written since the last flush.

        Only the rows of those frames are written, with the rows of frames that never came
        between them when those gaps are short (their fill values, or a ramp's values): a
        chain of long gaps costs no chunks of per-frame values (issue 12).
        """
        pending, self._pending = self._pending, []
        if not pending:
            return
        pending.sort(key=lambda item: int(item[0]))
        locals_ = np.fromiter((local for local, _ in pending), np.int64, len(pending))
        written = runs_of(locals_)
        known = RunSet()  # every row holding a frame, around these: gaps among them are safe
        for a, b in self._rows.runs(written[0][0], written[-1][1]):
            known.add_run(a, b)
        spans = _merged(written, lambda a, b: known.count(a, b) == 0)
        for column in self._columns:
            ds = self._column_dataset(column)
            if column.is_header:
                index, values = column.header_values(pending)
                for a, b in spans:
                    ds[self._facts.offset + a : self._facts.offset + b] = self._header_rows(
                        column, a, b, index, values, env
                    )
            else:
                self._write_computed(ds, column, spans, written, env)

    def _store_computed(self, env: Env) -> None:
        """At the end: the rows whose values depend on what is known only now (parameters, a
        header column's fallback), over every run of frames of the file."""
        written = self._rows.runs(0, self._facts.extent)
        spans = _merged(written, lambda a, b: True)  # between runs of frames: none came
        for column in self._columns:
            if column.is_header and column.spec.fallback is None:
                continue  # a header's values are final when flushed
            ds = self._column_dataset(column)
            if not column.is_header:
                self._write_computed(ds, column, spans, written, env)
                continue
            assert column.spec.fallback is not None
            for a, b in spans:
                for c, d in column.has.gaps(a, b):
                    rows = column.computed(column.spec.fallback, c, d, env)
                    ds[self._facts.offset + c : self._facts.offset + d] = rows

    def _header_rows(
        self,
        column: Column,
        a: int,
        b: int,
        index: npt.NDArray[np.int64],
        values: npt.NDArray[Any],
        env: Env,
    ) -> npt.NDArray[Any]:
        fallback = column.spec.fallback
        out = column.computed(fallback, a, b, env) if fallback else column.empty(b - a)
        lo, hi = np.searchsorted(index, [a, b])
        out[index[lo:hi] - a] = values[lo:hi]
        return out

    def _write_computed(
        self,
        ds: Any,
        column: Column,
        spans: list[tuple[int, int]],
        written: list[tuple[int, int]],
        env: Env,
    ) -> None:
        """A computed column's rows; rows of frames that never came get the fill value,
        except in a ramp (an angle is known for a missing frame too)."""
        offset = self._facts.offset
        for a, b in spans:
            out = column.computed(column.spec, a, b, env)
            if column.spec.linear is None:
                seen = np.zeros(b - a, np.bool_)
                for c, d in _clip(written, a, b):
                    seen[c - a : d - a] = True
                out[~seen] = column.fill
            ds[offset + a : offset + b] = out

    def _column_dataset(self, column: Column) -> Any:
        assert self._file is not None
        ds = self._file[column.path]
        rows = self._facts.offset + self._facts.extent
        if ds.shape[0] < rows:
            ds.resize(rows, axis=0)
        return ds

    # -- opening ---------------------------------------------------------------------------

    def _open(self, first: ReceivedFrame) -> None:
        try:
            if self._master is not None:  # a master of several writers: no SWMR session
                self._file = self._master.open()
            else:
                self._live = self._owner.swmr and _swmr.follows(self.path)
                self._file = open_for_frames(self.path, swmr=self._live)
        except OSError as exc:
            raise OutputError(f"cannot open output file {self.path}: {exc}") from None
        try:
            self._prepare(first)
        except BaseException:
            self._file.close()
            self._file = None
            raise

    def _prepare(self, first: ReceivedFrame) -> None:
        assert self._file is not None
        f, header = self._file, first.header
        taken = [p for p in self._owner.taken_paths(self._facts.dataset_name) if p in f]
        if taken:
            raise DatasetExistsError(self._facts.dataset_name, str(self.path))
        self._check_frames(header)
        self._kept = {p for p, n in self._nodes() if _keeps(n) and p in f}
        self._existing = {p for p, n in self._nodes() if isinstance(n, Dataset) and p in f}
        self._header = header
        self._facts.first_frame_id = header.frame - first.index
        self._facts.start_time = iso_now()
        log.info("writing %s (layout %s) to %s", self._frames_path(), self._layout.name, self.path)
        self._create_tree(header)
        env = self._env(closing=False)
        self._write_values(env, lambda src: True)
        self._link_targets()
        if self._live:
            _swmr.start_session(f)
        else:
            f.flush()

    def _check_frames(self, header: Any) -> None:
        assert self._file is not None
        path = self._frames_path()
        existing = self._file.get(path)
        if existing is None:
            return
        spec = self._layout_node(path)
        if not (isinstance(spec, Dataset) and spec.frames and spec.frames.append):
            raise DatasetExistsError(self._facts.dataset_name, str(self.path))
        if existing.shape[1:] != tuple(header.shape) or existing.dtype != header.dtype:
            raise OutputError(
                f"cannot append frames of shape {list(header.shape)} and type "
                f"{header.dtype} to {path} in {self.path}, which holds "
                f"{list(existing.shape[1:])} of {existing.dtype}; write to another file"
            )
        self._facts.offset = existing.shape[0]

    def _create_tree(self, header: Any) -> None:
        assert self._file is not None
        f, offset = self._file, self._facts.offset
        for path, node in self._nodes():
            if isinstance(node, Group):
                group = f.require_group(path)
                if node.NX_class and "NX_class" not in group.attrs:
                    group.attrs["NX_class"] = node.NX_class
            elif isinstance(node, Link):
                if f.get(path, getlink=True) is None:
                    f[path] = h5py.SoftLink(self._resolve(node.link))
            elif node.frames is not None:
                self._create_frames(path, header)
            elif node.is_per_frame:
                self._add_column(path, node, len(header.shape), offset)

    def _create_frames(self, path: str, header: Any) -> None:
        assert self._file is not None
        self._tail = (0,) * len(header.shape)
        if self._master is not None:
            self._data = self._master.create(self._file, path, header, self._facts.offset)
            return
        if path in self._file:
            self._data = self._file[path]
            check_frames_filter(self._data, self._owner.compression, self.path)
            self._n_rows = self._data.shape[0]
        else:
            self._data = self._file.create_dataset(
                path, shape=(0, *header.shape), maxshape=_swmr.frames_maxshape(header, self._live),
                chunks=(1, *header.shape), dtype=header.dtype,
                **frames_filter(self._owner.compression),
            )  # fmt: skip
        self._chunks = ChunkWriter(self._data)

    def _add_column(self, path: str, node: Dataset, ndim: int, offset: int) -> None:
        assert self._file is not None
        ds = self._file.get(path)
        column = Column(path, node, ndim, self._value_dtype(node), self._text_length(node, ds))
        if ds is None:
            column.create(self._file, offset)
        elif ds.shape[0] != offset:
            ds.resize(offset, axis=0)
        units = node.units or self._parameter_units(node)
        if units:
            self._file[path].attrs["units"] = units
        self._columns.append(column)

    def _text_length(self, node: Dataset, existing: Any) -> int | None:
        """The fixed length of a text column in a SWMR file (None: variable-length text)."""
        if existing is not None:  # appended to: keep its type
            info = h5py.check_string_dtype(existing.dtype)
            return info.length if info is not None else None
        if not self._live or (node.dtype or self._value_dtype(node)) != "string":
            return None
        env = self._env(closing=False)
        sample = header_value(self._header, node.header) if node.header else evaluate(node, env)
        return _swmr.text_length(sample)

    # -- values ----------------------------------------------------------------------------

    def _env(self, closing: bool) -> Env:
        params = self._owner.parameters
        env = Env(self._facts, params.effective(), frozenset(params.given()), self._header, closing)
        if closing:
            env.origins = {c.path: c.origin(self.n_written, env) for c in self._columns}
        return env

    def _write_values(self, env: Env, wanted: Callable[[Source], bool]) -> None:
        assert self._file is not None
        for owner, name, src in self._attribute_sources():
            if wanted(src) and owner in self._file:
                _set_attribute(self._file[owner], name, src, env)
        for path, node in self._nodes():
            static = isinstance(node, Dataset) and _is_static(node)
            if static and path not in self._kept and wanted(node):
                self._write_dataset(path, node, env)

    def _write_dataset(self, path: str, node: Dataset, env: Env) -> None:
        assert self._file is not None
        if path in self._existing and node.parameter and node.parameter not in env.given:
            return  # a default never replaces what an earlier acquisition set
        if not _store(node, env, path, partial(self._create_static, path, node)):
            return
        ds = self._file[path]
        units = node.units or self._parameter_units(node)
        if units:
            ds.attrs["units"] = units
        for name, attr in node.attributes.items():
            _set_attribute(ds, name, attr, env)

    def _create_static(self, path: str, node: Dataset, value: Any) -> None:
        assert self._file is not None
        value = hdf5_value(value, node.dtype or self._value_dtype(node))
        if _swmr.write_in_place(self._file.get(path), value):
            return
        if path in self._file:
            del self._file[path]
        try:
            self._file.create_dataset(path, data=value)
        except Exception:
            if path in self._file:  # h5py creates the dataset before it writes the value
                del self._file[path]
            raise

    def _link_targets(self) -> None:
        """NeXus: the original of a link carries ``@target``, its own path."""
        assert self._file is not None
        for _, node in self._nodes():
            target = self._resolve(node.link) if isinstance(node, Link) else ""
            if target and target in self._file:
                self._file[target].attrs["target"] = target

    def _value_dtype(self, node: Source) -> str | None:
        if node.dtype:
            return node.dtype
        if node.parameter is not None:
            return _PARAM_DTYPE.get(self._layout.parameters[node.parameter].type)
        if node.linear is not None or node.fallback is not None:
            return "float64"
        return None

    def _parameter_units(self, node: Source) -> str:
        param = self._layout.parameters.get(node.parameter or "")
        return param.units if param else ""

    # -- the tree --------------------------------------------------------------------------

    def _nodes(self) -> list[tuple[str, Any]]:
        return [(self._resolve(p), n) for p, n in self._layout.walk()]

    def _resolve(self, template: str) -> str:
        return template.replace("{dataset_name}", self._facts.dataset_name)

    def _layout_node(self, path: str) -> Any:
        return dict(self._nodes()).get(path)

    def _frames_path(self) -> str:
        return self._layout.frames_path().replace("{dataset_name}", self._facts.dataset_name)

    def _attribute_sources(self) -> list[tuple[str, str, Attribute]]:
        out = [("/", k, a) for k, a in self._layout.attributes.items()]
        for path, node in self._nodes():
            if isinstance(node, Group) or (isinstance(node, Dataset) and not _is_static(node)):
                out.extend((path, k, a) for k, a in node.attributes.items())
        return out


def _set_attribute(obj: Any, name: str, src: Source, env: Env) -> None:
    def put(value: Any) -> None:
        _swmr.put_attribute(obj, name, hdf5_value(value, src.dtype))

    _store(src, env, f"{obj.name}@{name}", put)


def _store(src: Source, env: Env, where: str, put: Callable[[Any], None]) -> bool:
    """``put`` the value of ``src``; False when there is none.

    A header field that the first frame lacks or that HDF5 cannot store (a JSON object, a NUL)
    is left out with a warning: what the camera sends must not fail the acquisition.
    """
    try:
        value = evaluate(src, env)
        if value is not MISSING:
            put(value)
            return True
        why = "the first frame's header has no such field"
    except (TypeError, ValueError, OverflowError) as exc:  # ConfigError too: an unmapped value
        if src.kind != "header":
            raise
        why = str(exc)
    if src.kind == "header" and not env.closing:  # written at open and again at close: warn once
        log.warning("%s left out: header field %r: %s", where, src.header, why)
    return False


def _is_static(node: Dataset) -> bool:
    return node.frames is None and not node.is_per_frame


def _keeps(node: Any) -> bool:
    """Static datasets a file already has are kept: constants, or ``on_append: keep``."""
    if not isinstance(node, Dataset) or not _is_static(node):
        return False
    return node.on_append == "keep" or (node.on_append is None and node.kind == "value")


def _writers(src: Source) -> set[str]:
    """The writer values a source depends on."""
    out: set[str] = {src.writer} if src.writer else set()
    parts = [src.fallback, *((src.linear.start, src.linear.step) if src.linear else ())]
    for part in parts:
        if part is not None:
            out |= _writers(part)
    return out


def _sources(layout: Layout) -> list[tuple[str, Source]]:
    out: list[tuple[str, Source]] = [(f"/@{k}", a) for k, a in layout.attributes.items()]
    for path, node in layout.walk():
        if isinstance(node, Link):
            continue
        if isinstance(node, Dataset):
            out.append((path, node))
        out.extend((f"{path}@{k}", a) for k, a in node.attributes.items())
    return out


MERGE_ROWS = 4096
"""Rows of frames that never came, between frames, that are written with fill values (or a
ramp's values) rather than left unallocated: small gaps read as before, long ones cost nothing."""


def _merged(
    runs: list[tuple[int, int]], may_fill: Callable[[int, int], bool]
) -> list[tuple[int, int]]:
    """Runs joined across gaps of at most :data:`MERGE_ROWS` rows that ``may_fill``."""
    out: list[tuple[int, int]] = []
    for a, b in runs:
        if out and a - out[-1][1] <= MERGE_ROWS and may_fill(out[-1][1], a):
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _clip(runs: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    return [(max(a, lo), min(b, hi)) for a, b in runs if a < hi and b > lo]

"""The values of a layout file: evaluating sources, and per-frame columns batched in memory.

Per-frame values (header fields such as an angle, image keys, ramps) are kept in numpy arrays
by the writer thread and written to HDF5 only at each flush, as :mod:`._metadata` does for the
TOMCAT layout: a few h5py calls per frame would cost more than the frame itself.
"""

from __future__ import annotations

import json
import logging
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from pco_writer.errors import ConfigError
from pco_writer.h5._file import MissingFrames
from pco_writer.h5._space import STRING_REF
from pco_writer.layouts import Dataset, Source
from pco_writer.protocol import FrameHeader, is_storable_text
from pco_writer.runs import RunSet

__all__ = [
    "MISSING", "Column", "Env", "FileFacts", "evaluate", "describe", "hdf5_value", "runs_of",
]  # fmt: skip

log = logging.getLogger(__name__)

MISSING: Any = object()
"""A value not known (yet): an unset parameter, an end time before the close."""

STRING = h5py.string_dtype("utf-8")
_HEADER_FIELDS = frozenset(
    {"frame", "shape", "type", "endianness", "htype", "source", "tag", "encoding"}
)
AT_CLOSE = frozenset({
    "end_time", "end_reason", "missing_frame_ids", "missing_frame_ranges", "n_frames_missing",
    "n_frames_written", "origin",
})  # fmt: skip
LIVE = frozenset({"frame_count", "image_nr_high"})


@dataclass
class FileFacts:
    """What the writer knows about one file of an acquisition."""

    dataset_name: str
    file_name: str
    first_index: int
    n_requested: int
    start_time: str = ""
    first_frame_id: int = -1
    offset: int = 0
    n_written: int = 0
    extent: int = 0
    end_time: str = ""
    end_reason: str = ""
    missing: MissingFrames = field(default_factory=MissingFrames)


@dataclass
class Env:
    """Everything a source can read at one moment."""

    facts: FileFacts
    parameters: Mapping[str, Any]
    given: frozenset[str] = frozenset()
    header: FrameHeader | None = None
    closing: bool = False
    origins: Mapping[str, str] = field(default_factory=dict)


def evaluate(src: Source, env: Env) -> Any:
    """The value of a (non per-frame) source now, or :data:`MISSING`."""
    value = _raw(src, env)
    if value is MISSING or src.map is None:
        return value
    return map_value(src, value)


def map_value(src: Source, value: Any) -> Any:
    """Translate through the source's map; ConfigError when the map has no such key."""
    assert src.map is not None
    key = str(value)
    if key in src.map:
        return src.map[key]
    if src.map_default is not None:
        return src.map_default
    raise ConfigError(f"{value!r} has no mapped value; use one of {', '.join(src.map)}")


def _raw(src: Source, env: Env) -> Any:
    kind = src.kind
    if kind == "value":
        return src.value
    if kind == "parameter":
        return env.parameters.get(src.parameter or "", MISSING)
    if kind == "header":
        value = header_value(env.header, src.header or "") if env.header else None
        return MISSING if value is None else value  # a field this camera does not send
    if kind == "writer":
        return _writer(src, env)
    return MISSING  # linear: per-frame only


def _writer(src: Source, env: Env) -> Any:
    name, f = src.writer or "", env.facts
    if name in AT_CLOSE and not env.closing:
        return MISSING
    simple = {
        "dataset_name": f.dataset_name, "file_name": f.file_name, "start_time": f.start_time,
        "end_time": f.end_time, "end_reason": f.end_reason,
    }  # fmt: skip
    if name in simple:
        return simple[name]
    if name == "missing_frame_ids":
        return f.missing.ids()
    if name == "missing_frame_ranges":
        return f.missing.ranges()
    if name == "origin":
        return env.origins.get((src.of or "").replace("{dataset_name}", f.dataset_name), "")
    numbers = {
        "first_index": f.first_index, "first_frame_id": f.first_frame_id, "offset": f.offset,
        "frame_count": f.n_written, "n_frames_requested": f.n_requested,
        "n_frames_written": f.n_written, "n_frames_missing": f.missing.count,
        "image_nr_low": f.first_index + 1,
        "image_nr_high": f.first_index + f.extent,
    }  # fmt: skip
    return np.int64(numbers[name])


def header_value(header: FrameHeader, name: str) -> Any:
    """A header field: a standard one or an extra one (None when absent)."""
    if name in _HEADER_FIELDS:
        return getattr(header, name)
    return header.extra.get(name)


def describe(src: Source, env: Env) -> str:
    """Where a value comes from, in words, with the parameter values used."""
    if src.kind == "parameter":
        name = src.parameter or ""
        how = "set" if name in env.given else "default"
        return f"{name}={env.parameters.get(name, 'unset')} ({how})"
    if src.linear is not None:
        start, step = describe(src.linear.start, env), describe(src.linear.step, env)
        return f"start + i * step with start: {start}, step: {step}"
    if src.kind == "header":
        return f"header field {src.header!r}"
    if src.kind == "writer":
        return f"writer value {src.writer}"
    return f"constant {src.value!r}"


def hdf5_value(value: Any, dtype: str | None) -> Any:
    """A value ready for h5py: numpy scalars and arrays, or ``str``."""
    if dtype == "string" or (dtype is None and isinstance(value, str)):
        return str(value) if not isinstance(value, list) else np.array(value, dtype=STRING)
    if dtype is not None:
        return np.asarray(value, dtype=np.bool_ if dtype == "bool" else dtype)[()]
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        return np.int64(value)
    if isinstance(value, float):
        return np.float64(value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=STRING)
    return value


def runs_of(index: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """Sorted, distinct row numbers as runs ``(start, stop)``."""
    if not len(index):
        return []
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(index)]])
    return [(int(index[a]), int(index[b - 1]) + 1) for a, b in zip(starts, stops, strict=True)]


def _texts(pairs: list[tuple[int, Any]], convert: Callable[[Any], Any]) -> list[tuple[int, Any]]:
    """``pairs`` with each value converted, those that convert to None left out.

    A camera sends the same text in every header (its tag, its source): each distinct value
    is converted once, not once a frame (at 10k frames/s that was most of a flush's time).
    """
    done: dict[tuple[type, Any], Any] = {}
    out = []
    for local, value in pairs:
        key = (type(value), value)  # True and 1 are equal keys, but not the same text
        try:
            text = done[key]
        except KeyError:
            text = done[key] = convert(value)
        except TypeError:  # not hashable (a list): converted on its own
            text = convert(value)
        if text is not None:
            out.append((local, text))
    return out


def _as_text(value: Any) -> str | None:
    """A header value as UTF-8 text for a string column: numbers as written, None when the
    value is no text (an object, a list) or cannot be stored (NUL, a lone surrogate)."""
    if isinstance(value, bool | int | float):
        return json.dumps(value) if isinstance(value, bool) else str(value)
    return value if is_storable_text(value) else None


class Column:
    """One per-frame dataset of one file: its dtype and fill, and which rows got a header value.

    Values are not kept between flushes: each flush writes the values of the frames written
    since the last one (see :class:`pco_writer.h5._layout_file.LayoutFile`), so memory follows
    the frames of one flush interval, not the extent of the ids.
    """

    def __init__(
        self,
        path: str,
        spec: Dataset,
        ndim: int,
        value_dtype: str | None,
        text_length: int | None = None,
    ) -> None:
        self.path = path
        self.spec = spec
        self.is_header = spec.header is not None
        self.field = spec.header or ""
        self.elem = tuple(ndim if n == "ndim" else int(n) for n in spec.shape)
        name = spec.dtype or value_dtype or "float64"
        self.dtype: np.dtype[Any] = (
            STRING if name == "string" else np.dtype(np.bool_ if name == "bool" else name)
        )
        self.fill = spec.fill if spec.fill is not None else ("" if name == "string" else 0)
        self.text_length = text_length if name == "string" and not self.elem else None
        """Bytes of a fixed-length text value (SWMR files), None for variable-length text."""
        self._warned = False
        if self.text_length:
            self.dtype = h5py.string_dtype("utf-8", self.text_length)
            self.fill = self._fit_text(_as_text(self.fill)) or b""
        self.has = RunSet()
        """Local rows whose frame had a value for this (header) column."""

    def create(self, parent: h5py.File, offset: int) -> Any:
        """Create the empty, extendable dataset (``offset`` rows for earlier acquisitions).

        Deflated (level 1, HDF5's own filter, readable everywhere): a chunk that holds a few
        frames among thousands of rows that never came takes bytes, not the whole chunk.
        """
        fill = {} if self.spec.fill is None else {"fillvalue": self.fill}
        return parent.create_dataset(
            self.path, (offset, *self.elem), self.dtype, maxshape=(None, *self.elem),
            chunks=(self._chunk_rows(), *self.elem), compression="gzip", compression_opts=1,
            shuffle=True, **fill,
        )  # fmt: skip

    def _chunk_rows(self) -> int:
        """Rows per chunk: fixed-length text keeps the bytes of a chunk of 16-byte references
        (1,024 rows of 64 bytes for 4,096), so gaps cost what they cost before SWMR."""
        if not self.text_length:
            return self.spec.chunk
        return max(1, self.spec.chunk * STRING_REF // self.text_length)

    def header_values(
        self, frames: Sequence[tuple[int, FrameHeader]]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
        """The local rows and values of the frames (sorted by row) that have a value HDF5 can
        store in this column; the others count as absent. Records the rows in :attr:`has`."""
        if self.field in _HEADER_FIELDS:  # always present: no per-frame filtering
            get = operator.attrgetter(self.field)
            pairs: list[tuple[int, Any]] = [(local, get(h)) for local, h in frames]
        else:
            pairs = [(local, h.extra.get(self.field)) for local, h in frames]
            pairs = [(local, v) for local, v in pairs if v is not None]
        if self.dtype == STRING and not self.elem:  # only text HDF5 can store, else absent
            pairs = _texts(pairs, _as_text)
        elif self.text_length:  # also only what fits the fixed length
            pairs = _texts(pairs, lambda v: self._fit_text(_as_text(v)))
        index = np.fromiter((local for local, _ in pairs), np.int64, len(pairs))
        values = self._converted([v for _, v in pairs])
        if values is None:  # some value does not fit the dtype: one by one
            values, keep = self._one_by_one([v for _, v in pairs])
            index = index[keep]
        for a, b in runs_of(index):
            self.has.add_run(a, b)
        return index, values

    def _converted(self, values: list[Any]) -> npt.NDArray[Any] | None:
        try:
            if self.dtype == STRING:
                column = self.empty(len(values))
                column[:] = values
                return column
            return np.asarray(values, self.dtype).reshape(len(values), *self.elem)
        except (TypeError, ValueError, OverflowError):
            return None

    def _one_by_one(self, values: list[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
        out, keep = self.empty(len(values)), np.zeros(len(values), np.bool_)
        for i, value in enumerate(values):
            try:
                out[i] = value
            except (TypeError, ValueError, OverflowError):
                continue  # a value that does not fit the dtype counts as absent
            keep[i] = True
        return out[keep], keep

    def origin(self, n_rows: int, env: Env) -> str:
        """Where this acquisition's values came from, in words (``n_rows`` frames in the file)."""
        if not self.is_header:
            return f"{describe(self.spec, env)} for {n_rows} frames"
        n_header = len(self.has)
        parts = [f"header field {self.field!r} for {n_header} frames"]
        if n_rows > n_header:
            rest = self.spec.fallback
            how = describe(rest, env) if rest is not None else f"fill value {self.fill!r}"
            parts.append(f"{how} for {n_rows - n_header} frames without it")
        return "; ".join(parts)

    def computed(self, src: Source, lo: int, hi: int, env: Env) -> npt.NDArray[Any]:
        """The values ``src`` gives local rows ``lo .. hi - 1`` (a ramp, or one value)."""
        if src.linear is not None:
            start = evaluate(src.linear.start, env)
            step = evaluate(src.linear.step, env)
            if start is MISSING or step is MISSING:
                return np.full((hi - lo, *self.elem), self.fill, self.dtype)
            index = np.arange(lo, hi) + env.facts.first_index
            return np.asarray(start + step * index).astype(self.dtype)
        value = evaluate(src, env)
        if value is MISSING:
            value = self.fill
        elif self.text_length:
            value = self._fit_text(_as_text(value))
            value = self.fill if value is None else value
        return np.full((hi - lo, *self.elem), value, self.dtype)

    def _fit_text(self, text: str | None) -> bytes | None:
        """``text`` as the bytes of a fixed-length value; None when it is longer (absent)."""
        assert self.text_length is not None
        if text is None:
            return None
        cell = text.encode("utf-8")
        if len(cell) <= self.text_length:
            return cell
        if not self._warned:  # once per dataset: a camera may send it with every frame
            log.warning(
                "%s: a value of %d bytes is longer than the dataset's fixed length (%d "
                "bytes, SWMR): left out", self.path, len(cell), self.text_length,
            )  # fmt: skip
            self._warned = True
        return None

    def empty(self, n: int) -> npt.NDArray[Any]:
        """``n`` rows of the fill value."""
        if self.dtype == STRING:
            return np.full((n, *self.elem), "", object)
        return np.full((n, *self.elem), self.fill, self.dtype)

"""Virtual frames datasets: rows of a master file mapped onto rows of part files.

Built with HDF5's low-level calls (``set_virtual`` with one regular hyperslab a mapping): h5py's
``VirtualLayout`` took 175 µs a mapping against 6 µs here, and point selections are refused
by HDF5 (docs/decisions/0042-several-writers.md).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5d, h5p, h5s, h5t

from pco_writer.errors import OutputError
from pco_writer.h5._superblock import clear_open_flags
from pco_writer.partmap import PartRows, clip
from pco_writer.protocol import FrameHeader

__all__ = [
    "MasterFrames", "Mapping", "VirtualFrames", "create_virtual", "import_file", "mappings_of",
]  # fmt: skip

log = logging.getLogger(__name__)

PART_FRAMES = "frames"
"""The frames dataset of a part file."""


@dataclass(frozen=True)
class Mapping:
    """Rows ``start + k * stride`` (``k < count``) of the virtual dataset are rows
    ``source_row + k`` of ``source_path`` in ``source_file`` (relative to the master's folder,
    or ``"."`` for the master itself).

    Attributes:
        source_file: the part file's name, or ``"."``.
        source_path: the dataset in it.
        source_rows: how many rows the source has (or at least, as far as mapped).
        start, stride, count: the virtual rows.
        source_row: the first source row.
    """

    source_file: str
    source_path: str
    source_rows: int
    start: int
    stride: int
    count: int
    source_row: int


def create_virtual(
    parent: h5py.Group,
    name: str,
    rows: int,
    frame_shape: tuple[int, ...],
    dtype: Any,
    mappings: list[Mapping],
    fillvalue: Any = 0,
) -> h5py.Dataset:
    """Create the virtual dataset ``name`` of ``rows`` frames (replacing one of that name).

    Returns:
        The new dataset.
    """
    if name in parent:
        del parent[name]
    shape = (rows, *frame_shape)
    ones, block = (1,) * len(frame_shape), (1, *frame_shape)
    dcpl = h5p.create(h5p.DATASET_CREATE)
    tid = h5t.py_create(np.dtype(dtype), logical=True)
    dcpl.set_fill_value(np.array(fillvalue, dtype=dtype))
    for m in mappings:
        if m.count <= 0:
            continue
        vspace = h5s.create_simple(shape)
        vspace.select_hyperslab(
            (m.start, *(0,) * len(frame_shape)), (m.count, *ones), (m.stride, *ones), block
        )
        sspace = h5s.create_simple((m.source_rows, *frame_shape), (h5s.UNLIMITED, *frame_shape))
        sspace.select_hyperslab((m.source_row, *(0,) * len(frame_shape)), (m.count, *ones),
                                None, block)  # fmt: skip
        dcpl.set_virtual(vspace, m.source_file.encode(), m.source_path.encode(), sspace)
    lcpl = h5p.create(h5p.LINK_CREATE)
    lcpl.set_create_intermediate_group(True)
    dsid = h5d.create(parent.id, name.encode(), tid, h5s.create_simple(shape), dcpl=dcpl, lcpl=lcpl)
    return h5py.Dataset(dsid)


def mappings_of(ds: h5py.Dataset) -> list[Mapping]:
    """The mappings of an existing virtual dataset whose selections are regular hyperslabs
    (as :func:`create_virtual` makes them; also ``all`` on the source side)."""
    out = []
    for vds in ds.virtual_sources():
        start, stride, count, _ = vds.vspace.get_regular_hyperslab()
        src = vds.src_space
        if src.get_select_type() == h5s.SEL_ALL:
            source_row, source_rows = 0, src.shape[0]
        else:
            source_row = src.get_regular_hyperslab()[0][0]
            source_rows = src.shape[0]
        out.append(
            Mapping(
                vds.file_name, vds.dset_name, source_rows, start[0], stride[0], count[0], source_row
            )  # fmt: skip
        )
    return out


@dataclass
class _Part:
    """One writer's part file, as far as the builder has read it."""

    path: Path
    rows_read: int = 0
    rows: PartRows = field(default_factory=PartRows)  # the rows mapped, by frame id
    header: FrameHeader | None = None  # the last header stored in full (frame id 0)
    top_id: int = -1  # the id of the last row read from it: how far it got
    grew_at: float = 0.0  # when rows were last read from it (monotonic seconds)
    drained: int | None = None  # frames its writer had written with an empty buffer (polled)


class VirtualFrames:
    """The map of the acquisition's frames onto part rows, for the master's frames datasets.

    Args:
        parts: the part files, in writer order (their names are the virtual sources).
    """

    def __init__(self, parts: list[Path]) -> None:
        self.parts = [_Part(p) for p in parts]
        self.first_frame_id = -1

    def mappings(self, first_index: int, extent: int, offset: int) -> list[Mapping]:
        """The mappings of a master file whose rows ``offset ..`` hold acquisition indices
        ``first_index .. first_index + extent - 1``."""
        lo = self.first_frame_id + first_index
        out = []
        for part in self.parts:
            for run in part.rows.runs():
                piece = clip(run, lo, lo + extent)
                if piece is not None:
                    out.append(
                        Mapping(
                            part.path.name,
                            PART_FRAMES,
                            part.rows.n_rows,
                            offset + piece.first_id - lo,
                            piece.stride,
                            piece.count,
                            piece.first_row,
                        )  # fmt: skip
                    )
        return out


VDS_LIBVER = ("v110", "v110")
"""Virtual datasets need the HDF5 1.10 format."""
COPY_AT_MOST = 64 << 20
"""A master appended to is copied up to this size, else its data stays in a sibling."""
MAP_FROM = 64 << 20
"""A dataset of a sibling this large is mapped, not copied (frame stacks always are)."""


def import_file(src: h5py.File, dst: h5py.File, src_name: str) -> None:
    """Everything of ``src`` in ``dst``: groups, attributes, links and small datasets copied;
    frame stacks (3 or more dimensions, or over :data:`MAP_FROM`) as virtual datasets over
    ``src``, named ``src_name`` relative to ``dst``'s folder."""
    for key, value in src.attrs.items():
        dst.attrs[key] = value

    def visit(name: str, link: Any) -> None:
        if isinstance(link, h5py.SoftLink | h5py.ExternalLink):
            dst[name] = link
            return
        obj = src[name]
        if isinstance(obj, h5py.Group):
            group = dst.require_group(name)
            for key, value in obj.attrs.items():
                group.attrs[key] = value
        elif _is_stack(obj):
            rows = obj.shape[0]
            mapping = Mapping(src_name, obj.name, rows, 0, 1, rows, 0)
            ds = create_virtual(dst, name, rows, obj.shape[1:], obj.dtype, [mapping])
            for key, value in obj.attrs.items():
                ds.attrs[key] = value
        else:
            src.copy(obj, dst, name)

    src.visititems_links(visit)


def _is_stack(ds: h5py.Dataset) -> bool:
    if ds.is_virtual or not ds.shape:
        return False
    return len(ds.shape) >= 3 or ds.id.get_storage_size() > MAP_FROM


class MasterFrames:
    """The frames dataset of one master file, and the master's working file and publishing.

    The master is written to a hidden working file beside it; each :meth:`publish` copies that
    to a temporary name and ``os.replace``s it over the master, so a reader that opens the
    master gets a complete file (HDF5 cannot change a virtual dataset's mappings in place, and
    rewriting a file in place locks its readers out). :meth:`finish` renames the working file
    over the master.

    Args:
        path: the master file.
        frames: the map of frames onto part rows.
    """

    def __init__(self, path: Path, frames: VirtualFrames) -> None:
        self.path = path
        self.frames = frames
        self.work = path.with_name(f".{path.name}.work")
        self._tmp = path.with_name(f".{path.name}.tmp")
        self._ds_path = ""
        self._frame_shape: tuple[int, ...] = ()
        self._dtype: object = None
        self._prior: list[Mapping] = []  # of acquisitions appended to before this one

    def open(self) -> h5py.File:
        """The working file: new, or made from the master that is appended to.

        A small master is copied. A large one (frames written by one writer) would be copied
        again at every publish: it is moved once to a hidden sibling, and the working file
        maps its frame stacks as virtual datasets and copies the rest (ADR 0042).

        Raises:
            OSError: it cannot be made.
        """
        if not self.path.exists():
            return h5py.File(self.work, "w", libver=VDS_LIBVER)
        if self.path.stat().st_size <= COPY_AT_MOST:
            shutil.copyfile(self.path, self.work)
            return h5py.File(self.work, "a", libver=VDS_LIBVER)
        sibling = self._sibling()
        os.rename(self.path, sibling)
        log.info("appending to a large %s: its data stays in %s", self.path, sibling.name)
        work = h5py.File(self.work, "w", libver=VDS_LIBVER)
        try:
            with h5py.File(sibling, "r") as src:
                import_file(src, work, sibling.name)
        except BaseException:
            work.close()
            raise
        return work

    def _sibling(self) -> Path:
        for k in range(1, 10_000):
            candidate = self.path.with_name(f".{self.path.name}.{k:03d}")
            if not candidate.exists():
                return candidate
        raise OutputError(f"too many hidden siblings of {self.path}; tidy its folder")

    def create(self, f: h5py.File, ds_path: str, header: FrameHeader, offset: int) -> h5py.Dataset:
        """The frames dataset at ``ds_path`` (``offset`` rows of earlier acquisitions).

        Raises:
            OutputError: the file has a frames dataset there that is not virtual (written by
                one writer): several writers cannot append to it.
        """
        existing = f.get(ds_path)
        if existing is not None and offset:
            if not existing.is_virtual:
                raise OutputError(
                    f"{ds_path} in {self.path} was written by one writer; several writers "
                    "cannot append frames to it: write this acquisition with one writer, or "
                    "to another file"
                )
            self._prior = mappings_of(existing)
        self._ds_path, self._frame_shape, self._dtype = ds_path, header.shape, header.dtype
        return self.rebuild(f, 0, 0, offset)

    def rebuild(self, f: h5py.File, first_index: int, extent: int, offset: int) -> h5py.Dataset:
        """The frames dataset again, with every frame mapped so far (its attributes kept)."""
        old = f.get(self._ds_path)
        attrs = dict(old.attrs) if old is not None else {}
        mappings = [*self._prior, *self.frames.mappings(first_index, extent, offset)]
        ds = create_virtual(
            f, self._ds_path, offset + extent, self._frame_shape, self._dtype, mappings
        )
        for key, value in attrs.items():
            ds.attrs[key] = value
        return ds

    def publish(self) -> None:
        """Put the working file (flushed) in the master's place, atomically.

        The copy of a file open for writing says so in its superblock (readers would refuse
        it): those flags are cleared in the copy, which is complete as flushed.
        """
        shutil.copyfile(self.work, self._tmp)
        clear_open_flags(self._tmp)
        os.replace(self._tmp, self.path)

    def finish(self) -> None:
        """The closed working file becomes the master."""
        os.replace(self.work, self.path)

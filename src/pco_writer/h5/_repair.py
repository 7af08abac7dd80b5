"""Repairing the file of a writer that died: readable again, and saying what happened.

A writer killed with SIGKILL leaves a SWMR file whose superblock still says "open for
writing"; a plain HDF5 open refuses it until the flags are cleared (what ``h5clear -s``
does, done here in :mod:`._superblock`). Everything flushed before the kill is in the file:
a SWMR writer keeps the file consistent for readers at every moment. Then the acquisition
that never ended gets the end reason where its layout puts it ("error: the writer died
...; repaired by ..."), and, beside it, ``repair_time`` and ``repair_reason`` attributes.
Files of the HDF5 1.8 format (``--no-swmr``) have no flags; their unfinished acquisition
gets the same record.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py

from pco_writer.errors import OutputError
from pco_writer.h5 import _open, _swmr
from pco_writer.h5._layout_values import Env, FileFacts, evaluate, hdf5_value
from pco_writer.h5._superblock import clear_open_flags, read_superblock
from pco_writer.layouts import Dataset, Group, Layout, Source, builtin_names, load_layout
from pco_writer.statistics import iso_now

__all__ = ["Repair", "repair_file"]

_NAME = "{dataset_name}"


@dataclass
class Repair:
    """What :func:`repair_file` did to one file.

    Attributes:
        path: the file.
        cleared_flags: the superblock's "open for writing" flags were set and are now clear.
        ended: the dataset names whose acquisition got its end reason now.
    """

    path: Path
    cleared_flags: bool = False
    ended: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line: what was done, or that nothing was needed."""
        done = ["cleared the superblock's open-for-writing flags"] if self.cleared_flags else []
        if self.ended:
            done.append(f"recorded the end of {', '.join(map(repr, self.ended))}")
        return f"{self.path}: {'; '.join(done) if done else 'nothing to repair'}"


@dataclass(frozen=True)
class _EndReason:
    """Where a layout records the end reason: ``owner@attribute``, or a dataset."""

    path: str  # template of the owner (attribute) or of the dataset
    attribute: str | None
    source: Source

    def owner(self, dataset_name: str) -> str:
        """The path of the group or dataset that gets ``repair_time`` and ``repair_reason``."""
        path = self.path.replace(_NAME, dataset_name)
        return path if self.attribute else path.rsplit("/", 1)[0] or "/"

    def is_recorded(self, f: h5py.File, dataset_name: str) -> bool:
        path = self.path.replace(_NAME, dataset_name)
        return self.attribute in f[path].attrs if self.attribute else path in f


def repair_file(
    path: Path, layout: Layout | None, reason: str, by: str, dataset_name: str | None = None
) -> Repair:
    """Make ``path`` readable after its writer died, and record that in it.

    Args:
        path: the file.
        layout: the layout it was written in (where the end reason goes); None: the
            built-in one the file fits.
        reason: what happened, e.g. "the writer died (SIGKILL)".
        by: who repairs, e.g. "pco-writer repair".
        dataset_name: the acquisition to end; None: every one the file has not ended.

    Raises:
        OutputError: the file cannot be read or written, or is damaged beyond the flags.
    """
    done = Repair(path)
    try:
        block = read_superblock(path)
        if block is None:
            raise OutputError(f"{path} is not an HDF5 file; nothing to repair")
        writers = _writing_processes(path)
        if writers:
            raise OutputError(
                f"cannot repair {path}: process {', '.join(map(str, writers))} has it open "
                "for writing; stop that writer first (a running SWMR writer must not be "
                "repaired: its file is not broken, follow it with h5py.File(path, 'r', "
                "swmr=True))"
            )
        done.cleared_flags = clear_open_flags(path) is not None
        libver = _swmr.LIBVER if block.version >= 3 else _open.LIBVER
        # No lock: a reader that follows the file holds a shared one (see _swmr.end_session)
        with h5py.File(path, "r+", libver=libver, locking=False) as f:
            where = _end_reason(layout or _fitting_layout(f))
            names = _unfinished(f, where, dataset_name)
            if where is None:  # nothing says which acquisition ended: only a crash is known
                names = names if done.cleared_flags else []
            for name in names:
                _record(f, where, name, reason, by, done)
                done.ended.append(name)
    except FileNotFoundError:
        raise OutputError(f"cannot repair {path}: no such file") from None
    except OSError as exc:
        raise OutputError(f"cannot repair {path}: {exc}") from None
    return done


def _fitting_layout(f: h5py.File) -> Layout:
    """The built-in layout the open file was written in: the one whose acquisition it has.

    Raises:
        OutputError: none or several fit (a layout of the user's own: name it).
    """
    fits = []
    for name in builtin_names():
        layout = load_layout(name)
        where = _end_reason(layout)
        if where is not None and any(where.owner(n) in f for n in _names_in(f, where.path)):
            fits.append(layout)
    if len(fits) != 1:
        raise OutputError(
            f"cannot tell which layout {f.filename} was written in ({len(fits)} built-in "
            "layouts fit); name it with --layout (tomcat, nxtomo or your layout file)"
        )
    return fits[0]


def _writing_processes(path: Path) -> list[int]:
    """Processes of this machine that have ``path`` open for writing (those we may see).

    Readers (opened read-only) do not count: a reader that follows the file stays.
    """
    target = path.resolve()
    found: list[int] = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                if fd.resolve() == target and _opened_for_writing(fd_dir.parent, fd.name):
                    found.append(int(fd_dir.parent.name))
                    break
        except OSError:  # another user's process, or one that just ended
            continue
    return found


def _opened_for_writing(proc: Path, fd: str) -> bool:
    flags = (proc / "fdinfo" / fd).read_text().split("flags:", 1)[1].split()[0]
    return int(flags, 8) & os.O_ACCMODE != os.O_RDONLY


def _record(
    f: h5py.File, where: _EndReason | None, name: str, reason: str, by: str, done: Repair
) -> None:
    note = f"{reason}; repaired by {by}"
    if done.cleared_flags:
        note += " (cleared the superblock's open-for-writing flags)"
    if where is None:  # the layout records no end reason: only the note, on the file
        owner: Any = f["/"]
    else:
        facts = FileFacts(name, f.filename, 0, 0, end_reason=f"error: {reason}; repaired by {by}")
        value = hdf5_value(evaluate(where.source, Env(facts, {}, closing=True)), where.source.dtype)
        path = where.path.replace(_NAME, name)
        if where.attribute:
            f[path].attrs[where.attribute] = value
        else:
            f.create_dataset(path, data=value)
        owner = f[where.owner(name)]
    owner.attrs["repair_time"] = iso_now()
    owner.attrs["repair_reason"] = note


def _end_reason(layout: Layout) -> _EndReason | None:
    for key, attr in layout.attributes.items():
        if attr.writer == "end_reason":
            return _EndReason("/", key, attr)
    for path, node in layout.walk():
        if isinstance(node, Dataset) and node.writer == "end_reason":
            return _EndReason(path, None, node)
        if isinstance(node, Group | Dataset):
            for key, attr in node.attributes.items():
                if attr.writer == "end_reason":
                    return _EndReason(path, key, attr)
    return None


def _unfinished(f: h5py.File, where: _EndReason | None, dataset_name: str | None) -> list[str]:
    """The dataset names of the acquisitions in ``f`` that have no end reason."""
    if where is None:
        return [dataset_name or ""]
    names = [dataset_name] if dataset_name is not None else _names_in(f, where.path)
    return [
        n for n in names
        if where.owner(n) in f and not where.is_recorded(f, n)
    ]  # fmt: skip


def _names_in(f: h5py.File, template: str) -> list[str]:
    """The dataset names for which the file has the first path part that holds the name."""
    if _NAME not in template:
        return [""]
    parts = template.split("/")
    at = next(i for i, p in enumerate(parts) if _NAME in p)
    parent = "/".join(parts[:at]) or "/"
    pattern = re.compile(re.escape(parts[at]).replace(re.escape(_NAME), "(.+)") + "$")
    group = f.get(parent)
    if not isinstance(group, h5py.Group):
        return []
    return [m.group(1) for m in map(pattern.match, group) if m is not None]

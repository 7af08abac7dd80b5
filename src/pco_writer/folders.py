"""Output folders that do not exist yet: found below the data root, and created there.

The C++ writer ran ``mkdir -p`` on the output folder after switching to the requesting user;
scan scripts rely on it and write each scan into a new folder. Here the control server only
checks a missing folder (:func:`missing_folders`) and the writer creates it
(:func:`make_folders`), as the user it runs as, so that the folders belong to that user and
are made only where that user may make them. Below a data root, no folder is ever made
through a link that leads out of it: the existing part of the path must resolve inside the
root, and the walk that creates the rest follows no link at all. Pure standard library (no
h5py). See docs/decisions/0070-output-folders-made-by-the-writer.md.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from pco_writer.errors import OutputError

__all__ = ["make_folders", "missing_folders"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def missing_folders(folder: Path, root: Path | None = None) -> list[Path]:
    """The folders of ``folder`` that do not exist, outermost first; ``[]`` when it exists.

    Args:
        folder: an absolute folder.
        root: when given, the folder's existing part must resolve inside it.

    Raises:
        OutputError: the existing part leads outside the root, is not a folder, or the
            missing part has a ``..`` in it.
    """
    existing, missing = _split_existing(folder)
    real = _resolve(existing)
    if not real.is_dir():
        raise OutputError(f"cannot make folder {folder}: {existing} is not a folder")
    if root is not None:
        _check_inside(folder, real, root.resolve())
    if ".." in missing:
        raise OutputError(f"cannot make folder {folder}: '..' after a folder that does not exist")
    return [existing.joinpath(*missing[: i + 1]) for i in range(len(missing))]


def make_folders(folder: Path, root: Path | None = None) -> list[Path]:
    """``mkdir -p folder``, below ``root`` when given; returns the folders it created.

    Below a root, the existing part is resolved and checked inside the root, then walked
    again from the root without following any link, and each missing folder is made in the
    folder opened before it: a link placed meanwhile makes it fail, never lead elsewhere.

    Raises:
        OutputError: outside the root, a link in the way, or the system refused (permission,
            a file where a folder should be); the message names the folder.
    """
    wanted = missing_folders(folder, root)
    if not wanted:
        return []
    try:
        if root is None:
            return _make_plainly(wanted)
        return _make_below(wanted, root.resolve())
    except OSError as exc:
        raise OutputError(
            f"cannot make folder {folder}: {exc.strerror or exc} ({exc.filename or folder}); "
            "create it, or choose a folder you may write to"
        ) from None


def _split_existing(folder: Path) -> tuple[Path, list[str]]:
    """The longest existing ancestor of ``folder`` and the names after it."""
    if not folder.is_absolute():
        raise OutputError(f"cannot make folder {folder}: the path is not absolute")
    missing: list[str] = []
    current = folder
    while not _exists(current) and current != current.parent:
        missing.insert(0, current.name)
        current = current.parent
    return current, missing


def _exists(path: Path) -> bool:
    """True when ``path`` exists (a link counts, even a dangling one); a folder we may not
    look into is an error, not a missing folder."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # a file above it is named later
        return False
    except OSError as exc:
        raise OutputError(
            f"cannot look for folder {path}: {exc.strerror}; the writer's user needs to reach it"
        ) from None
    return True


def _resolve(path: Path) -> Path:
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # a dangling link, a loop
        raise OutputError(f"cannot make folder below {path}: {exc}") from None


def _check_inside(folder: Path, real: Path, root: Path) -> None:
    if not real.is_relative_to(root):
        raise OutputError(
            f"cannot make folder {folder}: it leads to {real}, outside the data root {root}; "
            "remove the link, or choose a folder below the data root"
        )


def _make_plainly(wanted: list[Path]) -> list[Path]:
    created = []
    for path in wanted:
        try:
            path.mkdir()
        except FileExistsError:
            if not path.is_dir():
                raise
            continue
        created.append(path)
    return created


def _make_below(wanted: list[Path], root: Path) -> list[Path]:
    existing = _resolve(wanted[0].parent)
    names = list(existing.relative_to(root).parts) + [p.name for p in wanted]
    first_new = len(names) - len(wanted)
    created = []
    fd = os.open(root, _DIR_FLAGS)
    try:
        for i, name in enumerate(names):
            if i >= first_new and _mkdir_at(name, fd):
                created.append(wanted[i - first_new])
            parent, fd = fd, _descend(fd, name)
            os.close(parent)
    finally:
        os.close(fd)
    return created


def _mkdir_at(name: str, dir_fd: int) -> bool:
    """Make ``name`` in the open folder; False when it exists already (made meanwhile)."""
    try:
        os.mkdir(name, 0o777, dir_fd=dir_fd)  # the umask applies, as for mkdir -p
    except FileExistsError:
        return False
    return True


def _descend(dir_fd: int, name: str) -> int:
    """Open ``name`` below the open folder without following a link."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise OSError(exc.errno, "a link or a file is in the way", name) from None
        raise

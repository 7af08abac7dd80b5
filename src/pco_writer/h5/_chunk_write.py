"""Direct chunk writes that let go of the GIL while HDF5 writes a large chunk (ADR 0007).

h5py's ``write_direct_chunk`` holds the GIL for the whole ``H5Dwrite_chunk`` call: for a
pco.edge frame an 11 MB ``pwrite`` of several milliseconds, during which the receiver thread
cannot run a line of Python. Here the same function of the same HDF5 library that h5py has
loaded is called through ctypes, which releases the GIL for the call. h5py's own lock
(``phil``) is held meanwhile, so no other thread enters HDF5, which is not thread-safe.

Small chunks keep h5py's call: handing the GIL back and forth for each 32 kB chunk cost more
than it freed. Where the library cannot be found (not Linux, an HDF5 linked in another way),
every chunk takes h5py's call.
"""

from __future__ import annotations

import ctypes
import logging
from functools import cache
from typing import Any

import h5py
import numpy as np

__all__ = ["ChunkWriter", "GIL_FREE_FROM"]

log = logging.getLogger(__name__)

GIL_FREE_FROM = 1 << 20  # chunk bytes
_H5P_DEFAULT = 0


class ChunkWriter:
    """Writes whole chunks of one dataset, as ``dataset.id.write_direct_chunk`` does.

    Args:
        dataset: a chunked dataset.
    """

    def __init__(self, dataset: h5py.Dataset) -> None:
        self._dsid = dataset.id
        self._h5py_write = dataset.id.write_direct_chunk
        self.native = _native_write_chunk()
        self._hdf5_lock: Any = _phil() if self.native is not None else None
        self._offset = (ctypes.c_uint64 * dataset.ndim)()

    def write(self, offset: tuple[int, ...], data: Any, nbytes: int) -> None:
        """Store ``data`` (``nbytes`` long, already filtered) as the chunk at ``offset``."""
        if self.native is None or nbytes < GIL_FREE_FROM:
            self._h5py_write(offset, data)
            return
        self._offset[:] = offset
        view = np.frombuffer(data, np.uint8, count=nbytes)  # pins the buffer during the call
        with self._hdf5_lock:
            rc = self.native(self._dsid.id, _H5P_DEFAULT, 0, self._offset, nbytes,
                             view.ctypes.data)  # fmt: skip
        if rc < 0:  # h5py tries again and raises the error with HDF5's own message
            self._h5py_write(offset, view)


def _phil() -> Any:
    from h5py._objects import phil  # h5py's lock around every HDF5 call

    return phil


@cache
def _native_write_chunk() -> Any:
    """``H5Dwrite_chunk`` of the HDF5 library h5py has loaded, or None."""
    path = _loaded_hdf5()
    if path is None:
        log.info("no single libhdf5 found in /proc/self/maps: chunks go through h5py only")
        return None
    try:
        _phil()
        func = ctypes.CDLL(path).H5Dwrite_chunk  # already loaded: the same library and state
    except (ImportError, OSError, AttributeError) as exc:
        log.info("chunks are written through h5py only: %s", exc)
        return None
    func.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_uint32,
                     ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t, ctypes.c_void_p]  # fmt: skip
    func.restype = ctypes.c_int
    return func


def _loaded_hdf5() -> str | None:
    """The file of the one HDF5 library mapped into this process (Linux), or None."""
    if h5py.version.hdf5_version_tuple < (1, 10, 3):  # H5Dwrite_chunk came with 1.10.3
        return None
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            names = {line.split()[-1] for line in maps if "/libhdf5" in line}
    except OSError:
        return None
    core = [n for n in names if "/libhdf5-" in n or "/libhdf5.so" in n]
    return core[0] if len(core) == 1 else None

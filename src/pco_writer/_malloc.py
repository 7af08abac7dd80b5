"""glibc malloc settings for a process that streams large frames.

libzmq allocates every large message with ``malloc``. By default glibc serves such sizes with
``mmap`` and gives them back with ``munmap``, so each frame is faulted in afresh, which costs a
lot on virtual machines (measured in docs/decisions/0003-ring-buffer.md). Raising the mmap and
trim thresholds keeps those buffers in the heap, where the next message reuses them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["keep_large_buffers", "tune_for_streaming"]

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20  # glibc's maximum on 64-bit
_TRIM_THRESHOLD = 256 << 20


def keep_large_buffers() -> bool:
    """Ask glibc to reuse freed buffers of up to 32 MiB; False where that is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD))
    ok = bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)) and ok
    log.debug("malloc: keep buffers up to %d bytes: %s", _MMAP_THRESHOLD, ok)
    return ok


def tune_for_streaming() -> None:
    """Process settings of a writer: malloc thresholds, and a 1 ms GIL switch interval.

    The receiver gives up the GIL at every ``recv_into``; with the default 5 ms interval it then
    waits up to 5 ms for the HDF5 thread, while frames queue up in ZeroMQ. 1 ms measured
    10.6k -> 11.9k small frames per second in bench/throughput.py (0.2 ms: no better).
    """
    import sys

    keep_large_buffers()
    sys.setswitchinterval(0.001)

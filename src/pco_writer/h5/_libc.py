"""Linux system calls that Python's ``os`` module lacks, from the C library."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

__all__ = ["libc_function"]


def libc_function(name: str, argtypes: list[Any]) -> Any | None:
    """The C library's function ``name`` (returning int, errno kept), or None where it is
    missing (not Linux, an old C library)."""
    path = ctypes.util.find_library("c")
    try:
        func = getattr(ctypes.CDLL(path, use_errno=True), name) if path else None
    except (OSError, AttributeError):
        return None
    if func is not None:
        func.argtypes = argtypes
        func.restype = ctypes.c_int
    return func

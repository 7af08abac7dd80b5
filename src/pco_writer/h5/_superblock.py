"""The HDF5 superblock's file-consistency flags: read them, and clear them after a crash.

A file written with SWMR (superblock version 3) records in its superblock that a writer has
it open ("open for writing", "open for SWMR writing"). A writer killed with SIGKILL leaves
those flags set, and HDF5 then refuses a plain open ("file is already open for write (may
use <h5clear file> ...)"). Clearing them is what ``h5clear -s`` does; here it is done by
rewriting the flags byte and the superblock's checksum, as the file format specification
describes (superblock versions 2 and 3; checksum: Bob Jenkins' lookup3 ``hashlittle``).

```
offset  size  field (superblock versions 2 and 3; O = size of offsets, usually 8)
0       8     signature  \\x89HDF\\r\\n\\x1a\\n
8       1     version
9       1     size of offsets (O)
10      1     size of lengths
11      1     file consistency flags: 0x01 open for writing, 0x04 open for SWMR writing
12      4*O   base address, superblock extension, end of file, root group object header
12+4*O  4     checksum of the bytes before it
```
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Superblock", "clear_open_flags", "lookup3", "read_superblock"]

SIGNATURE = b"\x89HDF\r\n\x1a\n"
OPEN_FOR_WRITING, OPEN_FOR_SWMR_WRITING = 0x01, 0x04
_MASK = 0xFFFFFFFF
_FLAGS_AT = 11


@dataclass(frozen=True)
class Superblock:
    """What the repair needs of a file's superblock.

    Attributes:
        offset: where it starts in the file (0, or 512, 1024... after a user block).
        version: 0 and 1 (HDF5 1.8 format, no flags kept), 2, or 3 (SWMR-capable).
        flags: the file-consistency flags (versions 2 and 3; 0 for older ones).
        size: bytes up to and including the checksum (versions 2 and 3).
    """

    offset: int
    version: int
    flags: int
    size: int

    @property
    def open_for_writing(self) -> bool:
        """True when a writer has the file open, or died with it open."""
        return self.version >= 2 and bool(self.flags & (OPEN_FOR_WRITING | OPEN_FOR_SWMR_WRITING))


def read_superblock(path: Path) -> Superblock | None:
    """The superblock of ``path``; None when the file has no HDF5 signature.

    HDF5 looks for the signature at 0, 512, 1024, 2048... (a user block comes first).

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        offset = 0
        while offset + len(SIGNATURE) <= size:
            f.seek(offset)
            head = f.read(12)
            if head[:8] == SIGNATURE:
                return _parse(head, offset)
            offset = 512 if offset == 0 else offset * 2
    return None


def clear_open_flags(path: Path) -> Superblock | None:
    """Clear the "open for writing" flags of ``path`` (``h5clear -s``), in place.

    Returns:
        The superblock as it was when flags were cleared; None when there was nothing to do
        (no HDF5 file, an old superblock without flags, or flags already clear).

    Raises:
        OSError: the file cannot be read or written, or its superblock checksum is wrong
            before the change (a damaged superblock is left alone).
    """
    block = read_superblock(path)
    if block is None or not block.open_for_writing:
        return None
    with open(path, "r+b") as f:
        f.seek(block.offset)
        data = bytearray(f.read(block.size))
        body, stored = data[:-4], struct.unpack("<I", data[-4:])[0]
        if lookup3(bytes(body)) != stored:
            raise OSError(f"the superblock checksum of {path} is wrong: the file is damaged")
        body[_FLAGS_AT] = 0
        f.seek(block.offset)
        f.write(bytes(body) + struct.pack("<I", lookup3(bytes(body))))
        f.flush()
        os.fsync(f.fileno())
    return block


def _parse(head: bytes, offset: int) -> Superblock:
    version = head[8]
    if version < 2:
        return Superblock(offset, version, 0, 0)
    size_of_offsets = head[9]
    return Superblock(offset, version, head[_FLAGS_AT], 12 + 4 * size_of_offsets + 4)


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` of ``data``: HDF5's metadata checksum."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    if length == 0:
        return c
    pos = 0
    while length - pos > 12:
        x, y, z = struct.unpack_from("<III", data, pos)
        a, b, c = _mix((a + x) & _MASK, (b + y) & _MASK, (c + z) & _MASK)
        pos += 12
    x, y, z = struct.unpack("<III", data[pos:].ljust(12, b"\0"))  # zero bytes add nothing
    return _final((a + x) & _MASK, (b + y) & _MASK, (c + z) & _MASK)


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = ((a - c) & _MASK) ^ _rot(c, 4)
    c = (c + b) & _MASK
    b = ((b - a) & _MASK) ^ _rot(a, 6)
    a = (a + c) & _MASK
    c = ((c - b) & _MASK) ^ _rot(b, 8)
    b = (b + a) & _MASK
    a = ((a - c) & _MASK) ^ _rot(c, 16)
    c = (c + b) & _MASK
    b = ((b - a) & _MASK) ^ _rot(a, 19)
    a = (a + c) & _MASK
    c = ((c - b) & _MASK) ^ _rot(b, 4)
    b = (b + a) & _MASK
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    c = ((c ^ b) - _rot(b, 14)) & _MASK
    a = ((a ^ c) - _rot(c, 11)) & _MASK
    b = ((b ^ a) - _rot(a, 25)) & _MASK
    c = ((c ^ b) - _rot(b, 16)) & _MASK
    a = ((a ^ c) - _rot(c, 4)) & _MASK
    b = ((b ^ a) - _rot(a, 14)) & _MASK
    c = ((c ^ b) - _rot(b, 24)) & _MASK
    return c

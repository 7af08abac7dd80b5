"""Chunk codecs: compress a frame into the exact chunk an HDF5 filter decodes. No h5py here.

Each codec makes the bytes that ``write_direct_chunk`` stores and that the matching filter of
hdf5plugin reads back (see docs/decisions/0040-compression.md)::

    bitshuffle-lz4  filter 32008   8-byte BE raw size, 4-byte BE block size in bytes, then
                                   per block a 4-byte BE compressed size and the LZ4 block
    blosc-lz4       filter 32001   one blosc1 buffer (LZ4, byte shuffle)

The compressors release the GIL, so a pool of threads compresses in parallel. Frames that a
camera compressed already (Array-1.0 ``encoding``) are checked here and written as they came.
"""

from __future__ import annotations

import math
import os
import re
import struct
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from pco_writer.errors import ProtocolError
from pco_writer.names import COMPRESSIONS, Compression
from pco_writer.protocol import RAW_ENCODINGS, FrameHeader

__all__ = [
    "COMPRESSIONS", "Codec", "Compression", "check_encoding", "check_chunk", "get_codec",
    "payload_room",
]  # fmt: skip

BITSHUFFLE_ID = 32008
BLOSC_ID = 32001
_BSHUF_LZ4 = 2  # the bitshuffle filter's cd_values[4] for LZ4
_BLOSC_LZ4, _BLOSC_SHUFFLE, _BLOSC_LEVEL = 1, 1, 5
_BLOSC_MAX_FORMAT = 2  # blosc1's chunk format; blosc2 chunks are not readable by filter 32001


@dataclass(frozen=True)
class Codec:
    """One compression: how to make its chunks and which HDF5 filter reads them.

    Attributes:
        name: the ``--compression`` value.
        filter_id: the registered HDF5 filter.
        filter_options: its ``cd_values`` as hdf5plugin gives them (HDF5 fills in the rest).
    """

    name: str
    filter_id: int
    filter_options: tuple[int, ...]

    def compress(self, data: Any, itemsize: int) -> Any:
        """The chunk of one raw frame (a buffer of ``itemsize``-byte elements)."""
        if self.filter_id == BITSHUFFLE_ID:
            return _bitshuffle_lz4(data, itemsize)
        return _blosc_lz4(data, itemsize)

    def decompress(self, chunk: Any, header: FrameHeader) -> Any:
        """The raw pixels (a numpy array of ``header``'s shape and type) of one chunk.

        For viewers of a few frames (the preview, the live stream), never on the write path.
        """
        if self.filter_id == BITSHUFFLE_ID:
            return _bitshuffle_lz4_decode(chunk, header)
        raw = _blosc().decompress(bytes(chunk))
        return np.frombuffer(raw, header.dtype).reshape(header.shape)

    def accepts(self, encoding: str) -> bool:
        """True when a frame of this Array-1.0 ``encoding`` can be stored as it came."""
        pattern = _BSHUF_ENCODING if self.filter_id == BITSHUFFLE_ID else _BLOSC_ENCODING
        return pattern.fullmatch(encoding.lower()) is not None


_CODECS = {
    "bitshuffle-lz4": Codec("bitshuffle-lz4", BITSHUFFLE_ID, (0, _BSHUF_LZ4)),
    "blosc-lz4": Codec(
        "blosc-lz4", BLOSC_ID, (0, 0, 0, 0, _BLOSC_LEVEL, _BLOSC_SHUFFLE, _BLOSC_LZ4)
    ),
}
# "bs16-lz4<" is how Dectris-style streams name a bitshuffle-LZ4 chunk of 16-bit elements.
_BSHUF_ENCODING = re.compile(r"(bitshuffle-lz4|bshuf-lz4|bslz4|bs(8|16|32|64)-lz4)[<>]?")
_BLOSC_ENCODING = re.compile(r"blosc(-lz4)?")


def get_codec(name: str) -> Codec | None:
    """The codec of a ``--compression`` value; None for ``none``.

    Raises:
        ValueError: an unknown name.
    """
    if name == "none":
        return None
    try:
        return _CODECS[name]
    except KeyError:
        raise ValueError(
            f"unknown compression {name!r}; choose one of {', '.join(COMPRESSIONS)}"
        ) from None


# -- frames that arrive compressed ----------------------------------------------------------


def check_encoding(header: FrameHeader, compression: str) -> None:
    """Refuse a frame whose encoding this acquisition cannot store as it is.

    Raises:
        ProtocolError: ``encoding`` for an encoding no codec knows, ``encoding_mismatch``
            for one that differs from the acquisition's compression.
    """
    encoding = header.encoding.lower()
    if encoding in RAW_ENCODINGS:
        return
    owner = next((c for c in _CODECS.values() if c.accepts(encoding)), None)
    if owner is None:
        known = "raw, bitshuffle-lz4 (bs16-lz4...), blosc-lz4"
        raise ProtocolError(
            "encoding",
            f"frame {header.frame}: unknown encoding {header.encoding!r}; known: {known}",
        )
    if owner.name != compression:
        raise ProtocolError(
            "encoding_mismatch",
            f"frame {header.frame} arrives compressed ({header.encoding}) but this acquisition "
            f"writes compression {compression!r}; start it with --compression {owner.name}",
        )
    _check_element_size(header, encoding)


def payload_room(header: FrameHeader) -> int:
    """Bytes to reserve for a payload: the raw size, or a compressed payload's worst case.

    A compressed payload's size is not in the header; LZ4 and blosc grow incompressible data
    by well under 1/16 (LZ4: 1/255 plus 20 bytes a block of >= 1 KiB; blosc: 16 bytes).
    """
    raw = header.nbytes
    if header.is_raw:
        return raw
    return raw + raw // 16 + 4096


def check_chunk(header: FrameHeader, chunk: memoryview, nbytes: int) -> None:
    """Check a compressed payload's own header against the frame header.

    Raises:
        ProtocolError: ``payload_size`` when it does not fit its room or its header says
            another raw size, element size or format.
    """
    if nbytes > len(chunk):
        raise ProtocolError(
            "payload_size",
            f"frame {header.frame}: compressed payload of {nbytes} bytes is larger than "
            f"the raw frame could ever need ({len(chunk)})",
        )
    encoding = header.encoding.lower()
    check = _check_bitshuffle if _BSHUF_ENCODING.fullmatch(encoding) else _check_blosc
    problem = check(bytes(chunk[: min(nbytes, 16)]), header, nbytes)
    if problem:
        raise ProtocolError(
            "payload_size", f"frame {header.frame}: {header.encoding} payload {problem}"
        )


def _check_element_size(header: FrameHeader, encoding: str) -> None:
    match = re.match(r"bs(\d+)-", encoding)
    bits = 8 * header.dtype.itemsize
    if match and int(match.group(1)) != bits:
        raise ProtocolError(
            "encoding_mismatch",
            f"frame {header.frame}: encoding {header.encoding} shuffles {match.group(1)}-bit "
            f"elements but the frame is {header.type} ({bits}-bit)",
        )
    order = encoding[-1]
    stated = "<" if header.endianness == "little" else ">"
    if order in "<>" and order != stated and header.dtype.itemsize > 1:
        raise ProtocolError(
            "encoding_mismatch",
            f"frame {header.frame}: encoding {header.encoding} says another byte order than "
            f"endianness {header.endianness!r}",
        )


def _check_bitshuffle(head: bytes, header: FrameHeader, nbytes: int) -> str:
    if nbytes < 12:
        return f"has {nbytes} bytes, fewer than its 12-byte header"
    raw, block = struct.unpack(">QI", head[:12])
    if raw != header.nbytes:
        return f"holds {raw} raw bytes, the frame needs {header.nbytes}"
    itemsize = header.dtype.itemsize
    if block == 0 or block % (8 * itemsize):
        return f"has block size {block} bytes, not a multiple of 8 elements of {itemsize} bytes"
    return ""


def _check_blosc(head: bytes, header: FrameHeader, nbytes: int) -> str:
    if nbytes < 16:
        return f"has {nbytes} bytes, fewer than its 16-byte header"
    version, _, _, typesize = head[:4]
    raw, _, cbytes = struct.unpack("<III", head[4:16])
    if version > _BLOSC_MAX_FORMAT or version == 0:
        return f"is blosc format {version}; filter 32001 reads blosc1 (format 1-2)"
    if raw != header.nbytes:
        return f"holds {raw} raw bytes, the frame needs {header.nbytes}"
    if cbytes != nbytes:
        return f"says it has {cbytes} bytes but has {nbytes}"
    if typesize != header.dtype.itemsize:
        return f"has element size {typesize}, the frame {header.dtype.itemsize}"
    return ""


# -- the compressors --------------------------------------------------------------------------


def _bitshuffle() -> Any:
    """The bitshuffle module, its OpenMP limited to one thread per call.

    bitshuffle's wheel parallelises each call with OpenMP; called from a pool of threads on
    two cores that oversubscribes and made compression three times slower here. libgomp reads
    OMP_NUM_THREADS once, when it is loaded: hence before the first import.
    """
    if "bitshuffle" not in sys.modules:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    import bitshuffle

    return bitshuffle


def _block_elements(itemsize: int) -> int:
    """Blocks of 16 KiB (a multiple of 8 elements): on noisy pco.edge frames, 1.55 GB/s a core
    against 1.38 with bitshuffle's default 8 KiB, and a slightly better ratio (ADR 0040).
    Readers take the block size from each chunk's header."""
    return max(16384 // itemsize // 8 * 8, 128)


def _bitshuffle_lz4(data: Any, itemsize: int) -> Any:
    bitshuffle = _bitshuffle()
    elements = np.frombuffer(data, dtype=f"u{itemsize}")
    block = _block_elements(itemsize)
    body = bitshuffle.compress_lz4(elements, block)  # releases the GIL
    chunk = np.empty(12 + body.size, np.uint8)
    chunk[:12] = np.frombuffer(struct.pack(">QI", elements.nbytes, block * itemsize), np.uint8)
    chunk[12:] = body
    return chunk


def _bitshuffle_lz4_decode(chunk: Any, header: FrameHeader) -> Any:
    data = np.frombuffer(chunk, np.uint8)
    _, block_bytes = struct.unpack(">QI", data[:12].tobytes())
    itemsize = header.dtype.itemsize
    flat = _bitshuffle().decompress_lz4(
        data[12:], (math.prod(header.shape),), np.dtype(f"u{itemsize}"), block_bytes // itemsize
    )
    return flat.view(header.dtype).reshape(header.shape)


_blosc_ready: list[Any] = []


def _blosc() -> Any:
    """python-blosc, set to release the GIL (off by default) and to use no threads of its own.

    With the GIL released it compresses with a private context, so calls from several
    threads run in parallel; the pool of threads is the parallelism.
    """
    if not _blosc_ready:
        import blosc

        blosc.set_releasegil(True)
        blosc.set_nthreads(1)
        _blosc_ready.append(blosc)
    return _blosc_ready[0]


def _blosc_lz4(data: Any, itemsize: int) -> Any:
    blosc = _blosc()
    return blosc.compress(
        data, typesize=itemsize, clevel=_BLOSC_LEVEL, shuffle=blosc.SHUFFLE, cname="lz4"
    )

"""A preview of one frame: downsampled, contrast stretched, as a grey PNG. Pure, no I/O.

For people looking at a run (the status page), never on the write path: the writer thread
only hands over a copy of a frame now and then (:mod:`pco_writer.writer._tap`); this module
makes the picture, on whichever thread asks for it. The PNG is written with ``zlib`` alone
(one IHDR, one IDAT, filter type 0), so no imaging library is needed.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_SIDE", "Preview", "downsample", "encode_png", "preview_png", "stretch"]

MAX_SIDE = 512
"""The longest side of a preview, in pixels."""
_LOW, _HIGH = 0.5, 99.5  # percentiles mapped to black and white: a few hot pixels do not count
_SAMPLES = 16384  # pixels the percentiles are taken from, at most
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Camera frames are noisy: run-length and Huffman coding alone make a PNG as small as
# level 6 does (185 against 183 kB for a pco.edge preview), in 1.7 ms instead of 6 ms.
_ZLIB_LEVEL, _ZLIB_STRATEGY = 1, zlib.Z_RLE


@dataclass(frozen=True)
class Preview:
    """The PNG of one frame, and which frame it is."""

    png: bytes
    frame_id: int
    """The frame's id (its Array-1.0 ``frame``)."""
    index: int
    """Its index in the acquisition."""
    shape: tuple[int, ...]
    """The frame's shape (the PNG is smaller)."""


def preview_png(pixels: npt.NDArray[Any], max_side: int = MAX_SIDE) -> bytes:
    """The PNG of a frame: its first plane, downsampled to ``max_side``, stretched to 8 bits."""
    return encode_png(stretch(downsample(pixels, max_side)))


def downsample(pixels: npt.NDArray[Any], max_side: int = MAX_SIDE) -> npt.NDArray[Any]:
    """Every n-th pixel of every n-th row, n the smallest step that fits ``max_side``.

    A frame of more than two dimensions shows its first plane; a line shows as one row.
    """
    plane = pixels.reshape(-1, *pixels.shape[-2:])[0] if pixels.ndim > 2 else pixels
    if plane.ndim < 2:
        plane = plane.reshape(1, -1)
    step = max(1, math.ceil(max(plane.shape) / max_side))
    return plane[::step, ::step]


def stretch(image: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Grey levels 0-255 spanning the 0.5 to 99.5 percentiles of the image.

    Not-a-number and infinite values show black; a flat image shows mid grey.
    """
    values = np.asarray(image, dtype=np.float32)
    floats = np.asarray(image).dtype.kind == "f"
    if floats and not np.isfinite(values).all():
        values = np.where(np.isfinite(values), values, np.nan)
    sample = values.ravel()[:: max(1, values.size // _SAMPLES)]
    if floats and not np.isfinite(sample).any():
        return np.zeros(values.shape, np.uint8)
    percentile = np.nanpercentile if floats else np.percentile
    low, high = (float(v) for v in percentile(sample, (_LOW, _HIGH)))
    if high <= low:
        return np.where(np.isfinite(values), 128, 0).astype(np.uint8)
    scaled: npt.NDArray[np.float32] = (values - low) * np.float32(255.0 / (high - low))
    np.clip(scaled, 0, 255, out=scaled)
    return (np.nan_to_num(scaled, nan=0.0) if floats else scaled).astype(np.uint8)


def encode_png(grey: npt.NDArray[np.uint8]) -> bytes:
    """An 8-bit greyscale PNG of a 2-D array."""
    height, width = grey.shape
    rows = np.zeros((height, width + 1), np.uint8)  # each row starts with its filter type, 0
    rows[:, 1:] = grey
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8 bits, grey, no interlace
    deflate = zlib.compressobj(_ZLIB_LEVEL, zlib.DEFLATED, 15, 9, _ZLIB_STRATEGY)
    body = deflate.compress(rows.tobytes()) + deflate.flush()
    return _PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

"""PSI Array-1.0: parsing and validating the JSON header of a stream message. Pure, no I/O.

A message has two parts: a JSON object header, then the raw pixel bytes. Real pco.edge
cameras spell the byte-order key ``endianess``; both spellings are accepted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from pco_writer.errors import ProtocolError

__all__ = [
    "ARRAY_1_0", "DTYPE_NAMES", "FrameHeader", "HeaderParser", "parse_header", "check_payload",
    "is_storable_text",
]  # fmt: skip

ARRAY_1_0 = "array-1.0"
DTYPE_NAMES = (
    "uint8", "uint16", "uint32", "uint64",
    "int8", "int16", "int32", "int64",
    "float16", "float32", "float64",
)  # fmt: skip
_ITEMSIZE = {name: np.dtype(name).itemsize for name in DTYPE_NAMES}
_BYTE_ORDER: dict[str, Literal["<", ">"]] = {"little": "<", "big": ">"}
# Encodings whose payload is the plain array: checked against prod(shape) x itemsize.
RAW_ENCODINGS = frozenset({"", "raw", "none"})
MAX_FRAME_ID = 2**63 - 1  # ids are stored as int64/uint64 and added to: larger ones are garbage
_KNOWN_KEYS = frozenset(
    {"frame", "shape", "type", "endianness", "endianess", "htype", "source", "tag", "encoding"}
)


@dataclass(slots=True)
class FrameHeader:
    """The validated header of one Array-1.0 message (treat it as read-only).

    Not a frozen dataclass: frozen ``__init__`` costs several microseconds a frame.
    """

    frame: int
    shape: tuple[int, ...]
    type: str
    endianness: str
    htype: str = ARRAY_1_0
    source: str = ""
    tag: str = ""
    encoding: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """Every other header field (e.g. an angle or timestamp), for layouts that record them."""

    @property
    def dtype(self) -> np.dtype[Any]:
        """The numpy dtype of the pixels, with the stream's byte order."""
        return np.dtype(self.type).newbyteorder(_BYTE_ORDER[self.endianness])

    @property
    def nbytes(self) -> int:
        """The size of an uncompressed payload in bytes."""
        return math.prod(self.shape) * _ITEMSIZE[self.type]

    def with_frame(self, frame: int) -> FrameHeader:
        """The same header for another frame id."""
        return FrameHeader(
            frame, self.shape, self.type, self.endianness, self.htype, self.source, self.tag,
            self.encoding, self.extra,
        )  # fmt: skip

    @property
    def is_raw(self) -> bool:
        """True when the payload is the plain array (not compressed by the camera)."""
        return self.encoding.lower() in RAW_ENCODINGS


def parse_header(raw: bytes | bytearray | memoryview | str) -> FrameHeader:
    """Parse and validate an Array-1.0 JSON header.

    Raises:
        ProtocolError: naming the field that is wrong; ``reason`` is its short key.
    """
    try:
        obj = json.loads(bytes(raw) if isinstance(raw, memoryview) else raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("header_not_json", f"header is not valid JSON: {exc}") from None
    except RecursionError:  # e.g. "[[[[...": garbage must not end the receiver
        raise ProtocolError(
            "header_not_json", "header is not valid JSON: nested too deeply"
        ) from None
    if not isinstance(obj, dict):
        raise ProtocolError(
            "header_not_object", f"header must be a JSON object, got {type(obj).__name__}"
        )
    return FrameHeader(
        frame=_frame_id(obj),
        shape=_shape(obj),
        type=_dtype_name(obj),
        endianness=_endianness(obj),
        htype=_htype(obj),
        source=_text(obj, "source"),
        tag=_text(obj, "tag"),
        encoding=_text(obj, "encoding"),
        extra={k: v for k, v in obj.items() if k not in _KNOWN_KEYS},
    )


# The frame id of a header, where it is a plain JSON integer (no sign, no leading zero) of at
# most 18 digits (always below MAX_FRAME_ID); longer ones take the full parse, which checks.
_FRAME_ID = re.compile(rb'"frame"\s*:\s*(0|[1-9][0-9]{0,17})(?=\s*[,}])')


class HeaderParser:
    """Parses headers, reusing the last one when a header differs from it only in frame id.

    A camera sends the same header for every frame but for the id, so parsing and checking
    the JSON once per acquisition instead of once per frame saves most of the per-frame cost
    of small frames. A header that differs in anything else is parsed in full.
    """

    def __init__(self) -> None:
        self._key = b""
        self._last: FrameHeader | None = None

    def parse(self, raw: bytes) -> FrameHeader:
        """As :func:`parse_header`."""
        match = _FRAME_ID.search(raw)
        if match is None or raw.count(b'"frame"') != 1:
            return parse_header(raw)
        key = raw[: match.start(1)] + raw[match.end(1) :]
        if key == self._key and self._last is not None:
            return self._last.with_frame(int(match.group(1)))
        header = parse_header(raw)
        self._key, self._last = key, header
        return header


def check_payload(header: FrameHeader, nbytes: int) -> None:
    """Check that a raw payload holds exactly prod(shape) x itemsize bytes."""
    if header.is_raw and nbytes != header.nbytes:
        raise ProtocolError(
            "payload_size",
            f"frame {header.frame}: payload has {nbytes} bytes, but shape {list(header.shape)} "
            f"of {header.type} needs {header.nbytes}",
        )
    if nbytes == 0:
        raise ProtocolError("payload_size", f"frame {header.frame}: payload is empty")


def _frame_id(obj: dict[str, Any]) -> int:
    value = obj.get("frame")
    if type(value) is not int or not 0 <= value <= MAX_FRAME_ID:
        raise ProtocolError(
            "frame", f"header field 'frame' must be an integer from 0 to 2**63 - 1, got {value!r}"
        )
    return value


def _shape(obj: dict[str, Any]) -> tuple[int, ...]:
    value = obj.get("shape")
    ok = (
        isinstance(value, list)
        and len(value) in (2, 3)
        and all(type(n) is int and n > 0 for n in value)
    )
    if not ok:
        raise ProtocolError(
            "shape",
            f"header field 'shape' must be a list of 2 or 3 positive integers, got {value!r}",
        )
    return tuple(value)  # type: ignore[arg-type]


def _dtype_name(obj: dict[str, Any]) -> str:
    value = obj.get("type")
    if value not in DTYPE_NAMES:
        raise ProtocolError(
            "type", f"header field 'type' must be one of {', '.join(DTYPE_NAMES)}, got {value!r}"
        )
    return str(value)


def _endianness(obj: dict[str, Any]) -> str:
    value = obj.get("endianness", obj.get("endianess", "little"))
    if not isinstance(value, str) or value not in _BYTE_ORDER:
        raise ProtocolError(
            "endianness", f"header field 'endianness' must be 'little' or 'big', got {value!r}"
        )
    return str(value)


def _htype(obj: dict[str, Any]) -> str:
    value = obj.get("htype", ARRAY_1_0)
    if not isinstance(value, str) or not value.startswith("array-1") or not is_storable_text(value):
        raise ProtocolError("htype", f"header field 'htype' must be 'array-1.0', got {value!r}")
    return value


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProtocolError(key, f"header field {key!r} must be a string, got {value!r}")
    if not is_storable_text(value):
        raise ProtocolError(
            key, f"header field {key!r} is text no file can store (NUL or lone surrogate): "
            f"{value!r}",
        )  # fmt: skip
    return value


def is_storable_text(value: object) -> bool:
    """True for a string HDF5 can store: no NUL, no lone surrogate (JSON can escape both)."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

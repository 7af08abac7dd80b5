"""Copies of a few written frames for people and viewers, taken off the write path.

The writer thread calls :meth:`FrameTap.offer` with each batch it wrote. That costs a clock
comparison, except that every :data:`PREVIEW_INTERVAL_S` one frame is copied for the preview
(and the acquisition's last frame when it comes), and with a live stream every N-th written
frame is copied for it (skipped while the stream is behind). Everything else happens on other
threads: the PNG is made when someone asks for it (the REST API's thread, once per copied
frame), and the live stream decompresses and sends on its own thread. See
docs/decisions/0090-live-view-off-the-write-path.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from pco_writer.buffer import ReceivedFrame
from pco_writer.codecs import get_codec
from pco_writer.preview import Preview, preview_png
from pco_writer.protocol import FrameHeader

__all__ = ["PREVIEW_INTERVAL_S", "FrameTap", "Preview", "Stream", "TakenFrame"]

log = logging.getLogger(__name__)

PREVIEW_INTERVAL_S = 0.5
"""The writer thread copies a frame for the preview at most this often."""


@dataclass(frozen=True)
class TakenFrame:
    """A copy of one written frame, as it went into the file (raw, or its compressed chunk)."""

    header: FrameHeader
    index: int
    payload: bytes
    compression: str
    """``none``, or the codec whose chunk ``payload`` is."""

    @classmethod
    def copy_of(cls, frame: ReceivedFrame, compression: str) -> TakenFrame:
        """Copy a frame out of the ring (its room is released after the write)."""
        payload = bytes(memoryview(frame.data).cast("B")[: frame.nbytes])
        return cls(frame.header, frame.index, payload, compression)

    def pixels(self) -> npt.NDArray[Any]:
        """The frame's pixels, decompressed when needed."""
        codec = get_codec(self.compression)
        if codec is not None:
            return np.asarray(codec.decompress(self.payload, self.header))
        return np.frombuffer(self.payload, self.header.dtype).reshape(self.header.shape)


class Stream(Protocol):
    """What the tap needs of a live stream (:class:`pco_writer.writer._live.LiveStream`)."""

    @property
    def every(self) -> int: ...  # noqa: D102

    def has_room(self) -> bool: ...  # noqa: D102
    def put(self, frame: TakenFrame) -> None: ...  # noqa: D102


class FrameTap:
    """The latest preview frame, and every N-th frame for a live stream.

    Args:
        compression: the acquisition's compression: what the written payloads are.
        stream: the live stream, or None.
        interval: seconds between two preview copies, at least.
        last_index: the acquisition's last index (-1: until stopped); a batch that ends with
            it is copied whatever the interval, so that a finished run shows its last frame.
    """

    def __init__(
        self,
        compression: str,
        stream: Stream | None = None,
        interval: float = PREVIEW_INTERVAL_S,
        last_index: int = -1,
    ) -> None:
        self.compression = compression
        self.last_index = last_index
        self.stream = stream
        self.interval = interval
        self.n_copies = 0
        """Frames copied on the writer thread so far (for tests and the benchmark)."""
        self._due = 0.0
        self._seen = 0  # frames offered: the stream takes every N-th of them
        self._latest: TakenFrame | None = None
        self._preview: Preview | None = None
        self._lock = threading.Lock()

    def offer(self, frames: Sequence[ReceivedFrame], now: float) -> None:
        """Writer thread: a batch was written (placed frames, in order, not empty)."""
        if now >= self._due or frames[-1].index == self.last_index:
            self._due = now + self.interval
            self._latest = self._copy(frames[-1])
        stream = self.stream
        if stream is not None:
            every, seen = stream.every, self._seen
            for frame in frames:
                if seen % every == 0 and stream.has_room():
                    stream.put(self._copy(frame))
                seen += 1
            self._seen = seen

    def preview(self) -> Preview | None:
        """The PNG of the latest copied frame (made on the caller's thread, once per frame)."""
        with self._lock:
            taken = self._latest
            if taken is None:
                return None
            if self._preview is None or self._preview.index != taken.index:
                t0 = time.monotonic()
                png = preview_png(taken.pixels())
                self._preview = Preview(png, taken.header.frame, taken.index, taken.header.shape)
                log.debug("preview of frame %d in %.1f ms", taken.header.frame,
                          1000 * (time.monotonic() - t0))  # fmt: skip
            return self._preview

    def _copy(self, frame: ReceivedFrame) -> TakenFrame:
        self.n_copies += 1
        return TakenFrame.copy_of(frame, self.compression)

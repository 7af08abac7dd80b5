"""Parallel compression between the ring buffer and the HDF5 writer thread, order kept.

```
FrameBuffer --get_batch--> submit to a pool of threads (compress; GIL released)
            <--release---- HDF5 writer thread <--get_batch-- futures, oldest first
```

:class:`CompressingSource` looks like the buffer to the writer thread (``get_batch``,
``release``, ``drained``), so the write loop is the same with or without compression. Frames
come out in the order they went in, whatever order the workers finish in; only the writer
thread touches the file. A frame's ring room is released after its compressed copy is
written, and at most ``max_in_flight`` frames are being compressed or wait to be written, so
memory stays bounded: the ring, plus ``max_in_flight`` compressed copies.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures

from pco_writer.buffer import FrameBuffer, ReceivedFrame
from pco_writer.codecs import Codec
from pco_writer.errors import OutputError

__all__ = ["CompressingSource", "compressor_for", "default_workers"]

Encode = Callable[[ReceivedFrame], ReceivedFrame]
_IN_FLIGHT_PER_WORKER = 2  # enough to keep workers busy while the writer thread writes
IN_FLIGHT_BYTES = 256 << 20
"""Raw bytes of the frames in flight, at most: each holds a compressed copy and, while it is
compressed, the codec's scratch; with a thread per core of a 16-core host, two pco.edge
frames a thread made the peak RSS 1.9 GB with a 1 GiB buffer."""


def default_workers() -> int:
    """One compression thread per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def compressor_for(codec: Codec) -> Encode:
    """Compress a raw frame into its chunk; a frame that arrived compressed stays as it is.

    The copy keeps the original's ``span``, so releasing it frees the original's ring room,
    and its receive time.
    """

    def encode(frame: ReceivedFrame) -> ReceivedFrame:
        if not frame.header.is_raw:
            return frame  # the receiver checked that it matches this codec
        chunk = codec.compress(frame.data, frame.header.dtype.itemsize)
        return ReceivedFrame(
            frame.index, frame.header, chunk, len(chunk), frame.span, frame.t_received
        )

    return encode


class CompressingSource:
    """Frames from a buffer, compressed by a pool of threads, handed out in order.

    Args:
        buffer: where raw frames come from (and whose room :meth:`release` frees).
        encode: makes the chunk of one frame; runs on a worker thread.
        workers: threads in the pool.
        max_in_flight: frames taken from the buffer but not yet handed out, at most.
    """

    def __init__(
        self, buffer: FrameBuffer, encode: Encode, workers: int, max_in_flight: int = 0
    ) -> None:
        if workers < 1:
            raise ValueError(f"compression needs at least 1 worker thread, got {workers}")
        self.buffer = buffer
        self.max_in_flight = max_in_flight or _IN_FLIGHT_PER_WORKER * workers
        self._encode = encode
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="compress")
        self._pending: deque[tuple[ReceivedFrame, Future[ReceivedFrame]]] = deque()
        self._frame_bytes = 0  # the largest frame seen

    @property
    def in_flight(self) -> int:
        """Frames being compressed or waiting to be handed out."""
        return len(self._pending)

    @property
    def closed(self) -> bool:
        """True once the buffer is closed: no more frames will come."""
        return self.buffer.closed

    @property
    def drained(self) -> bool:
        """True when the buffer is drained and every frame was handed out."""
        return not self._pending and self.buffer.drained

    def get_batch(self, max_items: int, timeout: float) -> list[ReceivedFrame]:
        """Up to ``max_items`` compressed frames in order, waiting up to ``timeout`` s.

        Raises:
            OutputError: a frame could not be compressed.
        """
        self._top_up(timeout if not self._pending else 0.0)
        if self._pending and not self._pending[0][1].done():
            wait_futures([self._pending[0][1]], timeout)
        out: list[ReceivedFrame] = []
        while self._pending and len(out) < max_items and self._pending[0][1].done():
            frame, future = self._pending.popleft()
            out.append(_result(frame, future))
        self._top_up(0.0)
        return out

    def release(self, frames: list[ReceivedFrame]) -> None:
        """Free the ring room of frames handed out (call after writing them)."""
        self.buffer.release(frames)

    def shutdown(self) -> int:
        """Stop the workers; returns how many frames were taken but never handed out."""
        dropped = len(self._pending)
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        return dropped

    def _top_up(self, timeout: float) -> None:
        # each frame in flight holds its compressed copy: bound the bytes (the first frame
        # alone tells the size)
        most = max(1, IN_FLIGHT_BYTES // self._frame_bytes) if self._frame_bytes else 1
        room = min(self.max_in_flight, most) - len(self._pending)
        if room <= 0:
            return
        for frame in self.buffer.get_batch(room, timeout):
            self._frame_bytes = max(self._frame_bytes, frame.nbytes)
            self._pending.append((frame, self._submit(frame)))

    def _submit(self, frame: ReceivedFrame) -> Future[ReceivedFrame]:
        if not frame.header.is_raw:  # arrived compressed: nothing to do on a worker
            done: Future[ReceivedFrame] = Future()
            done.set_result(self._encode(frame))
            return done
        return self._pool.submit(self._encode, frame)


def _result(frame: ReceivedFrame, future: Future[ReceivedFrame]) -> ReceivedFrame:
    try:
        return future.result()
    except Exception as exc:
        raise OutputError(
            f"compressing frame {frame.header.frame} failed: {type(exc).__name__}: {exc}"
        ) from exc

"""A bounded FIFO of received frames, measured in bytes, between the receiver and the writer.

It holds the received message buffers themselves (zero-copy ``zmq.Frame`` objects), so its
capacity bounds the memory that frames waiting for the disk can take. When it is full,
``put`` blocks: the receiver stops reading and ZeroMQ/TCP push back on the camera. Nothing is
ever dropped here except by an explicit ``clear`` (a kill).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from pco_writer.protocol import FrameHeader

__all__ = ["Payload", "ReceivedFrame", "FrameBuffer", "BufferStats"]


class Payload(Protocol):
    """Anything that exposes the raw bytes of a payload (``zmq.Frame``, ``bytes``)."""

    @property
    def buffer(self) -> Any: ...  # noqa: D102


@dataclass(slots=True)
class ReceivedFrame:
    """One validated frame on its way to the file.

    Attributes:
        index: position in the acquisition: frame id minus the first frame id.
        header: the parsed Array-1.0 header.
        data: the payload's bytes (a buffer-protocol object; never copied).
        nbytes: the payload's size.
        keepalive: the object that owns ``data`` (a ``zmq.Frame``), held until written.
    """

    index: int
    header: FrameHeader
    data: Any
    nbytes: int
    keepalive: Any = None


@dataclass(slots=True)
class BufferStats:
    """Counters of the buffer, for statistics and benchmarks."""

    capacity_bytes: int
    used_bytes: int = 0
    peak_bytes: int = 0
    n_full_waits: int = 0
    full_wait_seconds: float = 0.0
    n_dropped: int = 0


@dataclass
class FrameBuffer:
    """Bounded FIFO of :class:`ReceivedFrame`, with the capacity in bytes.

    One producer (the receiver) and one consumer (the writer thread).
    """

    capacity_bytes: int
    _items: deque[ReceivedFrame] = field(default_factory=deque, init=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    _closed: bool = field(default=False, init=False)
    stats: BufferStats = field(init=False)

    def __post_init__(self) -> None:
        if self.capacity_bytes <= 0:
            raise ValueError(f"buffer capacity must be > 0 bytes, got {self.capacity_bytes}")
        self.stats = BufferStats(self.capacity_bytes)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called: no more frames will come."""
        return self._closed

    def put(self, item: ReceivedFrame, timeout: float) -> bool:
        """Append a frame, waiting up to ``timeout`` s for room.

        A frame larger than the whole capacity is still taken when the buffer is empty,
        so that one oversized frame cannot block the stream forever.

        Returns:
            False when there was no room in time (call again) or the buffer is closed.
        """
        with self._cond:
            if not self._has_room(item.nbytes):
                start = time.monotonic()
                self.stats.n_full_waits += 1
                self._cond.wait_for(lambda: self._has_room(item.nbytes), timeout)
                self.stats.full_wait_seconds += time.monotonic() - start
                if not self._has_room(item.nbytes):
                    return False
            if self._closed:
                return False
            self._items.append(item)
            self.stats.used_bytes += item.nbytes
            self.stats.peak_bytes = max(self.stats.peak_bytes, self.stats.used_bytes)
            self._cond.notify_all()
            return True

    def get_batch(self, max_items: int, timeout: float) -> list[ReceivedFrame]:
        """Take up to ``max_items`` frames, waiting up to ``timeout`` s for the first one.

        Returns:
            The frames in arrival order; empty on timeout or when closed and drained.
        """
        with self._cond:
            if not self._items:
                self._cond.wait_for(lambda: self._items or self._closed, timeout)
            n = min(max_items, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            self.stats.used_bytes -= sum(f.nbytes for f in batch)
            if batch:
                self._cond.notify_all()
            return batch

    def close(self) -> None:
        """Say that no more frames will come; the consumer drains what is left."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def clear(self) -> int:
        """Drop every frame not yet taken (a kill) and close. Returns how many were dropped."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self.stats.used_bytes = 0
            self.stats.n_dropped += n
            self._closed = True
            self._cond.notify_all()
            return n

    @property
    def drained(self) -> bool:
        """True when closed and empty: the consumer can finish."""
        return self._closed and not self._items

    def _has_room(self, nbytes: int) -> bool:
        if self._closed or not self._items:
            return True
        return self.stats.used_bytes + nbytes <= self.capacity_bytes

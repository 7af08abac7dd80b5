"""The ring buffer between the receiver and the HDF5 writer: one block of memory, in bytes.

The receiver reserves room for a frame, has ZeroMQ receive the payload straight into it
(``recv_into``: libzmq copies from its message, without the GIL), then commits the frame.
The writer thread takes committed frames in order, writes them, and releases their room.
The memory is allocated and mapped once, so it is bounded exactly and never faulted in
while frames arrive (see docs/decisions/0003-ring-buffer.md for what was measured).

When the ring is full, ``reserve`` waits: the receiver stops reading and ZeroMQ and TCP push
back on the camera. Nothing is ever dropped here: every committed frame is taken by the
writer thread, which writes it or records in the frame ledger why not (a kill, say).
"""

from __future__ import annotations

import mmap
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from pco_writer.protocol import FrameHeader

__all__ = ["BufferStats", "FrameBuffer", "ReceivedFrame", "Slot"]

_ALIGN = 64  # payloads start on cache-line boundaries
BATCH_BYTES = 16 << 20  # a lingering consumer takes a batch once this much is waiting


@dataclass(slots=True)
class ReceivedFrame:
    """One validated frame on its way to the file.

    Attributes:
        index: position in the acquisition (frame id minus the first frame id); -1 until the
            frame ledger places it.
        header: the parsed Array-1.0 header.
        data: the payload bytes (a memoryview into the ring, or any buffer in tests).
        nbytes: the payload's size.
        span: the ring bytes to release once written (payload, alignment and any wrap gap).
        t_received: monotonic time its header arrived (0: not from a receiver), for the
            write latency.
    """

    index: int
    header: FrameHeader
    data: Any
    nbytes: int
    span: int = 0
    t_received: float = 0.0


@dataclass(slots=True)
class Slot:
    """Room reserved in the ring for one payload."""

    view: memoryview
    span: int


@dataclass(slots=True)
class BufferStats:
    """Counters of the buffer, for statistics and benchmarks."""

    capacity_bytes: int
    used_bytes: int = 0
    peak_bytes: int = 0
    n_full_waits: int = 0
    full_wait_seconds: float = 0.0


class FrameBuffer:
    """A bounded FIFO of frames whose payloads live in one preallocated ring of bytes.

    One producer (the receiver) and one consumer (the writer thread): the waiting flags below
    assume exactly one thread on each side.

    Args:
        capacity_bytes: the size of the ring; a frame larger than it cannot be buffered.
    """

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes <= 0:
            raise ValueError(f"buffer capacity must be > 0 bytes, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self.stats = BufferStats(capacity_bytes)
        self._ring = _allocate(capacity_bytes)
        self._head = 0  # next free byte
        self._items: deque[ReceivedFrame] = deque()
        self._cond = threading.Condition()
        self._closed = False
        # Who is waiting: a notify costs a system call, and at 10k frames/s mostly nobody is.
        self._producer_waits = False
        self._consumer_waits = False
        self._wanted = 1  # frames the waiting consumer wants before it is worth waking
        self._queued_bytes = 0  # payload bytes committed and not yet taken

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called: no more frames will come."""
        return self._closed

    @property
    def drained(self) -> bool:
        """True when closed and empty: the consumer can finish."""
        return self._closed and not self._items

    def reserve(self, nbytes: int, timeout: float) -> Slot | None:
        """Room for a payload of ``nbytes``, waiting up to ``timeout`` s while the ring is full.

        Returns:
            The slot, or None when there was no room in time (call again) or when closed.
        """
        if _aligned(nbytes) > self.capacity_bytes:
            raise ValueError(
                f"a frame of {nbytes} bytes does not fit a buffer of {self.capacity_bytes} "
                "bytes; give the writer a larger buffer (--buffer-bytes)"
            )
        with self._cond:
            if not self._closed and self._room(nbytes) is None:
                t0 = time.monotonic()
                self.stats.n_full_waits += 1
                self._producer_waits = True
                self._cond.notify_all()  # a lingering consumer takes what is there now
                self._cond.wait_for(lambda: self._closed or self._room(nbytes) is not None, timeout)
                self._producer_waits = False
                self.stats.full_wait_seconds += time.monotonic() - t0
            placed = None if self._closed else self._room(nbytes)
            if placed is None:
                return None
            start, span = placed
            self._head = (start + _aligned(nbytes)) % self.capacity_bytes
            self.stats.used_bytes += span
            self.stats.peak_bytes = max(self.stats.peak_bytes, self.stats.used_bytes)
            return Slot(self._ring[start : start + nbytes], span)

    def cancel(self, slot: Slot) -> None:
        """Give back the last reserved slot unused (its payload was not a valid frame)."""
        with self._cond:
            self._head = (self._head - slot.span) % self.capacity_bytes
            self.stats.used_bytes -= slot.span  # only the producer waits for room: no notify

    def shrink(self, slot: Slot, nbytes: int) -> Slot:
        """Give back the unused end of the last reserved slot (a compressed payload's room).

        Returns:
            The slot of ``nbytes`` (<= its size), to commit instead.
        """
        with self._cond:
            unused = _aligned(len(slot.view)) - _aligned(nbytes)
            if unused <= 0:
                return slot
            self._head = (self._head - unused) % self.capacity_bytes
            self.stats.used_bytes -= unused
            return Slot(slot.view[:nbytes], slot.span - unused)

    def commit(self, frame: ReceivedFrame) -> None:
        """Hand a received frame (whose payload is in its reserved slot) to the consumer.

        Also after :meth:`close` (a payload that was arriving when the run was stopped): the
        consumer takes every frame, so none is lost without a record.
        """
        with self._cond:
            self._items.append(frame)
            self._queued_bytes += frame.nbytes
            if self._consumer_waits and self._enough(self._wanted):
                self._cond.notify_all()

    def get_batch(self, max_items: int, timeout: float, linger: float = 0.0) -> list[ReceivedFrame]:
        """Take up to ``max_items`` frames, waiting up to ``timeout`` s for the first one.

        With ``linger``, wait up to that much longer for a full batch (``max_items`` frames or
        :data:`BATCH_BYTES`) once the first frame is there, but not while the receiver waits
        for room: small frames then come in batches instead of one wake-up each.
        The frames' payloads stay valid until :meth:`release` is called with them.
        """
        with self._cond:
            self._wait_for_items(1, timeout)
            if linger > 0 and self._items and self._items[0].nbytes * max_items < BATCH_BYTES:
                self._wait_for_items(max_items, linger)  # small frames: worth gathering
            n = min(max_items, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            self._queued_bytes -= sum(f.nbytes for f in batch)
            return batch

    def _wait_for_items(self, wanted: int, timeout: float) -> None:
        if self._enough(wanted):
            return
        self._wanted = wanted
        self._consumer_waits = True
        self._cond.wait_for(lambda: self._enough(wanted), timeout)
        self._consumer_waits = False

    def _enough(self, wanted: int) -> bool:
        if self._closed or len(self._items) >= wanted:
            return True
        # Lingering for more: stop when a batch's bytes are there or the receiver needs room.
        return bool(self._items) and (self._queued_bytes >= BATCH_BYTES or self._producer_waits)

    def release(self, frames: list[ReceivedFrame]) -> None:
        """Free the ring room of frames taken with :meth:`get_batch` (after writing them)."""
        with self._cond:
            self.stats.used_bytes -= sum(f.span for f in frames)
            if self._producer_waits:
                self._cond.notify_all()

    def close(self) -> None:
        """Say that no more frames will come; the consumer drains what is left."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _room(self, nbytes: int) -> tuple[int, int] | None:
        """Where a payload can go now (contiguous) and the ring bytes it takes up, if it fits."""
        if self.stats.used_bytes == 0:
            self._head = 0  # empty: start over at the beginning, no wrap gap needed
        size = _aligned(nbytes)
        tail_room = self.capacity_bytes - self._head
        start, span = (self._head, size) if size <= tail_room else (0, size + tail_room)
        return (start, span) if self.stats.used_bytes + span <= self.capacity_bytes else None


def _allocate(nbytes: int) -> memoryview:
    """Memory whose pages are all mapped now (about 0.5 s per GiB here), not on first use.

    Faulting pages in while frames arrive would slow the receiver just when a camera starts
    streaming; on a virtual machine a first touch costs several microseconds a page.
    """
    populate = getattr(mmap, "MAP_POPULATE", 0)
    try:
        ring = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
    except (OSError, ValueError, AttributeError):
        return memoryview(np.empty(nbytes, np.uint8).data).cast("B")
    return memoryview(ring)


def _aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN

"""The live stream: every N-th written frame on a ZeroMQ PUB socket, as Array-1.0.

For external viewers, as the original writer's statistics PUB socket and odin's live view
plugin: a viewer connects a SUB socket and gets a two-part message per frame (JSON header,
raw pixels), decompressed whatever the file's compression. A PUB socket never blocks: a
slow viewer misses frames (ZeroMQ drops them at its high-water mark), and while this
thread is behind the writer thread copies no more frames for it (:meth:`LiveStream.has_room`).
A stream that cannot bind is logged and left out: a viewer's port is no reason to lose an
acquisition.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any

import zmq

from pco_writer.writer._tap import TakenFrame

__all__ = ["LiveStream", "array_header"]

log = logging.getLogger(__name__)

_QUEUE = 2  # frames waiting to be sent, at most
_SNDHWM = 4  # frames ZeroMQ queues per viewer before it drops


def array_header(taken: TakenFrame) -> bytes:
    """The Array-1.0 header of a frame as the stream sends it (the pixels are raw)."""
    header = taken.header
    return json.dumps({
        "htype": "array-1.0", "frame": header.frame, "shape": list(header.shape),
        "type": header.type, "endianness": header.endianness,
        "source": header.source, "tag": header.tag,
    }).encode()  # fmt: skip


class LiveStream:
    """A PUB socket bound to ``address`` and the thread that sends on it.

    Args:
        address: where to bind, ``tcp://HOST:PORT`` (``tcp://0.0.0.0:8090`` for every
            interface).
        every: publish every N-th frame written (the first, the N+1-th...).
    """

    def __init__(self, address: str, every: int) -> None:
        self.address = address
        self.every = every
        self.n_sent = 0
        self.n_skipped = 0
        self._queue: queue.Queue[TakenFrame | None] = queue.Queue(_QUEUE)
        self._ctx: zmq.Context[Any] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Bind and start sending; False (logged) when the address cannot be bound."""
        ctx: zmq.Context[Any] = zmq.Context(io_threads=1)
        sock = ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, _SNDHWM)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(self.address)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            ctx.term()
            log.warning("live stream: cannot bind %s (%s); the acquisition goes on without it",
                        self.address, exc)  # fmt: skip
            return False
        self._ctx = ctx
        self._thread = threading.Thread(target=self._send, args=(sock,), name="live-stream")
        self._thread.start()
        log.info("live stream: every %d. frame on %s", self.every, self.address)
        return True

    def has_room(self) -> bool:
        """True when a frame handed over now would be sent (counted as skipped otherwise)."""
        if self._thread is None:  # not bound: nothing to send on
            return False
        if self._queue.full():
            self.n_skipped += 1
            return False
        return True

    def put(self, frame: TakenFrame) -> None:
        """Hand a frame to the sending thread (after :meth:`has_room`)."""
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self.n_skipped += 1

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then close the socket."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        assert self._ctx is not None
        self._ctx.term()
        log.info("live stream: %d frames sent, %d skipped (sender behind)", self.n_sent,
                 self.n_skipped)  # fmt: skip

    def _send(self, sock: zmq.Socket[Any]) -> None:
        try:
            while (taken := self._queue.get()) is not None:
                try:
                    pixels = taken.pixels()
                except Exception:  # noqa: BLE001 - a viewer's frame must not end the run
                    log.exception("live stream: frame %d cannot be decoded", taken.header.frame)
                    continue
                sock.send_multipart([array_header(taken), pixels.tobytes()])
                self.n_sent += 1
        finally:
            sock.close(linger=0)

"""The ZeroMQ receiver thread: PULL Array-1.0 messages, validate, hand them to the buffer.

Payloads are received without copying (``copy=False``) and travel to the HDF5 writer as the
``zmq.Frame`` that owns them. A bad message is logged, counted by reason and skipped; it never
stops the receiver. When the buffer is full the receiver simply stops reading, so ZeroMQ and
TCP slow the camera down instead of anything being dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from pco_writer.buffer import FrameBuffer, ReceivedFrame
from pco_writer.errors import ProtocolError
from pco_writer.protocol import check_payload, parse_header
from pco_writer.sequence import FrameSequence
from pco_writer.statistics import AcquisitionStats

__all__ = ["Receiver", "ReceiverSettings"]

log = logging.getLogger(__name__)

_POLL_MS = 100
_PUT_WAIT_S = 0.1
_LOG_EVERY_REASON = 10  # log each of the first N rejections of a kind, then every 1000th


@dataclass(frozen=True)
class ReceiverSettings:
    """How to reach the camera.

    Attributes:
        address: the camera's PUSH address, e.g. ``tcp://127.0.0.1:8080``.
        rcvhwm: messages ZeroMQ may queue before the buffer; small, as frames can be large.
        idle_timeout: end the acquisition after this many seconds without a message (0: never).
    """

    address: str
    rcvhwm: int = 8
    idle_timeout: float = 0.0


@dataclass
class Receiver:
    """Receives one acquisition into a :class:`FrameBuffer` on its own thread."""

    settings: ReceiverSettings
    buffer: FrameBuffer
    sequence: FrameSequence
    stats: AcquisitionStats
    stop_event: threading.Event = field(default_factory=threading.Event)
    end_cause: str = ""
    error: str = ""
    _thread: threading.Thread | None = field(default=None, init=False)
    _ctx: zmq.Context[Any] | None = field(default=None, init=False)

    def start(self) -> None:
        """Connect and start the receiving thread."""
        self._ctx = zmq.Context(io_threads=1)
        sock = self._ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, self.settings.rcvhwm)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(self.settings.address)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            self._ctx.term()
            raise ValueError(f"cannot connect to {self.settings.address!r}: {exc}") from None
        self._thread = threading.Thread(target=self._run, args=(sock,), name="receiver")
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop receiving (it closes the buffer when it leaves)."""
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _run(self, sock: zmq.Socket[Any]) -> None:
        try:
            self.end_cause = self._loop(sock)
        except Exception as exc:  # noqa: BLE001 - reported through the status, never lost
            log.exception("receiver failed")
            self.error = f"receiver failed: {exc}"
            self.end_cause = "error"
        finally:
            sock.close(linger=0)
            if self._ctx is not None:
                self._ctx.term()
            self.buffer.close()

    def _loop(self, sock: zmq.Socket[Any]) -> str:
        last_message = time.monotonic()
        idle = self.settings.idle_timeout
        while not self.stop_event.is_set():
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                if idle and time.monotonic() - last_message > idle:
                    log.warning("no message for %.1f s: ending the acquisition", idle)
                    return "idle_timeout"
                sock.poll(_POLL_MS)
                continue
            last_message = time.monotonic()
            frame = self._validate(parts)
            if frame is not None and not self._put(frame):
                return "stopped"
            if self.sequence.complete:
                return "completed"
        return "stopped"

    def _validate(self, parts: list[Any]) -> ReceivedFrame | None:
        try:
            if len(parts) != 2:
                raise ProtocolError(
                    "parts", f"message has {len(parts)} parts; Array-1.0 has 2 (header, data)"
                )
            header = parse_header(parts[0].bytes)
            data = parts[1].buffer
            check_payload(header, data.nbytes)
            index = self.sequence.accept(header)
        except ProtocolError as exc:
            self._reject(exc)
            return None
        self.stats.count_received(self.sequence.first_frame_id)
        self.stats.n_lost_frames = self.sequence.n_lost
        return ReceivedFrame(index, header, data, data.nbytes, parts[1])

    def _put(self, frame: ReceivedFrame) -> bool:
        while not self.stop_event.is_set():
            if self.buffer.put(frame, _PUT_WAIT_S):
                return True
            if self.buffer.closed:
                return False
        return False

    def _reject(self, exc: ProtocolError) -> None:
        self.stats.count_invalid(exc.reason)
        n = self.stats.invalid_by_reason[exc.reason]
        if n <= _LOG_EVERY_REASON or n % 1000 == 0:
            log.warning("rejected message (%s, %d so far): %s", exc.reason, n, exc)

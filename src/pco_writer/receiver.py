"""The ZeroMQ receiver thread: PULL Array-1.0 messages, validate, hand them to the buffer.

The JSON header is parsed first; its shape and type say how much room the payload needs, and
the payload is received straight into that room of the ring buffer (``recv_into``). A message
that is not a valid Array-1.0 message (parts, header, payload size) is logged, counted by
reason and skipped; it never stops the receiver, and its frame id means nothing. Whether a
valid frame belongs to the acquisition (its id, its shape) is the frame ledger's to decide,
on the writer thread (:mod:`pco_writer.ledger`). When the
buffer is full the receiver simply stops reading, so ZeroMQ and TCP slow the camera down
instead of anything being dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from pco_writer.buffer import FrameBuffer, ReceivedFrame, Slot
from pco_writer.codecs import check_chunk, check_encoding, payload_room
from pco_writer.errors import ProtocolError
from pco_writer.protocol import FrameHeader, HeaderParser, check_payload
from pco_writer.settings import NO_FRAME_NOTICE_S
from pco_writer.statistics import StreamCounts

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
        compression: the acquisition's compression; frames that arrive compressed must match.
    """

    address: str
    rcvhwm: int = 8
    idle_timeout: float = 0.0
    compression: str = "none"


@dataclass
class Receiver:
    """Receives one acquisition into a :class:`FrameBuffer` on its own thread."""

    settings: ReceiverSettings
    buffer: FrameBuffer
    stats: StreamCounts = field(default_factory=StreamCounts)
    stop_event: threading.Event = field(default_factory=threading.Event)
    end_cause: str = ""
    error: str = ""
    _parser: HeaderParser = field(default_factory=HeaderParser, init=False)
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
        idle, notice = self.settings.idle_timeout, NO_FRAME_NOTICE_S
        while not self.stop_event.is_set():
            try:
                header_part = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                quiet = time.monotonic() - last_message
                if idle and quiet > idle:
                    log.warning("no message for %.1f s: ending the acquisition", idle)
                    return "idle_timeout"
                if quiet >= notice:  # a wrong address must not go unnoticed: say so, less often
                    log.warning("no frame from %s for %.0f s; is the camera sending to this "
                                "address?", self.settings.address, quiet)  # fmt: skip
                    notice *= 2
                sock.poll(_POLL_MS)
                continue
            last_message, notice = time.monotonic(), NO_FRAME_NOTICE_S
            if not self._receive_frame(sock, header_part, last_message):
                return "stopped"
        return "stopped"

    def _receive_frame(self, sock: zmq.Socket[Any], header_part: bytes, t: float) -> bool:
        """Receive the rest of one message (its header came at ``t``) into the buffer.

        False when told to stop.
        """
        try:
            header = self._header(sock, header_part)
            slot = self._reserve(header)
            if slot is None:
                _drain(sock)
                return False
            self._fill(sock, header, slot, t)
        except ProtocolError as exc:
            _drain(sock)
            self._reject(exc)
        return True

    def _header(self, sock: zmq.Socket[Any], header_part: bytes) -> FrameHeader:
        if not sock.getsockopt(zmq.RCVMORE):
            raise ProtocolError("parts", "message has 1 part; Array-1.0 has 2 (header, data)")
        header = self._parser.parse(header_part)
        if header.encoding:
            check_encoding(header, self.settings.compression)
        return header

    def _reserve(self, header: FrameHeader) -> Slot | None:
        room = payload_room(header) if header.encoding else header.nbytes
        try:
            while not self.stop_event.is_set():
                slot = self.buffer.reserve(room, _PUT_WAIT_S)
                if slot is not None or self.buffer.closed:
                    return slot
        except ValueError as exc:
            raise ProtocolError("frame_larger_than_buffer", str(exc)) from None
        return None

    def _fill(self, sock: zmq.Socket[Any], header: FrameHeader, slot: Slot, t: float) -> None:
        """Receive the payload into its slot; commit it, or give the slot back."""
        try:
            nbytes = sock.recv_into(slot.view)
            if sock.getsockopt(zmq.RCVMORE):
                raise ProtocolError("parts", f"frame {header.frame}: message has more than 2 parts")
            check_payload(header, nbytes)
            if header.encoding and not header.is_raw:  # compressed: stored as it came
                check_chunk(header, slot.view, nbytes)
                slot = self.buffer.shrink(slot, nbytes)
        except ProtocolError:
            self.buffer.cancel(slot)
            raise
        self.stats.count_received()
        self.buffer.commit(ReceivedFrame(-1, header, slot.view, nbytes, slot.span, t))

    def _reject(self, exc: ProtocolError) -> None:
        n = self.stats.count_invalid(exc.reason)
        if should_log(n):
            log.warning("rejected message (%s, %d so far): %s", exc.reason, n, exc)


def should_log(n: int) -> bool:
    """Log the first rejections of a kind, then every 1000th: a flood must not fill the log."""
    return n <= _LOG_EVERY_REASON or n % 1000 == 0


def _drain(sock: zmq.Socket[Any]) -> None:
    """Discard the remaining parts of the current message."""
    while sock.getsockopt(zmq.RCVMORE):
        sock.recv(copy=False)

"""A camera simulator and a capture replayer: Array-1.0 over a ZeroMQ PUSH socket.

The simulator sends what a pco.edge at TOMCAT sends: the camera's own header spelling
(``endianess``, empty ``tag`` and ``source``, the stray space) and noisy images of a
sample in a beam. Frames are made once, up front, and cycled, so the simulator can send
faster than any disk.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import zmq

from pco_writer.errors import ConfigError
from pco_writer.protocol import DTYPE_NAMES

__all__ = ["CameraSimulator", "make_frames", "camera_header", "read_capture", "replay_capture"]

log = logging.getLogger(__name__)

PCO_EDGE_SHAPE = (2160, 2560)


def camera_header(frame: int, shape: tuple[int, ...], dtype: str = "uint16") -> bytes:
    """The header exactly as a pco.edge camera writes it (``endianess`` sic)."""
    return (
        f'{{"htype":"array-1.0","tag":"","source":"","shape":{json.dumps(list(shape))} ,'
        f'"frame":{frame},"type":"{dtype}","endianess":"little"}}'
    ).encode()


def make_frames(
    shape: tuple[int, ...], dtype: str = "uint16", count: int = 8, seed: int = 0
) -> list[npt.NDArray[Any]]:
    """Noisy images of a round sample in a flat beam (photon noise, dark offset)."""
    rng = np.random.default_rng(seed)
    y, x = shape[-2], shape[-1]
    yy, xx = np.ogrid[:y, :x]
    beam = 2000.0 * np.exp(-(((xx - x / 2) / (0.9 * x)) ** 2))
    sample = ((yy - y / 2) ** 2 + (xx - x / 2) ** 2) < (min(x, y) / 3) ** 2
    mean = (100.0 + beam * np.where(sample, 0.35, 1.0)).astype(np.float32)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    frames = []
    for _ in range(count):
        noisy = rng.normal(mean, np.sqrt(mean)).astype(np.float32)
        if info is not None:
            noisy = np.clip(noisy, info.min, info.max)
        frame = np.broadcast_to(noisy, shape).astype(dtype)
        frames.append(np.ascontiguousarray(frame))
    return frames


def _check_image(shape: tuple[int, ...], dtype: str) -> None:
    """Refuse frames the Array-1.0 stream cannot carry, before any is made."""
    if dtype not in DTYPE_NAMES:
        raise ConfigError(
            f"pixel type {dtype!r} is not one Array-1.0 carries; choose one of "
            f"{', '.join(DTYPE_NAMES)}"
        )
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ConfigError(
            f"image shape {list(shape)} is not 2 or 3 positive numbers; give rows then "
            "columns, e.g. --shape 2160 2560"
        )


@dataclass
class CameraSimulator:
    """A camera: binds PUSH and sends ``frames`` frames (0: until stopped).

    Nothing is dropped: while no receiver takes a frame (none connected, or it pushes back)
    the simulator waits. With ``fps``, a frame that could not go out on time is late
    (counted in ``n_late``) and the rate is kept from there on: no burst to catch up.

    Args:
        address: where to bind, e.g. ``tcp://127.0.0.1:8080`` (``tcp://127.0.0.1:*`` picks a port).
        shape: image shape, [y, x] or [z, y, x].
        fps: frames per second; 0 sends as fast as the receiver takes them.
        frames: how many frames; 0 means until :meth:`stop`.
        start_frame: the first frame id (real streams do not start at 0).
        sndhwm: messages queued before ``send`` blocks; 0 picks about 64 MiB worth.
    """

    address: str
    shape: tuple[int, ...] = PCO_EDGE_SHAPE
    dtype: str = "uint16"
    fps: float = 0.0
    frames: int = 0
    start_frame: int = 0
    sndhwm: int = 0
    n_sent: int = 0
    n_late: int = 0
    images: list[npt.NDArray[Any]] = field(default_factory=list, repr=False)
    _template: tuple[bytes, bytes] | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _ctx: zmq.Context[Any] = field(default_factory=zmq.Context, repr=False)
    _sock: zmq.Socket[Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        try:
            _check_image(self.shape, self.dtype)
        except ConfigError:
            self._ctx.term()
            raise

    def bind(self) -> str:
        """Bind the PUSH socket; returns the address actually bound (with the real port).

        Raises:
            ConfigError: the address cannot be bound (said before any frame is made).
        """
        self._sock = self._ctx.socket(zmq.PUSH)
        frame_bytes = max(1, math.prod(self.shape) * np.dtype(self.dtype).itemsize)
        self._sock.setsockopt(
            zmq.SNDHWM, self.sndhwm or max(4, min(1000, (64 << 20) // frame_bytes))
        )
        self._sock.setsockopt(zmq.LINGER, 0)
        _bind(self._sock, self.address)
        if not self.images:
            self.images = make_frames(self.shape, self.dtype)
        return str(self._sock.getsockopt_string(zmq.LAST_ENDPOINT))

    def run(self) -> int:
        """Send the frames (binding first if needed); returns how many were sent."""
        if self._sock is None:
            self.bind()
        assert self._sock is not None
        period = 1.0 / self.fps if self.fps > 0 else 0.0
        due = time.monotonic()  # when the next frame should go out
        for i in self._ids():
            if not self._send(i, self.images[i % len(self.images)]):
                break
            if period:
                due = self._next_due(due, period)
                time.sleep(max(0.0, due - time.monotonic()))
        return self.n_sent

    def _next_due(self, due: float, period: float) -> float:
        """When the frame after the one just sent (due at ``due``) should go out.

        A frame that went out more than a period late (nobody received it in time) is late,
        and the schedule starts again from now: catching up would send the missed frames in
        a burst, at the speed of the receiver instead of the camera's rate.
        """
        now = time.monotonic()
        if now - due > period:
            self.n_late += 1
            due = now
        return due + period

    def stop(self) -> None:
        """Stop sending (from another thread or a signal handler)."""
        self._stop.set()

    def close(self, linger_ms: int = 30_000) -> None:
        """Close the socket, letting queued frames out for up to ``linger_ms``."""
        if self._sock is not None:
            self._sock.close(linger=linger_ms)
            self._sock = None
        self._ctx.term()

    def _ids(self) -> Iterator[int]:
        i = 0
        while not self._stop.is_set() and (self.frames == 0 or i < self.frames):
            yield i
            i += 1

    def _send(self, i: int, image: npt.NDArray[Any]) -> bool:
        assert self._sock is not None
        before, after = self._header_parts
        header = b"%s%d%s" % (before, self.start_frame + i, after)
        return _send_blocking(self._sock, [header, image], self._stop) and self._count()

    @property
    def _header_parts(self) -> tuple[bytes, bytes]:
        """The camera header split around the frame id, made once."""
        if not self._template:
            marker = camera_header(123456789, self.shape, self.dtype).split(b"123456789")
            self._template = (marker[0], marker[1])
        return self._template

    def _count(self) -> bool:
        self.n_sent += 1
        return True


def _send_blocking(sock: zmq.Socket[Any], parts: list[Any], stop: threading.Event) -> bool:
    """Send a multipart message, waiting while the receiver is slow, until ``stop``."""
    while not stop.is_set():
        try:
            sock.send_multipart(parts, zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:  # the receiver pushes back: wait for room, not in a busy loop
            sock.poll(100, zmq.POLLOUT)
    return False


def _bind(sock: zmq.Socket[Any], address: str) -> None:
    """Bind, or say in one line why not (a taken port, an address of another host...).

    Raises:
        ConfigError: the address cannot be bound; the socket is closed.
    """
    try:
        sock.bind(address)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        hint = (
            "another camera or simulator uses it"
            if exc.errno == zmq.EADDRINUSE
            else ("is it tcp://HOST:PORT with an address of this host?")
        )
        raise ConfigError(
            f"cannot bind {address}: {zmq.strerror(exc.errno or 0)}; {hint}"
        ) from None


def read_capture(folder: Path) -> list[tuple[bytes, bytes]]:
    """Read a capture folder of ``NNNNNN_000.raw`` (header) / ``NNNNNN_001.raw`` (data).

    Raises:
        ConfigError: the folder holds no capture.
    """
    headers = sorted(folder.glob("*_000.raw"))
    if not headers:
        raise ConfigError(f"no *_000.raw message headers in {folder}; is it a capture folder?")
    return [(h.read_bytes(), h.with_name(h.name[:-7] + "001.raw").read_bytes()) for h in headers]


def replay_capture(
    address: str, folder: Path, fps: float = 0.0, stop: threading.Event | None = None
) -> int:
    """Bind PUSH at ``address`` and send a capture folder's messages as they were captured."""
    messages = read_capture(folder)
    stop = stop or threading.Event()
    with zmq.Context() as ctx, ctx.socket(zmq.PUSH) as sock:
        sock.setsockopt(zmq.LINGER, 30_000)  # let the last messages out before closing
        _bind(sock, address)
        n = 0
        for header, data in messages:
            if not _send_blocking(sock, [header, data], stop):
                break
            n += 1
            if fps > 0:
                time.sleep(1.0 / fps)
        return n

"""Helpers for writer tests: a PUSH camera socket, frames whose pixels name their id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import zmq

from pco_writer.settings import AcquisitionSettings
from pco_writer.simulate import camera_header
from pco_writer.writer import Writer

CAPTURE = Path(__file__).resolve().parents[3] / "shared" / "data" / "pco_edge_dump"
SHAPE = (16, 24)


def capture_or_skip() -> Path:
    """The real pco.edge capture in ../shared, or skip when this checkout has none beside it."""
    if not CAPTURE.is_dir():
        pytest.skip(f"the pco.edge capture is not at {CAPTURE}")
    return CAPTURE


def image(frame_id: int, shape: tuple[int, ...] = SHAPE) -> npt.NDArray[np.uint16]:
    """Pixels that differ for every frame id, so a misplaced frame is caught."""
    base = np.arange(int(np.prod(shape)), dtype=np.uint32).reshape(shape)
    return ((base * 3 + (frame_id % 65536) * 7) % 65536).astype("<u2")


def frame(frame_id: int, shape: tuple[int, ...] = SHAPE) -> list[bytes]:
    """A good Array-1.0 message as the pco.edge sends it."""
    return [camera_header(frame_id, shape), image(frame_id, shape).tobytes()]


class Push:
    """A camera socket (PUSH, bound to a random loopback port)."""

    def __init__(self) -> None:
        self._ctx: zmq.Context[Any] = zmq.Context()
        self.sock = self._ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 10_000)
        self.address = f"tcp://127.0.0.1:{self.sock.bind_to_random_port('tcp://127.0.0.1')}"

    def send(self, parts: list[bytes], timeout_ms: int = 5000) -> None:
        """Send one message, failing the test if no receiver takes it in time."""
        assert self.sock.poll(timeout_ms, zmq.POLLOUT), "no receiver connected to the camera"
        self.sock.send_multipart(parts)

    def close(self) -> None:
        self.sock.close(linger=0)
        self._ctx.term()


@contextmanager
def camera() -> Iterator[Push]:
    push = Push()
    try:
        yield push
    finally:
        push.close()


@contextmanager
def running_writer(**settings: Any) -> Iterator[Writer]:
    """A started writer (small buffer); killed and waited for if the test leaves it running."""
    settings.setdefault("buffer_bytes", 1 << 24)
    writer = Writer(AcquisitionSettings(**settings))
    writer.start()
    try:
        yield writer
    finally:
        if not writer.done:
            writer.kill()
        assert writer.wait(10), "the writer did not end within 10 s"


def finish(writer: Writer, timeout: float = 10) -> dict[str, Any]:
    """Wait for the end of an acquisition and return its statistics."""
    assert writer.wait(timeout), f"the acquisition did not end within {timeout} s"
    return writer.statistics()


def wait_until_written(writer: Writer, n: int, timeout: float = 20.0) -> None:
    """Wait until the writer has ``n`` frames in its file."""
    deadline = time.monotonic() + timeout
    while writer.statistics()["n_written_frames"] < n:
        assert time.monotonic() < deadline, f"{n} frames were not written within {timeout} s"
        time.sleep(0.02)

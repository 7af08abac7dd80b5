"""Helpers for the control-plane integration tests: a camera thread, free ports, waits."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pco_writer.simulate import CameraSimulator

SHAPE = (32, 48)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def camera(frames: int, fps: float = 100.0) -> Iterator[tuple[str, CameraSimulator]]:
    """A simulated camera sending on its own thread; yields its address."""
    sim = CameraSimulator("tcp://127.0.0.1:*", SHAPE, fps=fps, frames=frames, start_frame=1000)
    address = sim.bind()
    thread = threading.Thread(target=sim.run, name="camera", daemon=True)
    thread.start()
    try:
        yield address, sim
    finally:
        sim.stop()
        thread.join(5.0)
        sim.close(linger_ms=0)
        assert not thread.is_alive(), "the camera thread did not stop"


@contextmanager
def camera_on_cue(frames: int, fps: float) -> Iterator[tuple[str, Callable[[], None]]]:
    """A simulated camera that starts sending when told (``go()``), at ``fps``.

    For a writer that must be up before the first frame (a frame sent before it connects
    waits in the camera's queue, and then they all come at once).
    """
    sim = CameraSimulator("tcp://127.0.0.1:*", SHAPE, fps=fps, frames=frames, start_frame=1000)
    address = sim.bind()
    thread = threading.Thread(target=sim.run, name="camera", daemon=True)
    try:
        yield address, thread.start
    finally:
        sim.stop()
        if thread.is_alive():
            thread.join(5.0)
        sim.close(linger_ms=0)
        assert not thread.is_alive(), "the camera thread did not stop"


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")

"""Helpers for the fault tests: a camera whose frames can be checked, a control server process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import zmq
from _control_helpers import wait_for

from pco_writer.simulate import camera_header

SHAPE = (32, 48)
FIRST_ID = 1000


def image(frame_id: int) -> npt.NDArray[np.uint16]:
    """The image of a frame id: every frame differs, so a misplaced one is caught."""
    base = np.arange(SHAPE[0] * SHAPE[1], dtype=np.uint32).reshape(SHAPE)
    return ((base + frame_id * 7) % 65536).astype("<u2")


def check_frames(data: Any, n: int) -> None:
    """Rows ``0 .. n-1`` of an ``exchange/<name>`` dataset are the camera's frames, exactly."""
    for i in range(n):
        assert np.array_equal(data[i], image(FIRST_ID + i)), f"row {i} is not frame {FIRST_ID + i}"


class Camera:
    """A PUSH camera on a thread: ``frames`` frames (0: until stopped) at ``fps``; can pause.

    Attributes:
        n_sent: frames handed to ZeroMQ so far.
    """

    def __init__(self, frames: int = 0, fps: float = 200.0) -> None:
        self._ctx: zmq.Context[Any] = zmq.Context()
        self._sock = self._ctx.socket(zmq.PUSH)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, 1000)
        self._sock.bind("tcp://127.0.0.1:*")
        self.address = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.frames, self.fps, self.n_sent = frames, fps, 0
        self.running = threading.Event()
        self.running.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and (not self.frames or self.n_sent < self.frames):
            if not self.running.wait(0.05):
                continue
            if self._sock.poll(50, zmq.POLLOUT):
                frame_id = FIRST_ID + self.n_sent
                try:  # never block in send: close() must find this thread stopped
                    self._sock.send_multipart(
                        [camera_header(frame_id, SHAPE), image(frame_id)], zmq.NOBLOCK
                    )
                except zmq.Again:  # the writer went away after the poll
                    continue
                self.n_sent += 1
                time.sleep(1.0 / self.fps)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        assert not self._thread.is_alive(), "the camera thread did not stop"
        self._sock.close(linger=0)  # not while the thread uses it: libzmq aborts the process
        self._ctx.term()


@contextmanager
def camera(frames: int = 0, fps: float = 200.0) -> Iterator[Camera]:
    cam = Camera(frames, fps)
    try:
        yield cam
    finally:
        cam.close()


@contextmanager
def server_process(
    data_root: Path, port: int, log: Path, preexec: Callable[[], None] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``pco-writer server`` as a process on 127.0.0.1:port; SIGKILLed at the end if alive."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pco_writer.cli", "server", "--port", str(port),
             "--data-root", str(data_root)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=preexec,  # noqa: PLW1509 - only setrlimit, before exec
        )  # fmt: skip
    try:
        wait_for(lambda: _acks(port) or proc.poll() is not None, 20.0, "the server to answer")
        assert proc.poll() is None, log.read_text()
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # it stops its writers
            try:
                proc.wait(15.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)


def _acks(port: int) -> bool:
    try:
        return bool(httpx.get(f"http://127.0.0.1:{port}/ack", timeout=1.0).json()["success"])
    except (httpx.HTTPError, ValueError, KeyError):
        return False


def kill_if_alive(pid: int) -> None:
    """SIGKILL a process we started (by its pid), if it still runs."""
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)

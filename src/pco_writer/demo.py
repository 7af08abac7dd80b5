"""The whole chain once: a simulated camera, a control server, the client, an HDF5 file."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import h5py

from pco_writer.api._serving import bind_socket
from pco_writer.client import PcoWriter
from pco_writer.errors import ConfigError
from pco_writer.simulate import CameraSimulator

__all__ = ["run_demo"]

DEMO_SHAPE = (540, 640)  # a quarter of a pco.edge frame per side: quick on a laptop


def run_demo(workdir: Path, n_frames: int = 50, fps: float = 20.0) -> Path:
    """Acquire ``n_frames`` simulated frames through a control server; the file written.

    Starts a camera simulator (a thread), a control server (a process) with ``workdir`` as its
    data root, drives one acquisition with :class:`PcoWriter`, prints the file's tree and the
    statistics, and stops everything, also when the demo is ended by SIGTERM.

    Raises:
        ConfigError: ``n_frames`` is below 1 (the demo would never end).
    """
    if n_frames < 1:
        raise ConfigError(f"n_frames {n_frames}: the demo needs at least 1 frame")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    control_port, writer_port = _free_port(), _free_port()
    output = _new_file(workdir)
    with (
        _sigterm_ends_the_demo(),
        _camera(n_frames, fps) as address,
        _control_server(control_port, workdir),
        PcoWriter(
            output_file=str(output), dataset_name="data", n_frames=n_frames,
            connection_address=address,
            flask_api_address=f"http://127.0.0.1:{control_port}",
            writer_api_address=f"http://127.0.0.1:{writer_port}",
        ) as pco,
    ):  # fmt: skip
        print(f"camera at {address}, control server at {pco.flask_api_address}")
        pco.start()
        stats = pco.wait()
    print_tree(output)
    for key, value in stats.as_dict().items():
        print(f"  {key}: {value}")
    return output


@contextmanager
def _sigterm_ends_the_demo() -> Iterator[None]:
    """SIGTERM (kill, systemd, a CI timeout) exits through the cleanup, like Ctrl-C does.

    Without it the interpreter dies at once and leaves the control server and its writer
    running. Only the main thread may set a handler; elsewhere SIGTERM is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_once(signum: int, _frame: FrameType | None) -> None:
        signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_once)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _camera(n_frames: int, fps: float) -> Iterator[str]:
    """A camera simulator sending on its own thread; yields its address."""
    sim = CameraSimulator("tcp://127.0.0.1:*", DEMO_SHAPE, fps=fps, frames=n_frames)
    try:
        address = sim.bind()
        camera = threading.Thread(target=sim.run, name="camera", daemon=True)
        camera.start()
        try:
            yield address
        finally:
            sim.stop()
            camera.join(5.0)
    finally:
        sim.close(linger_ms=0)


def print_tree(path: Path) -> None:
    """Print the groups, datasets (shape, dtype) and attributes of an HDF5 file."""
    print(path)
    with h5py.File(path, "r") as f:

        def show(name: str, node: object) -> None:
            depth = name.count("/")
            if isinstance(node, h5py.Dataset):
                print(f"{'  ' * (depth + 1)}{name.rsplit('/', 1)[-1]} {node.shape} {node.dtype}")
            else:
                print(f"{'  ' * (depth + 1)}{name.rsplit('/', 1)[-1]}/")

        f.visititems(show)


@contextmanager
def _control_server(port: int, data_root: Path) -> Iterator[None]:
    """``pco-writer server`` as a child process, until the block ends (it stops its writers)."""
    argv = [sys.executable, "-m", "pco_writer.cli", "server", "--port", str(port),
            "--data-root", str(data_root)]  # fmt: skip
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        _await_server(server, port)
        yield
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def _await_server(server: subprocess.Popen[bytes], port: int) -> None:
    with PcoWriter(flask_api_address=f"http://127.0.0.1:{port}") as probe:
        deadline = time.monotonic() + 20
        while not probe.is_connected():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the control server did not start; see its log above")
            time.sleep(0.1)


def _free_port() -> int:
    with bind_socket("127.0.0.1", 0) as sock:
        return int(sock.getsockname()[1])


def _new_file(workdir: Path) -> Path:
    """``demo.h5``, or ``demo_2.h5``... when earlier demos left theirs: a rerun never clashes."""
    output, n = workdir / "demo.h5", 1
    while output.exists():
        n += 1
        output = workdir / f"demo_{n}.h5"
    return output

"""The whole chain once: a simulated camera, a control server, the client, an HDF5 file."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py

from pco_writer.api._serving import bind_socket
from pco_writer.client import PcoWriter
from pco_writer.simulate import CameraSimulator

__all__ = ["run_demo"]

DEMO_SHAPE = (540, 640)  # a quarter of a pco.edge frame per side: quick on a laptop


def run_demo(workdir: Path, n_frames: int = 50, fps: float = 20.0) -> Path:
    """Acquire ``n_frames`` simulated frames through a control server; the file written.

    Starts a camera simulator (a thread), a control server (a process) with ``workdir`` as its
    data root, drives one acquisition with :class:`PcoWriter`, prints the file's tree and the
    statistics, and stops everything.
    """
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    control_port, writer_port = _free_port(), _free_port()
    sim = CameraSimulator("tcp://127.0.0.1:*", DEMO_SHAPE, fps=fps, frames=n_frames)
    address = sim.bind()
    camera = threading.Thread(target=sim.run, name="camera", daemon=True)
    server = _start_server(control_port, workdir)
    try:
        camera.start()
        output = _new_file(workdir)
        with PcoWriter(
            output_file=str(output), dataset_name="data", n_frames=n_frames,
            connection_address=address, flask_api_address=f"http://127.0.0.1:{control_port}",
            writer_api_address=f"http://127.0.0.1:{writer_port}",
        ) as pco:  # fmt: skip
            print(f"camera at {address}, control server at {pco.flask_api_address}")
            pco.start()
            stats = pco.wait()
        print_tree(output)
        for key, value in stats.as_dict().items():
            print(f"  {key}: {value}")
        return output
    finally:
        sim.stop()
        camera.join(5.0)
        sim.close(linger_ms=0)
        server.terminate()
        server.wait(10)


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


def _start_server(port: int, data_root: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "pco_writer.cli", "server", "--port", str(port),
            "--data-root", str(data_root)]  # fmt: skip
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    with PcoWriter(flask_api_address=f"http://127.0.0.1:{port}") as probe:
        deadline = time.monotonic() + 20
        while not probe.is_connected():
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                server.wait(5)
                raise RuntimeError("the control server did not start; see its log above")
            time.sleep(0.1)
    return server


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

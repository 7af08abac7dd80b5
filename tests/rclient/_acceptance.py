"""Runs PSI's acceptance scripts (pco_rclient 0.4.11, ``pco_rclient/tests``) against our
servers, as they ran at PSI; run by test_acceptance_scripts.py inside ``unshare``.

What is changed, and nothing else (docs/pco_rclient.md):

1. addresses and paths in the scripts: hosts to 127.0.0.1, folders below a temporary one,
   and the folder the debug scripts import ``pco_client`` from: the installed client's;
2. the cameras' configuration file ``pco_writer.json``: local ports;
3. the EPICS camera: ``from epics import caput, caget`` imports ``standin/epics.py``, whose
   PVs start and stop a simulated camera.

The scripts with ``debug = True`` use the addresses that ``PcoWriter(debug=True)`` fixes in
the client itself: the control server at ``0.0.0.0:9901``, the writer at ``0.0.0.0:9555`` and
a camera that streams at ``tcp://129.129.130.76:9999``, on a host they expect to be called
``xbl-daq-32.psi.ch`` (they count its name in the server's log). This runs in a namespace of
its own (network, host name, processes) where that camera's address is local and the host
has that name; the fixed ports then clash with nothing. The operator's Ctrl-C, which two
scripts expect during ``wait()``, is a SIGINT sent once the script waits.

Prints one JSON object: each script's exit code, output and time.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import zmq

from pco_writer.simulate import camera_header, make_frames

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _SIOCSIFADDR, _IFF_UP = 0x8913, 0x8914, 0x8916, 0x1
HOST_NAME = "xbl-daq-32.psi.ch"
DEBUG_CAMERA = "tcp://129.129.130.76:9999"
SHAPE = (64, 80)
CAMERAS = {  # pco_writer.json's two cameras, on local ports
    "pco1": {"ioc": "X02DA-CCDCAM1", "camera": "tcp://127.0.0.1:8080", "control": 9901,
             "writer": 9555},
    "pco2": {"ioc": "X02DA-CCDCAM2", "camera": "tcp://127.0.0.1:8081", "control": 9902,
             "writer": 9556},
}  # fmt: skip


@dataclass(frozen=True)
class Camera:
    """How the debug camera behaves while one script runs.

    Attributes:
        frames: frames to send (0: until the script ends).
        fps: frames per second (0: as fast as they are taken).
        interrupt: send the operator's Ctrl-C once the script waits and the frames are sent.
        for_the_writer: send once the writer's API answers (the scripts check a running
            writer before they wait: on a busy machine a writer can take seconds to start,
            and a run that ended before the client saw it running is not what they test).
    """

    frames: int = 0
    fps: float = 10.0
    interrupt: bool = False
    for_the_writer: bool = True


# The debug camera while each script runs.
DEBUG_SCRIPTS = {
    "pco_run_1.py": Camera(frames=10, interrupt=True),  # "quits on the wait method"
    "pco_run_2.py": Camera(),  # receives all frames
    "pco_run_3.py": Camera(frames=15, interrupt=True),  # two files, not all frames
    "pco_run_4.py": Camera(),  # two files, all frames
    "pco_unittest.py": Camera(frames=20, fps=0.0, for_the_writer=False),  # flush counts 20
    "pco_run_5.py": Camera(),  # all frames, then a start with a taken dataset name
}


class PacedCamera:
    """The debug camera: ``frames`` frames (0: until stopped), one each ``1/fps`` s from the
    first one a receiver takes: a send waits for a receiver, and the pace starts again then.
    """

    def __init__(self, address: str, behaviour: Camera) -> None:
        self.behaviour = behaviour
        self.n_sent = 0
        self._ctx: zmq.Context[Any] = zmq.Context()
        self._sock = self._ctx.socket(zmq.PUSH)
        self._sock.setsockopt(zmq.SNDHWM, 1)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(address)
        self._image = make_frames(SHAPE, count=1)[0]
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        frames, fps = self.behaviour.frames, self.behaviour.fps
        while self.behaviour.for_the_writer and not _writer_answers():
            if self._stop.wait(0.05):
                return
        while not self._stop.is_set() and (not frames or self.n_sent < frames):
            if self._sock.poll(100, zmq.POLLOUT):
                parts = [camera_header(100 + self.n_sent, SHAPE), self._image]
                try:  # never block in send: close() must find this thread stopped
                    self._sock.send_multipart(parts, zmq.NOBLOCK)
                except zmq.Again:  # the writer went away after the poll
                    continue
                self.n_sent += 1
                if fps:
                    self._stop.wait(1.0 / fps)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive(), "the camera thread did not stop"
        self._sock.close(linger=0)  # not while the thread uses it: libzmq aborts the process
        self._ctx.term()


def _writer_answers() -> bool:
    """A writer receives on 9555 (not the previous one, whose API lingers a moment)."""
    try:
        answer = httpx.get("http://127.0.0.1:9555/status", timeout=0.5).json()
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(answer, dict) and answer.get("status") == "receiving"


def rules(work: Path, client_dir: Path) -> list[tuple[str, str]]:
    """The rewrites: (text in a script, what it becomes). Each must be used somewhere."""
    return [
        # where the debug scripts import pco_client from: the installed client's folder
        ("'/home/hax_l/software/lib_cpp_h5_writer/pco_rclient/pco_rclient'", repr(str(client_dir))),
        ("/home/hax_l/", f"{work}/home/hax_l/"),
        ("/sls/X02DA/data/", f"{work}/sls/X02DA/data/"),
        ("tcp://pc9808:9999", "tcp://127.0.0.1:9999"),
        ("tcp://129.129.99.104:8080", "tcp://127.0.0.1:8080"),
        ("tcp://129.129.99.107:8080", "tcp://127.0.0.1:8080"),
        ("tcp://10.10.1.26:8080", CAMERAS["pco1"]["camera"]),
        ("tcp://10.10.1.202:8080", CAMERAS["pco2"]["camera"]),
        ("http://xbl-daq-34:9901", "http://127.0.0.1:9901"),
        ("http://xbl-daq-34:9902", "http://127.0.0.1:9902"),
        ("http://xbl-daq-34:9555", "http://127.0.0.1:9555"),
        ("http://xbl-daq-34:9556", "http://127.0.0.1:9556"),
    ]  # fmt: skip


def rewrite(source: Path, target: Path, replacements: list[tuple[str, str]]) -> list[str]:
    """Copy a file with the replacements made; returns the texts that were found."""
    text = source.read_text()
    used = [old for old, _ in replacements if old in text]
    for old, new in replacements:
        text = text.replace(old, new)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return used


def set_up_namespace() -> None:
    """The debug set-up's network and host name (we are root of fresh namespaces): the
    loopback up, the debug camera's address on it (as ``lo:1``), the host's name. With the
    kernel's ioctls, so that no tool beyond ``unshare`` is needed."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, _SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
        address = socket.inet_aton(DEBUG_CAMERA.removeprefix("tcp://").split(":")[0])
        alias = struct.pack("16sH2x4s8x", b"lo:1", socket.AF_INET, address)
        fcntl.ioctl(sock, _SIOCSIFADDR, alias)
    socket.sethostname(HOST_NAME)


def start_server(argv: list[str], ports: list[int], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pco_writer.cli", "server", *argv],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while not all(_acks(port) for port in ports):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the control server did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return proc


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _acks(port: int) -> bool:
    try:
        return bool(httpx.get(f"http://127.0.0.1:{port}/ack", timeout=1).json()["success"])
    except (httpx.HTTPError, ValueError, KeyError):
        return False


class Output:
    """A child's merged stdout and stderr, read as it comes."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._chunks: list[bytes] = []
        assert proc.stdout is not None
        self._pipe = proc.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while chunk := os.read(self._pipe.fileno(), 65536):
            self._chunks.append(chunk)

    def text(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def close(self) -> None:
        self._thread.join(5)


def run_script(
    script: Path, env: dict[str, str], interrupt: Callable[[str], bool] | None, timeout: float
) -> dict[str, Any]:
    """Run one script to its end; send SIGINT once ``interrupt(output)`` says so. The result
    is also added to ``results.jsonl`` beside the scripts, for a session that times out."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, script.name], cwd=script.parent, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    output = Output(proc)
    interrupted = False
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        if interrupt is not None and not interrupted and interrupt(output.text()):
            proc.send_signal(signal.SIGINT)
            interrupted = True
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    code = proc.wait(10)
    output.close()
    seconds = round(time.monotonic() - t0, 2)
    result = {"script": script.name, "exit_code": code, "seconds": seconds,
              "interrupted": interrupted, "output": output.text()}  # fmt: skip
    with (script.parent / "results.jsonl").open("a") as log:
        log.write(json.dumps(result) + "\n")
    return result


def waits_after(camera: PacedCamera) -> Callable[[str], bool]:
    """True once the script is in wait()'s loop and the camera has sent its frames."""
    since = [0.0]

    def ready(output: str) -> bool:
        waiting = "pco_controller.wait..." in output and "\x1b[K" in output
        if waiting and not camera.thread.is_alive() and not since[0]:
            since[0] = time.monotonic()
        return bool(since[0]) and time.monotonic() - since[0] > 0.5  # the writer got them

    return ready


def debug_session(
    work: Path, scripts_in: Path, env: dict[str, str], names: list[str]
) -> list[dict[str, Any]]:
    """Debug scripts, one after another, against one control server on port 9901."""
    server = start_server(["--port", "9901", "--data-root", str(work)], [9901],
                          work / "server.log")  # fmt: skip
    results = []
    try:
        for name in names:
            behaviour = DEBUG_SCRIPTS[name]
            camera = PacedCamera(DEBUG_CAMERA, behaviour)
            try:
                interrupt = waits_after(camera) if behaviour.interrupt else None
                results.append(run_script(scripts_in / name, env, interrupt, timeout=60))
            finally:
                camera.close()
    finally:
        stop_server(server)
    return results


def simultaneous_session(
    work: Path, scripts_in: Path, env: dict[str, str], names: list[str]
) -> list[dict[str, Any]]:
    """pco_run.py, then pco_simultaneous.py: two cameras on two control ports at once."""
    config = {"cameras": [
        {"name": name, "connection_address": c["camera"], "control_port": c["control"],
         "writer_port": c["writer"], "data_root": str(work)}
        for name, c in CAMERAS.items()
    ]}  # fmt: skip
    (work / "cameras.json").write_text(json.dumps(config))
    ports = [c["control"] for c in CAMERAS.values()]
    # pco_test() makes its output folder when it is not there (isdir, then makedirs): its two
    # processes race, and the loser dies of FileExistsError. At the beamline it was there.
    (work / "sls/X02DA/data/e18600/Data10/pco_test").mkdir(parents=True)
    server = start_server(["--config", str(work / "cameras.json")], ports, work / "server.log")
    try:
        return [run_script(scripts_in / name, env, None, timeout=60) for name in names]
    finally:
        stop_server(server)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--session", choices=["debug", "simultaneous"], required=True)
    p.add_argument("--tests", type=Path, required=True, help="pco_rclient/tests of the client")
    p.add_argument("--work", type=Path, required=True, help="an empty temporary folder")
    p.add_argument("scripts", nargs="+", help="the scripts to run, in this order")
    args = p.parse_args()
    # The operator's Ctrl-C must reach the scripts: a shell that ran the tests with `&`
    # passed SIGINT on ignored, and a child keeps an ignored signal ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    set_up_namespace()
    import pco_rclient

    client_dir = Path(pco_rclient.__file__).parent
    replacements = rules(args.work, client_dir)
    scripts_in = args.work / "scripts"
    used: set[str] = set()
    for source in args.tests.iterdir():
        if source.suffix in (".py", ".json"):
            used.update(rewrite(source, scripts_in / source.name, replacements))
    json_config = next(new for old, new in replacements if old == "/sls/X02DA/data/")
    config_file = Path(json_config) / "e18600/git/pco_rclient/pco_rclient/tests/pco_writer.json"
    rewrite(scripts_in / "pco_writer.json", config_file, [])  # where pco_run.py reads it
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent / "standin"), os.environ.get("PYTHONPATH", "")]
        ),  # fmt: skip
        "PCO_STANDIN_CAMERAS": json.dumps({c["ioc"]: c["camera"] for c in CAMERAS.values()}),
    }
    session = debug_session if args.session == "debug" else simultaneous_session
    results = session(args.work, scripts_in, env, args.scripts)
    unused = [old for old, _ in replacements if old not in used]
    print(json.dumps({"results": results, "unused_rewrites": unused,
                      "server_log": (args.work / "server.log").read_text()[-20000:]}))  # fmt: skip


if __name__ == "__main__":
    main()

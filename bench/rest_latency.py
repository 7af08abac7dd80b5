"""REST latency under load: 20 clients poll a writer that ingests at full speed.

A simulated camera (its own process) sends frames as fast as the writer (its own process,
``pco-writer write --rest-port``) takes them. Meanwhile ``--clients`` threads of this process
each GET ``/status`` and ``/statistics`` every 0.1 s over real sockets on 127.0.0.1, one
keep-alive connection per client, as pco_rclient's ``wait()`` does. The last line is::

    p50_ms=A p99_ms=B max_ms=C requests=N errors=E frames=F written=W lost=L fps=R

``--via-control``: the writer is started by ``pco-writer server`` (its own process), and each
client GETs the control server's ``/status/<port>`` and the writer's ``/statistics``, which is
what pco_rclient's ``wait()`` asks; the figures are those of ``/status/<port>`` (the other
route's on the line before).

The writer is stopped (SIGTERM: it writes what it has received) when the clients are done.
``lost`` counts frames the writer received that did not reach the file, plus gaps in the frame
ids (0 is the goal); ``errors`` requests that failed or answered anything but 200.

    python bench/rest_latency.py                        # 256 x 256 frames, 20 s of clients
    python bench/rest_latency.py --shape 2160 2560 --seconds 25
    python bench/rest_latency.py --via-control          # through the control server
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np


def main() -> None:
    args = _parse()
    workdir = Path(tempfile.mkdtemp(prefix="pco-rest-bench-", dir=args.dir))
    cam_port, rest_port = _free_port(), _free_port()
    frames = args.frames or _frames_for(args.shape, args.seconds)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_camera(cam_port, args.shape, frames))
        base = f"http://127.0.0.1:{rest_port}"
        if args.via_control:
            control = f"http://127.0.0.1:{_free_port()}"
            procs.append(_control_server(control, workdir))
            _start_via(control, cam_port, rest_port, frames)
            paths = (f"{control}/status/{rest_port}", f"{base}/statistics")
        else:
            procs.append(_writer(cam_port, rest_port, workdir / "bench.h5", frames, workdir))
            paths = (f"{base}/status", f"{base}/statistics")
        _wait_ready(base, procs[1])
        by_path, errors, elapsed = _poll(paths, args.clients, args.seconds, procs[1])
        if args.via_control:
            stats = _final_statistics_via(control, rest_port)
        else:
            stats = _final_statistics(procs[1], workdir)
        with h5py.File(workdir / "bench.h5", "r") as f:
            in_file = int(f["exchange/data"].shape[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # a control server stops its writer
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    total = sum(len(v) for v in by_path.values())
    print(f"clients={args.clients} requests/s={total / elapsed:.0f} shape={args.shape} "
          f"via_control={args.via_control}", file=sys.stderr)  # fmt: skip
    for path, values in by_path.items():
        v = np.array(values) * 1e3
        print(f"{path}: p50_ms={np.percentile(v, 50):.1f} p99_ms={np.percentile(v, 99):.1f} "
              f"max_ms={v.max():.1f} requests={len(v)}", file=sys.stderr)  # fmt: skip
    ms = np.array(by_path[paths[0]] if args.via_control else sum(by_path.values(), [])) * 1e3
    received, written = stats["n_received_frames"], stats["n_written_frames"]
    lost = received - in_file + stats["n_lost_frames"]
    print(
        f"p50_ms={np.percentile(ms, 50):.1f} p99_ms={np.percentile(ms, 99):.1f} "
        f"max_ms={ms.max():.1f} requests={len(ms)} errors={errors} received={received} "
        f"written={written} in_file={in_file} lost={lost} fps={stats['writing_rate']:.0f}"
    )


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs=2, default=[256, 256])
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seconds", type=float, default=20.0, help="how long the clients poll")
    p.add_argument("--frames", type=int, default=0, help="0: about what --seconds needs")
    p.add_argument("--dir", default=None, help="where the file goes (a temp folder)")
    p.add_argument(
        "--via-control",
        action="store_true",
        help="start the writer through pco-writer server and poll its /status/<port>",
    )
    return p.parse_args()


def _frames_for(shape: list[int], seconds: float) -> int:
    """Enough frames to keep the writer busy for longer than the clients poll (~1 GB/s)."""
    frame_bytes = shape[0] * shape[1] * 2
    return int(max(1000, seconds * 1e9 / frame_bytes))


def _camera(port: int, shape: list[int], frames: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pco_writer.cli", "simulate", "--bind", f"tcp://127.0.0.1:{port}",
         "--shape", *map(str, shape), "--frames", str(frames), "--fps", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _writer(
    cam: int, rest: int, output: Path, frames: int, workdir: Path
) -> subprocess.Popen[bytes]:
    with (workdir / "writer.out").open("wb") as out:  # its statistics, printed at the end
        return subprocess.Popen(
            [sys.executable, "-m", "pco_writer.cli", "write", "--connect",
             f"tcp://127.0.0.1:{cam}", "--output", str(output), "--n-frames", str(frames),
             "--rest-port", str(rest)],
            stdout=out, stderr=subprocess.DEVNULL,
        )  # fmt: skip


def _control_server(url: str, workdir: Path) -> subprocess.Popen[bytes]:
    port = url.rsplit(":", 1)[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pco_writer.cli", "server", "--port", port,
         "--data-root", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/ack", timeout=1).json()["success"]:
                return proc
        except (httpx.HTTPError, ValueError, KeyError):
            time.sleep(0.1)
    raise SystemExit("the control server did not answer within 30 s")


def _start_via(control: str, cam: int, rest: int, frames: int) -> None:
    """The start request pco_rclient sends (every value a string)."""
    body = {"connection_address": f"tcp://127.0.0.1:{cam}", "output_file": "bench.h5",
            "n_frames": str(frames), "user_id": "-1", "dataset_name": "data",
            "max_frames_per_file": "0", "writer_rest_port": str(rest)}  # fmt: skip
    answer = httpx.post(f"{control}/start_pco_writer", content=json.dumps(body), timeout=60)
    if not answer.json().get("success"):
        raise SystemExit(f"the control server refused the start: {answer.text}")


def _final_statistics_via(control: str, rest: int) -> dict[str, Any]:
    """The last run's statistics from the control server, once stored (stopped if busy)."""
    httpx.get(f"{control}/stop/{rest}", timeout=10)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = httpx.get(f"{control}/finished", timeout=5).json()
        if answer.get("success"):
            full = httpx.get(f"{control}/status/{rest}", timeout=5).json()
            return dict(full)
        time.sleep(0.2)
    raise SystemExit("the run's statistics did not arrive within 120 s")


def _wait_ready(base: str, writer: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and writer.poll() is None:
        try:
            if httpx.get(f"{base}/statistics", timeout=1).json()["n_received_frames"] > 0:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise SystemExit("the writer did not start receiving within 30 s")


def _poll(
    urls: tuple[str, ...], n_clients: int, seconds: float, watched: subprocess.Popen[bytes]
) -> tuple[dict[str, list[float]], int, float]:
    by_url: dict[str, list[float]] = {url: [] for url in urls}
    errors = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        mine: dict[str, list[float]] = {url: [] for url in urls}
        with httpx.Client(timeout=5) as http:  # keep-alive per host, as requests.Session
            while not stop.is_set() and watched.poll() is None:
                t_next = time.monotonic() + 0.1
                for url in urls:
                    t0 = time.perf_counter()
                    try:
                        answer = http.get(url)
                        ok = answer.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    mine[url].append(time.perf_counter() - t0)
                    if not ok:
                        with lock:
                            errors[0] += 1
                    elif url == urls[0] and answer.json().get("status") in ("finished", "error"):
                        stop.set()  # the run is over: the writer's API goes away
                        break
                stop.wait(max(0.0, t_next - time.monotonic()))
        with lock:
            for url, values in mine.items():
                by_url[url].extend(values)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(n_clients)]
    t0 = time.monotonic()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(10)
    return by_url, errors[0], time.monotonic() - t0


def _final_statistics(writer: subprocess.Popen[bytes], workdir: Path) -> dict[str, Any]:
    """The writer's last statistics, once it has finished (stopped if still busy)."""
    if writer.poll() is None:
        writer.send_signal(signal.SIGTERM)
    writer.wait(120)
    text = (workdir / "writer.out").read_text()
    record = json.loads(text[text.index("{") :])  # the exit record (ADR 0052)
    return dict(record["statistics"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()

"""``throughput.py --page-open N``: the writer's throughput with the status page open, or not.

Each run goes the way of production: a control server (in this process), a writer process it
spawns, and the simulated camera in a third process. "open" runs poll what an open status
page polls (``/overview`` every second, ``/preview`` every half second) and ``/metrics``
every second (Prometheus scrapes every 15 s: this is harsher); "closed" runs poll nothing.
Both poll ``/status`` every half second, as a client waiting for the end does. The runs
alternate in pairs (closed-open, then open-closed, ...), so that a drift of the machine
falls on both sides. The throughput of a run is the writer's own ``writing_rate`` (frames from
the first frame received to the file closed) times the frame size. The last line is::

    page_ratio=R median_pair_ratio=M open_GBps=X closed_GBps=Y cpu_ratio=C cpu_open_s=...
    cpu_closed_s=... server_cpu_open_s=... server_cpu_closed_s=... pair_ratios=... lost=N

R is the mean of the open runs over the mean of the closed ones; M the median of the pairs'
ratios, which one disturbed run moves less; C the CPU seconds the writer and camera
processes used for a run, open over closed: on a machine shared with others, where the
throughput of a run moves by tens of per cent, the CPU a run costs moves much less. The
server's CPU (this process: the control server, and the polling that stands in for a browser,
which in production runs on another machine) is shown beside it.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from pco_writer.control import ControlServer, server_config

GB = 1e9
_PAGE = (("/overview", 1.0), ("/preview", 0.5), ("/metrics", 1.0))


@dataclass
class _Result:
    gbps: float
    lost: int
    cpu_s: float
    """CPU seconds of the run's child processes (the writer and the camera)."""
    server_cpu_s: float
    """CPU seconds of this process: the control server, and the page's polling if open."""


def page_comparison(args: argparse.Namespace, start_sender: Any, free_port: Any) -> None:
    """Alternate runs with the page open and closed; print each run and the ratios."""
    frame_bytes = int(np.prod(args.shape)) * np.dtype(args.dtype).itemsize
    n = args.frames or int(min(8 * GB // frame_bytes, 150_000))
    workdir = Path(tempfile.mkdtemp(prefix="pco-bench-page-", dir=args.dir))
    config = server_config({"port": 0, "data_root": str(workdir),
                            "limits": {"buffer_bytes": args.buffer_bytes}})  # fmt: skip
    results: dict[bool, list[_Result]] = {True: [], False: []}
    try:
        with ControlServer.from_config(config) as server:
            _print(f"frames: {n} x {args.shape} {args.dtype}; warm-up run, untimed ...")
            _run(server, args, n, workdir, False, start_sender, free_port)
            for pair in range(args.page_open):
                for page_open in (False, True) if pair % 2 == 0 else (True, False):
                    r = _run(server, args, n, workdir, page_open, start_sender, free_port)
                    results[page_open].append(r)
                    _print(f"pair {pair + 1} page {'open  ' if page_open else 'closed'}: "
                           f"{r.gbps:.3f} GB/s, writer+camera {r.cpu_s:.2f} CPU s, "
                           f"server+page {r.server_cpu_s:.2f} CPU s, {r.lost} lost")  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _summary(results)


def _summary(results: dict[bool, list[_Result]]) -> None:
    opened, closed = results[True], results[False]
    pairs = [o.gbps / c.gbps for o, c in zip(opened, closed, strict=True)]
    gbps = {k: statistics.mean(r.gbps for r in v) for k, v in results.items()}
    cpu = {k: statistics.mean(r.cpu_s for r in v) for k, v in results.items()}
    server = {k: statistics.mean(r.server_cpu_s for r in v) for k, v in results.items()}
    lost = sum(r.lost for v in results.values() for r in v)
    print(f"page_ratio={gbps[True] / gbps[False]:.3f} "
          f"median_pair_ratio={statistics.median(pairs):.3f} "
          f"open_GBps={gbps[True]:.3f} closed_GBps={gbps[False]:.3f} "
          f"cpu_ratio={cpu[True] / cpu[False]:.3f} cpu_open_s={cpu[True]:.2f} "
          f"cpu_closed_s={cpu[False]:.2f} server_cpu_open_s={server[True]:.2f} "
          f"server_cpu_closed_s={server[False]:.2f} "
          f"pair_ratios={','.join(f'{r:.3f}' for r in pairs)} lost={lost}", flush=True)  # fmt: skip


def _run(
    server: ControlServer, args: argparse.Namespace, n: int, workdir: Path, page_open: bool,
    start_sender: Any, free_port: Any,
) -> _Result:  # fmt: skip
    cpu_before, server_before = _children_cpu(), _own_cpu()
    sender, address = start_sender(args, n)
    port = free_port()
    output = workdir / "bench.h5"
    stop = threading.Event()
    pollers: list[threading.Thread] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            body = {"connection_address": address, "output_file": str(output), "n_frames": n,
                    "dataset_name": "data", "writer_rest_port": port,
                    "compression": args.compression}  # fmt: skip
            answer = http.post("/start_pco_writer", json=body).json()
            if not answer.get("success"):
                raise SystemExit(f"the start was refused: {answer}")
            if page_open:
                pollers = [threading.Thread(target=_poll, args=(server.url, route, period, stop))
                           for route, period in _PAGE]  # fmt: skip
                for poller in pollers:
                    poller.start()
            stats = _wait_finished(http, port)
    finally:
        stop.set()
        for poller in pollers:
            poller.join(5)
        sender.wait(30)
        _wait_exited(server, port)
        output.unlink(missing_ok=True)
    frame_bytes = int(np.prod(args.shape)) * np.dtype(args.dtype).itemsize
    gbps = stats["writing_rate"] * frame_bytes / GB
    lost = n - stats["n_written_frames"]
    return _Result(gbps, lost, _children_cpu() - cpu_before, _own_cpu() - server_before)


def _children_cpu() -> float:
    """User and system seconds of this process's ended, reaped children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _wait_exited(server: ControlServer, port: int) -> None:
    """Until the writer process is reaped (its CPU time is then in RUSAGE_CHILDREN)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not any(r["alive"] for r in server.controller.runs() if r["port"] == port):
            return
        time.sleep(0.1)


def _wait_finished(http: httpx.Client, port: int) -> dict[str, Any]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        stats = http.get(f"/status/{port}").json()
        if stats.get("status") in ("finished", "error"):
            return dict(stats)
        time.sleep(0.5)
    raise SystemExit("the writer did not finish within 600 s")


def _poll(url: str, route: str, period: float, stop: threading.Event) -> None:
    """What a browser with the page open asks for (the answer read whole, then dropped)."""
    with httpx.Client(base_url=url, timeout=10) as http:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                http.get(route).read()
            except httpx.HTTPError as exc:
                _print(f"{route}: {exc}")
            stop.wait(max(0.0, period - (time.monotonic() - t0)))


def _print(text: str) -> None:
    print(text, file=sys.stderr, flush=True)

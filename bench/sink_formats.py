"""The HDF5 sink alone, SWMR against the HDF5 1.8 format: what the file format costs.

No camera, no ZMQ, no ring: frames made once in memory go through ``H5Sink`` (tomcat layout,
batches of 64, a flush every second as the writer does) into a file in the temp folder, and
the time until the file is closed and fsync'ed is measured. The two formats run alternately
(ABBA), so that the noise of a shared machine and the order fall on both alike. The last line is::

    swmr_fps=S old_fps=O ratio=S/O (medians of N runs each)

    python bench/sink_formats.py                    # 64x250 uint16, 100k frames
    python bench/sink_formats.py --shape 2160 2560 --frames 200 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from pco_writer.buffer import ReceivedFrame
from pco_writer.h5 import H5Sink, OutputFiles
from pco_writer.h5._layout_file import H5Layout
from pco_writer.layouts import load_layout
from pco_writer.ledger import FrameLedger
from pco_writer.protocol import parse_header

BATCH = 64


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shape", type=int, nargs="+", default=[64, 250])
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=5, help="runs of each format")
    p.add_argument("--dir", default=None, help="where to write (default: the temp folder)")
    args = p.parse_args()
    results: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="pco-sink-", dir=args.dir) as tmp:
        for run in range(args.runs):
            for swmr in (True, False) if run % 2 == 0 else (False, True):  # order cancels out
                fps = _run(Path(tmp) / f"{run}-{int(swmr)}.h5", args, swmr)
                results[swmr].append(fps)
                print(f"run {run} swmr={int(swmr)} fps={fps:.0f}", flush=True)
    swmr_fps, old_fps = (statistics.median(results[k]) for k in (True, False))
    print(
        f"swmr_fps={swmr_fps:.0f} old_fps={old_fps:.0f} ratio={swmr_fps / old_fps:.3f} "
        f"(medians of {args.runs} runs each, shape {args.shape})",
        flush=True,
    )


def _run(path: Path, args: argparse.Namespace, swmr: bool) -> float:
    n, shape = args.frames, tuple(args.shape)
    ledger = FrameLedger(n)
    sink = H5Sink(OutputFiles(str(path)), "data", ledger,
                  layout=H5Layout(load_layout("tomcat"), swmr=swmr))  # fmt: skip
    pixels = np.arange(int(np.prod(shape)), dtype=np.uint16).tobytes()
    frames = [_frame(1000 + i, shape, pixels) for i in range(n)]
    ledger.decide(frames)
    ledger.place(frames)
    start = time.perf_counter()
    for i in range(0, n, BATCH):
        sink.write(frames[i : i + BATCH])
        sink.flush_if_due()
    sink.close("completed")
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    elapsed = time.perf_counter() - start
    path.unlink()
    return n / elapsed


def _frame(frame_id: int, shape: tuple[int, ...], data: bytes) -> ReceivedFrame:
    header = parse_header(json.dumps({"htype": "array-1.0", "shape": list(shape), "frame": frame_id,
                                      "type": "uint16", "endianness": "little"}))  # fmt: skip
    return ReceivedFrame(-1, header, data, len(data))


if __name__ == "__main__":
    main()

"""A reader that opens a multi-writer master file again and again while it is written.

    python _master_follower.py MASTER FIRST_ID TIMEOUT_S

Each round opens MASTER with ``swmr=True`` (the parts are SWMR files), reads every row of the
frames dataset, and notes how many rows from the first are there bit-exact (``image(id)``);
a row that is neither its frame nor the fill value (all zeros) is an error. Rounds go on
until stdin closes (the test says the run has ended) or the timeout. Prints one JSON object:
``{"rounds": [[time, rows_exact], ...], "errors": [...], "failed_opens": n}``.
"""

from __future__ import annotations

import json
import select
import sys
import time
from typing import Any

import h5py
import numpy as np
from _stream_helpers import image


def follow(path: str, first: int, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    rounds: list[list[float]] = []
    errors: list[str] = []
    failed, last_failure = 0, ""
    while time.monotonic() < deadline:
        if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.read(1):
            break  # stdin closed: the run has ended
        try:
            with h5py.File(path, "r", swmr=True) as f:
                frames = f["exchange/data"][()]
        except (OSError, KeyError) as exc:  # not there yet
            failed += 1
            last_failure = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
            continue
        exact = 0
        for row, pixels in enumerate(frames):
            if np.array_equal(pixels, image(first + row)):
                exact += exact == row  # rows from the first that are all there
            elif pixels.any():
                errors.append(f"row {row} is neither frame {first + row} nor empty")
        rounds.append([time.time(), exact])
        time.sleep(0.2)
    return {"rounds": rounds, "errors": errors[:20], "failed_opens": failed,
            "last_failure": last_failure}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(follow(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))), flush=True)

"""A reader that follows a file while a writer in another process writes it (SWMR).

    python _swmr_follower.py FILE N_FRAMES FIRST_ID TIMEOUT_S

Opens FILE with ``swmr=True`` as soon as a writer lets readers in, then calls ``refresh()``
and checks every row as it appears: the frame bit-exact (``image(id)``) and each per-frame
value of the tomcat layout. Once all N_FRAMES are checked it keeps the file open until its
stdin closes (the writer has ended meanwhile), reads the last frame again with the same
handle, then opens the file anew and reads the end reason. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import h5py
import numpy as np
from _stream_helpers import SHAPE, image

COLUMNS = ("frame", "shape", "htype", "tag", "source", "type", "endianness")


def expected(name: str, frame_id: int) -> Any:
    """What the writer must store for the frame ``frame_id`` (see test_swmr.frame_with_tag)."""
    values = {"frame": frame_id, "shape": list(SHAPE), "htype": b"array-1.0",
              "tag": f"tag-{frame_id}".encode(), "source": b"pco.edge (sim)",
              "type": b"uint16", "endianness": b"little"}  # fmt: skip
    return values[name]


def open_when_ready(path: str, deadline: float) -> h5py.File:
    while True:
        try:
            return h5py.File(path, "r", swmr=True)
        except (FileNotFoundError, OSError):  # not there yet, or not yet open for SWMR
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def follow(path: str, n: int, first: int, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    f = open_when_ready(path, deadline)
    data = f["exchange/data"]
    group = f["measurement/acquisition/data"]
    columns = {name: group[name] for name in COLUMNS}
    checked, sizes, errors = 0, [], []
    while checked < n and time.monotonic() < deadline:
        for ds in (*columns.values(), data):
            ds.refresh()
        top = min(ds.shape[0] for ds in (*columns.values(), data))
        if top > checked:
            sizes.append([time.time(), top])
            rows = {name: ds[checked:top] for name, ds in columns.items()}
            frames = data[checked:top]
            for k in range(top - checked):
                frame_id = first + checked + k
                if not np.array_equal(frames[k], image(frame_id)):
                    errors.append(f"frame {frame_id}: pixels differ")
                for name in COLUMNS:
                    got = rows[name][k]
                    got = got.tolist() if isinstance(got, np.ndarray) else got
                    if got != expected(name, frame_id):
                        errors.append(f"frame {frame_id}: {name} is {got!r}")
            checked = top
        time.sleep(0.02)
    sys.stdin.read()  # hold the file open until the test says the writer has ended
    data.refresh()
    last_again = bool(np.array_equal(data[n - 1], image(first + n - 1))) if checked else False
    f.close()
    with h5py.File(path, "r") as again:
        end_reason = again["measurement/acquisition/data"].attrs.get("end_reason")
    return {"checked": checked, "sizes": sizes, "errors": errors[:20],
            "last_again": last_again, "end_reason": end_reason}  # fmt: skip


if __name__ == "__main__":
    path, n, first, timeout_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps(follow(path, n, first, timeout_s)), flush=True)

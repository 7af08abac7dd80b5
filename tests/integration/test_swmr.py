"""Reading while it writes (SWMR): readers in other processes follow the file as it grows.

A SWMR reader must not share the writer's HDF5 library (HDF5 would hand it the writer's own
open file), so every reader here is a separate Python process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from _control_helpers import free_port
from _stream_helpers import SHAPE, Push, camera, finish, frame, image, running_writer

from pco_writer.client import PcoWriter
from pco_writer.control import ControlServer
from pco_writer.control._request import parse_start_request, writer_settings
from pco_writer.h5._superblock import read_superblock
from pco_writer.settings import AcquisitionSettings
from pco_writer.writer import Writer

FIRST = 5000
HERE = Path(__file__).parent
FOLLOWER = HERE / "_swmr_follower.py"
PEEK = """
import json, sys
import h5py, hdf5plugin, numpy as np
from _stream_helpers import image
with h5py.File(sys.argv[1], "r", swmr=True) as f:
    data = f.get(sys.argv[2])  # None: the acquisition has not opened the file yet
    n = data.shape[0] if data is not None else 0
    print(json.dumps({"rows": n, "last": int(data[n - 1].sum()) if n else None}))
"""
HOLD = """
import sys, h5py
with h5py.File(sys.argv[1], "r", swmr=True) as f:
    print(f["exchange/data"].shape[0], flush=True)
    sys.stdin.read()
    f["exchange/data"].refresh()
    print(f["exchange/data"].shape[0], flush=True)
"""


def frame_with_tag(frame_id: int) -> list[bytes]:
    """An Array-1.0 frame whose tag changes with every frame (see _swmr_follower.expected)."""
    header = {"htype": "array-1.0", "tag": f"tag-{frame_id}", "source": "pco.edge (sim)",
              "shape": list(SHAPE), "frame": frame_id, "type": "uint16",
              "endianess": "little"}  # fmt: skip
    return [json.dumps(header).encode(), image(frame_id).tobytes()]


def send_steadily(cam: Push, first: int, n: int, fps: float) -> None:
    """Send ``n`` frames at ``fps``, in bursts of 10 ms."""
    start = time.monotonic()
    for i in range(n):
        if i % max(1, int(fps / 100)) == 0:
            time.sleep(max(0.0, start + i / fps - time.monotonic()))
        cam.send(frame_with_tag(first + i), timeout_ms=20_000)


def peek(path: Path, frames_path: str) -> dict[str, Any]:
    """What a reader in another process sees now: the rows and the last frame's pixel sum."""
    done = subprocess.run([sys.executable, "-c", PEEK, str(path), frames_path], cwd=HERE,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def wait_for_rows(path: Path, frames_path: str, rows: int) -> dict[str, Any]:
    """Peek until a reader sees ``rows`` rows (the writer flushes every second)."""
    deadline = time.monotonic() + 15
    while True:
        seen = peek(path, frames_path) if path.exists() else {"rows": 0}
        if seen["rows"] >= rows or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def test_a_reader_in_another_process_follows_a_10000_frame_run_frame_by_frame(
    tmp_path: Path,
) -> None:
    output, n = tmp_path / "scan.h5", 10_000
    reader = subprocess.Popen(
        [sys.executable, str(FOLLOWER), str(output), str(n), str(FIRST), "60"], cwd=HERE,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with camera() as cam, running_writer(connect=cam.address, output=str(output),
                                             n_frames=n) as writer:  # fmt: skip
            send_steadily(cam, FIRST, n, fps=2500)  # 4 s
            last_sent = time.time()
            stats = finish(writer, 30)
        out, err = reader.communicate("", timeout=60)  # stdin closes: the writer has ended
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait(5)
    assert reader.returncode == 0, err
    seen = json.loads(out)
    assert seen["errors"] == []
    assert seen["checked"] == n == stats["n_written_frames"]
    during = {rows for at, rows in seen["sizes"] if at < last_sent}
    assert len(during) >= 3, seen["sizes"]  # it grew while the camera sent, not only at the end
    assert seen["last_again"] is True  # the reader's handle still reads after the end ...
    assert seen["end_reason"] == "completed"  # ... and a new open sees the end values


def open_ended(output: Path, cam: Push, **settings: Any) -> Writer:
    """A started writer with ``n_frames`` 0: it writes until stopped (flushed every 0.2 s)."""
    writer = Writer(AcquisitionSettings(connect=cam.address, output=str(output), n_frames=0,
                                 buffer_bytes=1 << 24, flush_interval=0.2, **settings))  # fmt: skip
    writer.start()
    return writer


def follow_one_acquisition(
    output: Path, frames_path: str, followed: Path, first: int, offset: int = 0, **settings: Any
) -> None:
    """An open-ended acquisition of 20 + 20 frames; a reader sees 20, then 40 in ``followed``."""
    with camera() as cam:
        writer = open_ended(output, cam, **settings)
        try:
            for i in range(20):
                cam.send(frame(first + i))
            early = wait_for_rows(followed, frames_path, offset + 20)
            for i in range(20, 40):
                cam.send(frame(first + i))
            late = wait_for_rows(followed, frames_path, offset + 40)
        finally:
            writer.stop()
            assert writer.wait(10)
    assert early["rows"] == offset + 20 and early["last"] == int(image(first + 19).sum())
    assert late["rows"] == offset + 40 and late["last"] == int(image(first + 39).sum())
    assert writer.statistics()["n_written_frames"] == 40


def closed_as_swmr(path: Path) -> bool:
    """The file is in the SWMR format (superblock 3) and no writer has it open."""
    block = read_superblock(path)
    return block is not None and block.version == 3 and not block.open_for_writing


def test_data_white_and_data_black_appended_to_a_file_are_followed_as_they_grow(
    tmp_path: Path,
) -> None:
    output = tmp_path / "scan.h5"
    follow_one_acquisition(output, "exchange/data", output, FIRST)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(output)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "40\n"
        for k, name in enumerate(("data_white", "data_black"), start=1):  # a reader stays
            follow_one_acquisition(output, f"exchange/{name}", output, FIRST + 100 * k,
                                   dataset_name=name)  # fmt: skip
            assert closed_as_swmr(output)
        out, _ = holder.communicate("", timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(5)
    assert holder.returncode == 0 and out == "40\n"  # its handle still reads what it had
    with h5py.File(output, "r") as f:
        for k, name in enumerate(("data", "data_white", "data_black")):
            assert f["exchange"][name].shape == (40, *SHAPE)
            assert np.array_equal(f["exchange"][name][39], image(FIRST + 100 * k + 39))
            assert f[f"measurement/acquisition/{name}"].attrs["end_reason"] == "stopped"


def test_each_file_of_a_roll_over_is_followed_while_it_is_written(tmp_path: Path) -> None:
    with camera() as cam:
        writer = open_ended(tmp_path / "scan_%03d.h5", cam, max_frames_per_file=15)
        try:
            for i in range(20):
                cam.send(frame(FIRST + i))
            second = wait_for_rows(tmp_path / "scan_002.h5", "exchange/data", 5)
            for i in range(20, 40):
                cam.send(frame(FIRST + i))
            third = wait_for_rows(tmp_path / "scan_003.h5", "exchange/data", 10)
        finally:
            writer.stop()
            assert writer.wait(10)
    assert second == {"rows": 5, "last": int(image(FIRST + 19).sum())}
    assert third == {"rows": 10, "last": int(image(FIRST + 39).sum())}
    for number, rows in ((1, 15), (2, 15), (3, 10)):
        path = tmp_path / f"scan_{number:03d}.h5"
        assert closed_as_swmr(path)
        with h5py.File(path, "r") as f:
            assert f["exchange/data"].shape[0] == rows
            assert f["measurement/acquisition/data"].attrs["end_reason"] in ("completed", "stopped")


def test_compressed_frames_are_followed(tmp_path: Path) -> None:
    output = tmp_path / "scan.h5"
    follow_one_acquisition(output, "exchange/data", output, FIRST, compression="bitshuffle-lz4")
    assert closed_as_swmr(output)
    with h5py.File(output, "r") as f:
        assert f["exchange/data"].id.get_create_plist().get_filter(0)[0] == 32008


def test_nxtomo_frames_appended_by_a_second_acquisition_are_followed(tmp_path: Path) -> None:
    output, frames_path = tmp_path / "scan.nxs", "entry/instrument/detector/data"
    follow_one_acquisition(output, frames_path, output, FIRST, layout="nxtomo")
    follow_one_acquisition(output, frames_path, output, FIRST + 100, offset=40,
                           layout="nxtomo", dataset_name="data_white")  # fmt: skip
    assert closed_as_swmr(output)
    with h5py.File(output, "r") as f:
        assert f[frames_path].shape == (80, *SHAPE)
        assert f["entry/instrument/detector/image_key"][:].tolist() == [0] * 40 + [1] * 40
        assert f["entry/acquisitions/data_white/end_reason"][()] == b"stopped"


def test_swmr_false_in_a_start_request_writes_the_hdf5_1_8_format(tmp_path: Path) -> None:
    body = {"connection_address": "tcp://127.0.0.1:8080", "output_file": "x.h5",
            "n_frames": "5", "dataset_name": "data"}  # fmt: skip

    def swmr(extra: dict[str, str]) -> bool:
        return writer_settings(parse_start_request({**body, **extra}), tmp_path).swmr

    assert swmr({}) is True  # pco_rclient sends no swmr: SWMR files
    assert swmr({"swmr": "true"}) is True
    assert swmr({"swmr": "false"}) is False
    server = ControlServer("127.0.0.1", 0, data_root=tmp_path).start()
    try:
        with camera() as cam, PcoWriter(
            output_file=str(tmp_path / "old.h5"), n_frames=5, connection_address=cam.address,
            flask_api_address=server.url, writer_api_address=f"http://127.0.0.1:{free_port()}",
            swmr=False,
        ) as pco:  # fmt: skip
            assert pco.get_configuration()["swmr"] == "false"
            pco.start()
            for i in range(5):
                cam.send(frame(FIRST + i))
            assert pco.wait().n_written_frames == 5
    finally:
        server.stop()
    block = read_superblock(tmp_path / "old.h5")
    assert block is not None and block.version == 0
    assert "swmr" not in PcoWriter(connection_address=cam.address).get_configuration()

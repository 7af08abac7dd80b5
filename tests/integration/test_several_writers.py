"""One acquisition, several writer processes, one master file (issue 14, ADR 0042)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from _stream_helpers import SHAPE, Push, camera, frame, image

from pco_writer.settings import AcquisitionSettings
from pco_writer.writer import MultiWriter

HERE = Path(__file__).parent
FIRST = 1000


@contextmanager
def several(cam: Push, output: Path, n_writers: int = 2, **settings: Any) -> Iterator[MultiWriter]:
    """A started MultiWriter; killed and waited for if the test leaves it running."""
    settings.setdefault("buffer_bytes", 1 << 24)
    writer = MultiWriter(AcquisitionSettings(connect=cam.address, output=str(output),
                                             n_writers=n_writers, **settings))  # fmt: skip
    writer.start()
    try:
        yield writer
    finally:
        if not writer.done:
            writer.kill()
        assert writer.wait(30), "the acquisition did not end within 30 s"
        assert not any(s.alive for s in writer.shards), "a writer process outlived the run"


def wait_until_the_writers_wrote(writer: MultiWriter, n: int, timeout: float = 20) -> None:
    """Wait until the writer processes together have ``n`` frames in their parts (the master
    maps the last of them only once every part has passed them, or at the end)."""
    deadline = time.monotonic() + timeout
    while sum(w.get("n_written_frames") or 0 for w in writer.statistics()["writers"]) < n:
        assert time.monotonic() < deadline, f"the writers did not write {n} frames in {timeout} s"
        time.sleep(0.05)


def finish(writer: MultiWriter, timeout: float = 60) -> dict[str, Any]:
    assert writer.wait(timeout), f"the acquisition did not end within {timeout} s"
    return writer.statistics()


def check_master(path: Path, ids: list[int], name: str = "data") -> h5py.Group:
    """The master reads frames ``ids`` (from FIRST) bit-exact, in id order, through its
    virtual dataset; rows of other ids read as empty."""
    with h5py.File(path, "r") as f:
        data = f[f"exchange/{name}"]
        assert data.is_virtual
        frames = data[()]
        present = set(ids)
        for row in range(frames.shape[0]):
            if FIRST + row in present:
                assert np.array_equal(frames[row], image(FIRST + row)), f"row {row}"
            else:
                assert not frames[row].any(), f"row {row} should be empty"
        group = f[f"measurement/acquisition/{name}"]
        frame_ids = [int(i) for i in group["frame"][:] if i != np.iinfo(np.uint64).max]
        assert frame_ids == sorted(ids)
        return dict(group.attrs), [int(i) for i in group["missing_frame_ids"][:]]


def test_two_writers_make_one_master_that_reads_as_one_scan(tmp_path: Path) -> None:
    output, n = tmp_path / "scan.h5", 300
    with camera() as cam, several(cam, output, n_frames=n) as writer:
        for i in range(n):
            cam.send(frame(FIRST + i))
        stats = finish(writer)
    assert (stats["end_reason"], stats["n_written_frames"], stats["n_lost_frames"]) == (
        "completed", n, 0,
    )  # fmt: skip
    assert stats["n_writers"] == 2 and len(stats["writers"]) == 2
    shares = [w["n_written_frames"] for w in stats["writers"]]
    assert sum(shares) == n and all(shares), shares  # ZeroMQ dealt to both
    attrs, missing = check_master(output, list(range(FIRST, FIRST + n)))
    assert attrs["end_reason"] == "completed" and attrs["n_frames_written"] == n
    assert missing == []
    parts = sorted(p.name for p in tmp_path.iterdir() if p.name != "scan.h5")
    assert parts == ["scan.data.part0.h5", "scan.data.part1.h5"]  # no working files left


def test_a_reader_that_opens_the_master_sees_what_was_written_two_seconds_ago(
    tmp_path: Path,
) -> None:
    output, n, fps = tmp_path / "live.h5", 1200, 240
    reader = subprocess.Popen(
        [sys.executable, str(HERE / "_master_follower.py"), str(output), str(FIRST), "60"],
        cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    sent_at: list[float] = []
    try:
        with camera() as cam, several(cam, output, n_frames=n) as writer:
            t0 = time.monotonic()
            for i in range(n):
                time.sleep(max(0.0, t0 + i / fps - time.monotonic()))
                cam.send(frame(FIRST + i))
                sent_at.append(time.time())
            stats = finish(writer)
        out, err = reader.communicate("", timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait(5)
    assert reader.returncode == 0, err
    seen = json.loads(out)
    assert seen["errors"] == [] and stats["n_written_frames"] == n
    during = [(at, rows) for at, rows in seen["rounds"] if at < sent_at[-1]]
    assert len({rows for _, rows in during}) >= 3, during  # it grew while frames came
    late = [
        (at, rows) for at, rows in during
        if rows < sum(t < at - 2.5 for t in sent_at)  # a frame sent 2.5 s before is missing
    ]  # fmt: skip
    assert len(late) <= len(during) // 5, late  # a loaded 2-core machine may lag now and then


def test_stop_ends_every_writer_and_the_master_keeps_what_they_wrote(tmp_path: Path) -> None:
    output, sent = tmp_path / "stopped.h5", [i for i in range(120) if not 50 <= i < 55]
    with camera() as cam, several(cam, output, n_frames=0) as writer:
        for i in sent:
            cam.send(frame(FIRST + i))
        wait_until_the_writers_wrote(writer, len(sent))
        writer.stop()
        stats = finish(writer)
    assert (stats["end_reason"], stats["n_written_frames"], stats["error"]) == (
        "stopped", 115, "",
    )  # fmt: skip
    assert (stats["n_lost_frames"], stats["lost_by_reason"]) == (5, {"never_received": 5})
    attrs, missing = check_master(output, [FIRST + i for i in sent])  # rows 50-54 empty
    assert attrs["end_reason"] == "stopped"
    assert missing == [FIRST + i for i in range(50, 55)]


def test_a_writer_that_dies_ends_the_run_and_the_others_frames_are_kept(tmp_path: Path) -> None:
    output = tmp_path / "died.h5"
    with camera() as cam, several(cam, output, n_frames=0, flush_interval=0.2) as writer:
        for i in range(100):
            cam.send(frame(FIRST + i))
        wait_until_the_writers_wrote(writer, 100)
        time.sleep(0.5)  # flushed (every 0.2 s)
        victim = writer.shards[1]
        os.kill(victim.pid, signal.SIGKILL)
        stats = finish(writer)
    assert stats["status"] == "error"
    assert "writer 1 of 2" in stats["end_reason"] and "SIGKILL" in stats["end_reason"]
    assert stats["n_written_frames"] == 100  # every frame was flushed before the kill
    dead = stats["writers"][1]
    assert (dead["status"], dead["end_reason"]) == ("error", "error: died (SIGKILL)"), dead
    attrs, _ = check_master(output, list(range(FIRST, FIRST + 100)))
    assert "writer 1 of 2" in str(attrs["end_reason"])


def test_roll_over_gives_master_files_that_each_map_their_range(tmp_path: Path) -> None:
    output, n = tmp_path / "scan_%03d.h5", 250
    with camera() as cam, several(cam, output, n_frames=n, max_frames_per_file=100) as writer:
        for i in range(n):
            cam.send(frame(FIRST + i))
        stats = finish(writer)
    assert stats["n_written_frames"] == n and stats["end_reason"] == "completed"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["scan.data.part0.h5", "scan.data.part1.h5", "scan_001.h5",
                     "scan_002.h5", "scan_003.h5"]  # fmt: skip
    for number, (lo, hi) in enumerate(((0, 100), (100, 200), (200, 250)), start=1):
        with h5py.File(tmp_path / f"scan_{number:03d}.h5", "r") as f:
            data = f["exchange/data"]
            assert data.shape == (hi - lo, *SHAPE)
            for row in range(hi - lo):
                assert np.array_equal(data[row], image(FIRST + lo + row)), (number, row)


def test_data_white_after_data_goes_into_the_same_master(tmp_path: Path) -> None:
    output = tmp_path / "scan.h5"
    for name, n in (("data", 40), ("data_white", 30)):
        with camera() as cam, several(cam, output, n_frames=n, dataset_name=name) as writer:
            for i in range(n):
                cam.send(frame(FIRST + i))
            assert finish(writer)["end_reason"] == "completed"
    check_master(output, list(range(FIRST, FIRST + 40)), "data")
    check_master(output, list(range(FIRST, FIRST + 30)), "data_white")


@pytest.mark.parametrize("n_writers", [0, 65])
def test_a_number_of_writers_out_of_bounds_is_refused_naming_the_bounds(n_writers: int) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="n_writers"):
        AcquisitionSettings(connect="tcp://127.0.0.1:9", output="/tmp/x.h5", n_writers=n_writers)


def test_the_client_asks_the_control_server_for_several_writers(
    server: Any, tmp_path: Path
) -> None:
    from _control_helpers import camera as sim_camera
    from _control_helpers import free_port

    from pco_writer.client import PcoWriter

    with sim_camera(frames=0, fps=200) as (address, _), PcoWriter(
        output_file=str(tmp_path / "client.h5"), connection_address=address,
        flask_api_address=server.url, writer_api_address=f"http://127.0.0.1:{free_port()}",
        n_frames=60, n_writers=2,
    ) as pco:  # fmt: skip
        assert pco.get_configuration()["n_writers"] == "2"  # as a start request carries it
        pco.start()
        stats = pco.wait(timeout=60, progress=False)
    assert (stats.n_written_frames, stats.n_lost_frames, stats.end_reason) == (60, 0, "completed")
    with h5py.File(tmp_path / "client.h5", "r") as f:
        assert f["exchange/data"].is_virtual and f["exchange/data"].shape[0] == 60
    assert (tmp_path / "client.data.part1.h5").exists()


def test_the_control_server_refuses_more_writers_than_it_allows_naming_the_limit(
    server: Any, tmp_path: Path
) -> None:
    import httpx

    body = {"connection_address": "tcp://127.0.0.1:9", "output_file": str(tmp_path / "m.h5"),
            "n_frames": "10", "dataset_name": "data", "writer_rest_port": "45678",
            "n_writers": "9"}  # fmt: skip
    answer = httpx.post(f"{server.url}/start_pco_writer", json=body, timeout=10)
    assert answer.status_code == 422
    assert "max_writers: 8" in answer.text and "n_writers 9" in answer.text
    assert not any(tmp_path.iterdir())  # nothing spawned, nothing written


def test_nxtomo_darks_then_projections_with_several_writers_make_one_stack(
    tmp_path: Path,
) -> None:
    output = tmp_path / "tomo.nxs"
    runs = (("data_black", 20, 2), ("data", 50, 3))
    for name, n, n_writers in runs:
        with camera() as cam, several(cam, output, n_writers, n_frames=n, dataset_name=name,
                                      layout="nxtomo") as writer:  # fmt: skip
            for i in range(n):
                cam.send(frame(FIRST + i))
            assert finish(writer)["end_reason"] == "completed"
    with h5py.File(output, "r") as f:
        stack = f["entry/data/data"]
        assert stack.is_virtual and stack.shape == (70, *SHAPE)
        rows = [image(FIRST + i) for i in range(20)] + [image(FIRST + i) for i in range(50)]
        assert all(np.array_equal(stack[r], rows[r]) for r in range(70))
        assert f["entry/instrument/detector/image_key"][:].tolist() == [2] * 20 + [0] * 50


def test_several_writers_write_compressed_parts_the_master_reads_through(tmp_path: Path) -> None:
    import hdf5plugin  # noqa: F401 - the bitshuffle filter for reading

    output = tmp_path / "packed.h5"
    with camera() as cam, several(cam, output, n_frames=80, compression="bitshuffle-lz4") as w:
        for i in range(80):
            cam.send(frame(FIRST + i))
        assert finish(w)["end_reason"] == "completed"
    check_master(output, list(range(FIRST, FIRST + 80)))
    with h5py.File(tmp_path / "packed.data.part0.h5", "r") as part:
        assert "32008" in str(part["frames"]._filters)  # the parts hold compressed chunks


def test_several_writers_append_to_a_large_file_of_one_writer_without_copying_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _stream_helpers import running_writer

    from pco_writer.h5 import _virtual

    output = tmp_path / "tomo.nxs"
    darks = {"n_frames": 20, "dataset_name": "data_black", "layout": "nxtomo"}
    with camera() as cam, running_writer(connect=cam.address, output=str(output), **darks) as w1:
        for i in range(20):
            cam.send(frame(FIRST + i))
        assert w1.wait(20) and w1.statistics()["end_reason"] == "completed"
    monkeypatch.setattr(_virtual, "COPY_AT_MOST", 0)  # as if it held gigabytes of frames
    with camera() as cam, several(cam, output, n_frames=30, dataset_name="data",
                                  layout="nxtomo") as writer:  # fmt: skip
        for i in range(30):
            cam.send(frame(FIRST + i))
        assert finish(writer)["end_reason"] == "completed"
    siblings = [p.name for p in tmp_path.iterdir() if p.name.startswith(".tomo.nxs.")]
    assert siblings == [".tomo.nxs.001"]  # the first run's data stays there, mapped
    with h5py.File(output, "r") as f:
        stack = f["entry/data/data"]
        assert stack.is_virtual and stack.shape == (50, *SHAPE)
        expected = [*range(20), *range(30)]
        assert all(np.array_equal(stack[r], image(FIRST + i)) for r, i in enumerate(expected))
        assert f["entry/instrument/detector/image_key"][:].tolist() == [2] * 20 + [0] * 30


def test_a_writer_that_gets_no_frame_is_no_failure_of_the_acquisition(tmp_path: Path) -> None:
    output = tmp_path / "one.h5"
    with camera() as cam, several(cam, output, n_writers=3, n_frames=1) as writer:
        cam.send(frame(FIRST))  # one frame for three writers
        stats = finish(writer)
    assert (stats["end_reason"], stats["n_written_frames"], stats["error"]) == ("completed", 1, "")
    assert len(stats["parts"]) == 1, "only the part of the writer that got the frame exists"
    check_master(output, [FIRST])


def test_kill_reaches_every_writer_and_leaves_a_readable_master(tmp_path: Path) -> None:
    output = tmp_path / "killed.h5"
    with camera() as cam, several(cam, output, n_frames=0, flush_interval=0.2) as writer:
        for i in range(60):
            cam.send(frame(FIRST + i))
        wait_until_the_writers_wrote(writer, 60)
        time.sleep(0.5)  # flushed
        writer.kill()
        stats = finish(writer)
    assert stats["end_reason"] == "killed"
    assert all(w["end_reason"] == "killed" for w in stats["writers"]), stats["writers"]
    assert stats["n_written_frames"] + stats["n_lost_frames"] >= 60
    with h5py.File(output, "r") as f:
        assert f["measurement/acquisition/data"].attrs["end_reason"] == "killed"
        data = f["exchange/data"]
        assert all(np.array_equal(data[r], image(FIRST + r)) for r in range(data.shape[0])
                   if data[r].any())  # fmt: skip

"""Faults the system must survive: a killed writer, a full disk, a camera that stops, bad clients.

Every frame the camera sends is different (``image(frame_id)``), so the files are checked
frame by frame, not only counted.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401 - registers the filters that read compressed chunks
import httpx
import pytest
import zmq
from _control_helpers import free_port, wait_for
from _fault_helpers import (
    FIRST_ID,
    SHAPE,
    camera,
    check_frames,
    kill_if_alive,
    server_process,
)
from _stream_helpers import camera as push_camera
from _stream_helpers import frame as small_frame
from test_control_server import finished, post_raw
from test_control_server import rclient_body as _rclient_body

from pco_writer.api import serve_writer
from pco_writer.control import ControlServer
from pco_writer.errors import OutputError
from pco_writer.settings import AcquisitionSettings
from pco_writer.writer import Writer, WriterStatus


def rclient_body(address: str, port: int, **changes: str) -> bytes:
    """pco_rclient's start request, for one file (no roll-over) unless told otherwise."""
    return _rclient_body(address, port, **{"max_frames_per_file": "0", **changes})


def writer_stats(port: int) -> dict[str, Any]:
    return dict(httpx.get(f"http://127.0.0.1:{port}/statistics", timeout=3).json())


def status_is(http: httpx.Client, port: int, *wanted: str) -> dict[str, Any] | None:
    answer = finished(http, port)
    return answer if answer["status"] in wanted else None


# --- kill -9 -------------------------------------------------------------------------------


def test_a_writer_killed_with_sigkill_leaves_a_readable_file_and_the_next_run_starts(
    http: httpx.Client, tmp_path: Path
) -> None:
    port = free_port()
    with camera(fps=200) as cam:
        assert post_raw(http, rclient_body(cam.address, port, n_frames="0"))["success"]
        pid = http.get("/writers").json()["writers"][0]["pid"]
        wait_for(lambda: writer_stats(port)["n_received_frames"] >= 50, what="50 frames")
        received_before = writer_stats(port)["n_received_frames"]
        time.sleep(1.6)  # the flush interval is 1 s: what was received before is on disk
        os.kill(pid, signal.SIGKILL)
        answer = wait_for(lambda: status_is(http, port, "error"), what="the error")
        assert "SIGKILL" in answer["error"], answer
        assert f"repaired {tmp_path / 'scan.h5'}: cleared the superblock's" in answer["error"]
        error = http.get("/error").json()
        assert error["success"] is True and "SIGKILL" in error["error"]
        with h5py.File(tmp_path / "scan.h5", "r") as f:  # repaired by the server: it opens
            data = f["exchange/data"]
            assert data.shape[0] >= received_before, (data.shape, received_before)
            check_frames(data, received_before)
            attrs = f["measurement/acquisition/data"].attrs
            assert attrs["end_reason"] == (
                "error: the writer died (SIGKILL); repaired by the control server"
            )
            assert attrs["repair_reason"].startswith("the writer died (SIGKILL)")
        again = post_raw(http, rclient_body(cam.address, port, n_frames="10",
                                            dataset_name="data_white"))  # fmt: skip
        assert again["success"] is True, again
        stats = wait_for(lambda: status_is(http, port, "finished"), what="the next run")
    assert stats["n_written_frames"] == 10 and stats["n_lost_frames"] == 0
    assert http.get("/error").json() == {"success": False, "error": None}
    with h5py.File(tmp_path / "scan.h5", "r") as f:
        assert f["exchange/data_white"].shape == (10, *SHAPE)


# --- disk full and unwritable places ---------------------------------------------------------


def limit_file_size(n_bytes: int) -> Any:
    def preexec() -> None:  # in the server process; its writers inherit it
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))

    return preexec


def test_a_full_disk_ends_the_run_with_an_error_and_keeps_the_written_frames(
    tmp_path: Path,
) -> None:
    port, writer_port = free_port(), free_port()
    data = tmp_path / "data"
    data.mkdir()
    preexec = limit_file_size(2_000_000)  # a writer can write 2 MB per file: ~550 frames
    with (
        server_process(data, port, tmp_path / "server.log", preexec),
        camera(fps=400) as cam,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http,
    ):
        answer = post_raw(http, rclient_body(cam.address, writer_port, n_frames="0"))
        assert answer["success"] is True, answer
        error = wait_for(lambda: status_is(http, writer_port, "error"), 30, "disk full")
        stats = http.get("/finished").json()
        runs = wait_for(lambda: [r for r in http.get("/writers").json()["writers"]
                                 if not r["alive"]], what="the writer to exit")  # fmt: skip
        time.sleep(0.5)
        assert len(http.get("/writers").json()["writers"]) == 1  # no restart, no loop
    assert "disk full" in error["error"] and "free space" in error["error"], error
    assert runs[0]["exit_code"] == 1
    n_written = stats["n_written_frames"]
    assert n_written > 100, stats
    with h5py.File(data / "scan.h5", "r") as f:
        assert f["exchange/data"].shape == (n_written, *SHAPE)
        check_frames(f["exchange/data"], n_written)
        end_reason = f["measurement/acquisition/data"].attrs["end_reason"]
        assert "disk full" in str(end_reason)


def test_a_full_disk_with_small_frames_leaves_a_readable_file_with_its_end_reason(
    tmp_path: Path,
) -> None:
    """Small frames: the per-frame values written at flush outweigh the pixels. A reserve
    counted on frames alone let the close hit the limit and the file stopped opening."""
    output = tmp_path / "small.h5"
    shape = (16, 24)
    with push_camera() as cam:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pco_writer.cli", "write", "--connect", cam.address,
             "--output", str(output), "--idle-timeout", "5", "--buffer-bytes", "16M"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=limit_file_size(12_000_000),
        )  # fmt: skip
        try:
            sent, deadline = 0, time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if cam.sock.poll(100, zmq.POLLOUT):
                    with contextlib.suppress(zmq.Again):
                        cam.sock.send_multipart(small_frame(sent, shape), zmq.NOBLOCK)
                        sent += 1
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    assert proc.returncode == 1, err
    stats = json.loads(out)["statistics"]  # the exit record
    assert "disk full" in stats["end_reason"] and stats["n_written_frames"] > 1000, stats
    with h5py.File(output, "r") as f:  # opens as it is: the close had room
        assert f["exchange/data"].shape[0] == stats["n_written_frames"]
        group = f["measurement/acquisition/data"]
        assert "disk full" in str(group.attrs["end_reason"])
        assert group["frame"].shape[0] == stats["n_written_frames"]


def test_a_disk_already_full_refuses_the_start_and_leaves_no_file(tmp_path: Path) -> None:
    port, writer_port = free_port(), free_port()
    data = tmp_path / "data"
    data.mkdir()
    with (
        server_process(data, port, tmp_path / "server.log", limit_file_size(100_000)),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http,
    ):
        answer = post_raw(http, rclient_body("tcp://127.0.0.1:9", writer_port, n_frames="5"))
        error = http.get("/error").json()
    assert answer["success"] is False and "disk full" in answer["error"], answer
    assert error["success"] is True and "disk full" in error["error"]
    assert list(data.iterdir()) == []


def test_an_output_below_a_regular_file_is_refused_with_a_clear_error(
    http: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("not a folder")
    body = rclient_body("tcp://127.0.0.1:9", free_port(), output_file="notes.txt/sub/scan.h5")
    answer = post_raw(http, body)
    assert answer["success"] is False and "notes.txt is not a folder" in answer["error"], answer
    assert http.get("/writers").json()["writers"] == []


def test_the_writer_refuses_an_unwritable_folder_before_receiving_and_writes_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("not a folder")
    output = tmp_path / "notes.txt" / "sub" / "scan.h5"
    writer = Writer(AcquisitionSettings(connect="tcp://127.0.0.1:9", output=str(output)))
    with pytest.raises(OutputError, match="notes.txt is not a folder"):
        writer.start()
    assert (tmp_path / "notes.txt").read_text() == "not a folder"


# --- a camera that stops, resumes or never sends --------------------------------------------


def run_writer(tmp_path: Path, address: str, **settings: Any) -> Writer:
    config = AcquisitionSettings(connect=address, output=str(tmp_path / "scan.h5"), **settings)
    writer = Writer(config)
    writer.start()
    return writer


def test_a_camera_that_pauses_and_resumes_gives_every_frame(tmp_path: Path) -> None:
    with camera(frames=40, fps=200) as cam:
        writer = run_writer(tmp_path, cam.address, n_frames=40)
        wait_for(lambda: writer.statistics()["n_received_frames"] >= 15, what="15 frames")
        cam.running.clear()
        time.sleep(1.5)
        assert writer.status is WriterStatus.RECEIVING
        cam.running.set()
        assert writer.wait(15.0), "the writer did not finish"
    assert writer.status is WriterStatus.FINISHED and writer.statistics()["n_written_frames"] == 40
    with h5py.File(tmp_path / "scan.h5", "r") as f:
        check_frames(f["exchange/data"], 40)


def test_a_camera_that_never_sends_does_not_hang_stop_and_leaves_no_file(
    tmp_path: Path,
) -> None:
    with camera(frames=1, fps=1) as cam:
        cam.running.clear()
        writer = run_writer(tmp_path, cam.address, n_frames=10)
        time.sleep(0.5)
        t0 = time.monotonic()
        writer.stop()
        assert writer.wait(5.0), "stop did not end the acquisition"
    assert time.monotonic() - t0 < 2.0
    stats = writer.statistics()  # no frame written: an error that names the address (issue 17)
    assert writer.status is WriterStatus.ERROR and stats["n_written_frames"] == 0
    assert f"nothing came from {cam.address}" in stats["error"]
    assert not (tmp_path / "scan.h5").exists()


def test_the_idle_timeout_finishes_an_acquisition_whose_camera_stopped(tmp_path: Path) -> None:
    with camera(frames=0, fps=200) as cam:
        writer = run_writer(tmp_path, cam.address, n_frames=1000, idle_timeout=0.5)
        wait_for(lambda: writer.statistics()["n_received_frames"] >= 20, what="20 frames")
        cam.running.clear()
        assert writer.wait(10.0), "the idle timeout did not end the acquisition"
    stats = writer.statistics()
    assert stats["status"] == "finished" and "idle timeout" in stats["end_reason"]
    assert stats["n_written_frames"] == stats["n_received_frames"] == cam.n_sent
    with h5py.File(tmp_path / "scan.h5", "r") as f:
        check_frames(f["exchange/data"], cam.n_sent)


# --- the control server restarted while a writer runs ----------------------------------------


def test_a_restarted_control_server_adopts_the_running_writer_with_all_its_settings(
    tmp_path: Path,
) -> None:
    port, writer_port = free_port(), free_port()
    pid = 0
    unusual = {"n_frames": "0", "layout": "nxtomo", "compression": "bitshuffle-lz4",
               "max_frames_per_file": "100000", "user_id": "503", "dataset_name": "data_white",
               "output_file": "scan.nxs"}  # fmt: skip
    try:
        with camera(fps=200) as cam:
            with (
                server_process(tmp_path, port, tmp_path / "server.log") as old,
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http,
            ):
                assert post_raw(http, rclient_body(cam.address, writer_port, **unusual))["success"]
                (run,) = http.get("/writers").json()["writers"]
                pid = run["pid"]
                old.kill()  # the server dies; its writer, in its own session, goes on
                old.wait(5.0)
            n_before = writer_stats(writer_port)["n_received_frames"]
            with (
                ControlServer("127.0.0.1", port, data_root=tmp_path) as new,
                httpx.Client(base_url=new.url, timeout=5) as http,
            ):
                (adopted,) = http.get("/writers").json()["writers"]
                assert finished(http, writer_port)["status"] in ("receiving", "writing")
                second = post_raw(http, rclient_body(cam.address, free_port(), n_frames="5",
                                                     dataset_name="data_dark"))  # fmt: skip
                assert second["success"] is False and "still running" in second["error"]
                wait_for(lambda: writer_stats(writer_port)["n_received_frames"] > n_before + 20)
                assert http.get(f"/stop/{writer_port}").json()["success"]
                stats = wait_for(lambda: status_is(http, writer_port, "finished"), 15, "end")
    finally:
        if pid:
            kill_if_alive(pid)
    assert adopted["settings"] == run["settings"]  # not one field lost in the restart
    assert run["settings"] == {**run["settings"], "layout": "nxtomo", "n_frames": 0,
                               "compression": "bitshuffle-lz4", "max_frames_per_file": 100000,
                               "user_id": 503, "dataset_name": "data_white",
                               "data_root": str(tmp_path.resolve()),
                               "output": str(tmp_path.resolve() / "scan_%03d.nxs")}  # fmt: skip
    assert stats["n_written_frames"] == stats["n_received_frames"] > n_before
    with h5py.File(tmp_path / "scan_001.nxs", "r") as f:  # until stopped: numbered
        data = f["entry/instrument/detector/data"]
        assert data.id.get_create_plist().get_filter(0)[0] == 32008  # bitshuffle-lz4
        check_frames(data, stats["n_written_frames"])


def test_a_restarted_control_server_repairs_the_file_of_an_adopted_writer_that_dies(
    tmp_path: Path,
) -> None:
    port, writer_port = free_port(), free_port()
    pid = 0
    try:
        with camera(fps=200) as cam:
            with (
                server_process(tmp_path, port, tmp_path / "server.log") as old,
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http,
            ):
                assert post_raw(http, rclient_body(cam.address, writer_port, n_frames="0"))[
                    "success"
                ]
                pid = http.get("/writers").json()["writers"][0]["pid"]
                old.kill()
                old.wait(5.0)
            with (
                ControlServer("127.0.0.1", port, data_root=tmp_path) as new,
                httpx.Client(base_url=new.url, timeout=5) as http,
            ):
                wait_for(lambda: writer_stats(writer_port)["n_received_frames"] >= 50)
                time.sleep(1.6)  # flushed
                os.kill(pid, signal.SIGKILL)
                answer = wait_for(lambda: status_is(http, writer_port, "error"), 15, "the error")
    finally:
        if pid:
            kill_if_alive(pid)
    assert f"repaired {tmp_path.resolve() / 'scan.h5'}: cleared" in answer["error"], answer
    with h5py.File(tmp_path / "scan.h5", "r") as f:  # opens: repaired
        assert f["exchange/data"].shape[0] >= 50
        check_frames(f["exchange/data"], 50)
        reason = f["measurement/acquisition/data"].attrs["end_reason"]
        assert reason == "error: the writer died; repaired by the control server"


# --- bad clients while the writer ingests ------------------------------------------------------


def test_slow_and_vanishing_clients_neither_block_the_api_nor_cost_a_frame(
    tmp_path: Path,
) -> None:
    n_frames = 600
    with camera(frames=n_frames, fps=600) as cam:
        writer = run_writer(tmp_path, cam.address, n_frames=n_frames)
        service = serve_writer(writer, "127.0.0.1", 0, linger=0.0)
        slow = [socket.create_connection(("127.0.0.1", service.port)) for _ in range(30)]
        try:
            for i, sock in enumerate(slow):  # headers that never end, bodies cut short
                if i % 2:
                    sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                else:
                    sock.sendall(b"POST /parameters HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Length: 1000\r\n\r\n{\"energy\":")  # fmt: skip
            for sock in slow[::3]:
                sock.close()
            with httpx.Client(base_url=service.url, timeout=3) as client:
                worst = 0.0
                while not writer.done:
                    t0 = time.perf_counter()
                    assert client.get("/statistics").json()["success"]
                    worst = max(worst, time.perf_counter() - t0)
                    time.sleep(0.02)
        finally:
            for sock in slow:
                sock.close()
            service()
        assert writer.wait(15.0)
    assert worst < 1.0, f"a status request took {worst:.2f} s"
    assert (
        writer.statistics()["n_written_frames"] == n_frames
        and writer.statistics()["n_lost_frames"] == 0
    )
    with h5py.File(tmp_path / "scan.h5", "r") as f:
        check_frames(f["exchange/data"], n_frames)


def test_first_frame_id_is_the_cameras(tmp_path: Path) -> None:
    with camera(frames=5) as cam:
        writer = run_writer(tmp_path, cam.address, n_frames=5)
        assert writer.wait(10.0)
    assert writer.statistics()["first_frame_id"] == FIRST_ID

"""Every public method of PSI's real ``PcoWriter`` (pco_rclient 0.4.11, unchanged) against
``pco-writer server``, real writer processes and a simulated camera.

Each call must return what it returned against the original servers (tomcat/start_server.py
and the C++ writer of lib_cpp_h5_writer); where we differ on purpose, docs/pco_rclient.md
says so and why.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import h5py
import pytest
from _control_helpers import free_port, wait_for
from _fault_helpers import FIRST_ID, Camera, camera, check_frames

from pco_writer.control import ControlServer

# the writer's /statistics while it runs (pco_rclient's scripts check each is there, not None)
WRITER_KEYS = {
    "status", "success", "receiving_rate", "n_lost_frames", "n_received_frames", "start_time",
    "first_frame_id", "user_id", "writing_rate", "end_time", "n_written_frames", "n_frames",
}  # fmt: skip
# GET /finished after a run: all 13, or the client hands back the raw dictionary
LAST_RUN_TYPES = {
    "dataset_name": str, "duration_sec": float, "end_time": str, "first_frame_id": int,
    "n_frames": int, "n_lost_frames": int, "n_written_frames": int, "output_file": str,
    "start_time": str, "status": str, "success": bool, "user_id": int, "writing_rate": float,
}  # fmt: skip
STATUSES = ("initialized", "receiving", "writing", "waiting for parameters", "finished")


def make_client(rclient: Any, server: ControlServer, cam: Camera, **settings: Any) -> Any:
    """A PcoWriter as a beamline script makes one. 0.4.11 keeps the camera's address only
    from a config file or from configure(): the constructor's argument is dropped."""
    pco = rclient.PcoWriter(
        connection_address=cam.address,
        flask_api_address=server.url,
        writer_api_address=f"http://127.0.0.1:{free_port()}",
        **settings,
    )
    assert not hasattr(pco, "connection_address")
    pco.configure(connection_address=cam.address)
    return pco


def start_and_wait(pco: Any, cam: Camera) -> Any:
    """start(), then let the camera send, then wait(): the client sees the writer running.

    start() polls every 0.15 s until the writer runs; a run that ends before it looks leaves
    the client waiting its whole timeout (10 s) and its status at 'starting'.
    """
    cam.running.clear()
    answer = pco.start()
    cam.running.set()
    pco.wait()
    return answer


def test_one_scan_every_call_before_during_and_after_it(
    rclient: Any, server: ControlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with camera(frames=0, fps=200) as cam:
        cam.running.clear()  # the camera waits: the calls "while running" see a running writer
        pco = make_client(rclient, server, cam, user_id=503)
        assert "Proxy Class to control the PCO writer" in str(pco)
        assert pco.is_connected() is True
        assert pco.get_status() == "unconfigured" and pco.validate_configuration() is False

        output = tmp_path / "e12345" / "scan_001" / "scan.h5"  # a new folder, as scans do
        conf = pco.configure(output_file=str(output), dataset_name="data", n_frames=30,
                             user_id=503, max_frames_per_file=100)  # fmt: skip
        assert conf == pco.get_configuration() and pco.validate_configuration() is True
        pco.assert_filenumber_placeholder()  # 100 frames a file > 30: no number
        assert pco.output_file == str(output)
        assert (conf["output_file"], conf["n_frames"], conf["writer_rest_port"]) == (
            str(output),
            "30",
            pco.writer_api_address.split(":")[2],
        )
        assert pco.get_status() == "configured"
        assert pco.get_statistics_writer() is None  # no writer: connection refused

        answer = pco.start()
        assert answer["success"] is True and pco.last_run_id == 1
        assert pco.get_status() == "receiving" and pco.is_running() is True
        assert pco.get_status_writer() == "receiving"
        assert pco.configure(n_frames=5) is None  # not while running
        assert pco.flush_cam_stream() is None  # not while running
        running = pco.get_statistics_writer()
        assert set(running) >= WRITER_KEYS and None not in running.values()
        assert (running["status"], running["n_frames"], running["user_id"]) == (
            "receiving",
            30,
            503,
        )
        assert pco.get_statistics().keys() == running.keys()  # the running writer's
        assert pco.get_written_frames() == 0
        assert pco.get_progress_message().startswith("Writer: receiving, #received:    0 (0.0%)")

        cam.running.set()
        assert pco.wait_nframes(10) is True
        assert 10 <= pco.get_written_frames() <= 30
        assert pco.wait() is None
        assert pco.get_status() == "finished" and pco.is_running() is False
        assert pco.get_status_last_run() == "finished"

        last = pco.get_statistics_last_run()
        assert {k: type(v) for k, v in last.items()} == LAST_RUN_TYPES
        assert (last["n_written_frames"], last["n_frames"], last["n_lost_frames"]) == (30, 30, 0)
        assert (last["first_frame_id"], last["user_id"], last["status"]) == (FIRST_ID, 503,
                                                                           "finished")  # fmt: skip
        assert (last["output_file"], last["dataset_name"]) == (str(output), "data")
        assert pco.previous_statistics == last
        assert pco.stop() == 0 and pco.kill() == 0  # nothing runs
        assert pco.wait() is None and pco.wait_nframes(5) is None
        assert pco.get_server_error() is None
    with h5py.File(output, "r") as f:
        check_frames(f["exchange/data"], 30)
    assert capsys.readouterr().out  # the client prints its progress


def test_server_log_and_uptime_read_as_systemctl_status_showed_them(
    rclient: Any, server: ControlServer
) -> None:
    with camera(frames=1) as cam:
        pco = make_client(rclient, server, cam)
        log = pco.get_server_log()
        uptime = pco.get_server_uptime()
    assert log.count(socket.gethostname()) == len(log.splitlines()) <= 10
    assert "control server listening" in log
    since = r"\w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+"  # Fri 2020-09-25 16:04:06 CEST
    assert re.fullmatch(rf"active \(running\) since {since}", uptime)


def test_n_frames_0_runs_until_stop_and_wait_nframes_follows_it(
    rclient: Any, server: ControlServer, tmp_path: Path
) -> None:
    with camera(frames=0, fps=200) as cam:
        pco = make_client(rclient, server, cam)
        pco.configure(output_file=str(tmp_path / "open.h5"), dataset_name="data", n_frames=0,
                      user_id=0)  # fmt: skip
        # max_frames_per_file is the client's default, 20000: a run until stopped may need
        # several files, so the server numbers them (the client would not: 20000 > 0)
        assert pco.get_configuration()["output_file"] == str(tmp_path / "open.h5")
        pco.start()
        assert pco.wait_nframes(20) is True
        answer = pco.stop()
        assert answer["success"] is True and answer["status"] in ("writing", "finished")
        # "stopping" is the client's own word from stop() on, until the next start
        assert pco.is_running() is False and pco.get_status() == "stopping"
        last = pco.get_statistics_last_run()
    assert last["n_written_frames"] >= 20 and last["n_frames"] == 0
    assert last["output_file"] == str(tmp_path / "open_001.h5")
    with h5py.File(tmp_path / "open_001.h5", "r") as f:
        check_frames(f["exchange/data"], last["n_written_frames"])


def test_kill_ends_the_writer_and_the_file_keeps_what_it_wrote(
    rclient: Any, server: ControlServer, tmp_path: Path
) -> None:
    with camera(frames=0, fps=200) as cam:
        pco = make_client(rclient, server, cam)
        pco.configure(output_file=str(tmp_path / "k.h5"), dataset_name="data", n_frames=100000,
                      user_id=0, max_frames_per_file=200000)  # fmt: skip
        pco.start()
        pco.wait_nframes(5)
        answer = pco.kill()
        assert answer["status"] == "killed" and answer["success"] is True
        wait_for(lambda: pco.get_status_last_run() == "finished", what="the killed run's report")
        assert pco.get_status() in ("killing", "finished")  # killing: the client's own word
        last = pco.get_statistics_last_run()
    with h5py.File(tmp_path / "k.h5", "r") as f:
        assert f["exchange/data"].shape[0] == last["n_written_frames"] >= 5
        assert f["measurement/acquisition/data"].attrs["end_reason"] == "killed"


def test_reset_kills_flushes_the_stream_and_forgets_the_run(
    rclient: Any, server: ControlServer, tmp_path: Path
) -> None:
    with camera(frames=0, fps=100) as cam:
        pco = make_client(rclient, server, cam)
        pco.configure(output_file=str(tmp_path / "r.h5"), dataset_name="data", n_frames=0,
                      user_id=0)  # fmt: skip
        pco.start()
        assert pco.is_running() is True and pco.last_run_id == 1
        assert pco.wait_nframes(3) is True  # a run without a frame written is an error
        cam.running.clear()
        # kill() does not wait for the writer to end (stop() does), so the flush that follows
        # is skipped while the writer still closes its file: as with the original writer
        assert pco.reset() == "configured"
        assert (pco.last_run_id, pco.previous_statistics) == (0, None)
        wait_for(lambda: not pco.is_running(), what="the killed writer to end")
        assert pco.get_status_last_run() == "finished"
        assert pco.get_statistics_last_run()["n_written_frames"] >= 1


def test_flush_cam_stream_counts_two_parts_per_frame(rclient: Any, server: ControlServer) -> None:
    with camera(frames=7, fps=1000) as cam:
        pco = make_client(rclient, server, cam)
        got = pco.flush_cam_stream(timeout=500)
        assert got == 2 * 7 == 2 * cam.n_sent
        assert pco.flush_cam_stream(timeout=100) == 0


def test_a_taken_dataset_name_then_get_server_error_says_why_and_status_reads_error(
    rclient: Any, server: ControlServer, tmp_path: Path
) -> None:
    with camera(frames=0, fps=200) as cam:
        pco = make_client(rclient, server, cam)
        pco.configure(output_file=str(tmp_path / "t.h5"), dataset_name="data", n_frames=5,
                      user_id=0, max_frames_per_file=10)  # fmt: skip
        start_and_wait(pco, cam)
        # wait=False: the client would poll 10 s for a writer that never runs (pco_run_5.py
        # in test_acceptance_scripts.py takes that path)
        answer = pco.start(wait=False)
        assert answer["success"] is False and "already exists" in answer["error"]
        assert pco.get_status() == "starting"  # the client's own state, until it asks why
        assert pco.get_status_last_run() == "error"
        error = pco.get_server_error()
        assert (
            error.startswith("dataset name 'data' already exists in ")
            and str(tmp_path / "t.h5") in error
        )
        assert pco.get_status() == "error"
        assert pco.get_statistics_last_run()["error"] == error  # no run: the raw answer

        pco.configure(dataset_name="data_white")  # the next start clears the error
        assert start_and_wait(pco, cam)["success"] is True
        assert pco.get_server_error() is None
        assert (pco.get_status(), pco.get_status_last_run()) == ("finished", "finished")
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert (f["exchange/data"].shape[0], f["exchange/data_white"].shape[0]) == (5, 5)


def test_each_scan_into_a_new_folder_with_roll_over(
    rclient: Any, server: ControlServer, tmp_path: Path
) -> None:
    runs = [("scan_001", "data_dark", 4), ("scan_001", "data", 25), ("scan_002", "data", 25)]
    with camera(frames=0, fps=300) as cam:
        pco = make_client(rclient, server, cam)
        for scan, name, n in runs:
            pco.configure(output_file=str(tmp_path / "e12345" / scan / "proj.h5"),
                          dataset_name=name, n_frames=n, user_id=0,
                          max_frames_per_file=10)  # fmt: skip
            start_and_wait(pco, cam)
            assert pco.get_status_last_run() == "finished"
    # 4 frames fit one file of 10: proj.h5; 25 do not: the client added _%03d
    with h5py.File(tmp_path / "e12345/scan_001/proj.h5", "r") as f:
        assert f["exchange/data_dark"].shape[0] == 4
    for scan in ("scan_001", "scan_002"):
        sizes = []
        for number in (1, 2, 3):
            with h5py.File(tmp_path / "e12345" / scan / f"proj_{number:03d}.h5", "r") as f:
                sizes.append(f["exchange/data"].shape[0])
        assert sizes == [10, 10, 5]


def test_wait_nframes_gives_up_after_its_inactivity_timeout(
    rclient: Any, server: ControlServer, tmp_path: Path
) -> None:
    with camera(frames=0, fps=200) as cam:
        pco = make_client(rclient, server, cam)
        pco.configure(output_file=str(tmp_path / "w.h5"), dataset_name="data", n_frames=0,
                      user_id=0)  # fmt: skip
        pco.start()
        assert pco.wait_nframes(5) is True
        cam.running.clear()  # the camera pauses
        assert pco.wait_nframes(10**6, inactivity_timeout=1) is False
        assert pco.is_running() is True
        pco.stop()
        assert pco.get_status_last_run() == "finished"


def test_without_a_server_the_client_says_so_and_refuses_to_start(
    rclient: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(rclient.pco_client.PcoError, match="disconnected"):
        rclient.PcoWriter(flask_api_address=f"http://127.0.0.1:{free_port()}",
                          writer_api_address=f"http://127.0.0.1:{free_port()}")  # fmt: skip
    assert "The writer server is not responding" in capsys.readouterr().out

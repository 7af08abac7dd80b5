"""PcoWriter against a real control server, real writer processes and a simulated camera."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import pytest
from _control_helpers import camera, free_port, wait_for
from test_layout_writer import REQUIRED

from pco_writer.client import ClientError, PcoWriter, RunStatistics
from pco_writer.control import ControlServer


def make_client(
    server: ControlServer, address: str, tmp_path: Path, **settings: object
) -> PcoWriter:
    return PcoWriter(
        output_file=str(tmp_path / "scan.h5"),
        dataset_name="data",
        connection_address=address,
        flask_api_address=server.url,
        writer_api_address=f"http://127.0.0.1:{free_port()}",
        max_frames_per_file=0,
        **settings,  # type: ignore[arg-type]
    )


def test_full_lifecycle_configure_start_wait_gives_typed_last_run_statistics(
    server: ControlServer, tmp_path: Path
) -> None:
    with camera(frames=0, fps=100) as (address, _), make_client(server, address, tmp_path) as pco:
        assert pco.is_connected()
        assert pco.get_status() == "configured"
        pco.configure(n_frames=30, user_id=503)
        pco.start()
        assert pco.last_run_id == 1
        stats = pco.wait(timeout=20, progress=False)
        assert isinstance(stats, RunStatistics)
        assert (stats.status, stats.n_written_frames, stats.n_frames) == ("finished", 30, 30)
        assert stats.user_id == 503 and stats.writing_rate > 0
        assert pco.get_status() == "finished"
        assert pco.get_status_last_run() == "finished"
        assert pco.get_written_frames() == 30
        assert not pco.is_running()
        assert pco.get_server_error() is None
        assert "finished: status=finished n_written_frames=30" in pco.get_server_log()
        assert pco.get_server_uptime().startswith("active (running) since ")
    with h5py.File(tmp_path / "scan.h5", "r") as f:
        assert f["exchange/data"].shape[0] == 30


def test_stop_mid_acquisition_writes_what_was_received(
    server: ControlServer, tmp_path: Path
) -> None:
    with camera(frames=0, fps=40) as (address, _), make_client(server, address, tmp_path) as pco:
        pco.start()
        assert pco.wait_nframes(5) is True
        answer = pco.stop(timeout=10)
        assert answer is not None and answer["success"] is True
        assert not pco.is_running()
        stats = pco.wait(progress=False)
    assert stats.status == "finished" and stats.end_reason == "stopped"
    assert stats.n_written_frames >= 5
    with h5py.File(tmp_path / "scan.h5", "r") as f:
        assert f["exchange/data"].shape[0] == stats.n_written_frames


def test_kill_mid_acquisition_closes_the_file_cleanly(
    server: ControlServer, tmp_path: Path
) -> None:
    with camera(frames=0, fps=40) as (address, _), make_client(server, address, tmp_path) as pco:
        pco.start()
        pco.wait_nframes(3)
        answer = pco.kill(timeout=10)
        assert answer is not None and answer["status"] == "killed"
        stats = pco.wait(progress=False)
    assert stats.end_reason == "killed"
    with h5py.File(tmp_path / "scan.h5", "r") as f:
        assert f["exchange/data"].shape[0] == stats.n_written_frames


def test_reset_kills_the_writer_and_forgets_the_run(server: ControlServer, tmp_path: Path) -> None:
    with camera(frames=0, fps=40) as (address, _), make_client(server, address, tmp_path) as pco:
        pco.start()
        assert pco.is_running()
        t0 = time.monotonic()
        assert pco.reset() == "configured"
        assert time.monotonic() - t0 < 8  # the camera never goes quiet: the flush is bounded
        assert not pco.is_running()
        assert (pco.last_run_id, pco.previous_statistics) == (0, None)


def test_wait_nframes_returns_false_when_the_writer_stops_early(
    server: ControlServer, tmp_path: Path
) -> None:
    with camera(frames=0, fps=100) as (address, _), make_client(server, address, tmp_path) as pco:
        pco.configure(n_frames=10)
        pco.start()
        t0 = time.monotonic()
        assert pco.wait_nframes(1000) is False
        assert time.monotonic() - t0 < 10


def test_a_taken_dataset_name_raises_with_the_server_reason_and_error_reports_it(
    server: ControlServer, tmp_path: Path
) -> None:
    with camera(frames=0, fps=100) as (address, _), make_client(server, address, tmp_path) as pco:
        pco.configure(n_frames=5)
        pco.start()
        pco.wait(progress=False)
        with pytest.raises(ClientError, match="already exists .* choose another"):
            pco.start()
        error = pco.get_server_error()
    assert error is not None and "dataset name 'data' already exists" in error


def test_start_without_a_valid_configuration_says_what_to_fix(server: ControlServer) -> None:
    with PcoWriter(flask_api_address=server.url) as pco:
        assert pco.get_status() == "unconfigured"
        with pytest.raises(ClientError, match="output_file: .* configure"):
            pco.start()


def test_an_unreachable_server_raises_a_client_error_that_says_what_to_check() -> None:
    with PcoWriter(output_file="a.h5", flask_api_address=f"http://127.0.0.1:{free_port()}") as pco:
        assert not pco.is_connected()
        with pytest.raises(ClientError, match="pco-writer server"):
            pco.is_running()


def test_flush_cam_stream_drains_the_camera_when_no_writer_runs(
    server: ControlServer, tmp_path: Path
) -> None:
    with camera(frames=7, fps=0) as (address, sim), make_client(server, address, tmp_path) as pco:
        wait_for(lambda: pco.flush_cam_stream(timeout=300) or sim.n_sent >= 7, what="flush")
        assert pco.flush_cam_stream(timeout=100) == 0


@pytest.mark.parametrize("route", ["stop", "kill", "reset"])
def test_stop_kill_and_reset_end_a_writer_that_waits_for_parameters(
    server: ControlServer, tmp_path: Path, route: str
) -> None:
    (tmp_path / "needs.yaml").write_text(REQUIRED)
    with (
        camera(frames=0, fps=200) as (address, _),
        make_client(server, address, tmp_path, n_frames=5, layout="needs.yaml") as pco,
    ):
        pco.start()
        wait_for(lambda: pco.get_status_writer() == "waiting for parameters", 20, "waiting")
        assert not pco.is_running()  # pco_rclient's meaning: receiving or writing
        answer = pco.reset() if route == "reset" else getattr(pco, route)(timeout=10)
        status = pco.get_status_writer()
    assert answer is not None
    assert status == "finished"

"""Scans into folders that do not exist yet: made as the C++ writer made them (mkdir -p),
by the writer, below the data root, through the control server, the write and acquire
commands (docs/decisions/0070-output-folders-made-by-the-writer.md)."""

from __future__ import annotations

import logging
import shutil
import stat
import tempfile
from pathlib import Path

import h5py
import httpx
import pytest
from _control_helpers import camera, free_port, wait_for
from _stream_helpers import camera as push_camera
from _stream_helpers import frame, running_writer
from test_control_server import finished, post_raw, rclient_body
from test_security import NOBODY, nobody_can_run_python, nobody_root

from pco_writer.cli import main
from pco_writer.control import ControlServer
from pco_writer.errors import OutputError


def test_a_start_into_new_folders_makes_them_logs_them_and_writes_there(
    http: httpx.Client, server: ControlServer, tmp_path: Path
) -> None:
    port = free_port()
    with camera(frames=5) as (address, _):
        body = rclient_body(address, port, n_frames="5", output_file="e12345/scan_7/raw/s.h5")
        answer = post_raw(http, body)
        assert answer["success"] is True, answer
        wait_for(lambda: finished(http, port)["status"] == "finished", what="the run")
    with h5py.File(tmp_path / "e12345/scan_7/raw/s.h5", "r") as f:
        assert f["exchange/data"].shape[0] == 5
    log = server.controller.logs.text(200)
    for folder in ("e12345", "e12345/scan_7", "e12345/scan_7/raw"):
        assert f"created folder {tmp_path / folder}" in log


def test_a_new_folder_behind_a_link_out_of_the_data_root_is_refused_and_not_made(
    http: httpx.Client, tmp_path: Path
) -> None:
    outside = Path(tempfile.mkdtemp(prefix="pco-outside-"))
    try:
        (tmp_path / "elsewhere").symlink_to(outside)
        body = rclient_body("tcp://127.0.0.1:9", free_port(), output_file="elsewhere/new/s.h5")
        answer = post_raw(http, body)
        assert answer["success"] is False and "outside the data root" in answer["error"]
        assert list(outside.iterdir()) == []
        assert http.get("/error").json()["error"] == answer["error"]
    finally:
        shutil.rmtree(outside)


def test_the_writer_makes_missing_folders_below_its_data_root_and_logs_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output = tmp_path / "e1" / "scan" / "s.h5"
    caplog.set_level(logging.INFO, logger="pco_writer")
    with (
        push_camera() as cam,
        running_writer(
            connect=cam.address, output=str(output), n_frames=1, data_root=str(tmp_path)
        ) as writer,
    ):
        cam.send(frame(1000))
        assert writer.wait(10) and writer.statistics()["n_written_frames"] == 1
    assert f"created folder {tmp_path / 'e1'}" in caplog.text
    assert f"created folder {tmp_path / 'e1/scan'}" in caplog.text


def test_the_writer_refuses_to_make_a_folder_through_a_link_out_of_its_data_root(
    tmp_path: Path,
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "out").symlink_to(outside)
    with pytest.raises(OutputError, match="outside the data root"):  # noqa: SIM117
        with running_writer(connect="tcp://127.0.0.1:9", output=str(root / "out/new/s.h5"),
                            data_root=str(root)):  # fmt: skip
            pass
    assert list(outside.iterdir()) == []


def test_acquire_into_a_new_folder_writes_there(
    server: ControlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with camera(frames=0, fps=100) as (address, _):
        code = main(["acquire", "--server", server.url, "--writer-port", str(free_port()),
                     "--connect", address, "--output", str(tmp_path / "new/scan/a.h5"),
                     "--n-frames", "4"])  # fmt: skip
    assert code == 0, capsys.readouterr().out
    with h5py.File(tmp_path / "new/scan/a.h5", "r") as f:
        assert f["exchange/data"].shape[0] == 4


@pytest.mark.skipif(not nobody_can_run_python(), reason="needs root and a Python nobody can run")
def test_with_user_switching_the_new_folders_belong_to_the_user() -> None:  # pragma: no cover
    port = free_port()
    with (
        nobody_root() as shared_root,
        ControlServer("127.0.0.1", 0, data_root=shared_root, allow_user_switch=True) as srv,
        httpx.Client(base_url=srv.url, timeout=5) as http,
        camera(frames=5) as (address, _),
    ):
        body = rclient_body(address, port, n_frames="5", user_id=str(NOBODY),
                            output_file="e1/scan/s.h5")  # fmt: skip
        assert post_raw(http, body)["success"]
        wait_for(lambda: finished(http, port)["status"] == "finished", what="the run")
        for path in (shared_root / "e1", shared_root / "e1/scan", shared_root / "e1/scan/s.h5"):
            assert path.stat().st_uid == NOBODY, path
        assert stat.S_IMODE((shared_root / "e1").stat().st_mode) & 0o700 == 0o700


@pytest.mark.skipif(not nobody_can_run_python(), reason="needs root and a Python nobody can run")
def test_with_user_switching_a_folder_the_user_cannot_reach_is_refused_by_name(
    tmp_path: Path,
) -> None:  # pragma: no cover
    private = tmp_path / "data"  # below pytest's folder of root: nobody cannot look into it
    private.mkdir()
    with (
        ControlServer("127.0.0.1", 0, data_root=private, allow_user_switch=True) as srv,
        httpx.Client(base_url=srv.url, timeout=5) as http,
    ):
        body = rclient_body("tcp://127.0.0.1:9", free_port(), user_id=str(NOBODY),
                            output_file="e1/s.h5")  # fmt: skip
        answer = post_raw(http, body)
    assert answer["success"] is False
    assert "cannot look for folder" in answer["error"] and "Permission denied" in answer["error"]

"""What a new user runs into at the writer: parameters with the start, a run that got nothing.

Issue 17: a run that received nothing ended "finished" with exit 0; scan metadata could only be
sent while the writer ran (a race with short runs).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import h5py
import httpx
import pytest
from _control_helpers import wait_for
from _stream_helpers import camera, finish, frame, running_writer

from pco_writer.api import serve_writer
from pco_writer.errors import ConfigError
from pco_writer.h5 import H5Sink
from pco_writer.settings import AcquisitionSettings
from pco_writer.writer import Writer, WriterStatus

FIRST = 700


def test_a_run_that_gets_no_frame_is_an_error_that_names_the_address(tmp_path: Path) -> None:
    with (
        camera() as cam,  # a camera that is there but never sends
        running_writer(
            connect=cam.address, output=str(tmp_path / "a.h5"), idle_timeout=0.3
        ) as writer,
    ):
        stats = finish(writer)
    assert writer.status is WriterStatus.ERROR
    assert stats["status"] == "error" and stats["end_reason"].startswith("error: no frame")
    assert f"nothing came from {cam.address}" in stats["error"]
    assert "idle timeout" in stats["error"] and "check the connection address" in stats["error"]
    assert not (tmp_path / "a.h5").exists()


def test_a_run_stopped_before_any_frame_is_an_error_too(tmp_path: Path) -> None:
    with running_writer(connect="tcp://127.0.0.1:9", output=str(tmp_path / "a.h5")) as writer:
        writer.stop()
        stats = finish(writer)
    assert "no frame written: nothing came from tcp://127.0.0.1:9" in stats["error"]
    assert "(stopped)" in stats["error"]


def test_frames_that_came_but_were_all_rejected_are_named(tmp_path: Path) -> None:
    with camera() as cam, running_writer(connect=cam.address, output=str(tmp_path / "a.h5"),
                                         n_frames=2) as writer:  # fmt: skip
        cam.send([b'{"htype": "array-1.0"}', b"xx"])  # not a valid header
        cam.send([b"one part only"])
        wait_for(lambda: writer.statistics()["n_invalid_frames"] == 2, what="2 bad messages")
        writer.stop()
        stats = finish(writer)
    assert stats["status"] == "error"
    assert "0 frame(s) and 2 bad message(s) came from" in stats["error"], stats["error"]


def test_write_exits_1_and_says_where_it_listened_when_nothing_came(tmp_path: Path) -> None:
    with camera() as cam:
        done = subprocess.run(
            [sys.executable, "-m", "pco_writer.cli", "write", "--connect", cam.address,
             "--output", str(tmp_path / "a.h5"), "--idle-timeout", "0.5",
             "--buffer-bytes", "16M"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "error" and cam.address in record["error"]
    assert f"nothing came from {cam.address}" in done.stderr  # the log says it too


def test_the_writer_log_says_no_frame_came_after_a_few_seconds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, "pco_writer.receiver"),
        camera() as cam,
        running_writer(
            connect=cam.address, output=str(tmp_path / "a.h5"), idle_timeout=5.5
        ) as writer,
    ):
        finish(writer, timeout=20)
    assert f"no frame from {cam.address} for 5 s" in caplog.text


def test_parameters_given_with_the_start_are_written(tmp_path: Path) -> None:
    output = tmp_path / "tomo.h5"
    with camera() as cam, running_writer(
        connect=cam.address, output=str(output), n_frames=3, layout="nxtomo",
        parameters={"sample_name": "foam", "distance": 120},
    ) as writer:  # fmt: skip
        for i in range(3):
            cam.send(frame(FIRST + i))
        stats = finish(writer)
    assert stats["status"] == "finished", stats
    with h5py.File(output, "r") as f:
        assert f["entry/sample/name"][()] == b"foam"
        assert f["entry/instrument/detector/distance"][()] == 120.0
        assert f["entry/instrument/detector/distance"].attrs["units"] == "mm"


@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ({"sample_nme": "foam"}, "unknown parameter(s) sample_nme; this layout takes title, "),
        ({"distance": "far"}, "parameter 'distance' is NX_FLOAT and takes a finite number"),
    ],
)
def test_wrong_parameters_with_the_start_are_refused_before_anything_is_written(
    tmp_path: Path, parameters: dict[str, object], words: str
) -> None:
    settings = AcquisitionSettings(connect="tcp://127.0.0.1:9", output=str(tmp_path / "a.h5"),
                                   layout="nxtomo", parameters=parameters)  # fmt: skip
    with pytest.raises(ConfigError) as info:
        Writer(settings)
    assert words in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_every_wrong_parameter_is_named_at_once(tmp_path: Path) -> None:
    settings = AcquisitionSettings(
        connect="tcp://127.0.0.1:9", output=str(tmp_path / "a.h5"), layout="nxtomo",
        parameters={"sample_nme": "foam", "distance": "far", "start_angle": True},
    )  # fmt: skip
    with pytest.raises(ConfigError) as info:
        Writer(settings)
    text = str(info.value)
    assert "sample_nme" in text and "'distance'" in text and "'start_angle'" in text


def test_an_unusual_dataset_name_is_written_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "pco_writer.writer"):
        Writer(AcquisitionSettings(connect="tcp://127.0.0.1:9", output=str(tmp_path / "a.h5"),
                                   dataset_name="data_blak"))  # fmt: skip
    assert "dataset_name 'data_blak' is not one of the usual names" in caplog.text
    assert "did you mean 'data_black'?" in caplog.text


def test_a_kill_answers_how_many_frames_were_written_and_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user saw ``kill: unconfigured`` and ``n_lost_frames=0`` beside 653 dropped."""
    writing, go_on = threading.Event(), threading.Event()
    real_write = H5Sink.write

    def slow_write(self: H5Sink, frames: Any) -> None:  # a disk that stalls
        writing.set()
        go_on.wait(10)
        real_write(self, frames)

    monkeypatch.setattr(H5Sink, "write", slow_write)
    with camera() as cam, running_writer(connect=cam.address, output=str(tmp_path / "k.h5"),
                                         n_frames=0) as writer:  # fmt: skip
        service = serve_writer(writer, "127.0.0.1", 0, linger=0)
        try:
            for i in range(5):
                cam.send(frame(FIRST + i))
            assert writing.wait(10), "the first frames never reached the file"
            for i in range(5, 50):  # these wait in the buffer: a kill drops them
                cam.send(frame(FIRST + i))
            wait_for(lambda: writer.statistics()["n_received_frames"] == 50, what="50 frames")
            threading.Timer(0.3, go_on.set).start()  # the stalled write ends after the kill
            answer = httpx.get(f"{service.url}/kill", timeout=10).json()
        finally:
            go_on.set()
            service()
    assert (answer["status"], answer["writer_status"]) == ("killed", "finished")
    assert answer["message"] == "killed: 5 written, 45 dropped"
    assert (answer["n_dropped_frames"], answer["n_lost_frames"]) == (45, 45)

"""The writer's exit record: the control server learns why a writer failed from it, not its log.

The writers here run through a wrapper that throws their log away, so a message that reaches
``GET /error`` came through the record.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pytest
from _control_helpers import camera, free_port, wait_for
from test_control_server import finished, rclient_body

from pco_writer.control import ControlServer
from pco_writer.exit_record import ExitRecord, read_exit_record

TOKEN = "exit-record-test"


def quiet_python(tmp_path: Path, before: str = "") -> str:
    """An interpreter for the writers whose stderr (the whole log) goes to /dev/null."""
    script = tmp_path / "quiet-python"
    script.write_text(f'#!/bin/sh\n{before}\nexec "{sys.executable}" "$@" 2>/dev/null\n')
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def quiet_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A control server whose writers log nothing and cannot report over HTTP either: the
    wrapper drops the token, so their ``POST /error`` and ``/finished`` are refused."""
    before = getattr(request, "param", "")
    python = quiet_python(tmp_path, f"unset PCO_WRITER_TOKEN\n{before}")
    data = tmp_path / "data"
    data.mkdir()
    server = ControlServer("127.0.0.1", 0, data_root=data, python=python, token=TOKEN).start()
    try:
        with httpx.Client(base_url=server.url, timeout=5,
                          headers={"X-PCO-Writer-Token": TOKEN}) as http:  # fmt: skip
            yield http
    finally:
        server.stop(timeout=5.0)


def start(http: httpx.Client, body: bytes) -> dict[str, Any]:
    return dict(http.post("/start_pco_writer", content=body).json())


def test_a_start_the_writer_refuses_reaches_error_without_its_log(
    quiet_server: httpx.Client, tmp_path: Path
) -> None:
    with h5py.File(tmp_path / "data" / "scan.h5", "w") as f:
        f["exchange/data"] = np.zeros((1, 2, 2), "u2")
    answer = start(quiet_server, rclient_body("tcp://127.0.0.1:9", free_port(), n_frames="5"))
    assert answer["success"] is False
    assert "dataset name 'data' already exists" in answer["error"], answer
    error = quiet_server.get("/error").json()
    assert error["success"] is True and "dataset name 'data' already exists" in error["error"]


@pytest.mark.parametrize("quiet_server", ["ulimit -f 4000"], indirect=True)  # 2-4 MB a file
def test_a_failing_run_reaches_error_without_its_log_or_its_report(
    quiet_server: httpx.Client,
) -> None:
    port = free_port()
    with camera(frames=0, fps=400) as (address, _):
        answer = start(quiet_server, rclient_body(address, port, n_frames="0",
                                                  max_frames_per_file="0"))  # fmt: skip
        assert answer["success"] is True, answer
        error = wait_for(lambda: (e := quiet_server.get("/error").json())["success"] and e,
                         timeout=60, what="the disk-full error")  # fmt: skip
    assert "disk full" in error["error"], error
    last = finished(quiet_server, port)
    assert last["status"] == "error" and last["n_written_frames"] > 100, last


# --- the record itself --------------------------------------------------------------------------


def run_write(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pco_writer.cli", "write", *argv],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_a_bad_setting_ends_with_exit_code_2_and_a_refused_record() -> None:
    done = run_write("--connect", "tcp://127.0.0.1:99999", "--output", "x.h5")
    assert done.returncode == 2, done.stderr
    record = read_exit_record(done.stdout)
    assert record is not None and record.status == "error" and record.end_reason == "refused"
    assert record.error.startswith("--connect: 'tcp://127.0.0.1:99999' is not tcp://HOST:PORT")
    assert record.statistics is None


def test_a_finished_run_ends_with_its_statistics_in_the_record(tmp_path: Path) -> None:
    with camera(frames=5) as (address, _):
        done = run_write("--connect", address, "--output", str(tmp_path / "s.h5"),
                         "--n-frames", "5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = read_exit_record(done.stdout)
    assert record is not None and (record.status, record.end_reason) == ("finished", "completed")
    assert record.statistics is not None and record.statistics["n_written_frames"] == 5


def test_the_record_is_found_after_other_output_and_the_last_one_counts() -> None:
    first = ExitRecord.refused("first").model_dump_json()
    last = ExitRecord.of_run({"status": "error", "error": "disk full", "end_reason": "error: x"})
    text = f'noise {{not json\n{first}\n{{"a": 1}}\n{last.model_dump_json(indent=2)}\n'
    assert read_exit_record(text) == last
    assert read_exit_record("no record at all\n{broken") is None

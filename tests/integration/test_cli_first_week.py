"""The command line of a user's first week, against a real control server and writers.

Issue 17: ``acquire`` took no parameters and hung without a word on a wrong address;
``kill`` printed ``kill: unconfigured``; ``stop()`` answered ``receiving``; the CLI printed
httpx's request lines.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import h5py
import httpx
import pytest
from _control_helpers import camera, free_port, wait_for

from pco_writer.cli import main
from pco_writer.client import PcoWriter
from pco_writer.control import ControlServer


def acquire(server: ControlServer, *args: str, writer_port: int | None = None) -> int:
    port = str(writer_port or free_port())
    return main(["acquire", "--server", server.url, "--writer-port", port, *args])


def test_acquire_writes_the_parameters_given_with_param(
    server: ControlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with camera(frames=0, fps=100) as (address, _):
        code = acquire(
            server,
            "--connect",
            address,
            "--output",
            str(tmp_path / "t.h5"),
            "--n-frames",
            "5",
            "--layout",
            "nxtomo",
            "--param",
            "sample_name=2024",
            "--param",
            "distance=120.5",
            "--parameters",
            '{"title": "first week"}',
        )
    out = capsys.readouterr().out  # fmt: skip
    assert code == 0, out
    assert out.splitlines()[0] == "completed: 5 of 5 written"
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert f["entry/sample/name"][()] == b"2024"  # a text parameter stays text
        assert f["entry/instrument/detector/distance"][()] == 120.5
        assert f["entry/title"][()] == b"first week"


@pytest.mark.parametrize(
    ("param", "words"),
    [
        ("sample_nme=foam", "unknown parameter(s) sample_nme"),
        ("distance=far", "'distance' is NX_FLOAT"),
        ("distance", "--param 'distance': write NAME=VALUE"),
    ],
)
def test_acquire_refuses_a_wrong_param_before_anything_starts(
    server: ControlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], param: str,
    words: str,
) -> None:  # fmt: skip
    code = acquire(server, "--connect", "tcp://127.0.0.1:9", "--output", str(tmp_path / "t.h5"),
                   "--layout", "nxtomo", "--param", param)  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2
    assert words in captured.out + captured.err
    assert server.controller.runs() == [] and list(tmp_path.iterdir()) == []


def test_the_server_refuses_parameters_its_layout_file_does_not_take_before_any_spawn(
    server: ControlServer, tmp_path: Path
) -> None:
    """A layout file only the server sees: the client cannot check, the server does."""
    (tmp_path / "mine.yaml").write_text(
        "name: mine\nparameters: {energy: {type: NX_FLOAT, units: keV}}\n"
        "tree:\n  '{dataset_name}': {frames: {}}\n  energy: {parameter: energy}\n"
    )
    body = {"connection_address": "tcp://127.0.0.1:9", "output_file": "a.h5", "n_frames": "1",
            "dataset_name": "data", "writer_rest_port": str(free_port()),
            "layout": "mine.yaml", "parameters": {"energy": "high", "colour": "red"}}  # fmt: skip
    answer = httpx.post(f"{server.url}/start_pco_writer", json=body, timeout=10).json()
    assert answer["success"] is False
    assert "unknown parameter(s) colour" in answer["error"]
    assert "'energy' is NX_FLOAT" in answer["error"]
    assert server.controller.runs() == []


def test_acquire_from_an_address_where_nothing_sends_fails_and_names_it(
    server: ControlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    writer_port = free_port()
    with camera(frames=0, fps=0.001) as (address, sim):  # a camera that sends nothing
        sim.stop()
        code = acquire(
            server,
            "--connect",
            address,
            "--output",
            str(tmp_path / "t.h5"),
            "--n-frames",
            "5",
            "--idle-timeout",
            "1",
            writer_port=writer_port,
        )
    out = capsys.readouterr().out  # fmt: skip
    assert code == 1, out
    assert f"acquisition failed: the acquisition failed: no frame written: nothing came from " \
           f"{address}" in out  # fmt: skip
    last = httpx.get(f"{server.url}/finished/{writer_port}", timeout=5).json()
    assert last["status"] == "error" and address in last["error"]
    error = httpx.get(f"{server.url}/error/{writer_port}", timeout=5).json()
    assert error["success"] is True and address in error["error"]


def test_kill_says_what_became_of_the_frames(
    server: ControlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    writer_port = free_port()
    with (
        camera(frames=0, fps=50) as (address, _),
        PcoWriter(output_file=str(tmp_path / "k.h5"), connection_address=address,
                  flask_api_address=server.url,
                  writer_api_address=f"http://127.0.0.1:{writer_port}") as pco,
    ):  # fmt: skip
        pco.start()
        assert pco.wait_nframes(3)
        code = main(["kill", "--server", server.url, "--writer-port", str(writer_port)])
    out = capsys.readouterr().out.strip()
    assert code == 0
    assert out.startswith("killed: ") and " written" in out, out
    assert "unconfigured" not in out


def test_stop_answers_the_state_it_led_to(server: ControlServer, tmp_path: Path) -> None:
    with (
        camera(frames=0, fps=50) as (address, _),
        PcoWriter(output_file=str(tmp_path / "s.h5"), connection_address=address,
                  flask_api_address=server.url,
                  writer_api_address=f"http://127.0.0.1:{free_port()}") as pco,
    ):  # fmt: skip
        pco.start()
        assert pco.wait_nframes(3)
        answer = pco.stop()
    assert answer is not None
    assert answer["status"] == "finished" and answer["end_reason"] == "stopped"
    assert answer["message"] == f"stopped: {answer['n_written_frames']} written"


def test_ctrl_c_during_acquire_stops_the_writer_instead_of_leaving_it_running(
    server: ControlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import _thread

    # a suite started in the background (`&`) inherits SIGINT ignored: Ctrl-C must reach us
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:  # interrupt_main: what Ctrl-C does to the main thread
        code = _acquire_until(server, tmp_path / "c.h5", lambda _url: _thread.interrupt_main())
    finally:
        signal.signal(signal.SIGINT, previous)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Ctrl-C: stopping the writer" in out and "stopped: " in out


def test_acquire_exits_1_when_someone_kills_its_writer(
    server: ControlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def kill(url: str) -> None:  # from another terminal
        httpx.get(f"{url}/kill", timeout=10)

    code = _acquire_until(server, tmp_path / "k.h5", kill)
    out = capsys.readouterr().out
    assert code == 1, out
    assert "killed: " in out


def _acquire_until(server: ControlServer, output: Path, then: Callable[[str], object]) -> int:
    """``acquire`` until stopped; once its writer wrote 5 frames, ``then(writer_url)``."""
    writer_port = free_port()
    url = f"http://127.0.0.1:{writer_port}"

    def when_writing() -> None:
        wait_for(lambda: _written(f"{url}/statistics") >= 5, 30, "5 frames written")
        then(url)

    with camera(frames=0, fps=50) as (address, _):
        thread = threading.Thread(target=when_writing)
        thread.start()
        code = acquire(server, "--connect", address, "--output", str(output),
                       writer_port=writer_port)  # fmt: skip
        thread.join(30)
    return code


def _written(statistics_url: str) -> int:
    try:
        return int(httpx.get(statistics_url, timeout=5).json()["n_written_frames"])
    except httpx.HTTPError:
        return 0


def test_the_command_line_prints_no_http_request_lines(server: ControlServer) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pco_writer.cli", "status", "--server", server.url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "HTTP Request" not in done.stdout + done.stderr

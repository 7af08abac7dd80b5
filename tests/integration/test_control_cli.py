"""The control-plane command line: server (a real process), acquire, status, stop, kill, demo."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import httpx
import pytest
from _control_helpers import camera, free_port, wait_for

from pco_writer.cli import main


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "pco_writer.cli", "server", "--port", str(port),
            "--data-root", str(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url) or proc.poll() is not None, 20, "the control server")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        yield url
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate(timeout=5)
    assert proc.returncode == 0, out
    assert "level=INFO" in out  # the plain structured log on stdout


def _answers(url: str) -> bool:
    try:
        return bool(httpx.get(f"{url}/ack", timeout=1).json()["success"])
    except httpx.HTTPError:
        return False


def test_acquire_runs_one_acquisition_and_prints_a_summary(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    writer_port = str(free_port())
    with camera(frames=0, fps=100) as (address, _):
        code = main(["acquire", "--server", server_url, "--writer-port", writer_port,
                     "--connect", address, "--output", str(tmp_path / "a.h5"),
                     "--n-frames", "12", "--dataset-name", "data_white"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads(out[out.index("{") :])
    assert (summary["status"], summary["n_written_frames"]) == ("finished", 12)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["exchange/data_white"].shape[0] == 12
    assert main(["status", "--server", server_url]) == 0
    assert f"port {writer_port}: finished" in capsys.readouterr().out


def test_stop_and_kill_without_a_running_writer_say_so(
    server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stop", "--server", server_url]) == 0
    assert main(["kill", "--server", server_url]) == 0
    assert capsys.readouterr().out.count("no writer is running") == 2


def test_acquire_reports_a_refused_request_with_exit_code_2(
    server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["acquire", "--server", server_url, "--writer-port", str(free_port()),
                 "--output", "/etc/outside.h5", "--n-frames", "3"])  # fmt: skip
    assert code == 2
    assert "outside the data root" in capsys.readouterr().out


def test_a_bad_config_names_the_field_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras:\n  - {name: pco1, connection_address: 'tcp://h:1'}\n")
    argv = [sys.executable, "-m", "pco_writer.cli", "server", "--config", str(config)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "cameras.0.control_port" in done.stdout + done.stderr


def test_demo_runs_the_whole_chain_and_returns_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pco_writer.demo import run_demo

    path = run_demo(tmp_path, n_frames=10, fps=50)
    with h5py.File(path, "r") as f:
        assert f["exchange/data"].shape[0] == 10
    out = capsys.readouterr().out
    assert "exchange/" in out and "n_written_frames: 10" in out


def test_demo_refuses_zero_frames_which_would_never_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--frames", "0"])
    assert exited.value.code == 2
    assert "give at least 1" in capsys.readouterr().err


def _processes_mentioning(text: str) -> list[int]:
    """The live processes whose command line contains ``text`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue
        if text.encode() in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_sigterm_to_the_demo_stops_its_control_server_and_writer(tmp_path: Path) -> None:
    import os
    import signal

    argv = [sys.executable, "-m", "pco_writer.cli", "demo", "--frames", "100000",
            "--workdir", str(tmp_path)]  # fmt: skip
    demo = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        writer = f'"output":"{tmp_path}'  # the writer's --settings, once it is spawned
        wait_for(lambda: _processes_mentioning(writer), 60, "the demo's writer")
        demo.send_signal(signal.SIGTERM)
        code = demo.wait(timeout=40)
        left = _processes_mentioning(str(tmp_path))
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(5)
        for pid in _processes_mentioning(str(tmp_path)):  # leave nothing behind if it failed
            os.kill(pid, signal.SIGKILL)
    assert left == [], f"processes left running after SIGTERM to the demo: {left}"
    assert code == 128 + signal.SIGTERM

"""``pco-writer server`` as a beamline service runs it: the original camera file, one camera,
JSON log lines on stdout; plus the unit files, the container file and the dashboard shipped
in deploy/."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from _control_helpers import camera, free_port, wait_for
from test_control_server import post_raw, rclient_body
from test_status_page import metrics, sample

from pco_writer.cli import build_parser
from pco_writer.control import Monitor, load_config
from pco_writer.control._controller import Controller
from pco_writer.control._metrics import metrics_registry, metrics_text

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def original_camera_file(path: Path, control_port: int, writer_port: int) -> Path:
    """A pco_config.json as the original deployment wrote it, for two cameras on this host."""
    cameras = [
        {"name": f"pco{n}", "connection_address": f"tcp://127.0.0.1:{8080 + n}",
         "flask_api_address": f"http://127.0.0.1:{control_port}",
         "writer_api_address": f"http://127.0.0.1:{writer_port}"}
        for n in (1, 2)
    ]  # fmt: skip
    path.write_text(json.dumps({"cameras": cameras}, indent="\t"))
    return path


def test_one_camera_of_the_original_file_served_with_json_logs(tmp_path: Path) -> None:
    control_port, writer_port = free_port(), free_port()
    with camera(frames=12) as (address, _):
        config = original_camera_file(tmp_path / "pco_config.json", control_port, writer_port)
        text = config.read_text().replace("tcp://127.0.0.1:8082", address)
        config.write_text(text)  # pco2's camera is the simulated one
        argv = [sys.executable, "-m", "pco_writer.cli", "server", "--config", str(config),
                "--camera", "2", "--data-root", str(tmp_path), "--log-format", "json"]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{control_port}"
        try:
            with httpx.Client(base_url=url, timeout=5) as http:
                wait_for(lambda: _answers(http) or proc.poll() is not None, 20, "the server")
                assert proc.poll() is None, proc.communicate()
                assert post_raw(http, rclient_body(address, writer_port, n_frames="12"))["success"]
                wait_for(lambda: sample(metrics(http), "pco_writer_acquisitions_total",
                                        camera="pco2", end_reason="completed") == 1,
                         what="the run counted")  # fmt: skip
                assert sample(metrics(http), "pco_writer_frames_written_total", camera="pco2") == 12
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]  # JSON, every one
    assert all({"time", "level", "logger", "msg"} <= set(line) for line in lines)
    assert any(line["msg"].startswith("control server at http://") for line in lines)
    assert any(line.get("writer_port") == writer_port for line in lines), "the writer's lines"


def _answers(http: httpx.Client) -> bool:
    try:
        return bool(http.get("/ack", timeout=1).json()["success"])
    except httpx.HTTPError:
        return False


def test_the_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    unit = (DEPLOY / "systemd" / "pco-writer@.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+) (.*)$", unit, re.MULTILINE)
    assert exec_start is not None and exec_start[1] == "/opt/pco-writer/bin/pco-writer"
    build_parser().parse_args(exec_start[2].replace("%i", "pco1").split())  # our own flags
    # verify wants the program to exist: the installed one stands in for /opt/pco-writer
    installed = Path(sys.executable).with_name("pco-writer")
    (tmp_path / "pco-writer@.service").write_text(unit.replace(exec_start[1], str(installed)))
    done = subprocess.run([analyze, "verify", str(tmp_path / "pco-writer@pco1.service")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done


def test_the_container_file_copies_what_exists_and_runs_the_server() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    root = DEPLOY.parent
    for line in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for source in line.split():
            assert (root / source).exists(), source
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.MULTILINE)[1])
    assert entrypoint[:2] == ["pco-writer", "server"]
    args = build_parser().parse_args([*entrypoint[1:], "--camera", "pco1"])
    assert (args.config, args.log_format) == (Path("/etc/pco-writer/server.yaml"), "json")


def test_the_example_settings_file_loads() -> None:
    config = load_config(DEPLOY / "server.yaml", "pco1")
    assert config.cameras is not None and config.cameras[0].control_port == 9901


def test_the_dashboard_shows_only_metrics_the_server_has(tmp_path: Path) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "pco-writer.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bpco_writer_\w+", expr)}
    controller = Controller(tmp_path)
    monitor = Monitor(controller)
    try:
        text = metrics_text(metrics_registry(monitor)).decode()
    finally:
        monitor.close()
        controller.shutdown()
    families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    suffixes = {
        "counter": ["", "_total"],
        "histogram": ["_bucket", "_sum", "_count"],
        "gauge": [""],
    }
    exposed = {name + s for name, kind in families.items() for s in suffixes.get(kind, [""])}
    assert used and used <= exposed, used - exposed
    assert "process_resident_memory_bytes" in exposed

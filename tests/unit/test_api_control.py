"""The control server's API and rules, in-process (no writer is spawned here)."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from pco_writer.api import ServerThread
from pco_writer.api import build_app as build_writer_app
from pco_writer.control import (
    Controller,
    build_app,
    load_config,
    parse_start_request,
    resolve_output,
)
from pco_writer.errors import ConfigError


def pco_rclient_body(**changes: str) -> bytes:
    """A start request exactly as pco_rclient 0.4 sends it: every value a string."""
    body = {
        "connection_address": "tcp://127.0.0.1:8080", "output_file": "scan.h5",
        "n_frames": "100", "user_id": "503", "dataset_name": "data",
        "max_frames_per_file": "20000", "rest_api_port": "9901", "n_modules": "1",
        "writer_rest_port": "9555", "flask_api_address": "http://127.0.0.1:9901",
    }  # fmt: skip
    return json.dumps({**body, **changes}).encode()


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Controller]:
    ctl = Controller(tmp_path)
    yield ctl
    ctl.shutdown(1.0)


@pytest.fixture
def api(controller: Controller) -> Iterator[httpx.Client]:
    server = ServerThread(build_app(controller), "127.0.0.1", 0).start()
    controller.control_url = server.url
    try:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            yield client
    finally:
        server.stop()


def test_ack_answers_success(api: httpx.Client) -> None:
    assert api.get("/ack").json() == {"success": True}


def test_before_any_run_status_is_unknown_and_finished_is_not_successful(
    api: httpx.Client,
) -> None:
    assert api.get("/status/9555").json() == {"success": True, "status": "unknown"}
    assert api.get("/finished").json() == {"success": False, "status": "unknown"}


def test_without_an_error_then_error_answers_200_success_false_and_null(api: httpx.Client) -> None:
    answer = api.get("/error")
    assert answer.status_code == 200
    assert answer.json() == {"success": False, "error": None}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"n_frames": "abc"}, "n_frames"),
        ({"dataset_name": "a/b"}, "dataset name 'a/b' is not valid"),
        ({"dataset_name": ""}, "dataset_name"),
        ({"output_file": "/etc/passwd.h5"}, "outside the data root"),
        ({"output_file": "../escape.h5"}, "outside the data root"),
        ({"connection_address": "http://x:1"}, "connection_address"),
        ({"max_frames_per_file": "-1"}, "max_frames_per_file"),
        ({"output_file": "missing/../../dir/a.h5"}, "outside the data root"),
    ],
)
def test_bad_start_requests_get_success_false_with_a_message_and_spawn_nothing(
    api: httpx.Client, controller: Controller, changes: dict[str, str], words: str
) -> None:
    answer = api.post("/start_pco_writer", content=pco_rclient_body(**changes))
    assert 400 <= answer.status_code < 500
    assert answer.json()["success"] is False
    assert words in answer.json()["error"]
    assert controller.runs() == []


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"n_frames": str(2**63)}, "n_frames"),
        ({"max_frames_per_file": str(2**63)}, "max_frames_per_file"),
        ({"user_id": str(2**63)}, "user_id"),
        ({"connection_address": "tcp://127.0.0.1:99999"}, "port in 1-65535"),
        ({"connection_address": "tcp://127.0.0.1:0"}, "port in 1-65535"),
    ],
)
def test_values_the_writer_cannot_use_are_refused_with_422_before_any_spawn(
    api: httpx.Client, controller: Controller, changes: dict[str, str], words: str
) -> None:
    answer = api.post("/start_pco_writer", content=pco_rclient_body(**changes))
    assert answer.status_code == 422
    assert words in answer.json()["error"]
    assert controller.runs() == []


def test_the_largest_int64_is_still_a_valid_frame_count() -> None:
    body = json.loads(pco_rclient_body(n_frames=str(2**63 - 1)))
    assert parse_start_request(body).n_frames == 2**63 - 1


def test_a_symlink_out_of_the_data_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(ConfigError, match="outside the data root"):
        resolve_output("link/a.h5", root)
    with pytest.raises(ConfigError, match="outside the data root"):
        resolve_output("link/new/scan/a.h5", root)  # a folder to make, behind the link


def test_an_output_in_folders_that_do_not_exist_yet_is_accepted_and_nothing_made(
    tmp_path: Path,
) -> None:
    """The C++ writer ran mkdir -p; here the writer makes them, as its user (ADR 0070)."""
    assert resolve_output("e1/scan_7/a.h5", tmp_path) == tmp_path / "e1/scan_7/a.h5"
    assert not (tmp_path / "e1").exists()


@pytest.mark.parametrize(
    ("template", "max_frames_per_file", "link"),
    [
        ("scan_%03d.h5", 0, "scan_001.h5"),
        ("scan_%03d.h5", 0, "scan_017.h5"),
        ("scan.h5", 10, "scan_002.h5"),  # the writer adds _%03d when a run rolls over
        ("a%%b.h5", 0, "a%b.h5"),  # the writer opens printf's output, not the template
    ],
)
def test_a_file_the_writer_would_open_may_not_lead_outside_the_root(
    tmp_path: Path, template: str, max_frames_per_file: int, link: str
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / link).symlink_to(outside / "victim.h5")  # dangling: the writer would create it
    with pytest.raises(ConfigError, match=f"'{root / link}'.*outside the data root.*remove it"):
        resolve_output(template, root, n_frames=0, max_frames_per_file=max_frames_per_file)


def test_the_output_template_is_the_one_the_writer_uses(tmp_path: Path) -> None:
    """The server adds the file number by the writer's rule, so it checks the right names."""
    assert resolve_output("scan.h5", tmp_path, 100, 40) == tmp_path / "scan_%03d.h5"
    assert resolve_output("scan.h5", tmp_path, 40, 40) == tmp_path / "scan_%03d.h5"
    assert resolve_output("scan.h5", tmp_path, 39, 40) == tmp_path / "scan.h5"
    assert resolve_output("scan.h5", tmp_path, 100, 0) == tmp_path / "scan.h5"


def test_numbered_files_and_symlinks_below_the_root_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "scan_001.h5").touch()
    (tmp_path / "scan_002.h5").symlink_to(tmp_path / "scan_001.h5")
    (tmp_path / "other_001.h5").symlink_to("/etc/passwd")  # not a name of this template
    assert resolve_output("scan_%03d.h5", tmp_path) == tmp_path / "scan_%03d.h5"


def test_an_output_below_the_root_resolves_to_an_absolute_path(tmp_path: Path) -> None:
    (tmp_path / "scans").mkdir()
    assert resolve_output("scans/../scans/a_%03d.h5", tmp_path) == tmp_path / "scans/a_%03d.h5"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("tcp://127.0.0.1:8080", "tcp://localhost:8080", True),
        ("tcp://127.0.0.1:8080", "tcp://LOCALHOST:8080", True),
        ("tcp://127.0.0.1:8080", "tcp://127.0.0.1:8081", False),
        ("ipc:///tmp/cam", "ipc:///tmp/cam", True),
        ("ipc:///tmp/cam", "ipc:///tmp/other", False),
    ],
)
def test_one_camera_is_recognised_whatever_its_host_is_called(a: str, b: str, same: bool) -> None:
    from pco_writer.control._address import camera_endpoints, same_camera

    assert same_camera(camera_endpoints(a), camera_endpoints(b)) is same


def test_a_host_that_does_not_resolve_is_compared_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from pco_writer.control._address import camera_endpoints

    def fail(*_: object, **__: object) -> None:
        raise socket.gaierror("no such host")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    assert camera_endpoints("tcp://Cam-1:8080") == camera_endpoints("tcp://cam-1:8080")
    assert camera_endpoints("tcp://cam-1:8080") != camera_endpoints("tcp://cam-2:8080")


def test_start_request_takes_string_values_and_ignores_extra_keys() -> None:
    request = parse_start_request(json.loads(pco_rclient_body()))
    assert (request.n_frames, request.user_id, request.writer_port) == (100, 503, 9555)


def test_older_clients_name_the_writer_port_rest_api_port() -> None:
    body = json.loads(pco_rclient_body())
    del body["writer_rest_port"]
    assert parse_start_request(body).writer_port == 9901


def test_a_body_that_is_not_json_gets_400(api: httpx.Client) -> None:
    answer = api.post("/start_pco_writer", content=b"n_frames=3")
    assert answer.status_code == 400
    assert "not JSON" in answer.json()["error"]


def test_a_huge_body_gets_413(api: httpx.Client) -> None:
    assert api.post("/start_pco_writer", content=b"{" + b" " * 200_000).status_code == 413


def test_a_non_numeric_port_in_the_path_gets_422_json(api: httpx.Client) -> None:
    answer = api.get("/status/abc")
    assert answer.status_code == 422
    assert "port" in answer.json()["error"]


def test_server_uptime_answers_in_systemds_words_as_the_original_did(api: httpx.Client) -> None:
    """``active (running) since Fri 2020-09-25 16:04:06 CEST``: scripts look for 'active'."""
    answer = api.request("GET", "/server_uptime/pco_writer-pco1", data={"key": "uptime"})
    assert answer.json()["success"] is True
    uptime = answer.json()["uptime"]
    assert uptime.startswith("active (running) since ")
    since = datetime.strptime(uptime.removeprefix("active (running) since ")[:23],
                              "%a %Y-%m-%d %H:%M:%S")  # fmt: skip
    assert abs((datetime.now() - since).total_seconds()) < 60
    assert uptime.split(" ")[-1] == time.strftime("%Z")  # the zone's name, CEST at PSI


def test_server_log_gives_the_last_ten_lines_as_the_journal_shows_them(
    api: httpx.Client, controller: Controller
) -> None:
    """As ``systemctl status`` showed the original's log: scripts count 10 host names."""
    for i in range(12):
        logging.getLogger("pco_writer.control.test").info("line %d", i)
    logging.getLogger("pco_writer.control.test").info("hello from the test")
    log = api.get("/server_log/pco_writer-pco1").json()["log"]
    lines = log.splitlines()
    assert len(lines) == 10 and log.endswith("\n")
    assert log.count(socket.gethostname()) == 10
    journal = re.compile(
        r"[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d " + re.escape(socket.gethostname())
        + rf" pco-writer\[{os.getpid()}\]: time=\S+ level=INFO logger=pco_writer\.control\.test "
    )  # fmt: skip
    assert all(journal.match(line) for line in lines), lines
    assert lines[-1].endswith('msg="hello from the test"')
    assert api.get("/server_log/x", params={"lines": 3}).json()["log"].count("\n") == 3


# --- a refused start: /error, /finished and /status say why, until the next start -------------


@pytest.mark.parametrize(
    "body",
    [
        pco_rclient_body(n_frames="abc"),  # a bad value
        pco_rclient_body(output_file="../outside/a.h5"),  # a bad folder
        b"n_frames=3",  # not JSON
    ],
)
def test_after_a_refused_start_error_finished_and_status_say_error_with_the_reason(
    api: httpx.Client, body: bytes
) -> None:
    answer = api.post("/start_pco_writer", content=body).json()
    assert answer["success"] is False
    error = api.get("/error").json()
    assert set(error) == {"success", "status", "error", "error_time"}
    assert (error["success"], error["status"], error["error"]) == (True, "error", answer["error"])
    assert datetime.fromisoformat(error["error_time"]).tzinfo is not None
    finished = api.get("/finished").json()
    assert (finished["status"], finished["error"]) == ("error", answer["error"])
    if body.startswith(b"{"):  # the request named its writer port
        assert api.get("/status/9555").json()["status"] == "error"


def test_a_start_refused_while_a_writer_runs_leaves_the_runs_state_alone(
    controller: Controller, writer_api: ServerThread
) -> None:
    run = StandInRun(writer_api.port, started_monotonic=time.monotonic())
    controller._runs[run.port] = run  # type: ignore[assignment]
    controller.refuse("n_frames: bad", run.port)
    assert controller.last_error([run.port]) == {"success": False, "error": None}
    assert controller.last_statistics([run.port])["status"] == "unknown"


def test_a_run_started_after_a_refused_start_hides_the_refusal(controller: Controller) -> None:
    controller.refuse("output_file: outside the data root", 9555)
    assert controller.status(9555)["status"] == "error"
    run = StandInRun(9555, alive=False, statistics={"status": "finished"})
    run.started_monotonic = time.monotonic()
    controller._runs[9555] = run  # type: ignore[assignment]
    assert controller.status(9555) == {"status": "finished", "success": True}
    assert controller.last_statistics()["status"] == "finished"
    assert controller.last_error() == {"success": False, "error": None}


def test_reports_for_an_unknown_port_are_refused_with_a_message(api: httpx.Client) -> None:
    answer = api.post("/writers/1234/finished", json={"status": "finished"})
    assert answer.status_code == 422
    assert "no writer run is known for port 1234" in answer.json()["error"]


# --- status semantics, with a stand-in run and a stand-in writer API ------------------------


@dataclass
class StandInRun:
    port: int
    pid: int = 0
    alive: bool = True
    ready: bool = True
    statistics: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    started_monotonic: float = 0.0
    request: Any = None
    output: str = ""

    def record_finished(self, statistics: dict[str, Any]) -> None:
        self.statistics = statistics

    def terminate(self, timeout: float) -> None:
        self.alive = False


class StandInWriter:
    status = "finished"
    error = ""
    done = True

    def statistics(self) -> dict[str, Any]:
        return {}

    def stop(self) -> None: ...
    def kill(self) -> None: ...
    def parameters(self) -> dict[str, Any]:
        return {}

    def set_parameters(self, values: dict[str, Any]) -> None: ...
    def parameter_types(self) -> dict[str, str]:
        return {}

    def add_done_callback(self, callback: Any) -> None: ...


@pytest.fixture
def writer_api() -> Iterator[ServerThread]:
    server = ServerThread(build_writer_app(StandInWriter()), "127.0.0.1", 0).start()
    yield server
    server.stop()


def test_a_writer_saying_finished_reads_writing_until_its_statistics_are_stored(
    controller: Controller, writer_api: ServerThread
) -> None:
    run = StandInRun(writer_api.port)
    controller._runs[run.port] = run  # type: ignore[assignment]
    assert controller.status(run.port)["status"] == "writing"
    controller.record_finished(run.port, {"status": "finished", "n_written_frames": 5})
    answer = controller.status(run.port)
    assert answer == {"status": "finished", "n_written_frames": 5, "success": True}


class CountingWriter(StandInWriter):
    """A writer whose status can change and that counts how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0
        self._status = "receiving"

    @property
    def status(self) -> str:  # type: ignore[override]
        self.asked += 1
        return self._status


def test_status_is_answered_from_the_watcher_not_asked_of_the_writer_per_request(
    controller: Controller,
) -> None:
    writer = CountingWriter()
    server = ServerThread(build_writer_app(writer), "127.0.0.1", 0).start()
    try:
        run = StandInRun(server.port)
        controller._runs[run.port] = run  # type: ignore[assignment]
        controller._watcher.heard(run.port, "receiving")  # as a start does
        t0 = time.monotonic()
        answers = [controller.status(run.port)["status"] for _ in range(2000)]
        elapsed = time.monotonic() - t0
        assert set(answers) == {"receiving"}
        assert writer.asked <= 2 + 20 * elapsed  # ~one question per 0.1 s, not 2000
        writer._status = "waiting for parameters"
        time.sleep(0.35)
        assert controller.status(run.port)["status"] == "waiting for parameters"
        writer._status = "finished"  # not reported yet: still writing
        time.sleep(0.35)
        assert controller.status(run.port)["status"] == "writing"
    finally:
        server.stop()


def test_a_dead_writer_without_statistics_reads_error_with_its_message(
    controller: Controller,
) -> None:
    run = StandInRun(1, alive=False, error={"error": "killed by signal 9", "error_time": "t"})
    controller._runs[1] = run  # type: ignore[assignment]
    answer = controller.status(1)
    assert answer["status"] == "error"
    assert answer["error"] == "killed by signal 9"


# --- configuration -----------------------------------------------------------------------


def write_config(path: Path, cameras: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"cameras": cameras}))
    return path


def camera(name: str = "pco1", **changes: Any) -> dict[str, Any]:
    entry = {"name": name, "connection_address": "tcp://10.0.0.1:8080", "control_port": 9901,
             "writer_port": 9555, "data_root": "/data"}  # fmt: skip
    return {**entry, **changes}


def test_a_valid_config_loads(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.json", [camera()])
    assert load_config(path).cameras[0].writer_port == 9555


def test_a_yaml_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "cameras:\n  - {name: pco2, connection_address: 'tcp://h:8081', control_port: 9902,\n"
        "     writer_port: 9556, data_root: /data}\n"
    )
    assert load_config(path).cameras[0].name == "pco2"


@pytest.mark.parametrize(
    ("cameras", "words"),
    [
        ([camera(writer_port="x")], "cameras.0.writer_port"),
        ([camera(colour="red")], "cameras.0.colour"),
        ([camera(connection_address="h:1")], "cameras.0.connection_address"),
        ([camera(), camera("pco2", control_port=9902)], "writer_port must be unique"),
        ([], "cameras"),
    ],
)
def test_config_errors_name_the_field(
    tmp_path: Path, cameras: list[dict[str, Any]], words: str
) -> None:
    path = write_config(tmp_path / "c.json", cameras)
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        load_config(path)

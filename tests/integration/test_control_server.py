"""The control server over real sockets, with real writer processes and a simulated camera."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import httpx
from _control_helpers import camera, free_port, wait_for

from pco_writer.control import ControlServer, ServerConfig
from pco_writer.writer_command import parse_write_command

LAST_RUN_KEYS = {
    "first_frame_id", "n_frames", "n_lost_frames", "n_written_frames", "duration_sec",
    "writing_rate", "user_id", "start_time", "end_time", "output_file", "dataset_name",
    "status", "success",
}  # fmt: skip


def rclient_body(address: str, port: int, **changes: str) -> bytes:
    """The body pco_rclient sends: json.dumps of strings, posted without a Content-Type."""
    body = {
        "connection_address": address, "output_file": "scan.h5", "n_frames": "20",
        "user_id": "503", "dataset_name": "data", "max_frames_per_file": "20000",
        "rest_api_port": "9901", "n_modules": "1", "writer_rest_port": str(port),
        "flask_api_address": "http://127.0.0.1:9901",
    }  # fmt: skip
    return json.dumps({**body, **changes}).encode()


def post_raw(client: httpx.Client, body: bytes) -> dict[str, Any]:
    request = client.build_request("POST", "/start_pco_writer", content=body)
    assert "content-type" not in request.headers  # as requests.post(data=str) sends it
    return dict(client.send(request).json())


def finished(client: httpx.Client, port: int) -> dict[str, Any]:
    return dict(client.get(f"/status/{port}").json())


def test_a_pco_rclient_request_runs_an_acquisition_to_a_closed_file(
    http: httpx.Client, tmp_path: Path
) -> None:
    port = free_port()
    with camera(frames=20) as (address, _):
        answer = post_raw(http, rclient_body(address, port))
        assert answer["success"] is True, answer
        stats = wait_for(
            lambda: (s := finished(http, port))["status"] == "finished" and s, what="finished"
        )
    assert set(stats) >= LAST_RUN_KEYS
    assert all(type(stats[k]) is int for k in ("n_frames", "n_written_frames", "first_frame_id"))
    assert (stats["n_written_frames"], stats["first_frame_id"], stats["user_id"]) == (20, 1000, 503)
    assert http.get("/finished").json()["n_written_frames"] == 20
    with h5py.File(tmp_path / "scan.h5", "r") as f:  # finished means closed: it opens
        assert f["exchange/data"].shape == (20, 32, 48)


def test_status_answers_fast_while_the_writer_is_busy(http: httpx.Client) -> None:
    port = free_port()
    with camera(frames=0, fps=50) as (address, _):
        assert post_raw(http, rclient_body(address, port, n_frames="0"))["success"]
        for _ in range(20):
            answer = http.get(f"/status/{port}", timeout=3)
            assert answer.json()["status"] in ("receiving", "writing")
        http.get(f"/stop/{port}")
        wait_for(lambda: finished(http, port)["status"] == "finished", what="stopped")


def test_a_taken_dataset_name_is_refused_and_reported_through_error(
    http: httpx.Client, server: ControlServer, tmp_path: Path
) -> None:
    port = free_port()
    with camera(frames=5) as (address, _):
        assert post_raw(http, rclient_body(address, port, n_frames="5"))["success"]
        wait_for(lambda: finished(http, port)["status"] == "finished", what="first run")
        again = post_raw(http, rclient_body(address, port, n_frames="5"))
    assert again["success"] is False
    assert "dataset name 'data' already exists" in again["error"]
    error = http.get("/error").json()
    assert error["success"] is True and error["status"] == "error"
    assert "already exists" in error["error"] and "choose another" in error["error"]
    assert error["error_time"]
    assert not any(run["alive"] for run in server.controller.runs())


def test_a_new_run_clears_the_previous_error(http: httpx.Client) -> None:
    port = free_port()
    with camera(frames=0, fps=100) as (address, _):
        assert post_raw(http, rclient_body(address, port, n_frames="5"))["success"]
        wait_for(lambda: finished(http, port)["status"] == "finished", what="first run")
        assert not post_raw(http, rclient_body(address, port, n_frames="5"))["success"]
        assert http.get("/error").json()["success"] is True
        body = rclient_body(address, port, n_frames="5", dataset_name="data_white")
        assert post_raw(http, body)["success"]
        assert http.get("/error").json() == {"success": False, "error": None}
        wait_for(lambda: finished(http, port)["status"] == "finished", what="second run")


def test_a_second_writer_for_the_same_camera_is_refused_while_one_runs(
    http: httpx.Client,
) -> None:
    port = free_port()
    with camera(frames=0, fps=20) as (address, _):
        assert post_raw(http, rclient_body(address, port, n_frames="0"))["success"]
        second = post_raw(http, rclient_body(address, free_port(), output_file="b.h5"))
        assert second["success"] is False
        assert "still running" in second["error"]
        http.get(f"/kill/{port}")
        wait_for(lambda: finished(http, port)["status"] == "finished", what="killed")


def test_two_cameras_are_served_at_once_each_on_its_own_port(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    writer_ports = [free_port(), free_port()]
    with camera(frames=15) as (a, _), camera(frames=25) as (b, _):
        config = ServerConfig.model_validate({"cameras": [
            {"name": "pco1", "connection_address": a, "control_port": ports[0],
             "writer_port": writer_ports[0], "data_root": str(tmp_path)},
            {"name": "pco2", "connection_address": b, "control_port": ports[1],
             "writer_port": writer_ports[1], "data_root": str(tmp_path)},
        ]})  # fmt: skip
        with ControlServer("127.0.0.1", config=config) as srv, httpx.Client(timeout=5) as http:
            urls = [s.url for s in srv.servers]
            for url, address, wport, n in zip(urls, (a, b), writer_ports, (15, 25), strict=True):
                body = rclient_body(address, wport, n_frames=str(n), output_file=f"{n}.h5")
                request = http.build_request("POST", f"{url}/start_pco_writer", content=body)
                assert http.send(request).json()["success"] is True
            for url, wport, n in zip(urls, writer_ports, (15, 25), strict=True):
                wait_for(lambda u=url, p=wport: http.get(f"{u}/status/{p}").json()["status"]
                         == "finished", what="both cameras")  # fmt: skip
                assert http.get(f"{url}/finished").json()["n_written_frames"] == n
            # a camera's server refuses the other camera's stream
            body = rclient_body(b, writer_ports[0], output_file="x.h5")
            wrong = http.send(
                http.build_request("POST", f"{urls[0]}/start_pco_writer", content=body)
            )
            assert "is not camera 'pco1'" in wrong.json()["error"]


@contextmanager
def open_ended_writer(http: httpx.Client) -> Iterator[tuple[int, dict[str, Any]]]:
    """A writer started through the server for a camera that keeps sending: (port, answer)."""
    port = free_port()
    with camera(frames=0, fps=20) as (address, _):
        answer = post_raw(http, rclient_body(address, port, n_frames="0"))
        assert answer["success"], answer
        yield port, answer


def test_a_writer_killed_by_a_signal_reads_error_with_its_exit(
    http: httpx.Client, server: ControlServer
) -> None:
    import signal

    with open_ended_writer(http) as (port, _):
        server.controller._runs[port].signal(signal.SIGKILL)
        status = wait_for(
            lambda: (s := finished(http, port))["status"] not in ("receiving", "writing") and s,
            what="death",
        )
    assert status["status"] == "error"
    assert "code -9" in status["error"]


def test_a_second_writer_for_the_same_camera_under_another_host_name_is_refused(
    http: httpx.Client, server: ControlServer
) -> None:
    port = free_port()
    with camera(frames=0, fps=50) as (address, _):
        assert post_raw(http, rclient_body(address, port, n_frames="0"))["success"]
        alias = address.replace("127.0.0.1", "localhost")
        body = rclient_body(alias, free_port(), output_file="b.h5")
        second = http.send(http.build_request("POST", "/start_pco_writer", content=body))
        alive = [run for run in server.controller.runs() if run["alive"]]
        http.get(f"/kill/{port}")
        wait_for(lambda: finished(http, port)["status"] == "finished", what="killed")
    assert second.status_code == 409, second.json()
    assert "still running" in second.json()["error"]
    assert len(alive) == 1


def test_a_numbered_file_that_leads_outside_the_data_root_is_refused(
    http: httpx.Client, server: ControlServer, tmp_path: Path
) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    h5py.File(outside / "victim.h5", "w").close()
    (tmp_path / "scan_001.h5").symlink_to(outside / "victim.h5")
    body = rclient_body(
        "tcp://127.0.0.1:1", free_port(), max_frames_per_file="5", output_file="scan_%03d.h5"
    )
    answer = http.send(http.build_request("POST", "/start_pco_writer", content=body))
    assert answer.status_code == 422
    assert "scan_001.h5" in answer.json()["error"] and "remove it" in answer.json()["error"]
    assert server.controller.runs() == []
    with h5py.File(outside / "victim.h5", "r") as f:
        assert list(f) == []


def test_kill_of_a_writer_that_does_not_answer_ends_its_process(
    http: httpx.Client, server: ControlServer
) -> None:
    import os
    import signal

    with open_ended_writer(http) as (port, _):
        run = server.controller._runs[port]
        os.kill(run.pid, signal.SIGSTOP)  # its API accepts connections but never answers
        try:
            answer = http.get(f"/kill/{port}", timeout=20).json()
            exited = run.wait(1.0)
        finally:
            if run.alive:  # else the pid is reaped (and may be another process's by now)
                os.kill(run.pid, signal.SIGCONT)
    assert exited, f"the writer still runs after /kill answered {answer}"
    assert answer["status"] == "killed"


def test_the_writer_is_told_the_data_root_so_that_it_checks_each_file_it_opens(
    http: httpx.Client, tmp_path: Path
) -> None:
    with open_ended_writer(http) as (port, answer):
        try:
            argv = Path(f"/proc/{answer['pid']}/cmdline").read_bytes().split(b"\0")
        finally:
            assert http.get(f"/kill/{port}", timeout=20).json()["status"] == "killed"
    settings = parse_write_command([a.decode() for a in argv[argv.index(b"write") + 1 :]]).settings
    assert settings.data_root == str(tmp_path.resolve())

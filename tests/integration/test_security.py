"""Who may write where: data roots, the optional token, request limits, user switching."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import httpx
import pytest
from _control_helpers import free_port, wait_for
from _fault_helpers import camera
from test_control_server import post_raw
from test_control_server import rclient_body as _rclient_body

from pco_writer.auth import TOKEN_HEADER
from pco_writer.client import PcoWriter
from pco_writer.control import ControlServer

TOKEN = "a-shared-secret-of-the-beamline"
NOBODY = 65534


def rclient_body(address: str, port: int, **changes: str) -> bytes:
    return _rclient_body(address, port, **{"max_frames_per_file": "0", **changes})


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


# --- paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    ["../outside.h5", "sub/../../outside.h5", "link_out/scan.h5", "link_file.h5", "%d/scan.h5",
     "scan\u0000.h5", "/etc/scan.h5", "~/scan.h5"],
)  # fmt: skip
def test_an_output_outside_the_data_root_is_refused_before_any_spawn(
    http: httpx.Client, data_root: Path, tmp_path: Path, output: str
) -> None:
    (data_root / "sub").mkdir()
    (data_root / "link_out").symlink_to(tmp_path)  # a folder link that leaves the root
    (data_root / "link_file.h5").symlink_to(tmp_path / "victim.h5")
    answer = post_raw(http, rclient_body("tcp://127.0.0.1:9", free_port(), output_file=output))
    assert answer["success"] is False, answer
    assert http.get("/writers").json()["writers"] == []
    assert not (tmp_path / "outside.h5").exists() and not (tmp_path / "victim.h5").exists()


def test_a_taken_dataset_name_never_overwrites_existing_data(
    http: httpx.Client, data_root: Path
) -> None:
    with h5py.File(data_root / "scan.h5", "w") as f:
        f["exchange/data"] = [[1, 2], [3, 4]]
    answer = post_raw(http, rclient_body("tcp://127.0.0.1:9", free_port()))
    assert answer["success"] is False and "already exists" in answer["error"]
    with h5py.File(data_root / "scan.h5", "r") as f:
        assert f["exchange/data"][()].tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize("name", ["../data", "a/b", "/data", ".", "..", "x" * 200, "da ta"])
def test_a_bad_dataset_name_is_refused(http: httpx.Client, name: str) -> None:
    answer = post_raw(http, rclient_body("tcp://127.0.0.1:9", free_port(), dataset_name=name))
    assert answer["success"] is False and "dataset" in answer["error"], answer


# --- malformed and oversized requests ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{", 400),
        (b"[1, 2]", 400),
        (b"\xff\xfe", 400),
        (b"[" * 60_000, 400),
        (b'{"n_frames": {"$gt": 1}}', 422),
        (b"x" * 70_000, 413),
    ],
)
def test_a_malformed_request_gets_a_4xx_with_a_message_and_no_traceback(
    http: httpx.Client, body: bytes, status: int
) -> None:
    response = http.post("/start_pco_writer", content=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["success"] is False and answer["error"]
    assert "Traceback" not in response.text


def test_a_streamed_body_over_the_limit_is_cut_off_with_413(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    response = http.post("/start_pco_writer", content=chunks())  # no Content-Length
    assert response.status_code == 413 and response.json()["success"] is False


# --- the token -------------------------------------------------------------------------------


@pytest.fixture
def guarded(data_root: Path) -> Iterator[ControlServer]:
    srv = ControlServer("127.0.0.1", 0, data_root=data_root, token=TOKEN).start()
    yield srv
    srv.stop(timeout=5.0)


def test_with_a_token_the_server_refuses_changes_without_it_and_keeps_reads_open(
    guarded: ControlServer,
) -> None:
    with httpx.Client(base_url=guarded.url, timeout=5) as http:
        body = rclient_body("tcp://127.0.0.1:9", free_port())
        for method, path in [("POST", "/start_pco_writer"), ("GET", "/stop/9555"),
                             ("GET", "/kill/9555"), ("POST", "/finished"), ("POST", "/error"),
                             ("POST", "/writers/9555/finished")]:  # fmt: skip
            for headers in ({}, {TOKEN_HEADER: "wrong-" + TOKEN}):
                response = http.request(method, path, content=body, headers=headers)
                assert response.status_code == 401, (method, path, response.text)
                assert TOKEN_HEADER in response.json()["error"]
        for path in ("/ack", "/status/9555", "/finished", "/error", "/server_log/pco1"):
            assert http.get(path).status_code == 200, path
    assert guarded.controller.runs() == []


def test_with_a_token_a_whole_acquisition_works_and_the_writer_is_guarded_too(
    guarded: ControlServer, data_root: Path
) -> None:
    port = free_port()
    with camera(frames=0, fps=100) as cam:
        pco = PcoWriter(
            output_file="scan.h5", n_frames=0, connection_address=cam.address,
            flask_api_address=guarded.url, writer_api_address=f"http://127.0.0.1:{port}",
            token=TOKEN,
        )  # fmt: skip
        with pco:
            pco.start()
            writer = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{writer}/stop", timeout=3).status_code == 401  # no token
            assert httpx.get(f"{writer}/statistics", timeout=3).json()["success"]
            ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
            assert TOKEN not in ps.stdout, "the token shows on a command line"
            pco.stop()
            stats = wait_for(
                lambda: (s := guarded.controller.status(port))["status"] == "finished" and s,
                what="the report to reach the server (it needs the token)",
            )
    assert stats["n_written_frames"] > 0
    assert f"writer port={port} finished" in guarded.controller.logs.text()  # its POST got in
    with h5py.File(data_root / "scan.h5", "r") as f:
        assert f["exchange/data"].shape[0] == stats["n_written_frames"]


def test_without_a_token_the_server_says_so_and_listens_on_loopback_only(
    data_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "pco_writer.control"):
        srv = ControlServer("127.0.0.1", 0, data_root=data_root).start()
        srv.stop()
    assert any("no token configured" in r.getMessage() for r in caplog.records)
    args = subprocess.run(
        [sys.executable, "-m", "pco_writer.cli", "server", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "(default: 127.0.0.1)" in args and "--token-file" in args


# --- running the writer as another user --------------------------------------------------------


def writer_uid(server: ControlServer, port: int) -> int:
    pid = next(r["pid"] for r in server.controller.runs() if r["port"] == port)
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:")))


def test_without_user_switching_the_user_id_is_only_recorded(
    server: ControlServer, http: httpx.Client
) -> None:
    port = free_port()
    with camera(frames=0, fps=50) as cam:
        body = rclient_body(cam.address, port, n_frames="0", user_id=str(NOBODY))
        assert post_raw(http, body)["success"]
        assert writer_uid(server, port) == os.geteuid()
        http.get(f"/stop/{port}")
        stats = wait_for(lambda: (s := http.get(f"/status/{port}").json())["status"]
                         == "finished" and s)  # fmt: skip
    assert stats["user_id"] == NOBODY


def test_with_user_switching_an_unknown_user_is_refused(data_root: Path) -> None:
    with (
        ControlServer("127.0.0.1", 0, data_root=data_root, allow_user_switch=True) as srv,
        httpx.Client(base_url=srv.url, timeout=5) as http,
    ):
        body = rclient_body("tcp://127.0.0.1:9", free_port(), user_id="987654")
        answer = post_raw(http, body)
        assert answer["success"] is False and "987654 is not a user" in answer["error"]
        assert srv.controller.runs() == []


def nobody_can_run_python() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        probe = subprocess.run([sys.executable, "-c", "import pco_writer"], user=NOBODY,
                               capture_output=True, check=False, timeout=30)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


@contextmanager
def nobody_root() -> Iterator[Path]:
    """A data root of user nobody that nobody can reach (pytest's tmp_path is root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="pco-users-"))
    try:
        base.chmod(0o755)
        root = base / "data"
        root.mkdir()
        os.chown(root, NOBODY, NOBODY)
        yield root
    finally:
        shutil.rmtree(base)


@pytest.mark.skipif(not nobody_can_run_python(), reason="needs root and a Python nobody can run")
def test_with_user_switching_the_writer_runs_as_the_user_and_the_file_is_theirs(
    tmp_path: Path,
) -> None:  # pragma: no cover - where the interpreter lives below /root, nobody cannot run it
    port = free_port()
    with (
        nobody_root() as root,
        ControlServer("127.0.0.1", 0, data_root=root, allow_user_switch=True) as srv,
        httpx.Client(base_url=srv.url, timeout=5) as http,
        camera(frames=5) as cam,
    ):
        assert post_raw(http, rclient_body(cam.address, port, n_frames="5",
                                           user_id=str(NOBODY)))["success"]  # fmt: skip
        wait_for(lambda: http.get(f"/status/{port}").json()["status"] == "finished")
        assert (root / "scan.h5").stat().st_uid == NOBODY

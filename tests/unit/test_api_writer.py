"""The writer REST API, in-process over a fake writer, plus serving and reporting over sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from pco_writer.api import EndReporter, ServerThread, build_app, serve_writer
from pco_writer.layouts import Parameter, ParameterSet
from pco_writer.preview import Preview

STATS_KEYS_INT = ("n_written_frames", "n_frames", "n_received_frames", "user_id",
                  "first_frame_id", "n_lost_frames")  # fmt: skip


class FakeWriter:
    """Just the state the API reads and the commands it gives."""

    def __init__(self, types: dict[str, str] | None = None) -> None:
        declared = {name: Parameter(type=nx_type) for name, nx_type in (types or {}).items()}
        self.parameter_set = ParameterSet(declared)  # the writer's own checks
        self.status = "receiving"
        self.error = ""
        self.calls: list[str] = []
        self.callbacks: list[Callable[[Any], None]] = []
        self.done = False
        self.ends_when_told = True
        self.reports_slowly = False
        self.end_reason = ""
        self.dropped = 0
        self.shown: Preview | None = None

    def statistics(self) -> dict[str, Any]:
        return {
            "n_frames": 10, "n_received_frames": 4, "n_written_frames": 3, "n_lost_frames": 0,
            "first_frame_id": 7, "user_id": 503, "start_time": "t0", "end_time": "",
            "receiving_rate": 12.5, "writing_rate": 10.0, "duration_sec": 0.4,
            "output_file": "/d/a.h5", "dataset_name": "data", "status": self.status,
            "error": self.error, "end_reason": self.end_reason,
            "n_dropped_frames": self.dropped,
        }  # fmt: skip

    def stop(self) -> None:
        self.calls.append("stop")
        if self.ends_when_told:
            self.status, self.done, self.end_reason = "finished", True, "stopped"
            self.done = not self.reports_slowly  # its done callbacks still run

    def kill(self) -> None:
        self.calls.append("kill")
        if self.ends_when_told:
            self.status, self.done, self.end_reason, self.dropped = "finished", True, "killed", 1

    def parameters(self) -> dict[str, Any]:
        return self.parameter_set.given()

    def set_parameters(self, values: dict[str, Any]) -> None:
        self.parameter_set.set(values)

    def parameter_types(self) -> dict[str, str]:
        return self.parameter_set.types()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self.callbacks.append(callback)

    def preview(self) -> Preview | None:
        return self.shown

    def finish(self, status: str = "finished", error: str = "") -> None:
        self.status, self.error, self.done = status, error, True
        for callback in self.callbacks:
            callback(self)


@pytest.fixture
def writer() -> FakeWriter:
    return FakeWriter({"energy": "NX_FLOAT", "sample": "NX_CHAR", "count": "NX_INT"})


@pytest.fixture
def api(writer: FakeWriter) -> Iterator[httpx.Client]:
    """The API on uvicorn at a free port (starlette's TestClient is deprecated with httpx)."""
    server = ServerThread(build_app(writer), "127.0.0.1", 0).start()
    try:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            yield client
    finally:
        server.stop()


def test_status_answers_the_writer_status_in_the_pco_rclient_shape(
    api: httpx.Client, writer: FakeWriter
) -> None:
    writer.status = "writing"
    assert api.get("/status").json() == {"success": True, "status": "writing", "value": "Ok"}


def test_when_the_writer_failed_then_status_carries_the_error(
    api: httpx.Client, writer: FakeWriter
) -> None:
    writer.status, writer.error = "error", "disk full"
    assert api.get("/status").json()["error"] == "disk full"


def test_statistics_are_real_json_numbers_without_nulls(api: httpx.Client) -> None:
    stats = api.get("/statistics").json()
    assert stats["success"] is True
    assert all(type(stats[key]) is int for key in STATS_KEYS_INT)
    assert isinstance(stats["writing_rate"], float)
    assert None not in stats.values()


def test_preview_before_the_first_frame_is_404_and_says_so(api: httpx.Client) -> None:
    answer = api.get("/preview")
    assert answer.status_code == 404
    assert answer.json()["detail"] == "this acquisition has written no frame yet"


def test_preview_answers_the_png_and_names_its_frame_in_headers(
    api: httpx.Client, writer: FakeWriter
) -> None:
    writer.shown = Preview(b"\x89PNG fake", frame_id=1042, index=42, shape=(2160, 2560))
    answer = api.get("/preview")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    assert answer.content == b"\x89PNG fake"
    assert answer.headers["x-frame-id"] == "1042"
    assert answer.headers["x-frame-index"] == "42"
    assert answer.headers["x-frame-shape"] == "2160x2560"
    assert answer.headers["cache-control"] == "no-store"


def test_stop_answers_the_state_it_led_to_not_the_one_before(
    api: httpx.Client, writer: FakeWriter
) -> None:
    answer = api.get("/stop").json()
    assert writer.calls == ["stop"]
    assert answer["success"] is True and answer["status"] == "finished"
    assert answer["message"] == "stopped: 3 of 10 written"


def test_stop_says_how_the_run_ended_while_the_writer_still_reports_its_end(
    api: httpx.Client, writer: FakeWriter
) -> None:
    """The files are closed (status finished) before the done callbacks have run."""
    writer.reports_slowly = True
    answer = api.get("/stop").json()
    assert answer["status"] == "finished"
    assert answer["message"] == "stopped: 3 of 10 written"


def test_stop_answers_within_a_bound_when_the_writer_is_still_busy(writer: FakeWriter) -> None:
    writer.ends_when_told = False
    server = ServerThread(build_app(writer, end_wait=0.3), "127.0.0.1", 0).start()
    try:
        started = time.monotonic()
        answer = httpx.get(f"{server.url}/stop", timeout=5).json()
    finally:
        server.stop()
    assert time.monotonic() - started < 3
    assert answer["status"] == "receiving"
    assert answer["message"] == "3 written so far; the writer is receiving"


def test_kill_answers_killed_with_what_became_of_the_frames(
    api: httpx.Client, writer: FakeWriter
) -> None:
    answer = api.get("/kill").json()
    assert answer["status"] == "killed" and answer["writer_status"] == "finished"
    assert writer.calls == ["kill"]
    assert (answer["n_written_frames"], answer["n_dropped_frames"]) == (3, 1)
    assert answer["message"] == "killed: 3 of 10 written, 1 dropped"


def test_parameters_are_set_and_read_back_with_their_types(api: httpx.Client) -> None:
    answer = api.post("/parameters", json={"energy": 21.5, "sample": "wood"})
    assert answer.status_code == 200
    got = api.get("/parameters").json()
    assert got["parameters"] == {"energy": 21.5, "sample": "wood"}
    assert got["types"]["energy"] == "NX_FLOAT"


def test_unknown_parameter_is_refused_with_422_and_the_writer_message(api: httpx.Client) -> None:
    answer = api.post("/parameters", json={"colour": "red"})
    assert answer.status_code == 422
    assert "colour" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("values", "words"),
    [({"energy": "high"}, "NX_FLOAT"), ({"sample": 3}, "NX_CHAR"), ({"energy": True}, "NX_FLOAT"),
     ({"count": 1.5}, "NX_INT")],
)  # fmt: skip
def test_wrong_parameter_type_is_refused_with_422(
    api: httpx.Client, writer: FakeWriter, values: dict[str, Any], words: str
) -> None:
    answer = api.post("/parameters", json=values)
    assert answer.status_code == 422
    assert words in answer.json()["error"]
    assert writer.parameters() == {}


@pytest.mark.parametrize(
    ("body", "words"),
    [(b'{"energy": NaN}', "energy' is NX_FLOAT"), (b'{"energy": Infinity}', "energy' is NX_FLOAT"),
     (b'{"energy": -Infinity}', "energy' is NX_FLOAT"),
     (b'{"energy": 1' + b"0" * 400 + b"}", "about 401 digits"),
     (b'{"count": 9223372036854775808}', "9223372036854775807 (int64)"),
     (b'{"count": -9223372036854775809}', "from -9223372036854775808"),
     (b'{"sample": "a\\u0000b"}', "without NUL"), (b'{"sample": "\\ud800"}', "UTF-8")],
    ids=["nan", "inf", "-inf", "401-digits", "int64+1", "int64-1", "nul", "lone-surrogate"],
)  # fmt: skip
def test_a_value_hdf5_cannot_store_is_refused_with_422_and_nothing_is_set(
    api: httpx.Client, writer: FakeWriter, body: bytes, words: str
) -> None:
    """Let through, such a value failed the file's close at the end of the acquisition."""
    answer = api.post("/parameters", content=body)
    assert answer.status_code == 422
    assert words in answer.json()["detail"]
    assert writer.parameter_set.given() == {}
    assert api.get("/parameters").status_code == 200


def test_malformed_body_gets_400_json_not_a_traceback(api: httpx.Client) -> None:
    answer = api.post("/parameters", content=b"{not json")
    assert answer.status_code == 400
    assert answer.json()["success"] is False
    assert "not JSON" in answer.json()["detail"]


def test_body_over_the_limit_gets_413(api: httpx.Client) -> None:
    answer = api.post("/parameters", content=b"x" * 100_000)
    assert answer.status_code == 413


def test_openapi_docs_are_served(api: httpx.Client) -> None:
    assert api.get("/docs").status_code == 200
    assert "/statistics" in api.get("/openapi.json").json()["paths"]


def test_unknown_route_gets_404_json(api: httpx.Client) -> None:
    answer = api.get("/nope")
    assert answer.status_code == 404
    assert answer.json()["success"] is False


# --- over real sockets ---------------------------------------------------------------------


class ControlStub:
    """A control server that records what writers report."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, dict[str, Any]]] = []
        self.received = threading.Event()
        app = FastAPI()

        @app.post("/w/{route}")
        async def report(route: str, request: Request) -> dict[str, Any]:
            self.reports.append((route, await request.json()))
            self.received.set()
            return {"success": True}

        self.server = ServerThread(app, "127.0.0.1", 0).start()


@pytest.fixture
def control() -> Iterator[ControlStub]:
    stub = ControlStub()
    yield stub
    stub.server.stop()


def test_serve_writer_answers_on_a_real_port_and_shuts_down_bounded(writer: FakeWriter) -> None:
    service = serve_writer(writer, "127.0.0.1", 0, linger=0.2)
    try:
        answer = httpx.get(f"{service.url}/status", timeout=2).json()
        assert answer["status"] == "receiving"
    finally:
        t0 = time.monotonic()
        service()
    assert time.monotonic() - t0 < 4
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{service.port}/status", timeout=1)


def test_when_done_then_the_last_run_statistics_are_posted_to_finished(
    writer: FakeWriter, control: ControlStub
) -> None:
    service = serve_writer(writer, "127.0.0.1", None, f"{control.server.url}/w")
    writer.finish()
    service()
    assert [route for route, _ in control.reports] == ["finished"]
    assert control.reports[0][1]["status"] == "finished"
    assert control.reports[0][1]["n_written_frames"] == 3


def test_when_failed_then_the_error_is_posted_then_the_statistics(
    writer: FakeWriter, control: ControlStub
) -> None:
    serve_writer(writer, "127.0.0.1", None, f"{control.server.url}/w")
    writer.finish("error", "disk full")
    routes = [route for route, _ in control.reports]
    assert routes == ["error", "finished"]
    assert control.reports[0][1]["error"] == "disk full"
    assert control.reports[0][1]["error_time"]


def test_reporter_never_raises_when_the_control_server_is_away(writer: FakeWriter) -> None:
    reporter = EndReporter("http://127.0.0.1:9/nowhere")
    writer.status = "finished"
    reporter(writer)  # must not raise
    assert reporter.sent


def test_reporter_sends_once(writer: FakeWriter, control: ControlStub) -> None:
    reporter = EndReporter(f"{control.server.url}/w")
    reporter(writer)
    reporter(writer)
    assert len(control.reports) == 1


def test_writer_already_done_when_served_is_still_reported(
    writer: FakeWriter, control: ControlStub
) -> None:
    writer.status, writer.done = "finished", True
    serve_writer(writer, "127.0.0.1", None, f"{control.server.url}/w")
    assert control.received.is_set()

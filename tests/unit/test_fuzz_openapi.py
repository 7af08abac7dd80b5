"""Fuzzing both OpenAPI specs with schemathesis, in-process (ASGI): no request gets a 500.

The writer API runs over a fake writer; the control server's controller spawns ``/bin/false``
instead of a writer, so that a start request which passes every check still ends at once.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from test_api_writer import FakeWriter

from pco_writer.api import build_app as build_writer_app
from pco_writer.auth import TOKEN_HEADER
from pco_writer.control import CameraConfig, Controller
from pco_writer.control import build_app as build_control_app

TOKEN = "s3cret-token-for-the-fuzz-test"
PER_OPERATION = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
NOT_JSON = {"/metrics": "text/plain", "/preview": "image/png"}
"""Routes that answer another media type when they succeed (errors are JSON everywhere)."""


def fuzz(app: FastAPI, check: Callable[[Any, Any], None] | None = None) -> dict[str, int]:
    """Call every operation with generated requests; returns the status codes seen, by route."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in MODES:

            @given(case=operation.as_strategy(generation_mode=mode))
            @PER_OPERATION
            def call(case: Any) -> None:
                response = case.call()
                assert response.status_code < 500, (case.method, case.path, response.text)
                content_type = response.headers.get("content-type", [""])[0]
                media = "application/json"
                if response.status_code == 200 and case.path in NOT_JSON:
                    media = NOT_JSON[case.path]
                assert content_type.startswith(media), (case.path, content_type)
                if check is not None:
                    check(case, response)
                key = f"{case.method} {case.path} {response.status_code}"
                seen[key] = seen.get(key, 0) + 1

            try:
                call()
            except Unsatisfiable:  # no parameters or body: nothing can be made invalid
                assert mode is schemathesis.GenerationMode.NEGATIVE
    return seen


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Controller]:
    false = shutil.which("false")
    assert false is not None
    ctl = Controller(tmp_path, python=false, start_timeout=5.0)
    yield ctl
    ctl.shutdown(2.0)
    assert not any(run["alive"] for run in ctl.runs()), "a child outlived the test"


def test_the_writer_api_answers_every_generated_request_without_a_500() -> None:
    writer = FakeWriter({"energy": "NX_FLOAT", "sample": "NX_CHAR"})
    seen = fuzz(build_writer_app(writer))
    assert any(k.startswith("POST /parameters 422") for k in seen), seen  # bodies were fuzzed
    assert any(k.startswith("GET /status 200") for k in seen), seen


def test_the_writer_api_with_a_token_refuses_every_state_change_without_it() -> None:
    writer = FakeWriter({"energy": "NX_FLOAT"})
    changes = {("GET", "/stop"), ("GET", "/kill"), ("POST", "/parameters")}

    def check(case: Any, response: Any) -> None:
        if (case.method.upper(), case.path) in changes:
            assert response.status_code == 401, response.text
            assert TOKEN_HEADER in response.json()["detail"]

    fuzz(build_writer_app(writer, token=TOKEN), check)
    assert writer.calls == [], "a command got through without the token"


def test_the_control_api_answers_every_generated_request_without_a_500(
    controller: Controller, tmp_path: Path
) -> None:
    seen = fuzz(build_control_app(controller))
    assert any(k.startswith("POST /start_pco_writer 4") for k in seen), seen
    camera = CameraConfig(
        name="pco1", connection_address="tcp://127.0.0.1:8080", control_port=9901,
        writer_port=9555, data_root=tmp_path,
    )  # fmt: skip
    fuzz(build_control_app(controller, camera))


def test_the_control_api_with_a_token_refuses_every_state_change_without_it(
    controller: Controller,
) -> None:
    controller.token = TOKEN

    def check(case: Any, response: Any) -> None:
        changing = case.method.upper() == "POST" or case.path.startswith(("/stop/", "/kill/"))
        if changing:
            assert response.status_code == 401, (case.method, case.path, response.text)

    fuzz(build_control_app(controller), check)
    assert controller.runs() == [], "a writer was started without the token"

"""The control server's REST API: the routes pco_rclient calls, plus a few of our own."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from pco_writer import __version__
from pco_writer.api import BodyLimit, install_error_handlers, read_json
from pco_writer.api._auth import token_required
from pco_writer.control._config import CameraConfig
from pco_writer.control._controller import Controller
from pco_writer.control._monitor import Monitor
from pco_writer.control._page import add_page_routes
from pco_writer.control._request import StartRequest
from pco_writer.errors import PcoWriterError

__all__ = ["build_app"]

log = logging.getLogger(__name__)


def build_app(
    controller: Controller, camera: CameraConfig | None = None, monitor: Monitor | None = None
) -> FastAPI:
    """The control API, for one camera or (``camera=None``) for whatever the client sends.

    With ``controller.token`` set, the state-changing routes (start, stop, kill, the writers'
    reports) need it in the ``X-PCO-Writer-Token`` header; the read-only ones stay open.

    Args:
        controller: spawns and tracks the writers.
        camera: the camera this API serves; its ports and data root bound the requests.
        monitor: what the status page and the metrics read (one per controller; a new one
            watching ``controller`` when None).
    """
    title = f"pco-writer control server ({camera.name})" if camera else "pco-writer control server"
    app = FastAPI(title=title, version=__version__)
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    ports = [camera.writer_port] if camera else None
    monitor = monitor or Monitor(controller, [camera] if camera else None)
    _add_acquisition_routes(app, controller, camera)
    _add_report_routes(app, controller, ports, monitor)
    _add_service_routes(app, controller, ports)
    add_page_routes(app, monitor, camera)
    return app


def _add_acquisition_routes(
    app: FastAPI, controller: Controller, camera: CameraConfig | None
) -> None:
    guarded = token_required(lambda: controller.token)

    @app.post("/start_pco_writer", dependencies=guarded, openapi_extra=_json_body(StartRequest))
    async def start_pco_writer(request: Request) -> dict[str, Any]:
        """Start a writer; the body is JSON (any Content-Type, values may be strings)."""
        try:
            body = await read_json(request)
        except PcoWriterError as exc:  # not JSON: refused like a bad value
            controller.refuse(str(exc), camera.writer_port if camera else None)
            raise
        log.info("start request from %s: %s", request.client.host if request.client else "?",
                 _summary(body))  # fmt: skip
        return await run_in_threadpool(controller.start, body, camera)

    # The read-only routes below answer from memory (the watcher keeps the writers' status):
    # served on the event loop itself, they skip the thread-pool hop, as the writer's do.
    @app.get("/status/{port}")
    async def status_of(port: int) -> dict[str, Any]:
        """The status of the writer on ``port``, or its last run's statistics."""
        return controller.status(port)

    @app.get("/status")
    async def status() -> dict[str, Any]:
        """The status of this camera's writer (or of the latest one)."""
        port = camera.writer_port if camera else _latest_port(controller)
        return controller.status(port) if port else {"success": True, "status": "unknown"}

    @app.get("/stop/{port}", dependencies=guarded)
    def stop(port: int) -> dict[str, Any]:
        """Stop the writer on ``port``: it writes what it has received, then finishes."""
        return controller.stop_writer(port)

    @app.get("/kill/{port}", dependencies=guarded)
    def kill(port: int) -> dict[str, Any]:
        """Stop the writer on ``port`` now, dropping what it has not written."""
        return controller.kill_writer(port)

    @app.get("/writers")
    def writers() -> dict[str, Any]:
        """Every known writer run, one per writer port."""
        return {"success": True, "writers": controller.runs()}


def _add_report_routes(
    app: FastAPI, controller: Controller, ports: list[int] | None, monitor: Monitor
) -> None:
    guarded = token_required(lambda: controller.token)

    @app.get("/finished")
    async def finished() -> dict[str, Any]:
        """The last run's statistics; ``success: false`` before any run."""
        return controller.last_statistics(ports)

    @app.get("/finished/{port}")
    async def finished_of(port: int) -> dict[str, Any]:
        """The last run's statistics of the writer on ``port``."""
        return controller.last_statistics([port])

    @app.get("/error")
    async def error() -> dict[str, Any]:
        """The last run's error; ``success: false, error: null`` when there is none."""
        return controller.last_error(ports)

    @app.get("/error/{port}")
    async def error_of(port: int) -> dict[str, Any]:
        """The last run's error of the writer on ``port``."""
        return controller.last_error([port])

    @app.post("/finished", dependencies=guarded)
    @app.post("/writers/{port}/finished", dependencies=guarded)
    async def report_finished(request: Request, port: int | None = None) -> dict[str, Any]:
        """A writer reports its last-run statistics."""
        controller.record_finished(port, await read_json(request))
        await run_in_threadpool(monitor.run_reported, port)  # its last frame, while it waits
        return {"success": True}

    @app.post("/error", dependencies=guarded)
    @app.post("/writers/{port}/error", dependencies=guarded)
    async def report_error(request: Request, port: int | None = None) -> dict[str, Any]:
        """A writer reports a failure: ``{"error": MSG, ...}``."""
        controller.record_error(port, await read_json(request))
        return {"success": True}


def _add_service_routes(app: FastAPI, controller: Controller, ports: list[int] | None) -> None:
    @app.get("/ack")
    def ack() -> dict[str, Any]:
        """The server is up."""
        return {"success": True}

    @app.get("/server_log/{service}")
    def server_log(service: str, lines: Annotated[int, Query(ge=1, le=200)] = 10) -> dict[str, Any]:
        """The server's last ``lines`` log lines in the journal's form, as ``systemctl
        status`` shows them (``service`` is accepted for pco_rclient, unused)."""
        return {"success": True, "service": service, "log": controller.logs.text(lines)}

    @app.get("/server_uptime/{service}")
    async def server_uptime(request: Request, service: str) -> dict[str, Any]:
        """How long the server has been up (pco_rclient sends a form body: drained)."""
        await request.body()
        return {"success": True, "service": service, "uptime": controller.uptime.text()}


def _summary(body: dict[str, Any]) -> str:
    keys = ("output_file", "dataset_name", "n_frames", "max_frames_per_file", "user_id",
            "connection_address", "writer_rest_port")  # fmt: skip
    return " ".join(f"{k}={str(body[k])[:200]!r}" for k in keys if k in body)


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI request body for a route that reads its JSON by hand (any Content-Type)."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _latest_port(controller: Controller) -> int | None:
    runs = controller.runs()
    return max(runs, key=lambda r: r["started_at"])["port"] if runs else None

"""The control server's status page, its data, the preview and the metrics routes.

``GET /`` is one static HTML page (``control/page/index.html``: no build step, nothing
loaded from elsewhere) whose script polls ``GET /overview`` every second and
``GET /preview`` every half second.
"""

from __future__ import annotations

import os
import shutil
import socket
from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Response
from fastapi.responses import HTMLResponse

from pco_writer import __version__
from pco_writer.api._writer_app import PNG_RESPONSES, preview_response
from pco_writer.control._config import CameraConfig
from pco_writer.control._metrics import CONTENT_TYPE_LATEST, metrics_registry, metrics_text
from pco_writer.control._monitor import Monitor, RunView
from pco_writer.exit_record import end_kind
from pco_writer.statistics import iso_now

__all__ = ["add_page_routes", "overview"]

_LOG_LINES = 8  # recent warnings and errors on the page


def add_page_routes(app: FastAPI, monitor: Monitor, camera: CameraConfig | None) -> None:
    """``/``, ``/overview``, ``/preview`` and ``/metrics`` (all read-only, no token)."""
    registry = metrics_registry(monitor)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        """The status page."""
        return HTMLResponse(_page_html(), headers={"Cache-Control": "no-cache"})

    @app.get("/overview")
    def get_overview() -> dict[str, Any]:
        """What the status page shows: each camera's current and last runs, the server."""
        return overview(monitor)

    @app.get("/preview", response_class=Response, responses=PNG_RESPONSES)
    def preview(camera_name: Annotated[str | None, Query(alias="camera")] = None) -> Response:
        """The latest preview (PNG) of the newest run, of this listener's camera or of
        ``?camera=NAME``; after a run, its last one. 404 while there is none."""
        name = camera_name or (camera.name if camera else None)
        view, shown = monitor.preview(name)
        return preview_response(shown, _no_preview(view, name))

    @app.get("/metrics", response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})  # fmt: skip
    def metrics() -> Response:
        """Counters, gauges and the write latency histogram, in the Prometheus text format."""
        return Response(metrics_text(registry), media_type=CONTENT_TYPE_LATEST)


def _no_preview(view: RunView | None, camera: str | None) -> str:
    if view is None:
        which = f"camera {camera!r}" if camera else "this server"
        return f"no frame yet: {which} has had no acquisition"
    state = "has written" if view.run.alive else "wrote"
    return f"no frame yet: the acquisition on writer port {view.run.port} {state} no frame"


def overview(monitor: Monitor) -> dict[str, Any]:
    """The status page's data: the server's health, then each camera and its runs."""
    views = monitor.views()
    cameras = []
    for name in monitor.camera_names():
        mine = [_run(v) for v in reversed(views) if v.camera == name]
        current = mine[0] if mine and mine[0]["alive"] else None
        cameras.append({
            "name": name, "data_root": str(monitor.data_root(name)),
            "disk_free_bytes": _disk_free(monitor, name),
            "current": current, "runs": mine[1:] if current else mine,
        })  # fmt: skip
    return {"success": True, "server": _server(monitor, views), "cameras": cameras}


def _run(view: RunView) -> dict[str, Any]:
    run, stats = view.run, view.stats
    end_reason = str(stats.get("end_reason") or "")
    if view.final and not end_reason and run.exit_record is not None:
        end_reason = run.exit_record.end_reason
    status = stats.get("status") or ("starting" if run.alive else "error")
    if run.alive and status in ("finished", "error"):
        status = "finishing"  # the file is closed, the process not yet gone
    return {
        "port": run.port, "pid": run.pid, "alive": run.alive, "status": status,
        "started_at": run.started_at, "end_time": stats.get("end_time", ""),
        "output_file": str(run.output), "dataset_name": run.settings.dataset_name,
        "files": stats.get("files", []), "n_frames": run.settings.n_frames,
        "n_received_frames": stats.get("n_received_frames", 0),
        "n_written_frames": stats.get("n_written_frames", 0),
        "n_lost_frames": stats.get("n_lost_frames", 0),
        "lost_by_reason": stats.get("lost_by_reason", {}),
        "n_invalid_frames": stats.get("n_invalid_frames", 0),
        "invalid_by_reason": stats.get("invalid_by_reason", {}),
        "receive_rate": view.rates[0], "write_rate": view.rates[1],
        "buffer_used_bytes": stats.get("buffer_used_bytes", 0),
        "buffer_bytes": run.settings.buffer_bytes,
        "end_reason": end_reason, "end_kind": end_kind(end_reason) if view.final else "",
        "exit_code": run.exit_code,
        "error": run.error["error"] if run.error else "",
        "preview_frame_id": view.preview.frame_id if view.preview else None,
    }  # fmt: skip


def _server(monitor: Monitor, views: list[RunView]) -> dict[str, Any]:
    controller = monitor.controller
    lines = [line for line in controller.logs.lines if "level=WARNING" in line
             or "level=ERROR" in line or "level=CRITICAL" in line]  # fmt: skip
    return {
        "version": __version__, "host": socket.gethostname(), "pid": os.getpid(),
        "uptime": controller.uptime.text(), "time": iso_now(),
        "running_writers": sum(1 for v in views if v.run.alive),
        "rss_bytes": _rss_bytes(), "control_url": controller.control_url,
        "token_required": bool(controller.token),
        "user_switching": controller.allow_user_switch,
        "warnings": lines[-_LOG_LINES:],
    }  # fmt: skip


def _disk_free(monitor: Monitor, camera: str) -> int | None:
    try:
        return shutil.disk_usage(monitor.data_root(camera)).free
    except OSError:
        return None


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@cache
def _page_html() -> str:
    return resources.files("pco_writer.control").joinpath("page/index.html").read_text("utf-8")

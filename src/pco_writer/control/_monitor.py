"""What the status page and ``/metrics`` show: the runs, their statistics, and the totals.

The monitor keeps each writer run the controller starts (it is told through
``Controller.on_new_run``), reads a running writer's ``/statistics`` and ``/preview`` when
someone looks (at most every :data:`SAMPLE_S` and :data:`PREVIEW_S`, whoever asks), and
takes a finished run's statistics from the run itself. The writers own every count; the
monitor only adds up the runs that have ended (:class:`~pco_writer.control._totals.Totals`),
so that counters outlive the writer processes. Nothing is fetched while nobody looks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pco_writer.control._config import CameraConfig
from pco_writer.control._controller import Controller
from pco_writer.control._run import WriterRun
from pco_writer.control._totals import Totals
from pco_writer.preview import Preview

__all__ = ["PREVIEW_S", "SAMPLE_S", "Monitor", "RunView"]

log = logging.getLogger(__name__)

SAMPLE_S = 0.9
"""A running writer's statistics are fetched at most this often (the page asks every 1 s)."""
PREVIEW_S = 0.5
"""A running writer's preview is fetched at most this often."""
_RATE_SPAN_S = 1.0  # rates are taken over at least this long
_TIMEOUT = httpx.Timeout(1.0, connect=0.5)


@dataclass
class RunView:
    """The monitor's view of one writer run.

    Attributes:
        run: the run, as the controller tracks it.
        camera: the camera's name (its connection address without a configuration).
        stats: the latest statistics (the final ones once the run has ended).
        sampled_at: when ``stats`` was fetched (monotonic), 0 never.
        earlier: an older sample ``(t, n_received, n_written)``, for the current rates.
        rates: frames per second received and written over the last second or more.
        preview: the latest preview of the run, kept after it ended.
        previewed_at: when ``preview`` was fetched (monotonic), 0 never.
        final: the run has ended and its counts are in the totals.
    """

    run: WriterRun
    camera: str
    stats: dict[str, Any] = field(default_factory=dict)
    sampled_at: float = 0.0
    earlier: tuple[float, int, int] | None = None
    rates: tuple[float, float] = (0.0, 0.0)
    preview: Preview | None = None
    previewed_at: float = 0.0
    final: bool = False


class Monitor:
    """The runs of one controller as the status page and the metrics see them.

    Args:
        controller: the controller whose runs are watched.
        cameras: the configured cameras (names runs by their writer port).
        runs_kept: ended runs listed per camera on the page.
    """

    def __init__(
        self, controller: Controller, cameras: list[CameraConfig] | None = None, runs_kept: int = 20
    ) -> None:
        self.controller = controller
        self.cameras = list(cameras or [])
        self.runs_kept = runs_kept
        self.totals = Totals()
        self._views: deque[RunView] = deque()
        self._lock = threading.RLock()
        self._http = httpx.Client(timeout=_TIMEOUT)
        controller.on_new_run.append(self.add_run)

    def close(self) -> None:
        """Stop watching; release the HTTP client."""
        if self.add_run in self.controller.on_new_run:
            self.controller.on_new_run.remove(self.add_run)
        self._http.close()

    def add_run(self, run: WriterRun) -> None:
        """A run the controller started (or adopted)."""
        with self._lock:
            self._views.append(RunView(run, self.camera_of(run)))
            self._forget_old()

    def camera_of(self, run: WriterRun) -> str:
        """The camera's name of a run: the configured camera on its port, else its address."""
        for camera in self.cameras:
            if camera.writer_port == run.port:
                return camera.name
        return run.settings.connect

    def camera_names(self) -> list[str]:
        """The configured cameras, then the addresses of runs without a configuration."""
        names = [camera.name for camera in self.cameras]
        with self._lock:
            seen = [view.camera for view in self._views]
        return names + [n for n in dict.fromkeys(seen) if n not in names]

    def data_root(self, camera: str) -> Path:
        """Where a camera's files go: its configured data root, else the server's."""
        for config in self.cameras:
            if config.name == camera:
                return config.data_root
        return self.controller.data_root

    def views(self) -> list[RunView]:
        """Every run kept, oldest first, each with fresh statistics (fetched when due)."""
        with self._lock:
            views = list(self._views)
            for view in views:
                self._refresh(view)
            self._forget_old()
            return views

    def latest(self, camera: str | None = None) -> RunView | None:
        """The newest run (of ``camera``), if any."""
        with self._lock:
            mine = [v for v in self._views if camera is None or v.camera == camera]
            return mine[-1] if mine else None

    def preview(self, camera: str | None = None) -> tuple[RunView | None, Preview | None]:
        """The newest run (of ``camera``) and its latest preview, fetched now if it runs."""
        view = self.latest(camera)
        if view is not None and view.run.alive:
            self._fetch_preview(view)
        return view, (view.preview if view else None)

    def run_reported(self, port: int | None) -> None:
        """A writer reported its end and waits for the answer: its last preview, now.

        The writer's API stops soon after; this is the last chance to see its last frame.
        """
        with self._lock:
            running = [v for v in self._views if v.run.alive and port in (None, v.run.port)]
        if running:
            self._fetch_preview(running[-1], force=True)

    # --- fetching -----------------------------------------------------------------------

    def _refresh(self, view: RunView) -> None:
        if view.final:
            return
        run = view.run
        if not run.alive:
            view.stats = dict(run.statistics or view.stats)
            view.rates = (0.0, 0.0)
            view.final = True
            self.totals.add_run(view.camera, view.stats, self._end_reason(view))
            return
        now = time.monotonic()
        if now - view.sampled_at < SAMPLE_S:
            return
        stats = self._get_json(run.port, "/statistics")
        if stats is None:
            return
        view.stats, view.sampled_at = stats, now
        self._update_rates(view, now)

    def _update_rates(self, view: RunView, now: float) -> None:
        received = int(view.stats.get("n_received_frames", 0))
        written = int(view.stats.get("n_written_frames", 0))
        if view.earlier is None:
            view.rates = (
                float(view.stats.get("receiving_rate", 0.0)),
                float(view.stats.get("writing_rate", 0.0)),
            )
            view.earlier = (now, received, written)
            return
        t0, received0, written0 = view.earlier
        if now - t0 >= _RATE_SPAN_S:
            span = now - t0
            view.rates = (round((received - received0) / span, 1),
                          round((written - written0) / span, 1))  # fmt: skip
            view.earlier = (now, received, written)

    def _fetch_preview(self, view: RunView, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - view.previewed_at < PREVIEW_S:
            return
        view.previewed_at = now
        url = f"{self.controller.writer_url(view.run.port)}/preview"
        try:
            answer = self._http.get(url)
        except httpx.HTTPError:
            return
        if answer.status_code == 200:
            headers = answer.headers
            shape = tuple(int(n) for n in headers.get("x-frame-shape", "").split("x") if n)
            view.preview = Preview(answer.content, int(headers.get("x-frame-id", -1)),
                                   int(headers.get("x-frame-index", -1)), shape)  # fmt: skip

    def _get_json(self, port: int, route: str) -> dict[str, Any] | None:
        try:
            answer = self._http.get(f"{self.controller.writer_url(port)}{route}").json()
        except (httpx.HTTPError, ValueError):
            return None
        return answer if isinstance(answer, dict) else None

    @staticmethod
    def _end_reason(view: RunView) -> str:
        record = view.run.exit_record
        if record is not None:
            return record.end_reason
        if view.stats.get("end_reason"):
            return str(view.stats["end_reason"])
        return f"error: {view.run.error['error']}" if view.run.error else "error: unknown"

    def _forget_old(self) -> None:
        """Keep ``runs_kept`` ended runs per camera; a run is forgotten only once it is final."""
        per_camera: dict[str, int] = {}
        for view in reversed(list(self._views)):
            per_camera[view.camera] = per_camera.get(view.camera, 0) + 1
            if per_camera[view.camera] > self.runs_kept + 1 and view.final:
                self._views.remove(view)

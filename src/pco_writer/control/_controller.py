"""The controller: starts one writer process per acquisition and tracks it, per camera.

A run is named by its writer's REST port, as pco_rclient names it (``/status/<port>``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from pco_writer.api import END_WAIT_S
from pco_writer.api._serving import bind_socket
from pco_writer.auth import TOKEN_ENV, TOKEN_HEADER
from pco_writer.control._address import camera_endpoints, same_camera
from pco_writer.control._config import CameraConfig
from pco_writer.control._logs import LogBuffer, Uptime
from pco_writer.control._refusals import Refusal, Refusals, requested_port
from pco_writer.control._request import StartRequest, parse_start_request, writer_settings
from pco_writer.control._run import WriterRun
from pco_writer.control._watch import StatusWatcher
from pco_writer.errors import ConfigError, PcoWriterError, StateError
from pco_writer.settings import AcquisitionSettings
from pco_writer.writer_command import WriteCommand, write_command

__all__ = ["Controller", "WriterStartError"]

log = logging.getLogger(__name__)

_POLL_S = 0.05
_EXIT_GRACE_S = 5.0  # a finished writer keeps its API up ~1 s so that pollers see the end
_WRITER_TIMEOUT = httpx.Timeout(1.0, connect=0.5)
DEFAULT_MAX_WRITERS = 8
"""Writer processes per acquisition a control server allows unless configured otherwise."""
_KILL_GRACE_S = 3.0  # a writer told to kill closes its file in well under a second
_END_TIMEOUT = httpx.Timeout(END_WAIT_S + 2.0, connect=0.5)  # /stop, /kill wait for the end


class WriterStartError(ConfigError):
    """The writer process exited, or never answered, while starting."""


class Controller:
    """Spawns and tracks writer processes.

    Args:
        data_root: outputs must lie below it (a camera's own ``data_root`` wins).
        writer_host: the address the writers' REST APIs listen on.
        python: the interpreter that runs ``pco_writer.cli write``.
        start_timeout: seconds a writer has to answer on its REST port.
        token: the shared secret of state-changing routes ('' for none); the writers get it.
        max_writers: the most writer processes one acquisition may have (``n_writers``).
        allow_user_switch: run a writer as the request's ``user_id`` (needs root); otherwise
            the user id is only recorded.
        log_scope: the logger whose records ``/server_log`` shows ('' for all of the
            process's, as ``pco-writer server`` does; the journal of its service shows them).
    """

    def __init__(
        self,
        data_root: Path,
        writer_host: str = "127.0.0.1",
        python: str = sys.executable,
        start_timeout: float = 20.0,
        token: str = "",
        allow_user_switch: bool = False,
        max_writers: int = DEFAULT_MAX_WRITERS,
        log_scope: str = "pco_writer.control",
    ) -> None:
        self.data_root = data_root
        self.writer_host = writer_host
        self.python = python
        self.start_timeout = start_timeout
        self.token = token
        self.allow_user_switch = allow_user_switch
        self.max_writers = max_writers
        self.control_url = ""
        """The URL writers report to; set once the server listens."""
        self.writer_defaults: dict[str, Any] = {}
        """Settings the server gives every writer (``buffer_bytes``...); a camera's win."""
        self.on_new_run: list[Callable[[WriterRun], None]] = []
        """Called with each run started or adopted (the status page and metrics watch them)."""
        self.uptime = Uptime()
        self.logs = LogBuffer()
        self._runs: dict[int, WriterRun] = {}
        self._lock = threading.Lock()
        self._closing = False  # shutting down: no more writers
        self.refusals = Refusals()
        headers = {TOKEN_HEADER: token} if token else {}
        self._http = httpx.Client(timeout=_WRITER_TIMEOUT, headers=headers)
        self._watcher = StatusWatcher(self._watched_ports, self._fetch_status)
        self._log = logging.getLogger(log_scope)
        self._log.addHandler(self.logs)
        if self._log.getEffectiveLevel() > logging.INFO:
            self._log.setLevel(logging.INFO)

    # --- starting ---------------------------------------------------------------------------

    def start(self, body: dict[str, Any], camera: CameraConfig | None = None) -> dict[str, Any]:
        """Start a writer for a request body (values may be strings, as pco_rclient sends).

        A refused start is what ``/error`` and ``/finished`` report until the next start.

        Raises:
            ConfigError: a bad value or an output outside the data root; nothing spawned.
            StateError: a writer for this camera or port is still running.
            WriterStartError: the writer exited while starting; its message says why.
        """
        try:
            return self._start(body, camera)
        except StateError:
            raise  # a writer for the camera still runs: that run stays the camera's state
        except PcoWriterError as exc:
            self.refuse(str(exc), camera.writer_port if camera else requested_port(body))
            raise

    def refuse(self, message: str, port: int | None) -> None:
        """Record a refused start request of ``port`` (None: it named no port), unless a
        writer still runs there: its run stays the state that ``/finished`` reports."""
        log.warning("start refused (writer port %s): %s", port, message)
        run = self._runs.get(port) if port is not None else None
        if run is None or not run.alive or run.statistics is not None:
            self.refusals.record(port, message)

    def _start(self, body: dict[str, Any], camera: CameraConfig | None) -> dict[str, Any]:
        request = parse_start_request(body)
        if request.n_writers > self.max_writers:
            raise ConfigError(
                f"n_writers {request.n_writers} is more than this server allows "
                f"(max_writers: {self.max_writers}); ask for at most {self.max_writers}"
            )
        self._check_user(request)
        port, data_root = self._placement(request, camera)
        server_side = {**self.writer_defaults, **(camera.writer_settings() if camera else {})}
        run = self._spawn(writer_settings(request, data_root, **server_side), port)
        self._await_ready(run)
        return {
            "success": True,
            "status": self._writer_status(run),
            "pid": run.pid,
            "writer_api_address": self._writer_url(port),
            "output_file": str(run.output),
        }

    def _placement(self, request: StartRequest, camera: CameraConfig | None) -> tuple[int, Path]:
        if camera is None:
            if request.writer_port is None:
                raise ConfigError("bad start request: writer_rest_port is missing; send it")
            return request.writer_port, self.data_root
        if request.connection_address != camera.connection_address:
            raise ConfigError(
                f"connection_address {request.connection_address!r} is not camera "
                f"{camera.name!r}'s ({camera.connection_address}); fix the client's configuration"
            )
        if request.writer_port not in (None, camera.writer_port):
            raise ConfigError(
                f"writer_rest_port {request.writer_port} is not camera {camera.name!r}'s "
                f"({camera.writer_port}); fix the client's writer_api_address"
            )
        return camera.writer_port, camera.data_root

    def _spawn(self, settings: AcquisitionSettings, port: int) -> WriterRun:
        camera = camera_endpoints(settings.connect)
        self._let_finished_runs_exit(camera, port)
        with self._lock:
            if self._closing:
                raise StateError("cannot start: the control server is shutting down")
            for run in self._runs.values():
                if run.alive and (run.port == port or self._same_camera(run, camera)):
                    raise StateError(
                        f"cannot start: a writer for {run.settings.connect} is still "
                        f"running (pid {run.pid}, port {run.port}); stop or kill it first"
                    )
            self._check_port_free(port)
            command = WriteCommand(
                settings, port, self.writer_host, f"{self.control_url}/writers/{port}"
            )
            argv = write_command(self.python, command)
            run = WriterRun(port, settings, argv, self._child_env(), self._child_user(settings))
            self._runs[port] = run
        self._announce(run)
        return run

    def _check_user(self, request: StartRequest) -> None:
        """With user switching allowed, refuse a user id that cannot be switched to."""
        uid = request.user_id
        if not self.allow_user_switch or uid < 0 or uid == os.geteuid():
            return
        import pwd

        try:
            pwd.getpwuid(uid)
        except KeyError:
            raise ConfigError(
                f"user_id {uid} is not a user on the server's host; send an existing user id"
            ) from None
        if os.geteuid() != 0:
            raise ConfigError(
                f"cannot write as user_id {uid}: the server runs as uid {os.geteuid()}, not "
                "root; run it as root or turn allow_user_switch off"
            )

    def _child_user(self, settings: AcquisitionSettings) -> int | None:
        uid = settings.user_id
        if uid < 0 or uid == os.geteuid():
            return None
        if not self.allow_user_switch:
            log.info("user_id %d is recorded only: user switching is off", uid)
            return None
        log.info("the writer runs as user_id %d", uid)
        return uid

    def _child_env(self) -> dict[str, str]:
        """The server's environment, with the token (or none) for the writer's API."""
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
        if self.token:
            env[TOKEN_ENV] = self.token
        return env

    def _let_finished_runs_exit(self, camera: frozenset[str], port: int) -> None:
        """A run whose statistics are stored is over, but its process may still be exiting."""
        for run in list(self._runs.values()):
            if not run.alive or run.statistics is None:
                continue
            mine = run.port == port or self._same_camera(run, camera)
            if mine and not run.wait(_EXIT_GRACE_S):
                log.warning("writer pid=%d finished but did not exit; terminating it", run.pid)
                run.terminate(2.0)

    @staticmethod
    def _same_camera(run: WriterRun, camera: frozenset[str]) -> bool:
        """Compared by endpoint: tcp://localhost:P and tcp://127.0.0.1:P are one camera."""
        return same_camera(camera_endpoints(run.settings.connect), camera)

    def _check_port_free(self, port: int) -> None:
        try:
            bind_socket(self.writer_host, port).close()
        except OSError as exc:
            raise ConfigError(
                f"writer port {port} on {self.writer_host} is not free ({exc.strerror}); "
                "another program uses it, choose another writer_rest_port"
            ) from None

    def _await_ready(self, run: WriterRun) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if run.wait(_POLL_S):
                break
            status = self._writer_status(run, default="")
            if status != "":
                run.ready = True
                self._watcher.heard(run.port, status)
                return
        if run.alive:
            run.terminate(2.0)
            run.record_error(f"the writer did not answer within {self.start_timeout:g} s")
        message = run.error["error"] if run.error else f"the writer exited (code {run.exit_code})"
        log.error("writer on port %d failed to start: %s", run.port, message)
        if run.refused:  # a bad setting or a taken dataset: the writer's own words
            raise WriterStartError(message)
        raise WriterStartError(f"the writer failed to start: {message}")

    def adopt_running_writers(self) -> list[int]:
        """Take over the writers an earlier server on this URL started; returns their ports.

        Called once the server listens (``control_url`` set): the writers report here.
        """
        from pco_writer.control._adopt import AdoptedRun, find_writers

        adopted = []
        with self._lock:
            for found in find_writers(self.control_url):
                if found.port not in self._runs or not self._runs[found.port].alive:
                    self._runs[found.port] = AdoptedRun(found)
                    adopted.append(found.port)
        for port in adopted:
            self._announce(self._runs[port])
            self._watcher.heard(port, "writing")  # until the watcher asks it
        return adopted

    def _announce(self, run: WriterRun) -> None:
        for listener in list(self.on_new_run):
            try:
                listener(run)
            except Exception:  # noqa: BLE001 - a watcher's failure must not fail the start
                log.exception("on_new_run listener %r failed", listener)

    # --- status -----------------------------------------------------------------------------

    def status(self, port: int) -> dict[str, Any]:
        """``/status/<port>``: the running writer's status, or the last run's statistics, or
        the error of a start refused since.

        A running writer's status is what the watcher last heard from it (at most ~0.1 s
        old). ``finished`` is reported only once the last-run statistics are stored (or the
        process has exited): until then a writer that says it is done reads as ``writing``.
        """
        run = self._runs.get(port)
        if run is not None and run.alive and run.statistics is None:
            status = self._watcher.status(port) or ("writing" if run.ready else "initialized")
            if status in ("finished", "error"):
                status = "writing"  # the file is closed, but the report is not stored yet
            return {"success": True, "status": status}
        refusal = self._refusal_since(run, [port])
        if refusal is not None:
            return {"success": True, **refusal.answer()}
        if run is None:
            return {"success": True, "status": "unknown"}
        if run.statistics is not None:
            return {**run.statistics, "success": True}
        return {"success": True, "status": "error", **(run.error or {"error": "unknown"})}

    def last_statistics(self, ports: list[int] | None = None) -> dict[str, Any]:
        """``GET /finished``: the latest run's statistics, once it has them; ``error`` after
        a refused start, until the next start."""
        run = self._latest(ports)
        refusal = self._refusal_since(run, ports)
        if refusal is not None:
            return {"success": False, **refusal.answer()}
        if run is None or run.statistics is None:
            return {"success": False, "status": "unknown"}
        return {**run.statistics, "success": True}

    def last_error(self, ports: list[int] | None = None) -> dict[str, Any]:
        """``GET /error``: the latest run's error, or the reason of a start refused since;
        cleared when a new run starts."""
        run = self._latest(ports)
        refusal = self._refusal_since(run, ports)
        if refusal is not None:
            return {"success": True, **refusal.answer()}
        if run is None or run.error is None:
            return {"success": False, "error": None}
        return {"success": True, "status": "error", **run.error}

    def _refusal_since(self, run: WriterRun | None, ports: list[int] | None) -> Refusal | None:
        return self.refusals.latest(ports, since=run.started_monotonic if run else float("-inf"))

    def runs(self) -> list[dict[str, Any]]:
        """A summary of the known runs, one per writer port."""
        return [
            {
                "port": run.port,
                "pid": run.pid,
                "alive": run.alive,
                "exit_code": run.exit_code,
                "connection_address": run.settings.connect,
                "output_file": str(run.output),
                "dataset_name": run.settings.dataset_name,
                "started_at": run.started_at,
                "writer_api_address": self._writer_url(run.port),
                "settings": run.settings.model_dump(),
            }
            for run in sorted(self._runs.values(), key=lambda r: r.port)
        ]

    def _latest(self, ports: list[int] | None) -> WriterRun | None:
        runs = [r for p, r in self._runs.items() if ports is None or p in ports]
        return max(runs, key=lambda r: r.started_monotonic, default=None)

    def _writer_status(self, run: WriterRun, default: str = "unknown") -> str:
        return self._fetch_status(run.port) or default

    def _fetch_status(self, port: int) -> str | None:
        """The writer's own ``/status``; None when it does not answer."""
        try:
            answer = self._http.get(f"{self._writer_url(port)}/status").json()
        except (httpx.HTTPError, ValueError):
            return None
        status = answer.get("status") if isinstance(answer, dict) else None
        return str(status) if status else None

    def _watched_ports(self) -> list[int]:
        """The writers whose status the watcher keeps: running and not yet reported."""
        return [p for p, r in list(self._runs.items()) if r.alive and r.statistics is None]

    def writer_url(self, port: int) -> str:
        """``http://HOST:PORT`` of the writer API on ``port``."""
        return self._writer_url(port)

    def _writer_url(self, port: int) -> str:
        host = "127.0.0.1" if self.writer_host in ("0.0.0.0", "") else self.writer_host
        return f"http://{host}:{port}"

    # --- reports from writers -------------------------------------------------------------

    def record_finished(self, port: int | None, body: dict[str, Any]) -> None:
        """A writer's ``POST /finished``: store its last-run statistics."""
        run = self._reporting_run(port, body)
        run.record_finished(body)
        log.info("writer port=%d finished: %s", run.port, _summary(body))

    def record_error(self, port: int | None, body: dict[str, Any]) -> None:
        """A writer's ``POST /error``: store its failure."""
        run = self._reporting_run(port, body)
        message = str(body.get("error") or "the writer reported an error without a message")
        run.record_error(message, str(body.get("error_time") or ""))
        log.error("writer port=%d reported: %s", run.port, message)

    def _reporting_run(self, port: int | None, body: dict[str, Any]) -> WriterRun:
        if port is not None:
            run = self._runs.get(port)
        else:  # a writer that does not say its port: match by output, else the latest
            output = str(body.get("output_file", ""))
            matches = [r for r in self._runs.values() if output and str(r.output) == output]
            run = matches[0] if matches else self._latest(None)
        if run is None:
            raise ConfigError(f"no writer run is known for port {port}; nothing to record")
        return run

    # --- control of running writers -------------------------------------------------------

    def stop_writer(self, port: int) -> dict[str, Any]:
        """Ask the writer on ``port`` to stop (its ``/stop``; SIGTERM if it does not answer)."""
        return self._command(port, "stop", _stop_by_signal)

    def kill_writer(self, port: int) -> dict[str, Any]:
        """Stop the writer on ``port`` now (its ``/kill``; signals, up to SIGKILL, otherwise)."""
        return self._command(port, "kill", _kill_by_signal)

    def _command(
        self, port: int, route: str, fallback: Callable[[WriterRun], dict[str, Any]]
    ) -> dict[str, Any]:
        run = self._runs.get(port)
        if run is None or not run.alive:
            raise StateError(f"cannot {route}: no writer is running on port {port}")
        try:
            url = f"{self._writer_url(port)}/{route}"
            answer = self._http.get(url, timeout=_END_TIMEOUT).json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("writer port=%d did not answer /%s (%s); signalling it", port, route, exc)
            return fallback(run)
        return dict(answer) if isinstance(answer, dict) else {"success": True}

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every writer (they write what they have), then release the HTTP client.

        From now on no writer is started: one being started meanwhile is stopped too.
        """
        with self._lock:  # a start holds the lock while it spawns: wait for it, then no more
            self._closing = True
            runs = list(self._runs.values())
        try:
            for run in runs:
                if run.alive:
                    log.info("stopping writer pid=%d port=%d", run.pid, run.port)
                    run.terminate(timeout)
        finally:
            self._watcher.close()
            self._http.close()
            self._log.removeHandler(self.logs)


def _stop_by_signal(run: WriterRun) -> dict[str, Any]:
    run.signal(signal.SIGTERM)  # the writer's graceful stop; it ends in its own time
    return {"success": True, "status": "stopping"}


def _kill_by_signal(run: WriterRun) -> dict[str, Any]:
    """SIGTERM twice (the writer's kill); SIGKILL when it has not exited after a grace.

    A writer whose API does not answer may be hung or stopped (a stopped process also
    merges the two SIGTERMs into one): only SIGKILL is sure to free the camera.
    """
    run.signal(signal.SIGTERM)
    time.sleep(0.2)
    run.signal(signal.SIGTERM)
    if not run.wait(_KILL_GRACE_S):
        log.warning("writer pid=%d ignored SIGTERM for %g s; sending SIGKILL", run.pid,
                    _KILL_GRACE_S)  # fmt: skip
        run.signal(signal.SIGKILL)
        run.wait(_KILL_GRACE_S)
    if run.alive:
        raise StateError(
            f"cannot kill: the writer (pid {run.pid}, port {run.port}) still runs after "
            "SIGKILL; it is stuck in the kernel (a hung disk?), see the server's host"
        )
    return {"success": True, "status": "killed"}


def _summary(stats: dict[str, Any]) -> str:
    keys = ("status", "n_written_frames", "n_frames", "n_lost_frames", "output_file")
    return " ".join(f"{k}={stats.get(k)}" for k in keys)

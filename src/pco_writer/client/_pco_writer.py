"""PcoWriter: pco_rclient's client, with the same methods and meanings, made sturdier.

Existing scripts port by changing one import::

    from pco_writer.client import PcoWriter
"""

from __future__ import annotations

import json
import os
import time
import warnings
from typing import Any

import httpx

from pco_writer.auth import TOKEN_ENV, TOKEN_HEADER
from pco_writer.client._http import JsonApi, Unreachable
from pco_writer.client._progress import Progress
from pco_writer.client._stats import RunStatistics
from pco_writer.client._stream import camera_addresses, flush_stream
from pco_writer.client._validate import (
    check_configuration,
    check_parameters_form,
    check_rest_address,
    check_setting,
    port_of,
)
from pco_writer.errors import ClientError, UnusualNameWarning
from pco_writer.exit_record import describe_end
from pco_writer.names import SWMR_BY_DEFAULT, unusual_dataset_name, with_file_number

__all__ = ["AcquisitionError", "PcoWriter"]

RUNNING = ("receiving", "writing")
_SETTINGS = (
    "output_file", "dataset_name", "n_frames", "user_id", "max_frames_per_file",
    "connection_address", "compression", "layout", "idle_timeout", "parameters", "swmr",
    "n_writers",
)  # fmt: skip
"""The client's settings of the next acquisition: fields of the start request, same names."""
WAITING = "waiting for parameters"
_POLL_S = 0.1
_SIGNAL_TIMEOUT_S = 15.0  # the server's kill by signal ends in SIGKILL after a few seconds
_SERVER_HINT = "is `pco-writer server` running there? check flask_api_address"
_WRITER_HINT = "is the writer running? check writer_api_address"


class AcquisitionError(ClientError):
    """The acquisition ended with an error; ``statistics`` holds what it did."""

    def __init__(self, message: str, statistics: RunStatistics | None) -> None:
        super().__init__(message)
        self.statistics = statistics


class PcoWriter:
    """Drives acquisitions through a pco-writer control server.

    Args:
        output_file: the HDF5 file; ``%03d`` is filled with the file number on roll-over.
        dataset_name: the dataset under ``/exchange`` (data, data_white, data_black).
        n_frames: frames to write; 0 means until :meth:`stop`.
        connection_address: where the camera binds PUSH, ``tcp://HOST:PORT``.
        flask_api_address: the control server, ``http://HOST:PORT``.
        writer_api_address: the writer process's REST API, ``http://HOST:PORT``.
        user_id: recorded in the statistics (-1: none).
        max_frames_per_file: frames per file before rolling over; 0 for one file.
        config_file: a JSON file of ``cameras`` (name, connection_address, flask_api_address,
            writer_api_address), used with ``cam``.
        cam: the camera's name in ``config_file``.
        debug: accepted for compatibility; has no effect.
        timeout: seconds to wait for each answer.
        compression: chunk compression, none, bitshuffle-lz4 or blosc-lz4 (sent only when
            not none, so a start request stays what pco_rclient sends).
        layout: the file layout, tomcat (default, not sent), nxtomo, or a layout file below the
            server's data root.
        idle_timeout: seconds without a frame (from the start, or since the last one) after
            which the run ends; 0 (default) waits for ever. A run that ends without a frame
            written is an error.
        parameters: the layout's parameters, sent with each start and written into the file
            (e.g. ``{"sample_name": "foam"}``); :meth:`set_parameters` sets values known only
            while the writer runs.
        token: the servers' shared secret, sent in the ``X-PCO-Writer-Token`` header
            (default: ``$PCO_WRITER_TOKEN``; none when that is unset).
        n_writers: writer processes that share the acquisition (default 1, not sent); with
            more, the output file is a master over their part files (ADR 0042).
        swmr: write a file readers can follow during the run (HDF5 SWMR, the default);
            False writes the HDF5 1.8 format for older readers (sent only when False).
    """

    def __init__(
        self,
        output_file: str = "",
        dataset_name: str = "data",
        n_frames: int = 0,
        connection_address: str = "tcp://127.0.0.1:8080",
        flask_api_address: str = "http://127.0.0.1:9901",
        writer_api_address: str = "http://127.0.0.1:9555",
        user_id: int = -1,
        max_frames_per_file: int = 0,
        config_file: str = "",
        cam: str = "",
        debug: bool = False,
        timeout: float = 3.0,
        token: str = "",
        compression: str = "none",
        layout: str = "tomcat",
        idle_timeout: float = 0.0,
        parameters: dict[str, Any] | None = None,
        swmr: bool = SWMR_BY_DEFAULT,
        n_writers: int = 1,
    ) -> None:
        if cam:
            connection_address, flask_api_address, writer_api_address = camera_addresses(
                config_file, cam
            )
        self.flask_api_address = check_rest_address(flask_api_address, "flask_api_address")
        self.writer_api_address = check_rest_address(writer_api_address, "writer_api_address")
        self.writer_port = port_of(self.writer_api_address)
        self.connection_address = check_setting("connection_address", connection_address)
        self.output_file = output_file
        self.dataset_name = dataset_name
        self.n_frames = n_frames
        self.user_id = user_id
        self.max_frames_per_file = max_frames_per_file
        self.compression = compression
        self.layout = layout
        self.idle_timeout = idle_timeout
        self.parameters = dict(parameters or {})
        _warn_if_unusual(dataset_name)
        self.swmr = swmr
        self.n_writers = check_setting("n_writers", n_writers)
        self.last_run_id = 0
        self.previous_statistics: dict[str, Any] | None = None
        token = token or os.environ.get(TOKEN_ENV, "")
        self._http = httpx.Client(timeout=timeout, headers={TOKEN_HEADER: token} if token else {})
        self._server = JsonApi(self.flask_api_address, "control server", _SERVER_HINT, self._http)
        self._writer = JsonApi(self.writer_api_address, "writer", _WRITER_HINT, self._http)
        self.status = "configured" if self.validate_configuration() else "unconfigured"

    # --- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the HTTP connections."""
        self._http.close()

    def __enter__(self) -> PcoWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"PcoWriter(flask_api_address={self.flask_api_address!r}, "
            f"writer_api_address={self.writer_api_address!r}, status={self.status!r})"
        )

    # --- configuration ----------------------------------------------------------------------

    def configure(
        self,
        output_file: str | None = None,
        dataset_name: str | None = None,
        n_frames: int | None = None,
        connection_address: str | None = None,
        user_id: int | None = None,
        max_frames_per_file: int | None = None,
        verbose: bool = False,
        compression: str | None = None,
        layout: str | None = None,
        idle_timeout: float | None = None,
        parameters: dict[str, Any] | None = None,
        swmr: bool | None = None,
        n_writers: int | None = None,
    ) -> dict[str, Any]:
        """Change settings of the next acquisition; returns the configuration.

        Every value is checked, together with those it depends on (the parameters against
        the layout, when this host can read it), and every mistake is named at once; a bad
        value changes nothing. ``parameters`` replaces the earlier ones (``{}``: none).

        Raises:
            ClientError: a value is invalid, or a writer is running (stop or wait first).
        """
        if self.is_running():
            raise ClientError(
                "cannot configure while the writer is running; stop() or wait() first"
            )
        given = {
            "output_file": output_file, "dataset_name": dataset_name, "n_frames": n_frames,
            "user_id": user_id, "max_frames_per_file": max_frames_per_file,
            "connection_address": connection_address, "compression": compression,
            "layout": layout, "idle_timeout": idle_timeout, "parameters": parameters,
            "swmr": swmr, "n_writers": n_writers,
        }  # fmt: skip
        given = {name: value for name, value in given.items() if value is not None}
        if "layout" in given or "parameters" in given:  # checked together
            given = {"layout": self.layout, "parameters": self.parameters, **given}
        checked = check_configuration(given)
        for name in given:  # all or nothing: a bad value changes none
            setattr(self, name, checked[name])
        if dataset_name is not None:
            _warn_if_unusual(dataset_name)
        self.status = "configured" if self.validate_configuration() else "unconfigured"
        if verbose:
            print(json.dumps(self.get_configuration(), indent=2))
        return self.get_configuration()

    def validate_configuration(self) -> bool:
        """True when every setting is valid for an acquisition."""
        try:
            check_configuration(self._settings())
        except ClientError:
            return False
        return True

    def _settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _SETTINGS}

    def get_configuration(self, verbose: bool = False) -> dict[str, Any]:
        """The start request as pco_rclient sends it (every value a string); our own settings
        only when they are not their defaults (``parameters`` as a JSON object)."""
        output = with_file_number(
            str(self.output_file), int(self.n_frames), int(self.max_frames_per_file)
        )
        config: dict[str, Any] = {
            "connection_address": self.connection_address,
            "output_file": output,
            "n_frames": str(self.n_frames),
            "user_id": str(self.user_id),
            "dataset_name": str(self.dataset_name),
            "max_frames_per_file": str(self.max_frames_per_file),
            "rest_api_port": str(port_of(self.flask_api_address)),
            "n_modules": "1",
            "writer_rest_port": str(self.writer_port),
            "flask_api_address": self.flask_api_address,
        }
        if self.compression != "none":
            config["compression"] = self.compression
        if self.layout != "tomcat":  # pco_rclient's servers know no layout: send it only if set
            config["layout"] = self.layout
        if self.idle_timeout:
            config["idle_timeout"] = str(self.idle_timeout)
        if self.parameters:
            config["parameters"] = self.parameters
        if self.swmr != SWMR_BY_DEFAULT:  # the same: only when it differs from the default
            config["swmr"] = str(self.swmr).lower()
        if self.n_writers != 1:
            config["n_writers"] = str(self.n_writers)
        if verbose:
            print(json.dumps(config, indent=2))
        return config

    # --- acquisition ------------------------------------------------------------------------

    def start(
        self, wait: bool = True, timeout: float = 10, verbose: bool = False
    ) -> dict[str, Any]:
        """Start an acquisition; with ``wait``, return once the writer is running.

        Raises:
            ClientError: the configuration is invalid, a writer is already running, or the
                server refused (its reason is in the message).
        """
        try:
            check_configuration(self._settings())
        except ClientError as exc:
            raise ClientError(f"cannot start: {exc}; fix it with configure()") from None
        if self.is_running():
            raise ClientError("cannot start: the writer is already running; stop() or wait()")
        self.status = "starting"
        try:
            answer = self._server.post("/start_pco_writer", self.get_configuration(), timeout=60)
        except ClientError:
            self.status = "configured"
            raise
        if not answer.get("success"):
            raise ClientError(f"the control server did not start the writer: {answer.get('error')}")
        self.last_run_id += 1
        self.previous_statistics = None
        if wait:
            self._poll_until(lambda: self.get_status_writer() != "initialized", timeout)
        self.status = self.get_status_writer()
        if verbose:
            print(f"writer started: {answer}")
        return answer

    def stop(
        self, wait: bool = True, timeout: float = 10, verbose: bool = False
    ) -> dict[str, Any] | None:
        """Stop receiving; the writer writes what it has, then finishes.

        Returns:
            The writer's answer, or None when no writer was running. With ``wait``, once the
            run has ended: ``status`` is the state reached (``finished``...), ``message`` says
            what became of the frames (``stopped: 120 written``), with the counts.
        """
        return self._end("stop", wait, timeout, verbose)

    def kill(
        self, wait: bool = True, timeout: float = 10, verbose: bool = False
    ) -> dict[str, Any] | None:
        """Stop now: what is not yet written is dropped, the file is closed cleanly.

        Returns:
            The writer's answer (``status: killed``), or None when no writer was running.
            With ``wait``, once the run has ended: ``writer_status`` is the state reached,
            ``message`` says what became of the frames (``killed: 5169 written, 1049
            dropped``), with the counts.
        """
        return self._end("kill", wait, timeout, verbose)

    def _end(self, route: str, wait: bool, timeout: float, verbose: bool) -> dict[str, Any] | None:
        if not self._writer_active():
            if verbose:
                print(f"no writer is running; nothing to {route}")
            return None
        self.status = "stopping" if route == "stop" else "killing"
        try:
            answer = self._writer.get(f"/{route}")
        except Unreachable:  # the server signals it, and for a kill waits until it exits
            answer = self._server.get(f"/{route}/{self.writer_port}", timeout=_SIGNAL_TIMEOUT_S)
        if wait and self._poll_until(lambda: not self._writer_active(), timeout):
            answer = {**answer, **self._outcome(route)}
        self.status = self.get_status()
        if verbose:
            print(answer.get("message") or answer)
        return answer

    def _outcome(self, route: str) -> dict[str, Any]:
        """What an ended run reports: the state reached, the counts and one line."""
        stats = self.get_statistics_last_run()
        if stats is None:
            return {}
        keys = ("end_reason", "n_written_frames", "n_lost_frames", "n_dropped_frames")
        outcome = {k: stats[k] for k in keys if k in stats}
        state = {"writer_status" if route == "kill" else "status": stats.get("status")}
        return {**outcome, **state, "message": describe_end(stats)}

    def _writer_active(self) -> bool:
        """Running, or done receiving but waiting for parameters: stop() and kill() apply.

        Not :meth:`is_running`, which keeps pco_rclient's meaning (receiving or writing).
        """
        status = self.get_status_writer()
        return status in RUNNING or status == WAITING

    def wait(
        self, timeout: float | None = None, progress: bool = True, verbose: bool = False
    ) -> RunStatistics:
        """Wait for the acquisition to end, showing a progress bar; its statistics.

        Raises:
            AcquisitionError: the acquisition ended with an error.
            ClientError: there is no acquisition to wait for, or ``timeout`` passed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = Progress(progress, int(self.n_frames), str(self.dataset_name),
                       self.connection_address)  # fmt: skip
        try:
            while (status := self.get_status_writer()) in RUNNING or status == WAITING:
                now = self.get_statistics_writer()
                bar.update(now)
                if status == WAITING and now is not None:
                    bar.note_waiting(now.get("missing_parameters", []), self.writer_api_address)
                if deadline is not None and time.monotonic() > deadline:
                    raise ClientError(f"the writer is still running after {timeout:g} s")
                time.sleep(_POLL_S)
            stats = self._last_run()
            bar.update(stats.as_dict())
        finally:
            bar.close()
        self.status = stats.status
        if verbose:
            print(json.dumps(stats.as_dict(), indent=2))
        if stats.status == "error":
            raise AcquisitionError(
                f"the acquisition failed: {stats.error or stats.end_reason}", stats
            )
        return stats

    def _last_run(self) -> RunStatistics:
        raw = self._server.get(f"/finished/{self.writer_port}")
        if not raw.get("success"):
            error = self.get_server_error()
            if error:
                raise AcquisitionError(f"the acquisition failed: {error}", None)
            raise ClientError("no acquisition has run on this writer port; start() one first")
        self.previous_statistics = raw
        return RunStatistics.from_json(raw)

    def wait_nframes(
        self, nframes: int, inactivity_timeout: float = -1, verbose: bool = False
    ) -> bool:
        """Wait until ``nframes`` frames are written.

        Returns:
            True when they are; False when the writer stopped before, or when nothing new
            was written for ``inactivity_timeout`` seconds (if > 0).
        """
        last_count, last_change = -1, time.monotonic()
        while True:
            written = self.get_written_frames() or 0
            if written >= nframes:
                return True
            if not self.is_running():
                return (self.get_written_frames() or 0) >= nframes
            if written != last_count:
                last_count, last_change = written, time.monotonic()
            elif 0 < inactivity_timeout < time.monotonic() - last_change:
                if verbose:
                    print(f"no new frame for {inactivity_timeout:g} s; giving up at {written}")
                return False
            time.sleep(_POLL_S)

    def _poll_until(self, condition: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.15)
        return True

    def get_parameters(self) -> dict[str, Any]:
        """The running writer's layout parameters: ``parameters`` (values) and ``types``."""
        return self._writer.get("/parameters")

    def set_parameters(self, **values: Any) -> dict[str, Any]:
        """Set layout parameters of the running writer, e.g. ``set_parameters(energy=21.5)``.

        Numpy numbers are sent as Python numbers.

        Raises:
            ClientError: a value JSON cannot carry, an unknown name, or a value of the wrong
                type (the writer's message).
        """
        return self._writer.post("/parameters", check_parameters_form(values))

    # --- status and statistics --------------------------------------------------------------

    def is_connected(self) -> bool:
        """True when the control server answers."""
        try:
            return bool(self._server.get("/ack").get("success"))
        except ClientError:
            return False

    def is_running(self) -> bool:
        """True while the writer is receiving or writing.

        Raises:
            ClientError: the control server cannot be reached.
        """
        return self.get_status_writer() in RUNNING

    def get_status_writer(self) -> str:
        """The status the control server reports for this writer port."""
        return str(self._server.get(f"/status/{self.writer_port}").get("status", "unknown"))

    def get_status(self, verbose: bool = False) -> str:
        """The status of this client's acquisition: configured, receiving, writing, finished..."""
        server_status = self.get_status_writer()
        if server_status != "unknown" and (self.last_run_id or server_status in RUNNING):
            self.status = server_status
        elif self.status not in ("configured", "unconfigured"):
            self.status = "configured" if self.validate_configuration() else "unconfigured"
        if verbose:
            print(self.status)
        return self.status

    def get_status_last_run(self) -> str:
        """The status of the last run: finished, error, or unknown (no run yet)."""
        return str(self._server.get(f"/finished/{self.writer_port}").get("status", "unknown"))

    def get_statistics(self, verbose: bool = False) -> dict[str, Any] | None:
        """The running writer's statistics, else the last run's; None if neither exists."""
        stats = self.get_statistics_writer() or self.get_statistics_last_run()
        if verbose:
            print(json.dumps(stats, indent=2))
        return stats

    def get_statistics_writer(self, verbose: bool = False) -> dict[str, Any] | None:
        """The running writer's statistics; None when no writer answers."""
        try:
            return self._writer.get("/statistics")
        except Unreachable:
            return None

    def get_statistics_last_run(self, verbose: bool = False) -> dict[str, Any] | None:
        """The last run's statistics, as the server sends them; None before any run."""
        raw = self._server.get(f"/finished/{self.writer_port}")
        if not raw.get("success"):
            return None
        self.previous_statistics = raw
        return raw

    def get_written_frames(self) -> int | None:
        """Frames written by the running writer, else by the last run; None if none ran."""
        stats = self.get_statistics()
        return None if stats is None else int(stats.get("n_written_frames", 0))

    def get_server_error(self, verbose: bool = False) -> str | None:
        """The last run's error message; None when it had none."""
        answer = self._server.get(f"/error/{self.writer_port}")
        error = answer.get("error") if answer.get("success") else None
        if verbose and error:
            print(error)
        return str(error) if error else None

    def get_server_log(self, verbose: bool = False) -> str:
        """The control server's recent log lines."""
        text = str(self._server.get(f"/server_log/{self._service()}").get("log", ""))
        if verbose:
            print(text)
        return text

    def get_server_uptime(self, verbose: bool = False) -> str:
        """How long the control server has been up."""
        text = str(self._server.get(f"/server_uptime/{self._service()}").get("uptime", ""))
        if verbose:
            print(text)
        return text

    def _service(self) -> str:
        return "pco_writer-pco1" if port_of(self.flask_api_address) == 9901 else "pco_writer-pco2"

    # --- recovery ---------------------------------------------------------------------------

    def reset(self) -> str:
        """Kill a running writer, drain the camera stream, forget the last run; the status."""
        self.kill()
        self.flush_cam_stream(timeout=1000, max_duration=3.0)
        self.last_run_id = 0
        self.previous_statistics = None
        self.status = "configured" if self.validate_configuration() else "unconfigured"
        return self.status

    def flush_cam_stream(
        self, timeout: int = 500, verbose: bool = False, max_duration: float = 10.0
    ) -> int | None:
        """Receive and drop what the camera sends until it is quiet for ``timeout`` ms.

        Args:
            timeout: milliseconds of quiet that end the flush.
            verbose: print how many messages were dropped.
            max_duration: seconds after which the flush ends anyway (a camera that keeps
                sending is never quiet).

        Returns:
            The number of messages dropped, or None when a writer is running (it owns them).
        """
        if self.is_running():
            return None
        n = flush_stream(self.connection_address, timeout, max_duration)
        if verbose:
            print(f"flushed {n} messages from {self.connection_address}")
        return n


def _warn_if_unusual(dataset_name: str) -> None:
    """A typo such as ``data_blak`` is a valid name: say so, without refusing it."""
    warning = unusual_dataset_name(dataset_name)
    if warning:
        warnings.warn(warning, UnusualNameWarning, stacklevel=3)

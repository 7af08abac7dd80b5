"""The control server: the controller plus its REST API, one listener per camera."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pco_writer.api import ServerThread
from pco_writer.auth import TOKEN_ENV, TOKEN_HEADER
from pco_writer.control._app import build_app
from pco_writer.control._config import Limits, ServerConfig
from pco_writer.control._controller import DEFAULT_MAX_WRITERS, Controller
from pco_writer.control._monitor import Monitor

__all__ = ["ControlServer"]

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ControlServer:
    """Serves the control API: on ``port`` for any camera, or one port per configured camera.

    Args:
        host: the address to listen on (and the writers' REST APIs too).
        port: the port without cameras; 0 picks a free one.
        config: the settings file: the cameras (each served on its own ``control_port``),
            the limits and the live stream (host, port, data root, token and user switching
            come as the other arguments: see :meth:`from_config`).
        data_root: outputs must lie below it when no camera configuration says otherwise.
        python: the interpreter for the writer processes.
        token: the shared secret of the state-changing routes; '' for none.
        allow_user_switch: run writers as the request's ``user_id`` (root only).
        max_writers: the most writer processes one acquisition may have.
        log_scope: the logger whose lines ``/server_log`` shows ('' for all of the process's).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9901,
        config: ServerConfig | None = None,
        data_root: Path | None = None,
        python: str = sys.executable,
        token: str = "",
        allow_user_switch: bool = False,
        max_writers: int = DEFAULT_MAX_WRITERS,
        log_scope: str = "pco_writer.control",
    ) -> None:
        root = (data_root or Path.cwd()).resolve()
        limits = config.limits if config else Limits()
        self.controller = Controller(
            root, writer_host=host, python=python, token=token,
            allow_user_switch=allow_user_switch, max_writers=max_writers,
            start_timeout=limits.start_timeout, log_scope=log_scope,
        )  # fmt: skip
        self.controller.writer_defaults = config.writer_defaults() if config else {}
        cameras = config.cameras if config and config.cameras else []
        self.monitor = Monitor(self.controller, cameras, limits.runs_kept)
        self.servers: list[ServerThread] = []
        try:
            if not cameras:
                app = build_app(self.controller, monitor=self.monitor)
                self.servers.append(ServerThread(app, host, port, "control"))
            for camera in cameras:
                app = build_app(self.controller, camera, self.monitor)
                self.servers.append(ServerThread(app, host, camera.control_port, camera.name))
        except OSError:
            self._close()
            raise
        self.controller.control_url = self.servers[0].url

    @classmethod
    def from_config(
        cls, config: ServerConfig, token: str = "", log_scope: str = "pco_writer.control"
    ) -> ControlServer:
        """A server as a settings file says (the token read from its ``token_file``);
        ``pco-writer server`` shows all its process's log at ``/server_log`` (``log_scope``
        '', what its service's journal shows)."""
        return cls(
            config.host, config.port, config, config.data_root, token=token,
            allow_user_switch=config.allow_user_switch, max_writers=config.max_writers,
            log_scope=log_scope,
        )  # fmt: skip

    @property
    def url(self) -> str:
        """The URL of the first (or only) listener."""
        return self.servers[0].url

    @property
    def port(self) -> int:
        """The port of the first (or only) listener."""
        return self.servers[0].port

    def start(self) -> ControlServer:
        """Start listening; returns once every listener accepts requests."""
        for server in self.servers:
            server.start()
            log.info("control server listening at %s (data root %s)", server.url,
                     self.controller.data_root)  # fmt: skip
        self._say_who_may_write()
        self.controller.adopt_running_writers()
        return self

    def _say_who_may_write(self) -> None:
        host = self.servers[0].host
        if self.controller.token:
            log.info("state-changing routes need the %s header", TOKEN_HEADER)
        elif host in _LOOPBACK:
            log.warning(
                "no token configured: listening on %s only; anyone on this host may start, "
                "stop and kill writers (set a token to listen on the network)", host
            )  # fmt: skip
        else:
            log.warning(
                "no token configured and listening on %s: anyone on the network may start, "
                "stop and kill writers; set a token (--token-file or $%s)", host, TOKEN_ENV
            )  # fmt: skip
        if self.controller.allow_user_switch:
            log.info("user switching is on: writers run as the request's user_id")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the writers (they finish their files), then the listeners."""
        self.controller.shutdown(timeout)
        self._close()

    def _close(self) -> None:
        for server in self.servers:
            server.stop()
        self.monitor.close()

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

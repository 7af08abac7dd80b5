"""The control server: the controller plus its REST API, one listener per camera."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pco_writer.api import ServerThread
from pco_writer.control._app import build_app
from pco_writer.control._config import ServerConfig
from pco_writer.control._controller import Controller

__all__ = ["ControlServer"]

log = logging.getLogger(__name__)


class ControlServer:
    """Serves the control API: on ``port`` for any camera, or one port per configured camera.

    Args:
        host: the address to listen on (and the writers' REST APIs too).
        port: the port without a configuration; 0 picks a free one.
        config: the cameras; each is served on its own ``control_port``.
        data_root: outputs must lie below it when no camera configuration says otherwise.
        python: the interpreter for the writer processes.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9901,
        config: ServerConfig | None = None,
        data_root: Path | None = None,
        python: str = sys.executable,
    ) -> None:
        root = (data_root or Path.cwd()).resolve()
        self.controller = Controller(root, writer_host=host, python=python)
        self.servers: list[ServerThread] = []
        try:
            if config is None:
                self.servers.append(ServerThread(build_app(self.controller), host, port, "control"))
            for camera in config.cameras if config else []:
                app = build_app(self.controller, camera)
                self.servers.append(ServerThread(app, host, camera.control_port, camera.name))
        except OSError:
            self._close()
            raise
        self.controller.control_url = self.servers[0].url

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
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the writers (they finish their files), then the listeners."""
        self.controller.shutdown(timeout)
        self._close()

    def _close(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

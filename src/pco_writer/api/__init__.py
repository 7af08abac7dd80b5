"""The writer REST API (FastAPI), served by every ``pco-writer write --rest-port P``.

``build_app(writer)`` makes the application; :func:`serve_writer` runs it on a uvicorn thread
and reports the end of the acquisition to the control server.
"""

from __future__ import annotations

import logging
import time

from pco_writer.api._errors import install_error_handlers, read_json
from pco_writer.api._report import EndReporter
from pco_writer.api._serving import BodyLimit, ServerThread
from pco_writer.api._writer_app import END_WAIT_S, WriterLike, build_app

__all__ = [
    "END_WAIT_S",
    "BodyLimit",
    "EndReporter",
    "ServerThread",
    "WriterLike",
    "WriterService",
    "build_app",
    "install_error_handlers",
    "read_json",
    "serve_writer",
]

log = logging.getLogger(__name__)

LINGER_S = 0.75
"""How long the API keeps answering after the acquisition, so that pollers see its end."""


class WriterService:
    """The running API of one writer; call it to shut it down (bounded).

    Attributes:
        port: the port the API listens on (the real one when 0 was asked).
    """

    def __init__(self, server: ServerThread | None, linger: float = LINGER_S) -> None:
        self._server = server
        self._linger = linger
        self.port = server.port if server else 0

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the API ('' when none is served)."""
        return self._server.url if self._server else ""

    def __call__(self) -> None:
        """Keep answering for a moment, then stop the server."""
        if self._server is None:
            return
        time.sleep(self._linger)
        self._server.stop()


def serve_writer(
    writer: WriterLike,
    host: str,
    port: int | None,
    control_url: str = "",
    linger: float = LINGER_S,
    token: str = "",
) -> WriterService:
    """Serve the writer API on a daemon thread and report the end to ``control_url``.

    Args:
        writer: the started writer.
        host: the address to listen on.
        port: the port; 0 picks a free one, None serves no API (reporting only).
        control_url: where to POST ``/finished`` and ``/error``; '' for nowhere.
        linger: seconds the API keeps answering once shutdown is called.
        token: the shared secret that state-changing routes need, and that the reports carry.

    Returns:
        The service; call it to shut the API down once the writer is done.
    """
    if control_url:
        reporter = EndReporter(control_url, token)
        writer.add_done_callback(reporter)
        if writer.done:  # finished before the callback was in place
            reporter(writer)
    server = None
    if port is not None:
        server = ServerThread(build_app(writer, token), host, port, name="writer-api").start()
        log.info("writer API at %s (OpenAPI at %s/docs)", server.url, server.url)
        if not token:
            log.info("no token: stop, kill and parameters are open to whoever reaches %s", host)
    return WriterService(server, linger)

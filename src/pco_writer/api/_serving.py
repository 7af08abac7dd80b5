"""Serving an ASGI app with uvicorn in a daemon thread, and a request-size limit."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any

import uvicorn

__all__ = ["BodyLimit", "ServerThread", "bind_socket", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
"""The largest request body accepted; every legitimate request is well below 1 kB."""

_START_TIMEOUT_S = 10.0


class BodyLimit:
    """ASGI middleware: answer 413 to a body over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLargeError
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLargeError:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        message = f"the request body is larger than {self.max_bytes} bytes"
        body = json.dumps({"success": False, "error": message, "detail": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLargeError(Exception):
    pass


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one.

    Raises:
        OSError: the address is in use or not available.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections of such a socket.
    # Without it a keep-alive client (pco_rclient polling /status) waited ~40 ms per answer
    # (Nagle against delayed ACK); with it, 2-3 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


class ServerThread:
    """A uvicorn server for ``app`` on its own daemon thread.

    Args:
        app: the ASGI application.
        host: the address to listen on.
        port: the port; 0 picks a free one (see :attr:`port`).
        name: the thread's name, for logs.
    """

    def __init__(self, app: Any, host: str, port: int, name: str = "rest-api") -> None:
        self._sock = bind_socket(host, port)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_config=None, access_log=False, timeout_graceful_shutdown=1, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the server (127.0.0.1 when bound to every address)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = _START_TIMEOUT_S) -> ServerThread:
        """Start serving; returns once the server accepts requests (or after ``timeout``)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                log.warning("the REST server on port %d is slow to start", self.port)
                break
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Stop serving; returns within about ``timeout`` seconds."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(1.0)
        self._sock.close()

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except Exception:  # noqa: BLE001 - a dying server thread must leave a trace
            log.exception("the REST server on port %d failed", self.port)

"""The running writers' status, kept fresh by one thread instead of asked for per request.

pco_rclient's ``wait()`` polls ``/status/<port>`` about ten times a second, and several
scripts and displays may poll at once. Proxying each request to the writer made the control
server's answer wait on a writer busy with its frames (20 clients at 10 Hz during a full-speed
run: p99 272 ms, max 1.5 s). Here one thread asks each running writer every
``interval`` seconds and the requests are answered from what it last heard: one request per
writer per interval, whatever the number of clients. The rule that ``finished`` is reported
only once the last-run statistics are stored stays with the controller, which reads this.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["StatusWatcher"]

log = logging.getLogger(__name__)


class StatusWatcher:
    """Asks each writer of ``ports()`` for its status (``fetch``) every ``interval`` seconds.

    Args:
        ports: the writer ports to watch now (the running writers).
        fetch: one writer's status, or None when it did not answer.
        interval: seconds between two rounds.
    """

    def __init__(
        self,
        ports: Callable[[], list[int]],
        fetch: Callable[[int], str | None],
        interval: float = 0.1,
    ) -> None:
        self._ports = ports
        self._fetch = fetch
        self._interval = interval
        self._last: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def status(self, port: int) -> str | None:
        """What the writer on ``port`` said last; None when it has not answered yet."""
        return self._last.get(port)

    def heard(self, port: int, status: str) -> None:
        """Record a status learnt elsewhere (the start's own check), and make sure the
        watching thread runs."""
        self._last[port] = status
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="status-watch", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop watching."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._round()
            except Exception:  # noqa: BLE001 - the watcher must outlive one bad round
                log.exception("watching the writers' status failed; trying again")

    def _round(self) -> None:
        ports = set(self._ports())
        for port in ports:
            status = self._fetch(port)
            if status is not None:
                self._last[port] = status
        for port in set(self._last) - ports:
            self._last.pop(port, None)

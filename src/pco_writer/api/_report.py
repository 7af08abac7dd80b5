"""Reporting the end of an acquisition to the control server (``--control-url``)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx

from pco_writer.auth import TOKEN_HEADER
from pco_writer.statistics import iso_now

__all__ = ["EndReporter"]

log = logging.getLogger(__name__)

_TIMEOUT = httpx.Timeout(3.0, connect=1.0)


class EndReporter:
    """A done callback: POST the last-run statistics to ``URL/finished``, failures to ``URL/error``.

    Sends once, with bounded timeouts, and never raises: the file is already closed, and a
    control server that is away must not turn a good acquisition into a failed one.

    Args:
        control_url: the control server's base URL for this writer.
        token: sent in the ``X-PCO-Writer-Token`` header when set.
    """

    def __init__(self, control_url: str, token: str = "") -> None:
        self.control_url = control_url.rstrip("/")
        self._headers = {TOKEN_HEADER: token} if token else {}
        self._sent = threading.Event()
        self._lock = threading.Lock()

    @property
    def sent(self) -> bool:
        """True once the report went out (or was tried)."""
        return self._sent.is_set()

    def __call__(self, writer: Any) -> None:
        with self._lock:
            if self._sent.is_set():
                return
            self._sent.set()
        stats = writer.statistics()
        if writer.error:
            self._post("error", {**stats, "status": "error", "error": writer.error,
                                 "error_time": iso_now()})  # fmt: skip
        self._post("finished", stats)

    def _post(self, route: str, body: dict[str, Any]) -> None:
        url = f"{self.control_url}/{route}"
        try:
            response = httpx.post(url, json=body, headers=self._headers, timeout=_TIMEOUT)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("could not report to %s: %s", url, exc)
        else:
            log.info("reported %s to %s", route, url)

"""The control server's log: plain ``key=value`` lines or JSON lines on stdout, the recent
ones kept.

``/server_log`` and ``/server_uptime`` answer as the original control server did, which read
``systemctl status`` of its service: the last 10 lines in the journal's form
(``Sep 25 16:27:35 HOST pco-writer[PID]: LINE``) and the ``Active:`` state
(``active (running) since Fri 2020-09-25 16:04:06 CEST``). Scripts count the lines and look
for ``active``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from collections import deque
from datetime import datetime

__all__ = [
    "JsonFormatter", "LogBuffer", "PlainFormatter", "Uptime", "quiet_http_logs", "setup_logging",
]  # fmt: skip

_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message", "asctime",
    "color_message",  # uvicorn's copy of msg with terminal colour codes
}  # fmt: skip


class PlainFormatter(logging.Formatter):
    """``time=... level=INFO logger=pco_writer.control msg="..."``, one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        """Format one record."""
        when = (
            datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")
        )
        message = record.getMessage().replace("\\", "\\\\").replace('"', '\\"')
        line = f'time={when} level={record.levelname} logger={record.name} msg="{message}"'
        if record.exc_info:
            line += f' exc="{self.formatException(record.exc_info).splitlines()[-1]}"'
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, for journald and Elastic: ``time``, ``level``, ``logger``,
    ``msg``, the record's extra fields (e.g. ``writer_port``) and ``exc`` with a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """Format one record."""
        when = datetime.fromtimestamp(record.created).astimezone()
        entry = {
            "time": when.isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
            "thread": record.threadName,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class LogBuffer(logging.Handler):
    """Keeps the last ``capacity`` records for ``/server_log``, formatted as they were logged."""

    def __init__(self, capacity: int = 200) -> None:
        super().__init__()
        self.lines: deque[tuple[float, str]] = deque(maxlen=capacity)
        self.setFormatter(PlainFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        """Keep one record."""
        self.lines.append((record.created, self.format(record)))

    def text(self, n: int = 10) -> str:
        """The last ``n`` lines as ``systemctl status`` shows a service's journal: one line
        each, ``Mon DD HH:MM:SS HOST pco-writer[PID]: LINE``, each ending in a newline."""
        prefix = f"{socket.gethostname()} pco-writer[{os.getpid()}]:"
        recent = list(self.lines)[-n:] if n > 0 else []
        return "".join(
            f"{time.strftime('%b %d %H:%M:%S', time.localtime(created))} {prefix} {line}\n"
            for created, line in recent
        )


class Uptime:
    """Since when the server runs, in systemd's words as the original server passed them on:
    ``active (running) since Fri 2020-09-25 16:04:06 CEST``."""

    def __init__(self) -> None:
        self._since = datetime.now().astimezone()

    def text(self) -> str:
        """The state and start time (scripts look for ``active``)."""
        return f"active (running) since {self._since.strftime('%a %Y-%m-%d %H:%M:%S %Z')}"


def setup_logging(buffer: LogBuffer, verbose: bool = False, log_format: str = "plain") -> None:
    """Log to stdout in the plain form (or as JSON lines: ``log_format="json"``), and into
    ``buffer``."""
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(JsonFormatter() if log_format == "json" else PlainFormatter())
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(stream)
    root.addHandler(buffer)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    quiet_http_logs()


def quiet_http_logs() -> None:
    """httpx logs every request at INFO: status polling would flood the log."""
    logging.getLogger("httpx").setLevel(logging.WARNING)

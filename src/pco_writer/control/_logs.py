"""The control server's log: plain ``key=value`` lines or JSON lines on stdout, the recent
ones kept."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import deque
from datetime import datetime, timedelta

__all__ = [
    "JsonFormatter", "LogBuffer", "PlainFormatter", "Uptime", "quiet_http_logs", "setup_logging",
]  # fmt: skip

_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


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
    """Keeps the last ``capacity`` formatted lines for ``/server_log``."""

    def __init__(self, capacity: int = 200) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=capacity)
        self.setFormatter(PlainFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        """Keep one record."""
        self.lines.append(self.format(record))

    def text(self, n: int = 50) -> str:
        """The last ``n`` lines."""
        return "\n".join(list(self.lines)[-n:])


class Uptime:
    """Since when the server runs, as text: ``up 0:12:03 since 2024-05-01T10:00:00+02:00``."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._since = datetime.now().astimezone().isoformat(timespec="seconds")

    def text(self) -> str:
        """The uptime."""
        up = timedelta(seconds=int(time.monotonic() - self._t0))
        return f"up {up} since {self._since}"


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

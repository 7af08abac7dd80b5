"""Finding the writers a previous control server started, after a restart (Linux ``/proc``).

A writer runs in its own session, so it outlives a control server that crashed or was
restarted. Its command line holds its settings, whole, as the server handed them over
(``--settings JSON``), its REST port, and where it reports (``--control-url
.../writers/<port>``); it is read back with the writer's own parser. A new server on the same
URL adopts each such writer: it reports its status and settings, refuses a second writer for
its camera, can stop and kill it, and receives its end report. See
docs/decisions/0032-control-server-restart.md and 0050-one-acquisition-settings-model.md.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pco_writer.control._run import WriterRun
from pco_writer.errors import ConfigError
from pco_writer.settings import AcquisitionSettings
from pco_writer.statistics import iso_now
from pco_writer.writer_command import parse_write_command

__all__ = ["AdoptedRun", "FoundWriter", "find_writers"]

log = logging.getLogger(__name__)

_PROC = Path("/proc")
_POLL_S = 0.2


@dataclass(frozen=True)
class FoundWriter:
    """A running ``pco-writer write`` process that reports to a given control server."""

    pid: int
    port: int
    settings: AcquisitionSettings
    cmdline: bytes


def find_writers(control_url: str) -> list[FoundWriter]:
    """The live writer processes whose ``--control-url`` is ``control_url/writers/<port>``."""
    prefix = f"{control_url.rstrip('/')}/writers/"
    found = []
    for entry in _PROC.iterdir() if _PROC.is_dir() else []:
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            writer = _writer_of(int(entry.name), prefix)
            if writer is not None:
                found.append(writer)
    return found


def _writer_of(pid: int, prefix: str) -> FoundWriter | None:
    try:
        cmdline = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    argv = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    if "pco_writer.cli" not in argv or "write" not in argv or _is_zombie(pid):
        return None
    if not any(arg.startswith(prefix) for arg in argv):  # another server's writer, or none's
        return None
    try:
        command = parse_write_command(argv[argv.index("write") + 1 :])
    except ConfigError as exc:
        log.warning("writer pid=%d: cannot read its command line back (%s); not adopted", pid, exc)
        return None
    if not command.control_url.startswith(prefix) or not command.rest_port:
        return None
    return FoundWriter(pid, command.rest_port, command.settings, cmdline)


def _uid_of(pid: int) -> int | None:
    """The user a process runs as; None when it is this server's (or cannot be read)."""
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
                return None if uid == os.geteuid() else uid
    except (OSError, ValueError, IndexError):
        pass
    return None


def _is_zombie(pid: int) -> bool:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


class AdoptedRun(WriterRun):
    """A writer started by an earlier control server: watched through ``/proc``, not a pipe.

    Its exit code and exit record are out of reach; its ``/finished`` report is not.
    """

    def __init__(self, found: FoundWriter) -> None:  # noqa: D107 - no spawn, unlike the base
        self.port = found.port
        self.settings = found.settings
        self.started_at = iso_now()
        self.started_monotonic = time.monotonic()
        self.statistics: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.exit_code: int | None = None
        self.exit_record = None
        self.ready = True
        self.tail: deque[str] = deque(maxlen=1)
        self._exited = threading.Event()
        self._lock = threading.Lock()
        self._pid = found.pid
        self._cmdline = found.cmdline
        self.repaired = ""
        self._python, self._env, self._user = sys.executable, None, _uid_of(found.pid)
        threading.Thread(target=self._watch, name=f"adopted-{found.port}", daemon=True).start()
        log.warning("adopted writer pid=%d port=%d (started before this server)", self.pid,
                    self.port)  # fmt: skip

    @property
    def pid(self) -> int:
        """The writer's process id."""
        return self._pid

    def signal(self, signum: int) -> None:
        """Send a signal to the writer, if it is still the same process."""
        if self._still_there():
            os.kill(self._pid, signum)

    def _still_there(self) -> bool:
        try:
            same = (_PROC / str(self._pid) / "cmdline").read_bytes() == self._cmdline
        except OSError:
            return False
        return same and not _is_zombie(self._pid)

    def _watch(self) -> None:
        while self._still_there():
            time.sleep(_POLL_S)
        time.sleep(_POLL_S)  # its last report may still be on the way
        if self.statistics is None and self.error is None:  # it died: repair as for a child
            self.repaired = self._repair("the writer died")
        with self._lock:
            if self.statistics is None and self.error is None:
                self._set_error(
                    f"the adopted writer (pid {self._pid}) exited without reporting; "
                    f"see {self.output}" + (f"; {self.repaired}" if self.repaired else "")
                )
        log.info("adopted writer pid=%d port=%d exited", self._pid, self.port)
        self._exited.set()

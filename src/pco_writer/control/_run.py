"""One writer child process: spawned, watched, reaped, and what it reported."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from pco_writer.exit_record import REFUSED, ExitRecord, read_exit_record
from pco_writer.settings import AcquisitionSettings
from pco_writer.statistics import iso_now

__all__ = ["WriterRun", "repair_command"]

log = logging.getLogger(__name__)

_TAIL_LINES = 40
_REPAIR_TIMEOUT_S = 60.0


def repair_command(python: str, settings: AcquisitionSettings, reason: str) -> list[str]:
    """The ``pco-writer repair`` command line for the files of a writer that died."""
    return [
        python, "-m", "pco_writer.cli", "repair", settings.output,
        "--layout", settings.layout,
        "--dataset-name", settings.dataset_name,
        "--reason", reason,
        "--by", "the control server",
    ]  # fmt: skip


class WriterRun:
    """A writer process for one acquisition, and its outcome.

    Two daemon threads watch the child: one forwards its log lines (keeping the last ones),
    the other reaps it and reads the exit record it prints (how it ended, with its
    statistics, also when its report to ``/finished`` never arrived).

    Args:
        port: the writer's REST port, which names the run (``/status/<port>``).
        settings: the settings the writer runs with.
        argv: the command to run.
        env: the child's environment (None: the server's).
        user: run the child as this uid (with its primary group); None: as the server.
    """

    def __init__(
        self,
        port: int,
        settings: AcquisitionSettings,
        argv: list[str],
        env: dict[str, str] | None = None,
        user: int | None = None,
    ) -> None:
        self.port = port
        self.settings = settings
        self.started_at = iso_now()
        self.started_monotonic = time.monotonic()
        self.statistics: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.exit_code: int | None = None
        self.exit_record: ExitRecord | None = None
        self.ready = False
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.repaired = ""
        """What the repair after the writer died did (see :meth:`_repair`)."""
        self._python, self._env, self._user = argv[0], env, user
        self._exited = threading.Event()
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a Ctrl-C at the server's terminal is the server's to handle
            env=env,
            **_as_user(user),
        )
        self._pump = threading.Thread(target=self._read_log, name=f"writer-{port}-log", daemon=True)
        self._pump.start()
        threading.Thread(target=self._reap, name=f"writer-{port}-reap", daemon=True).start()
        log.info("started writer pid=%d port=%d output=%s", self.pid, port, self.output)

    @property
    def output(self) -> Path:
        """The output template the writer writes to."""
        return Path(self.settings.output)

    @property
    def refused(self) -> bool:
        """True when the writer refused to start (its exit record says so)."""
        return self.exit_record is not None and self.exit_record.end_reason == REFUSED

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """True until the child has exited and been reaped."""
        return not self._exited.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the child to exit; True once it has."""
        return self._exited.wait(timeout)

    def record_finished(self, statistics: dict[str, Any]) -> None:
        """Store the last-run statistics the writer reported."""
        with self._lock:
            self.statistics = {k: v for k, v in statistics.items() if k != "success"}
            if self.statistics.get("status") == "error" and self.error is None:
                self._set_error(str(self.statistics.get("error") or "the acquisition failed"))

    def record_error(self, message: str, error_time: str = "") -> None:
        """Store a failure the writer reported."""
        with self._lock:
            self._set_error(message, error_time)

    def signal(self, signum: int) -> None:
        """Send a signal to the child, if it still runs."""
        if self.alive:
            self.process.send_signal(signum)

    def terminate(self, timeout: float = 5.0) -> None:
        """Ask the child to stop (SIGTERM: it writes what it has); kill it after ``timeout``."""
        self.signal(signal.SIGTERM)
        if not self.wait(timeout):
            log.warning("writer pid=%d did not stop in %.0f s; killing it", self.pid, timeout)
            self.signal(signal.SIGKILL)
            self.wait(2.0)

    def _set_error(self, message: str, error_time: str = "") -> None:
        self.error = {"error": message, "error_time": error_time or iso_now()}

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            line = line.rstrip()
            if line:
                self.tail.append(line)
                log.info("writer[%d] %s", self.port, line, extra={"writer_port": self.port})

    def _reap(self) -> None:
        assert self.process.stdout is not None
        printed = self.process.stdout.read()
        code = self.process.wait()
        self._pump.join(2.0)
        self.process.stdout.close()
        if not self._pump.is_alive():  # a grandchild may hold the pipe; then leave it open
            assert self.process.stderr is not None
            self.process.stderr.close()
        record = read_exit_record(printed)
        if code < 0:  # before the run counts as ended: a next run may append to the file
            self.repaired = self._repair(f"the writer died ({_signal_name(-code)})")
        with self._lock:
            self.exit_code, self.exit_record = code, record
            if self.statistics is None and record is not None and record.statistics is not None:
                self.statistics = dict(record.statistics)
            if record is not None and record.status == "error" and self.error is None:
                self._set_error(record.error or record.end_reason)
            if code != 0 and self.error is None:
                self._set_error(self._failure_message(code))
        log.info("writer pid=%d port=%d exited with code %d", self.pid, self.port, code)
        self._exited.set()

    def _repair(self, reason: str) -> str:
        """Make the files of a writer that died readable, and record its end in them.

        Runs ``pco-writer repair`` as the writer ran (its user, its environment), so that
        the control server needs neither HDF5 nor the writer's rights.
        """
        argv = repair_command(self._python, self.settings, reason)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=_REPAIR_TIMEOUT_S,
                stdin=subprocess.DEVNULL, env=self._env, **_as_user(self._user),
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("repairing %s failed: %s", self.output, exc)
            return f"repairing the file failed ({exc}); run pco-writer repair by hand"
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        errors = [_strip_log_prefix(line) for line in done.stderr.splitlines() if " ERROR " in line]
        for line in lines + errors:
            log.info("writer[%d] repair: %s", self.port, line)
        return "; ".join(["repaired " + line for line in lines] + errors)

    def _failure_message(self, code: int) -> str:
        """Why a writer failed that left no exit record: a signal, else its last log lines."""
        if code < 0:
            return (
                f"the writer (pid {self.pid}) was killed by signal {_signal_name(-code)} "
                f"(exit code {code}); "
                f"{self.output} holds the frames flushed before (about 1 s)"
                + (f"; {self.repaired}" if self.repaired else "")
            )
        errors = [line for line in self.tail if " ERROR " in line or " CRITICAL " in line]
        if errors:
            return _strip_log_prefix(errors[-1])
        last = self.tail[-1] if self.tail else "no output"
        return f"the writer exited with code {code}: {_strip_log_prefix(last)}"


def _as_user(uid: int | None) -> dict[str, Any]:
    """Popen arguments that run the child as ``uid``, its primary group and no other group."""
    if uid is None:
        return {}
    import pwd

    return {"user": uid, "group": pwd.getpwuid(uid).pw_gid, "extra_groups": []}


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _strip_log_prefix(line: str) -> str:
    """``2024-.. ERROR pco_writer: cannot start...: dataset name ...`` -> the message."""
    for marker in (" ERROR ", " CRITICAL ", " WARNING ", " INFO "):
        if marker in line:
            line = line.split(marker, 1)[1]
            name, sep, rest = line.partition(": ")
            line = rest if sep and " " not in name else line
            break
    return line.removeprefix("cannot start the acquisition: ")

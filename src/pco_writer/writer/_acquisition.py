"""What every acquisition shares, written by one process or by several (the writer API).

:class:`Writer` receives and writes in one process; :class:`MultiWriter` shares the work among
writer processes. Both are an :class:`Acquisition`: the lifecycle, the layout's parameters,
and the end (waiting for required parameters, closing the files, reporting) are this class's.
"""

from __future__ import annotations

import enum
import logging
import resource
import threading
from collections.abc import Callable
from typing import Any

from pco_writer.errors import PcoWriterError, StateError
from pco_writer.h5 import H5Sink
from pco_writer.layouts import ParameterSet, load_layout
from pco_writer.ledger import FrameLedger
from pco_writer.names import unusual_dataset_name
from pco_writer.settings import AcquisitionSettings
from pco_writer.statistics import Timeline

__all__ = ["Acquisition", "WriterStatus", "peak_rss_bytes"]

log = logging.getLogger(__name__)

_PARAMETER_WAIT_S = 0.2


def peak_rss_bytes() -> int:
    """The most memory this process has held (its peak resident set), in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: in KiB


class WriterStatus(enum.StrEnum):
    """The states of a writer, spelled as pco_rclient expects them."""

    CREATED = "initialized"
    RECEIVING = "receiving"
    WRITING = "writing"
    WAITING_FOR_PARAMETERS = "waiting for parameters"
    FINISHED = "finished"
    ERROR = "error"


class Acquisition:
    """The state and end of one acquisition; a subclass receives and writes its frames.

    A subclass makes :attr:`ledger`, :attr:`sink` and :attr:`files`, and calls :meth:`_end`
    on its own thread once no frame will come.

    Args:
        settings: what to receive and where to write it.
        on_done: called once the files are closed (status final).
    """

    ledger: FrameLedger
    sink: H5Sink

    def __init__(
        self, settings: AcquisitionSettings, on_done: Callable[[Any], None] | None = None
    ) -> None:
        self.settings = settings
        self.error = ""
        self.end_reason = ""
        self.missing_parameters: list[str] = []
        self._status = WriterStatus.CREATED
        self.layout = load_layout(settings.layout)
        self.parameter_set = ParameterSet(self.layout.parameters)
        if settings.parameters:  # given with the start: checked before anything is written
            self.parameter_set.set(settings.parameters)
        if settings.shard is None and (warning := unusual_dataset_name(settings.dataset_name)):
            log.warning("%s", warning)
        self.timeline = Timeline()
        self._give_up_waiting = threading.Event()
        self._killed = threading.Event()
        self._done = threading.Event()
        self._done_callbacks: list[Callable[[Any], None]] = [on_done] if on_done else []

    @property
    def status(self) -> WriterStatus:
        """The current state."""
        return self._status

    @property
    def done(self) -> bool:
        """True once the acquisition is over and its files closed."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the acquisition is over; True when it is."""
        return self._done.wait(timeout)

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(self)`` once the files are closed.

        Callbacks run before :meth:`wait` returns, so a report sent from one is out before
        the process can exit.
        """
        self._done_callbacks.append(callback)

    def parameters(self) -> dict[str, Any]:
        """The layout's parameter values: those set, else defaults (``tomcat`` has none)."""
        return self.parameter_set.effective()

    def set_parameters(self, values: dict[str, Any]) -> None:
        """Set layout parameters; they are written when the file is closed.

        Raises:
            ConfigError: a name the layout does not have, or a value of the wrong type.
            StateError: the acquisition has ended; its file is closed and would not get them.
        """
        if self._status in (WriterStatus.FINISHED, WriterStatus.ERROR):
            raise StateError(
                f"cannot set parameters: the acquisition has ended ({self._status.value}) and "
                "its file is closed; set them before it ends"
            )
        self.parameter_set.set(values)

    def parameter_types(self) -> dict[str, str]:
        """The layout's parameters and their NeXus types (NX_CHAR, NX_FLOAT...)."""
        return self.parameter_set.types()

    def statistics(self) -> dict[str, Any]:
        """The statistics so far (the subclass's)."""
        raise NotImplementedError

    def _run(self) -> None:
        """The acquisition's thread: :meth:`_work` until no frame will come, then the end.
        Any failure ends the run as an error, never unreported."""
        try:
            self._work()
        except PcoWriterError as exc:
            self._fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure must reach the status
            log.exception("the acquisition failed")
            self._fail(f"unexpected {type(exc).__name__}: {exc}")
        self._finish()

    def _work(self) -> None:
        """Receive and write (the subclass's)."""
        raise NotImplementedError

    def _fail(self, message: str) -> None:
        """Record the failure and stop receiving (the subclass's)."""
        raise NotImplementedError

    def _finish(self) -> None:
        """Gather what is left and :meth:`_end` (the subclass's)."""
        raise NotImplementedError

    def _check_can_start(self) -> None:
        if self._status is not WriterStatus.CREATED:
            raise StateError(f"cannot start: writer is already {self._status.value}")

    def _end(self, reason: str) -> None:
        """Wait for required parameters, close the files with ``reason``, report the end."""
        self._wait_for_parameters()
        self.parameter_set.close()  # a value set from now on would miss the file: refused
        reason = f"error: {self.error}" if self.error else reason
        try:
            self.sink.close(reason)
        except Exception as exc:  # noqa: BLE001 - the end must be reported, never hang
            if isinstance(exc, PcoWriterError):  # said in its own words; no traceback
                log.error("closing the file failed: %s", exc)
            else:
                log.exception("closing the file failed")
            self.error = self.error or str(exc)
            reason = f"error: {self.error}"
        self.end_reason = reason
        self.timeline.finish()
        self._status = WriterStatus.ERROR if self.error else WriterStatus.FINISHED
        log.info("acquisition ended (%s): %s", reason, self.statistics())
        for callback in self._done_callbacks:
            try:
                callback(self)
            except Exception:  # noqa: BLE001 - a reporting failure must not hide the end
                log.exception("done callback %r failed", callback)
        self._done.set()

    def _wait_for_parameters(self) -> None:
        """Hold the file open until required parameters arrive, or stop()/kill() again."""
        missing = self.parameter_set.missing_required()
        if missing and not self.error and not self._killed.is_set():
            self._status = WriterStatus.WAITING_FOR_PARAMETERS
            log.warning(
                "frames done; waiting for parameter(s) %s (stop again to write without them)",
                ", ".join(missing),
            )
            while missing and not self._give_up_waiting.is_set():
                self.parameter_set.wait_changed(_PARAMETER_WAIT_S)
                missing = self.parameter_set.missing_required()
        self.missing_parameters = self.parameter_set.missing_required()
        if self.missing_parameters:
            log.warning("writing without parameter(s) %s", ", ".join(self.missing_parameters))

    def _common_end_reason(self) -> str | None:
        """The end reason an error, a kill or a complete run gives; None otherwise."""
        if self.error:
            return f"error: {self.error}"
        if self._killed.is_set():
            return "killed"
        if self.ledger.complete:
            return "completed"
        return None

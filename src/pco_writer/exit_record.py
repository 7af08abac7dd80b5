"""The writer's exit record: how a ``pco-writer write`` process ended, machine-readable.

The writer prints one record as the last thing on its standard output, whatever the end: a
refused start (exit code 2), a finished run (0) or a failed one (1). The control server reads
it from the pipe, so a changed log format cannot hide an error; the log text is a last resort
for a writer that died without a record (a signal). See
docs/decisions/0052-writer-exit-record.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "END_KINDS", "REFUSED", "STOPPED_AT_START", "ExitRecord", "describe_end", "end_kind",
    "read_exit_record",
]  # fmt: skip

REFUSED = "refused"
"""The ``end_reason`` of a start that the writer refused: nothing was received or written."""
STOPPED_AT_START = "stopped: by a signal before the acquisition started"
"""The ``end_reason`` of a writer stopped while it started: nothing was received or written."""


END_KINDS = ("completed", "stopped", "idle_timeout", "killed", "error", REFUSED)
"""The kinds of end reasons, as runs are counted by (``end_kind``)."""


def end_kind(end_reason: str) -> str:
    """The kind of an ``end_reason``: one of :data:`END_KINDS` (a label for counting runs).

    ``stopped: no frame for 5 s (idle timeout)`` is ``idle_timeout``; ``error: disk full...``
    is ``error``; a reason of none of these kinds (or none) counts as ``error``.
    """
    head = end_reason.split(":", 1)[0].strip()
    if head == "stopped" and "idle" in end_reason:
        return "idle_timeout"
    return head if head in END_KINDS else "error"


class ExitRecord(BaseModel):
    """How one writer process ended."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    status: Literal["finished", "error"]
    """finished (also after a stop or a kill) or error."""
    end_reason: str
    """completed, stopped, killed, an idle timeout, ``error: ...``, or ``refused`` at start."""
    error: str = ""
    """What went wrong, for an error; empty otherwise."""
    statistics: dict[str, Any] | None = None
    """The last-run statistics (as ``GET /statistics``); None when the start was refused."""

    @classmethod
    def refused(cls, error: str) -> ExitRecord:
        """The record of a start that the writer refused (a bad setting, a taken dataset...)."""
        return cls(status="error", end_reason=REFUSED, error=error)

    @classmethod
    def of_run(cls, statistics: dict[str, Any]) -> ExitRecord:
        """The record of a run that started, from its final statistics."""
        error = str(statistics.get("error") or "")
        return cls(
            status="error" if error else "finished",
            end_reason=str(statistics.get("end_reason") or ""),
            error=error,
            statistics=statistics,
        )


def describe_end(statistics: Mapping[str, Any]) -> str:
    """How a run ended and what became of its frames, in one line for people.

    ``killed: 5169 written, 1049 dropped``, ``completed: 100 of 100 written``, ``stopped: 80
    written, 3 never received``, ``error: 0 written (no frame written: ...)``. Dropped frames
    came but are not in the file (a kill, a failed write); both they and the frames that
    never came count in ``n_lost_frames``.
    """
    reason = str(statistics.get("end_reason") or statistics.get("status") or "")
    head = reason.split(":", 1)[0] or "running"
    n, written = int(statistics.get("n_frames") or 0), int(statistics.get("n_written_frames") or 0)
    parts = [f"{written} of {n} written" if n else f"{written} written"]
    dropped = int(statistics.get("n_dropped_frames") or 0)
    never = int(dict(statistics.get("lost_by_reason") or {}).get("never_received", 0))
    parts += [f"{dropped} dropped"] if dropped else []
    parts += [f"{never} never received"] if never else []
    error = str(statistics.get("error") or "")
    return f"{head}: {', '.join(parts)}" + (f" ({error})" if error else "")


def read_exit_record(output: str) -> ExitRecord | None:
    """The last exit record in a writer's standard output; None when it printed none.

    A record is a JSON object that starts a line; anything else on the output is skipped.
    """
    decoder = json.JSONDecoder()
    found = None
    for start in _line_starts(output):
        try:
            value, _ = decoder.raw_decode(output, start)
            found = ExitRecord.model_validate(value)
        except (ValueError, ValidationError):  # JSONDecodeError is a ValueError
            continue
    return found


def _line_starts(text: str) -> list[int]:
    starts = [0] if text.startswith("{") else []
    index = text.find("\n{")
    while index >= 0:
        starts.append(index + 1)
        index = text.find("\n{", index + 1)
    return starts

"""The typed last-run statistics the client returns."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from pco_writer.exit_record import describe_end

__all__ = ["RunStatistics"]


@dataclass(frozen=True)
class RunStatistics:
    """What one acquisition did, as the control server reports it after the run.

    Rates are frames per second; times are ISO 8601 text.
    """

    status: str
    """``finished`` or ``error``."""
    n_frames: int
    """Frames asked for (0: until stopped)."""
    n_written_frames: int
    """Frames in the file."""
    n_lost_frames: int
    """Frame ids of the acquisition that are not in the file, whatever the cause: never
    received, or received and dropped (``lost_by_reason`` says which)."""
    first_frame_id: int
    """The camera's id of the first frame (-1 if none arrived)."""
    duration_sec: float
    """From start to end."""
    writing_rate: float
    """Frames written per second."""
    output_file: str
    """The (first) output file."""
    dataset_name: str
    """The dataset name under ``/exchange``."""
    user_id: int
    """The user id recorded."""
    start_time: str
    """When the acquisition started."""
    end_time: str
    """When the file was closed."""
    n_received_frames: int = 0
    """Frames received (valid ones)."""
    receiving_rate: float = 0.0
    """Frames received per second."""
    end_reason: str = ""
    """completed, stopped, killed, or the error."""
    error: str = ""
    """The error message, when ``status`` is ``error``."""
    files: tuple[str, ...] = ()
    """Every file written (several with roll-over)."""
    n_dropped_frames: int = 0
    """Frames received but not written (a kill, a failed write); part of ``n_lost_frames``."""
    lost_by_reason: dict[str, int] = field(default_factory=dict)
    """``n_lost_frames`` by cause: ``never_received``, ``killed``, ``error``..."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys the server sent beyond these."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunStatistics:
        """Build from the server's JSON (numbers as numbers or as numeric text)."""
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        values: dict[str, Any] = {}
        for name, spec in known.items():
            if name in data and data[name] is not None:
                values[name] = _convert(data[name], str(spec.type))
        for name in ("status", "output_file", "dataset_name", "start_time", "end_time"):
            values.setdefault(name, "")
        for name in ("n_frames", "n_written_frames", "n_lost_frames", "user_id"):
            values.setdefault(name, 0)
        values.setdefault("first_frame_id", -1)
        values.setdefault("duration_sec", 0.0)
        values.setdefault("writing_rate", 0.0)
        extra = {k: v for k, v in data.items() if k not in known and k != "success"}
        return cls(**values, extra=extra)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict of every field (``extra`` merged in)."""
        plain = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        plain["files"] = list(self.files)
        plain["lost_by_reason"] = dict(self.lost_by_reason)
        return {**self.extra, **plain}

    def summary(self) -> str:
        """How the run ended, in one line: ``killed: 5169 written, 1049 dropped``."""
        return describe_end(self.as_dict())


def _convert(value: Any, type_name: str) -> Any:
    if type_name == "int":
        return int(float(value))
    if type_name == "float":
        return float(value)
    if type_name.startswith("tuple"):
        return tuple(str(v) for v in value)
    if type_name.startswith("dict"):
        return {str(k): int(v) for k, v in dict(value).items()}
    return str(value)

"""REST parameters of a layout: NeXus-typed values, checked as they arrive. Pure, no I/O."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pco_writer.errors import ConfigError
from pco_writer.layouts._model import Parameter

__all__ = ["ParameterSet", "check_value"]

_EXPECTED = {
    "NX_CHAR": "a string",
    "NX_DATE_TIME": "an ISO 8601 date and time string, e.g. 2024-05-01T12:00:00+02:00",
    "NX_INT": "an integer",
    "NX_FLOAT": "a number",
    "NX_NUMBER": "a number",
    "NX_BOOLEAN": "true or false",
}


def check_value(name: str, nx_type: str, value: Any) -> Any:
    """The value as it will be written, or ConfigError naming the parameter and its type."""
    ok = _conforms(nx_type, value)
    if not ok:
        raise ConfigError(
            f"parameter {name!r} is {nx_type} and takes {_EXPECTED[nx_type]}, got {value!r}"
        )
    return float(value) if nx_type == "NX_FLOAT" else value


def _conforms(nx_type: str, value: Any) -> bool:
    if isinstance(value, bool):
        return nx_type == "NX_BOOLEAN"
    if nx_type in ("NX_CHAR", "NX_DATE_TIME"):
        return isinstance(value, str) and (nx_type == "NX_CHAR" or _is_iso(value))
    if nx_type == "NX_INT":
        return isinstance(value, int)
    if nx_type in ("NX_FLOAT", "NX_NUMBER"):
        return isinstance(value, int | float)
    return False


def _is_iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


class ParameterSet:
    """The parameters a layout declares and the values set so far (thread safe).

    Set from the REST thread, read by the writer thread when it closes a file.
    """

    def __init__(self, declared: Mapping[str, Parameter]) -> None:
        self.declared = dict(declared)
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._changed = threading.Event()

    def types(self) -> dict[str, str]:
        """``{name: NX type}`` of every declared parameter."""
        return {name: p.type for name, p in self.declared.items()}

    def set(self, values: Mapping[str, Any]) -> None:
        """Check every value first, then set them all (nothing is set when one is wrong).

        Raises:
            ConfigError: an undeclared name or a value of the wrong type.
        """
        unknown = sorted(set(values) - set(self.declared))
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {', '.join(unknown)}; this layout takes "
                f"{', '.join(self.declared) or 'no parameters'}"
            )
        checked = {k: check_value(k, self.declared[k].type, v) for k, v in values.items()}
        with self._lock:
            self._values.update(checked)
        self._changed.set()

    def given(self) -> dict[str, Any]:
        """The values set so far."""
        with self._lock:
            return dict(self._values)

    def effective(self) -> dict[str, Any]:
        """The values to write: those set, else the defaults (missing ones left out)."""
        out = {k: p.default for k, p in self.declared.items() if p.default is not None}
        out.update(self.given())
        return out

    def missing_required(self) -> list[str]:
        """Required parameters not set yet."""
        given = self.given()
        return [k for k, p in self.declared.items() if p.required and k not in given]

    def wait_changed(self, timeout: float) -> bool:
        """Wait until a value is set (or ``timeout`` s); True when one was."""
        changed = self._changed.wait(timeout)
        self._changed.clear()
        return changed

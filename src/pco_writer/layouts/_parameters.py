"""REST parameters of a layout: NeXus-typed values, checked as they arrive. Pure, no I/O."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pco_writer.errors import ConfigError, StateError
from pco_writer.layouts._model import Parameter
from pco_writer.protocol import is_storable_text

__all__ = ["ParameterSet", "check_parameters", "check_value", "parameter_from_text"]

_INT64 = (-(2**63), 2**63 - 1)
_EXPECTED = {
    "NX_CHAR": "a string (UTF-8 text without NUL characters)",
    "NX_DATE_TIME": "an ISO 8601 date and time string, e.g. 2024-05-01T12:00:00+02:00",
    "NX_INT": f"an integer from {_INT64[0]} to {_INT64[1]} (int64)",
    "NX_FLOAT": "a finite number (no NaN or Infinity) within the float64 range",
    "NX_NUMBER": f"a finite float (no NaN or Infinity) or an integer from {_INT64[0]} to "
    f"{_INT64[1]}",
    "NX_BOOLEAN": "true or false",
}


def check_value(name: str, nx_type: str, value: Any) -> Any:
    """The value as it will be written, or ConfigError naming the parameter and its type.

    A value passes only when it can also be stored in HDF5 as that type: refused here, it is a
    422 at ``POST /parameters``; let through, it would fail the file's close at the end.
    """
    ok = _conforms(nx_type, value)
    if not ok:
        raise ConfigError(
            f"parameter {name!r} is {nx_type} and takes {_EXPECTED[nx_type]}, got {_shown(value)}"
        )
    return float(value) if nx_type == "NX_FLOAT" else value


def check_parameters(
    declared: Mapping[str, Parameter], values: Mapping[str, Any]
) -> dict[str, Any]:
    """The values as they will be written, checked against the parameters a layout declares.

    Raises:
        ConfigError: every unknown name and every value of the wrong type, in one message.
    """
    problems = []
    unknown = sorted(set(values) - set(declared))
    if unknown:
        problems.append(
            f"unknown parameter(s) {', '.join(unknown)}; this layout takes "
            f"{', '.join(declared) or 'no parameters'}"
        )
    checked = {}
    for name, value in values.items():
        if name in declared:
            try:
                checked[name] = check_value(name, declared[name].type, value)
            except ConfigError as exc:
                problems.append(str(exc))
    if problems:
        raise ConfigError("; ".join(problems))
    return checked


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def parameter_from_text(text: str, nx_type: str | None = None) -> Any:
    """A value typed on a command line (``--param distance=120.5``), made the layout's type.

    Text parameters keep the text as it is (``--param title=2024`` is the text "2024"); with
    no type known (a layout file only the server sees) JSON is read where it parses
    (numbers, true, lists) and the rest is text. What does not convert stays text, for
    :func:`check_value` to refuse with its message.
    """
    if nx_type in ("NX_CHAR", "NX_DATE_TIME"):
        return text
    if nx_type == "NX_BOOLEAN":
        word = text.strip().lower()
        return True if word in _TRUE else False if word in _FALSE else text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if nx_type is None or isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return text


def _conforms(nx_type: str, value: Any) -> bool:
    if isinstance(value, bool):
        return nx_type == "NX_BOOLEAN"
    if nx_type in ("NX_CHAR", "NX_DATE_TIME"):
        return is_storable_text(value) and (nx_type == "NX_CHAR" or _is_iso(value))
    if nx_type == "NX_INT":
        return _is_int64(value)
    if nx_type == "NX_FLOAT":
        return _is_float64(value)
    if nx_type == "NX_NUMBER":  # written as given: an int as int64, a float as float64
        return _is_int64(value) or (isinstance(value, float) and math.isfinite(value))
    return False


def _is_int64(value: Any) -> bool:
    return isinstance(value, int) and _INT64[0] <= value <= _INT64[1]


def _is_float64(value: Any) -> bool:
    if not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond the float64 range
        return False


def _shown(value: Any) -> str:
    """The value for a message, kept short (a JSON number may have hundreds of digits)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


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
        self._closed = False

    def types(self) -> dict[str, str]:
        """``{name: NX type}`` of every declared parameter."""
        return {name: p.type for name, p in self.declared.items()}

    def set(self, values: Mapping[str, Any]) -> None:
        """Check every value first, then set them all (nothing is set when one is wrong).

        Raises:
            ConfigError: an undeclared name or a value of the wrong type.
            StateError: after :meth:`close`.
        """
        checked = check_parameters(self.declared, values)
        with self._lock:
            if self._closed:
                raise StateError(
                    "cannot set parameters: the acquisition has ended and its file is being "
                    "closed; set them before it ends"
                )
            self._values.update(checked)
        self._changed.set()

    def close(self) -> None:
        """Refuse values from now on: the file that would hold them is being closed."""
        with self._lock:
            self._closed = True

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

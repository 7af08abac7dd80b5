"""Checks of the client's configuration, done before anything is sent.

Each setting is checked by the field type of the start request that carries it
(:class:`~pco_writer.settings.StartRequest`), so the client refuses exactly what the control
server would refuse for its form. A layout that this host can read (a built-in one, or a file
at an absolute path here) is checked too, and the parameters against it; a layout file only
the server sees is the server's to check (the client may run on another host).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pco_writer.errors import ClientError, ConfigError
from pco_writer.names import builtin_layouts, check_address
from pco_writer.settings import StartRequest, validate_field

__all__ = [
    "check_configuration",
    "check_output_file",
    "check_parameter_value",
    "check_rest_address",
    "check_setting",
    "local_layout_parameters",
    "port_of",
]


def check_configuration(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting of the next start request, converted; all mistakes in one ClientError.

    Raises:
        ClientError: each wrong setting (``name: what is wrong``), joined by ``; ``.
    """
    checked, problems = {}, []
    for name, value in settings.items():
        try:
            checked[name] = _checked(name, value)
        except ClientError as exc:
            problems.append(str(exc))
    if not problems and "layout" in checked:
        try:
            _check_layout_here(checked["layout"], checked.get("parameters") or {})
        except ClientError as exc:
            problems.append(str(exc))
    if problems:
        raise ClientError("; ".join(problems))
    return checked


def _checked(name: str, value: Any) -> Any:
    if name == "output_file":
        return check_output_file(value)
    if name == "parameters":
        return check_parameters_form(value)
    return check_setting(name, value)


def check_parameters_form(values: Any) -> dict[str, Any]:
    """Layout parameters as JSON carries them (numpy numbers made Python's), by name."""
    if not isinstance(values, Mapping):
        raise ClientError(f"parameters: give a dict of names and values, not {values!r}")
    return {str(name): check_parameter_value(name, value) for name, value in values.items()}


def local_layout_parameters(layout: str) -> dict[str, str] | None:
    """``{name: NX type}`` of a layout this host can read; None for one only the server sees.

    Raises:
        ClientError: the layout file has mistakes.
    """
    found = _local_layout(layout)
    return None if found is None else {k: p.type for k, p in found.parameters.items()}


def _check_layout_here(layout: str, parameters: Mapping[str, Any]) -> None:
    """A layout file readable here is loaded (its mistakes named); parameters are checked
    against the layout whenever it is known here. A built-in one without parameters needs
    no loading."""
    if layout in builtin_layouts() and not parameters:
        return
    found = _local_layout(layout)
    if found is None or not parameters:
        return
    from pco_writer.layouts import check_parameters

    try:
        check_parameters(found.parameters, parameters)
    except ConfigError as exc:
        raise ClientError(f"parameters: {exc}") from None


def _local_layout(layout: str) -> Any:
    """The layout when it is built in or a file at an absolute path on this host, else None."""
    path = os.path.expanduser(layout)
    if layout not in builtin_layouts() and not (os.path.isabs(path) and os.path.isfile(path)):
        return None
    from pco_writer.errors import LayoutError
    from pco_writer.layouts import load_layout  # only here: the client imports no numpy

    try:
        return load_layout(layout if layout in builtin_layouts() else path)
    except LayoutError as exc:
        raise ClientError(f"layout: {exc}") from None


def check_setting(name: str, value: Any) -> Any:
    """A value of the start request's field ``name``, converted as the server converts it.

    Raises:
        ClientError: naming the setting, the value and what is wrong.
    """
    try:
        return validate_field(StartRequest, name, value)
    except ConfigError as exc:
        raise ClientError(str(exc)) from None


def check_output_file(value: str) -> str:
    """The output template, ``~`` expanded as pco_rclient does, checked as the server does."""
    return str(check_setting("output_file", os.path.expanduser(str(value))))


def check_rest_address(value: str, name: str) -> str:
    """``http://HOST:PORT`` (or https), without a trailing slash; IPv6 hosts in brackets."""
    try:
        return check_address(str(value), ("http", "https"))
    except ConfigError as exc:
        raise ClientError(f"{name}: {exc}") from None


def check_parameter_value(name: str, value: Any) -> Any:
    """A layout parameter's value as JSON can carry it: numpy numbers become Python's."""
    try:
        return json.loads(json.dumps(value, default=_from_numpy, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ClientError(
            f"parameter {name!r}: {value!r} cannot be sent ({exc}); send a number, text, "
            "a bool, or a list of them"
        ) from None


def _from_numpy(value: Any) -> Any:
    """``json.dumps``' fallback: numpy scalars and arrays, without importing numpy."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def port_of(address: str) -> int:
    """The port of ``http://HOST:PORT``."""
    try:
        port = urlsplit(address).port
    except ValueError:  # urllib's "Port out of range 0-65535"
        port = None
    if not port:
        raise ClientError(f"{address!r} has no port in 1-65535; write it as http://HOST:PORT")
    return port

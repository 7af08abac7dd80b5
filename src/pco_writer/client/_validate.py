"""Checks of the client's configuration, done before anything is sent.

Each setting is checked by the field type of the start request that carries it
(:class:`~pco_writer.settings.StartRequest`), so the client refuses exactly what the control
server would refuse for its form; the server alone checks its file system (data root, layout
files).
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

from pco_writer.errors import ClientError, ConfigError
from pco_writer.names import check_address
from pco_writer.settings import StartRequest, validate_field

__all__ = [
    "check_output_file",
    "check_parameter_value",
    "check_rest_address",
    "check_setting",
    "port_of",
]


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

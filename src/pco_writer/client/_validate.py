"""Checks of the client's configuration, done before anything is sent."""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import urlsplit

from pco_writer.errors import ClientError, ConfigError
from pco_writer.names import validate_compression, validate_dataset_name

__all__ = [
    "check_compression",
    "check_connection_address",
    "check_dataset_name",
    "check_nonneg_int",
    "check_output_file",
    "check_parameter_value",
    "check_rest_address",
    "port_of",
    "with_file_number",
]

_TCP = re.compile(r"^tcp://[A-Za-z0-9_.\-]+:(\d{1,5})$")
_HTTP = re.compile(r"^https?://[A-Za-z0-9_.\-]+:(\d{1,5})$")
INT64_MAX = 2**63 - 1  # the server refuses larger counts: the writer keeps them in int64
_OUTPUT = re.compile(r"^[%./A-Za-z0-9_\-]*\.h5$")
_PLACEHOLDER = re.compile(r"%(0?\d+)?d")


def check_connection_address(value: str) -> str:
    """``tcp://HOST:PORT``, where the camera binds PUSH."""
    match = _TCP.match(str(value))
    if not match or not _is_port(match.group(1)):
        raise ClientError(
            f"connection_address {value!r} is not tcp://HOST:PORT with a port in 1-65535 "
            "(e.g. tcp://127.0.0.1:8080)"
        )
    return str(value)


def check_rest_address(value: str, name: str) -> str:
    """``http://HOST:PORT``, without a trailing slash."""
    match = _HTTP.match(str(value))
    if not match or not _is_port(match.group(1)):
        raise ClientError(
            f"{name} {value!r} is not http://HOST:PORT with a port in 1-65535 "
            "(e.g. http://127.0.0.1:9901)"
        )
    return str(value)


def _is_port(digits: str) -> bool:
    return 1 <= int(digits) <= 65535


def check_output_file(value: str) -> str:
    """An ``.h5`` path of safe characters (``%03d`` allowed), ``~`` expanded."""
    expanded = os.path.expanduser(str(value))
    if not _OUTPUT.match(expanded):
        raise ClientError(
            f"output_file {value!r} must end in .h5 and use only letters, digits, '/', '.', "
            "'_', '-' and a %03d placeholder"
        )
    return expanded


def check_dataset_name(value: str) -> str:
    """One HDF5 name component: data, data_white, data_black..."""
    try:
        return validate_dataset_name(str(value))
    except ConfigError as exc:
        # the client's setting is called dataset_name: say so
        raise ClientError(str(exc).replace("dataset name", "dataset_name", 1)) from None


def check_compression(value: str) -> str:
    """A known chunk compression (none, bitshuffle-lz4, blosc-lz4)."""
    try:
        return validate_compression(value)
    except ConfigError as exc:
        raise ClientError(str(exc)) from None


def check_nonneg_int(value: object, name: str, minimum: int = 0) -> int:
    """An integer from ``minimum`` to 2**63 - 1 (numeric text accepted)."""
    try:
        number = int(str(value))
    except ValueError:
        raise ClientError(f"{name} {value!r} is not an integer") from None
    if number < minimum:
        raise ClientError(f"{name} {value!r} must be >= {minimum}")
    if number > INT64_MAX:
        raise ClientError(f"{name} {value!r} must be <= 2**63 - 1 ({INT64_MAX})")
    return number


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


def with_file_number(output_file: str, n_frames: int, max_frames_per_file: int) -> str:
    """Insert ``_%03d`` before ``.h5`` when the run rolls over and no placeholder is there."""
    rolls_over = 0 < max_frames_per_file <= n_frames
    if rolls_over and output_file.endswith(".h5") and not _PLACEHOLDER.search(output_file):
        return output_file[:-3] + "_%03d.h5"
    return output_file

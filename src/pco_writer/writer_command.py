"""The ``pco-writer write`` command line: made from :class:`AcquisitionSettings` and read back.

One module owns it: the per-field flags are generated from the settings model (name ->
``--kebab-case``, type, choices, default and the field's docstring as help), the control
server builds a command that hands the whole model over as JSON (``--settings``), and the
writer and a restarted control server read it back with the same parser. Importable without
h5py.
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from pco_writer.errors import ConfigError, describe_validation
from pco_writer.settings import AcquisitionSettings

__all__ = [
    "WriteCommand",
    "add_settings_flags",
    "add_write_arguments",
    "flag_of",
    "parse_write_command",
    "settings_from_args",
    "write_command",
]

M = TypeVar("M", bound=BaseModel)
_SCALARS = {int: "N", float: "NUMBER", str: "TEXT"}
_ALIASES = {"n_writers": ("--writers",)}  # the name the issue and the field speak of


def flag_of(field: str) -> str:
    """``max_frames_per_file`` -> ``--max-frames-per-file``."""
    return "--" + field.replace("_", "-")


def add_write_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``pco-writer write``: ``--settings``, one per setting, and the services'."""
    parser.add_argument(
        "--settings", metavar="JSON_OR_FILE", default=None,
        help="every setting at once, as a JSON object or a JSON file; the flags below override "
        "its values (the control server hands its writers their settings so) (default: the "
        "flags alone)",
    )  # fmt: skip
    add_settings_flags(parser.add_argument_group("acquisition settings"), AcquisitionSettings)
    service = parser.add_argument_group("services of the writer process")
    service.add_argument(
        "--rest-port",
        type=int,
        default=0,
        help="serve the writer REST API on this port; 0 serves none",
    )
    service.add_argument(
        "--rest-host", default="127.0.0.1", help="the address the writer REST API listens on"
    )
    service.add_argument(
        "--control-url",
        default="",
        help="the control server to report the end to; '' reports to none",
    )


def add_settings_flags(group: Any, model: type[BaseModel]) -> None:
    """One flag per field of ``model``, required fields first (``None`` when not given)."""
    fields = model.model_fields
    for name in sorted(fields, key=lambda n: not fields[n].is_required()):
        _add_flag(group, name, fields[name])


def _add_flag(group: Any, name: str, field: FieldInfo) -> None:
    """One setting's flag. Values stay text: the model converts and checks them (one rule)."""
    flags = (flag_of(name), *_ALIASES.get(name, ()))
    help_text = " ".join((field.description or "").split()).replace("%", "%%")
    if field.is_required():
        help_text += " (required, here or in --settings)"
    else:
        help_text += f" (default: {_shown(field.get_default(call_default_factory=True))})"
    kind = _kind(field.annotation)
    if kind is bool:
        group.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction,
                           default=None, help=help_text)  # fmt: skip
    elif typing.get_origin(kind) is Literal:
        group.add_argument(*flags, dest=name, choices=typing.get_args(kind), default=None,
                           help=help_text)  # fmt: skip
    elif kind in _SCALARS:
        group.add_argument(*flags, dest=name, default=None, help=help_text,
                           metavar=_SCALARS[kind])  # fmt: skip
    else:  # a list, a mapping, a model: given as JSON
        group.add_argument(*flags, dest=name, type=_json_value, default=None,
                           help=help_text, metavar="JSON")  # fmt: skip


def _kind(annotation: Any) -> Any:
    """The type a flag takes: ``int | None`` is int; ``Literal[...]`` stays itself."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return _kind(args[0]) if len(args) == 1 else annotation
    return annotation


def _shown(default: Any) -> str:
    if isinstance(default, str):
        return repr(default) if default == "" else default
    return str(default)


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def settings_from_args(
    args: argparse.Namespace,
    model: type[M] = AcquisitionSettings,  # type: ignore[assignment]
) -> M:
    """The settings of a parsed command line: ``--settings``, overridden by the flags given.

    Raises:
        ConfigError: a value is wrong (named by its flag), or ``--settings`` cannot be read.
    """
    values = _settings_text(args.settings) if getattr(args, "settings", None) else {}
    for name in model.model_fields:
        given = getattr(args, name, None)
        if given is not None:
            values[name] = given
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(describe_validation(exc, flag_of)) from None


def _settings_text(text: str) -> dict[str, Any]:
    """``--settings``: a JSON object, or the path of a file that holds one."""
    try:
        raw = text if text.lstrip().startswith("{") else Path(text).read_text()
        value = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"--settings {text[:80]!r} is neither a JSON object nor a readable JSON file: {exc}"
        ) from None
    if not isinstance(value, dict):
        raise ConfigError(f"--settings must hold a JSON object, not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class WriteCommand:
    """What a ``pco-writer write`` command line says: the settings and the services."""

    settings: AcquisitionSettings
    rest_port: int
    rest_host: str
    control_url: str


def write_command(python: str, command: WriteCommand) -> list[str]:
    """The argv that runs a writer with these settings, handed over whole as JSON."""
    return [
        python, "-m", "pco_writer.cli", "write",
        "--settings", command.settings.model_dump_json(),
        "--rest-host", command.rest_host,
        "--rest-port", str(command.rest_port),
        "--control-url", command.control_url,
    ]  # fmt: skip


def parse_write_command(argv: Sequence[str]) -> WriteCommand:
    """Read back the arguments after ``write`` (e.g. from ``/proc/PID/cmdline``).

    Raises:
        ConfigError: they are not a valid ``pco-writer write`` command.
    """
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    add_write_arguments(parser)
    try:
        args, _ = parser.parse_known_args(list(argv))
    except (argparse.ArgumentError, SystemExit) as exc:
        raise ConfigError(f"not a pco-writer write command line: {exc}") from None
    return WriteCommand(settings_from_args(args), args.rest_port, args.rest_host, args.control_url)

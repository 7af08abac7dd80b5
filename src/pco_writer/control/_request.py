"""A start request as pco_rclient sends it (every value a string), checked before any spawn."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pco_writer.api._errors import describe_validation
from pco_writer.errors import ConfigError
from pco_writer.names import Compression, validate_dataset_name

__all__ = ["StartRequest", "parse_start_request", "resolve_layout", "resolve_output"]

_TCP = r"^tcp://[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$"
INT64_MAX = 2**63 - 1  # the writer keeps counts and ids in int64: beyond, it dies mid-run
_PRINTF = re.compile(r"%%|%(0?\d+)?d")  # what the writer fills in a template: %% and %03d


class StartRequest(BaseModel):
    """The settings of one acquisition, from ``POST /start_pco_writer``.

    Extra keys that pco_rclient sends (``rest_api_port``, ``n_modules``,
    ``statistics_monitor_address``...) are accepted and ignored.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    connection_address: str = Field(pattern=_TCP)
    """Where the camera binds PUSH."""
    output_file: str = Field(min_length=1, max_length=4096)
    """The output path (a printf template with roll-over); relative paths are below the root."""
    n_frames: int = Field(ge=0, le=INT64_MAX)
    """Frames to write; 0 means until stopped."""
    dataset_name: str = Field(min_length=1, max_length=128)
    """data, data_white, data_black..."""
    max_frames_per_file: int = Field(default=0, ge=0, le=INT64_MAX)
    """Frames per file before rolling over; 0 for one file."""
    user_id: int = Field(default=-1, ge=-1, le=INT64_MAX)
    """Recorded in the statistics; the writer never switches users on a request."""
    writer_rest_port: int | None = Field(default=None, ge=1, le=65535)
    """The writer's REST port (pco_rclient 0.4)."""
    rest_api_port: int | None = Field(default=None, ge=1, le=65535)
    """Older clients name the writer's REST port so."""
    compression: Compression = "none"
    """Chunk compression: none, bitshuffle-lz4 or blosc-lz4 (pco_rclient never sends it)."""
    layout: str = Field(default="tomcat", min_length=1, max_length=4096)
    """A built-in layout (tomcat, nxtomo) or a layout file below the data root."""

    @field_validator("connection_address")
    @classmethod
    def _camera_port(cls, value: str) -> str:
        port = int(value.rsplit(":", 1)[1])
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is not in 1-65535; send the camera's tcp://HOST:PORT")
        return value

    @field_validator("dataset_name")
    @classmethod
    def _dataset_name(cls, value: str) -> str:
        return validate_dataset_name(value)

    @property
    def writer_port(self) -> int | None:
        """The writer's REST port, whichever key carried it."""
        return self.writer_rest_port or self.rest_api_port


def parse_start_request(body: dict[str, Any]) -> StartRequest:
    """Validate a request body.

    Raises:
        ConfigError: naming each wrong field and its value.
    """
    try:
        return StartRequest.model_validate(body)
    except ValidationError as exc:
        raise ConfigError(f"bad start request: {describe_validation(exc)}") from None


def resolve_output(output_file: str, data_root: Path) -> Path:
    """The output path made absolute, with symlinks and ``..`` resolved, checked below the root.

    A file-number placeholder (``%03d``) may only be in the file name, so that every file of a
    roll-over lands in the folder that was checked.

    Raises:
        ConfigError: the path is outside the data root, or its directory does not exist.
    """
    if "\0" in output_file:
        raise ConfigError(f"output_file {output_file!r} contains a NUL character; remove it")
    if "%" in os.path.dirname(output_file):
        raise ConfigError(
            f"output_file {output_file!r} has a '%' in its folder; a file-number placeholder "
            "belongs in the file name (e.g. /data/scan_%03d.h5)"
        )
    root = data_root.expanduser().resolve()
    try:
        path = Path(os.path.expanduser(output_file))
        resolved = (root / path).resolve() if not path.is_absolute() else path.resolve()
        parent_is_dir = resolved.parent.is_dir()
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop
        raise ConfigError(f"output_file {output_file!r} cannot be used: {exc}") from None
    if not resolved.is_relative_to(root):
        raise ConfigError(
            f"output_file {output_file!r} is outside the data root '{root}'; choose a path below it"
        )
    if not parent_is_dir:
        raise ConfigError(
            f"output_file {output_file!r}: the directory '{resolved.parent}' does not exist; "
            "create it first"
        )
    _check_numbered_files(output_file, resolved, root)
    return resolved


def _check_numbered_files(output_file: str, resolved: Path, root: Path) -> None:
    """Refuse when a file the writer may open for this template leads outside the root.

    Only the template itself is resolved above; the writer opens ``scan_001.h5``,
    ``scan_002.h5``... (or ``a%b.h5`` for ``a%%b.h5``), any of which can be a symlink that
    someone placed there to have frames appended to a file outside the data root.
    """
    pattern = _names_of(resolved.name)
    try:
        with os.scandir(resolved.parent) as listing:
            entries = [e for e in listing if pattern.fullmatch(e.name)]
    except OSError as exc:
        raise ConfigError(f"output_file {output_file!r} cannot be used: {exc}") from None
    for entry in entries:
        try:
            target = Path(entry.path).resolve()
        except (OSError, RuntimeError):  # a symlink loop: the writer cannot open it either
            continue
        if not target.is_relative_to(root):
            raise ConfigError(
                f"output_file {output_file!r}: '{entry.path}', a file the writer would open, "
                f"leads to '{target}', outside the data root '{root}'; remove it or choose "
                "another output_file"
            )


def _names_of(name: str) -> re.Pattern[str]:
    """The file names a template can produce, including the ``_%03d`` the writer may add."""
    templates = [name]
    if all(m.group() == "%%" for m in _PRINTF.finditer(name)):  # no file-number placeholder
        stem, ext = os.path.splitext(name)
        templates.append(stem + "_%03d" + (ext or ".h5"))
    return re.compile("|".join(_name_regex(t) for t in templates))


def _name_regex(template: str) -> str:
    """``scan_%03d.h5`` -> ``scan_ *\\d+\\.h5``: printf's output for any file number."""
    parts, end = [], 0
    for m in _PRINTF.finditer(template):
        parts += [re.escape(template[end : m.start()]), "%" if m.group() == "%%" else " *\\d+"]
        end = m.end()
    return "".join([*parts, re.escape(template[end:])])


def resolve_layout(layout: str, data_root: Path) -> str:
    """A built-in layout name, or a layout file below the data root that loads without error.

    The file is read here, before any spawn, so that a mistake in it is the answer to the
    start request (with its node path), and nobody can make the server read files outside
    the data root.

    Raises:
        ConfigError: an unknown name, a file outside the root, or a layout with mistakes.
    """
    from pco_writer.errors import LayoutError
    from pco_writer.layouts import builtin_names, load_layout

    if layout in builtin_names():
        return layout
    root = data_root.expanduser().resolve()
    try:
        path = Path(os.path.expanduser(layout))
        resolved = (root / path).resolve() if not path.is_absolute() else path.resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"layout {layout!r} cannot be used: {exc}") from None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        raise ConfigError(
            f"layout {layout!r} is neither a built-in layout ({', '.join(builtin_names())}) "
            f"nor a layout file below the data root '{root}'"
        )
    try:
        load_layout(str(resolved))
    except LayoutError as exc:
        raise ConfigError(f"layout {layout!r}: {exc}") from None
    return str(resolved)

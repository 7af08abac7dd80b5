"""A start request as pco_rclient sends it, checked against the server's host before any spawn.

The request's shape and values are :class:`~pco_writer.settings.StartRequest`'s; here are the
checks that need the server's file system: the output and layout below the data root.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pco_writer.errors import ConfigError, OutputError, describe_validation
from pco_writer.folders import missing_folders
from pco_writer.names import check_output_template, file_number_regex, with_file_number
from pco_writer.settings import AcquisitionSettings, StartRequest

__all__ = [
    "StartRequest",
    "check_layout_parameters",
    "parse_start_request",
    "resolve_layout",
    "resolve_output",
    "writer_settings",
]

log = logging.getLogger(__name__)


def parse_start_request(body: dict[str, Any]) -> StartRequest:
    """Validate a request body.

    Raises:
        ConfigError: naming each wrong field and its value.
    """
    try:
        return StartRequest.model_validate(body)
    except ValidationError as exc:
        raise ConfigError(f"bad start request: {describe_validation(exc)}") from None


def writer_settings(
    request: StartRequest, data_root: Path, **server_side: Any
) -> AcquisitionSettings:
    """The settings a writer gets for a request: the request's own, with the output and the
    layout resolved on this host and the data root that every output file must stay below,
    and the settings the server gives its writers (``server_side``: buffer size, live stream).

    Raises:
        ConfigError: the output or the layout cannot be used (see :func:`resolve_output`,
            :func:`resolve_layout`).
    """
    output = resolve_output(
        request.output_file, data_root, request.n_frames, request.max_frames_per_file
    )
    layout = resolve_layout(request.layout, data_root)
    check_layout_parameters(layout, request.parameters)
    try:
        return request.to_settings(
            output=str(output),
            layout=layout,
            data_root=str(data_root.expanduser().resolve()),
            **server_side,
        )
    except ValidationError as exc:  # a resolved path can be longer than the template was
        raise ConfigError(f"bad start request: {describe_validation(exc)}") from None


def resolve_output(
    output_file: str, data_root: Path, n_frames: int = 0, max_frames_per_file: int = 0
) -> Path:
    """The output template the writer gets: made absolute, with symlinks and ``..`` resolved,
    checked below the root, and with the file number added by the one rule
    (:func:`~pco_writer.names.with_file_number`).

    A folder that does not exist yet is fine when it would be made below the root: the
    writer makes it, as the user it runs as (:mod:`pco_writer.folders`).

    Raises:
        ConfigError: the path is outside the data root, or its folder cannot be made there.
    """
    template = with_file_number(check_output_template(output_file), n_frames, max_frames_per_file)
    root = data_root.expanduser().resolve()
    try:
        path = Path(os.path.expanduser(template))
        resolved = (root / path).resolve() if not path.is_absolute() else path.resolve()
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop
        raise ConfigError(f"output_file {output_file!r} cannot be used: {exc}") from None
    if not resolved.is_relative_to(root):
        raise ConfigError(
            f"output_file {output_file!r} is outside the data root '{root}'; choose a path below it"
        )
    try:
        missing = missing_folders(resolved.parent, root)
    except OutputError as exc:
        raise ConfigError(f"output_file {output_file!r}: {exc}") from None
    if missing:
        log.info("output folder %s does not exist yet: the writer makes it", resolved.parent)
    else:
        _check_numbered_files(output_file, resolved, root)
    return resolved


def _check_numbered_files(output_file: str, resolved: Path, root: Path) -> None:
    """Refuse when a file the writer may open for this template leads outside the root.

    Only the template itself is resolved above; the writer opens ``scan_001.h5``,
    ``scan_002.h5``... (or ``a%b.h5`` for ``a%%b.h5``), any of which can be a symlink that
    someone placed there to have frames appended to a file outside the data root.
    """
    pattern = file_number_regex(resolved.name)
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


def check_layout_parameters(layout: str, parameters: dict[str, Any]) -> None:
    """Refuse, before any spawn, parameters that the (resolved) layout does not take.

    Raises:
        ConfigError: every unknown name and wrong value (the writer's own check).
    """
    if not parameters:
        return
    from pco_writer.layouts import check_parameters, load_layout

    try:
        check_parameters(load_layout(layout).parameters, parameters)
    except ConfigError as exc:
        raise ConfigError(f"parameters: {exc}") from None

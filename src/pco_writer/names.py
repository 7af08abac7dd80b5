"""Rules for user-given names that every layer shares; pure, importable without h5py.

Each rule is here once and the client, the control server and the writer call it (mostly
through the field types of ``pco_writer.settings``): the dataset name (and which names are
usual), the compression names, the layout name, the output template and its file-number
placeholder, and ``scheme://HOST:PORT`` addresses.
See docs/decisions/0051-one-owner-per-naming-rule.md.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from functools import cache
from importlib import resources
from typing import Literal, get_args

from pco_writer.errors import ConfigError

__all__ = [
    "COMPRESSIONS",
    "LAYOUT_FILE_SUFFIXES",
    "USUAL_DATASET_NAMES",
    "SWMR_BY_DEFAULT",
    "Compression",
    "around_file_number",
    "builtin_layouts",
    "check_address",
    "check_layout_name",
    "check_output_template",
    "file_number_regex",
    "has_file_number",
    "needs_file_number",
    "unusual_dataset_name",
    "validate_dataset_name",
    "with_file_number",
]

Compression = Literal["none", "bitshuffle-lz4", "blosc-lz4"]
COMPRESSIONS: tuple[str, ...] = get_args(Compression)
SWMR_BY_DEFAULT = True
"""Files are written so that readers can follow them (SWMR) unless a start asks otherwise."""

_DATASET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
# What the writer fills in an output template: %% (a literal '%') and the file number, printf's
# %d with an optional zero flag and width (%d, %3d, %03d): the forms pco_rclient recognises.
_PRINTF = re.compile(r"%%|%(0?\d+)?d")
_ADDRESS = re.compile(
    r"(?P<scheme>[a-z]+)://(?P<host>[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})"
)


def validate_dataset_name(name: str) -> str:
    """Check that a dataset name is a single safe HDF5 path component.

    Raises:
        ConfigError: naming the bad value and what a good one looks like.
    """
    if not isinstance(name, str) or not _DATASET_NAME.match(name) or name in (".", ".."):
        raise ConfigError(
            f"dataset name {name!r} is not valid; use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter, digit or '_' (e.g. data, data_white, data_black)"
        )
    return name


USUAL_DATASET_NAMES = ("data", "data_white", "data_black")
"""Projections, flats and darks: the names TOMCAT's readers and the nxtomo layout know."""


def unusual_dataset_name(name: str) -> str | None:
    """A warning when ``name`` is not one of :data:`USUAL_DATASET_NAMES` (a typo such as
    ``data_blak`` is otherwise written silently), None for a usual name.

    Only a warning: a layout of one's own may use any valid name. A name that is not valid
    gets None here (:func:`validate_dataset_name` refuses it).
    """
    if name in USUAL_DATASET_NAMES or not isinstance(name, str) or not _DATASET_NAME.match(name):
        return None
    close = difflib.get_close_matches(name.lower(), USUAL_DATASET_NAMES, n=1, cutoff=0.7)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"dataset_name {name!r} is not one of the usual names {', '.join(USUAL_DATASET_NAMES)} "
        f"(projections, flats, darks); {hint}readers of TOMCAT and NXtomo files look for those"
    )


# --- layouts ----------------------------------------------------------------------------------

LAYOUT_FILE_SUFFIXES = (".yaml", ".yml", ".json")


@cache
def builtin_layouts() -> tuple[str, ...]:
    """The names of the layouts shipped with the package (tomcat, nxtomo)."""
    folder = resources.files("pco_writer") / "layouts" / "builtin"  # not importing the package
    return tuple(sorted(p.name[: -len(".yaml")] for p in folder.iterdir()
                        if p.name.endswith(".yaml")))  # fmt: skip


def check_layout_name(layout: str) -> str:
    """A built-in layout name, or a layout file: a path with a folder or a YAML/JSON suffix.

    Decided from the text alone, so that the client refuses a misspelt built-in name
    (``nxtom``) where it cannot see the server's files.

    Raises:
        ConfigError: naming the built-in layouts and the closest one.
    """
    names = builtin_layouts()
    is_path = "/" in layout or layout.lower().endswith(LAYOUT_FILE_SUFFIXES)
    if layout in names or is_path:
        return layout
    close = difflib.get_close_matches(layout, names, n=1)
    raise ConfigError(
        f"layout {layout!r} is neither a built-in layout ({', '.join(names)}) nor a layout "
        f"file (a path ending in {', '.join(LAYOUT_FILE_SUFFIXES)})"
        + (f"; did you mean {close[0]!r}?" if close else "")
    )


# --- the output template and its file number -------------------------------------------------


def needs_file_number(n_frames: int, max_frames_per_file: int) -> bool:
    """Whether an output name without a placeholder gets ``_%03d``: the one rule.

    pco_rclient's rule (``max_frames_per_file <= n_frames``), with its two holes closed: no
    roll-over (0) means one file, never numbered; a run until stopped (``n_frames`` 0) with
    roll-over is numbered, since the C++ writer crashed at its first roll-over on a plain name.
    """
    return max_frames_per_file > 0 and (n_frames == 0 or max_frames_per_file <= n_frames)


def with_file_number(output: str, n_frames: int, max_frames_per_file: int) -> str:
    """``scan.h5`` -> ``scan_%03d.h5`` when :func:`needs_file_number` and no placeholder is there.

    The number goes before the extension, as pco_rclient puts it before ``.h5``.
    """
    if has_file_number(output) or not needs_file_number(n_frames, max_frames_per_file):
        return output
    stem, ext = os.path.splitext(output)
    return f"{stem}_%03d{ext}"


def has_file_number(template: str) -> bool:
    """True when the template has a file-number placeholder (``%d``, ``%03d``; not ``%%d``)."""
    return any(m.group() != "%%" for m in _PRINTF.finditer(template))


def check_output_template(template: str) -> str:
    """An output path: a file name, with at most one file-number placeholder, in the file name.

    Raises:
        ConfigError: naming the template and what to change.
    """
    if not template or template.endswith(("/", os.sep)):
        raise ConfigError(f"output file {template!r} must name a file, e.g. /data/scan.h5")
    if "\0" in template:
        raise ConfigError(f"output file {template!r} contains a NUL character; remove it")
    if "%" in _PRINTF.sub("", template):
        raise ConfigError(
            f"output file {template!r} has a '%' that is not a file-number placeholder; "
            "use %d or %03d for the number and %% for a literal '%'"
        )
    n_placeholders = sum(m.group() != "%%" for m in _PRINTF.finditer(template))
    if n_placeholders > 1:
        raise ConfigError(
            f"output file {template!r} has {n_placeholders} placeholders; use at most one "
            "(e.g. scan_%03d.h5)"
        )
    if "%" in os.path.dirname(template):
        raise ConfigError(
            f"output file {template!r} has a '%' in its folder; a file-number placeholder "
            "belongs in the file name (e.g. /data/scan_%03d.h5)"
        )
    return template


def around_file_number(template: str) -> tuple[str, str] | None:
    """The text before and after the file-number placeholder, ``%%`` made ``%``; None
    without a placeholder: ``a%%_%03d.h5`` -> ``("a%_", ".h5")``."""
    for m in _PRINTF.finditer(template):
        if m.group() != "%%":
            before, after = template[: m.start()], template[m.end() :]
            return before.replace("%%", "%"), after.replace("%%", "%")
    return None


def file_number_regex(template: str) -> re.Pattern[str]:
    """The names printf makes of a template for any file number: ``scan_%03d.h5`` ->
    ``scan_ *\\d+\\.h5`` (``%3d`` pads with spaces); ``%%`` is a literal ``%``."""
    parts, end = [], 0
    for m in _PRINTF.finditer(template):
        parts += [re.escape(template[end : m.start()]), "%" if m.group() == "%%" else " *\\d+"]
        end = m.end()
    return re.compile("".join([*parts, re.escape(template[end:])]))


# --- addresses --------------------------------------------------------------------------------


def check_address(value: str, schemes: tuple[str, ...] = ("tcp",)) -> str:
    """``SCHEME://HOST:PORT``: a host name, an IPv4 address or an IPv6 one in brackets
    (``tcp://[::1]:8080``), and a port in 1-65535.

    Raises:
        ConfigError: naming the value and the form wanted.
    """
    match = _ADDRESS.fullmatch(value) if isinstance(value, str) else None
    if match is None or match["scheme"] not in schemes or not 1 <= int(match["port"]) <= 65535:
        raise _bad_address(value, schemes[0])
    host = match["host"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise _bad_address(value, schemes[0]) from None
    return value


def _bad_address(value: object, scheme: str) -> ConfigError:
    return ConfigError(
        f"{value!r} is not {scheme}://HOST:PORT with a port in 1-65535 "
        f"(e.g. {scheme}://127.0.0.1:8080 or {scheme}://[::1]:8080)"
    )

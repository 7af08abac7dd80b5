"""Checks of user-given names that every layer shares; pure, importable without h5py."""

from __future__ import annotations

import re
from typing import Literal

from pco_writer.errors import ConfigError

__all__ = ["COMPRESSIONS", "Compression", "validate_compression", "validate_dataset_name"]

Compression = Literal["none", "bitshuffle-lz4", "blosc-lz4"]
COMPRESSIONS: tuple[str, ...] = ("none", "bitshuffle-lz4", "blosc-lz4")

_DATASET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


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


def validate_compression(name: str) -> str:
    """Check a ``--compression`` value.

    Raises:
        ConfigError: naming the bad value and the ones there are.
    """
    if name not in COMPRESSIONS:
        raise ConfigError(
            f"compression {name!r} is not known; choose one of {', '.join(COMPRESSIONS)}"
        )
    return name

"""The frames dataset's HDF5 filter, for chunks compressed before ``write_direct_chunk``.

Importing hdf5plugin registers its filters (32001 blosc, 32008 bitshuffle) with the HDF5
library h5py uses, so a dataset can be created with them and read back in this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401 - registers the filters

from pco_writer.codecs import get_codec
from pco_writer.errors import OutputError

__all__ = ["check_frames_filter", "frames_filter"]


def frames_filter(compression: str) -> dict[str, Any]:
    """``create_dataset`` keywords for chunks of ``compression`` (none: no filter)."""
    codec = get_codec(compression)
    if codec is None:
        return {}
    return {"compression": codec.filter_id, "compression_opts": codec.filter_options}


def filter_ids(dataset: h5py.Dataset) -> list[int]:
    """The ids of a dataset's filters, in pipeline order."""
    plist = dataset.id.get_create_plist()
    return [int(plist.get_filter(i)[0]) for i in range(plist.get_nfilters())]


def check_frames_filter(dataset: h5py.Dataset, compression: str, path: Path) -> None:
    """Refuse to append chunks to a dataset whose filter would read them wrongly.

    Raises:
        OutputError: the existing frames dataset has another filter (or none).
    """
    codec = get_codec(compression)
    expected = [codec.filter_id] if codec is not None else []
    found = filter_ids(dataset)
    if found != expected:
        raise OutputError(
            f"cannot append {compression!r} chunks to {dataset.name} in {path}, whose chunks "
            f"have filters {found or 'none'}; write to another file or use the compression "
            "it was written with"
        )

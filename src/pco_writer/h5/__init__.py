"""The HDF5 sink: direct chunk writes, roll-over, append, crash-safe flushing."""

from pco_writer.h5._file import FileLayout, FrameFile
from pco_writer.h5._paths import OutputFiles
from pco_writer.h5._sink import H5Sink
from pco_writer.names import validate_dataset_name

__all__ = [
    "FileLayout",
    "FrameFile",
    "H5Sink",
    "OutputFiles",
    "validate_dataset_name",
]

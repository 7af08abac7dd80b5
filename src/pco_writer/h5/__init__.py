"""The HDF5 sink: direct chunk writes, roll-over, append, crash-safe flushing."""

from pco_writer.h5._file import FileLayout, FrameFile
from pco_writer.h5._paths import OutputFiles, validate_dataset_name
from pco_writer.h5._sink import H5Sink

__all__ = [
    "FileLayout",
    "FrameFile",
    "H5Sink",
    "OutputFiles",
    "validate_dataset_name",
]

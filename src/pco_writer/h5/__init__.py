"""The HDF5 sink: direct chunk writes, roll-over, append, crash-safe flushing."""

from pco_writer.h5._file import FileLayout, FrameFile, TomcatLayout
from pco_writer.h5._paths import OutputFiles, validate_dataset_name
from pco_writer.h5._sink import H5Sink
from pco_writer.h5._tomcat import ACQUISITION, EXCHANGE, TomcatFile, check_output_file

__all__ = [
    "ACQUISITION",
    "EXCHANGE",
    "FileLayout",
    "FrameFile",
    "TomcatLayout",
    "H5Sink",
    "OutputFiles",
    "TomcatFile",
    "check_output_file",
    "validate_dataset_name",
]

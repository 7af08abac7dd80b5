"""The writer: the state machine that ties receiver, buffer and HDF5 sink together, and the
process that shares one acquisition among several writers."""

from pco_writer.writer._acquisition import Acquisition, WriterStatus
from pco_writer.writer._multi import MultiWriter
from pco_writer.writer._writer import Writer

__all__ = ["Acquisition", "MultiWriter", "Writer", "WriterStatus"]

"""The writer: the state machine that ties receiver, buffer and HDF5 sink together."""

from pco_writer.writer._writer import Writer, WriterStatus

__all__ = ["Writer", "WriterStatus"]

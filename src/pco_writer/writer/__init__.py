"""The writer: the state machine that ties receiver, buffer and HDF5 sink together."""

from pco_writer.writer._config import DEFAULT_BUFFER_BYTES, WriterConfig
from pco_writer.writer._writer import Writer, WriterStatus

__all__ = ["DEFAULT_BUFFER_BYTES", "Writer", "WriterConfig", "WriterStatus"]

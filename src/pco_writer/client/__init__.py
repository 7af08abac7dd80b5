"""The Python client: :class:`PcoWriter`, a drop-in for pco_rclient's.

Importing this package pulls in neither h5py nor ZeroMQ.
"""

from pco_writer.client._pco_writer import AcquisitionError, PcoWriter
from pco_writer.client._stats import RunStatistics
from pco_writer.errors import ClientError

__all__ = ["AcquisitionError", "ClientError", "PcoWriter", "RunStatistics"]

"""pco-writer: PSI Array-1.0 camera streams to TOMCAT / NeXus HDF5, controlled over REST.

The data plane (receiver, buffer, writer, h5) is imported lazily so that the client can be
used without h5py.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

"""Which camera a ``connection_address`` names, whatever the spelling of its host."""

from __future__ import annotations

import socket

__all__ = ["camera_endpoints", "same_camera"]


def camera_endpoints(address: str) -> frozenset[str]:
    """The ``IP:PORT`` endpoints a ZeroMQ connect address reaches.

    ``tcp://localhost:8080`` and ``tcp://127.0.0.1:8080`` are one camera: two writers
    connected to it would each get part of the frames (PUSH deals them out). Other
    transports, and hosts that do not resolve, stay the address itself.
    """
    transport, sep, rest = address.partition("://")
    host, colon, port = rest.rpartition(":")
    if transport != "tcp" or not sep or not colon or not port.isdigit():
        return frozenset({address})
    host = host.removeprefix("[").removesuffix("]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # socket.gaierror is an OSError
        return frozenset({f"{host.lower()}:{port}"})
    return frozenset(f"{info[4][0]}:{port}" for info in infos)


def same_camera(a: frozenset[str], b: frozenset[str]) -> bool:
    """True when two addresses share an endpoint (``localhost`` may be both ::1 and 127.0.0.1)."""
    return not a.isdisjoint(b)

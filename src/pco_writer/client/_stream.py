"""The camera side of the client: draining a stream, reading a camera configuration file."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pco_writer.errors import ClientError

__all__ = ["camera_addresses", "flush_stream"]


def flush_stream(address: str, quiet_ms: int, max_duration: float) -> int:
    """Receive and drop messages from ``address`` until ``quiet_ms`` pass without one.

    Returns:
        The number of messages dropped.
    """
    import zmq  # only here: the rest of the client needs no ZeroMQ

    n, deadline = 0, time.monotonic() + max_duration
    with zmq.Context() as ctx, ctx.socket(zmq.PULL) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IPV6, 1)  # the address rule takes tcp://[::1]:PORT: so must we
        sock.connect(address)
        while time.monotonic() < deadline and sock.poll(max(quiet_ms, 1)):
            sock.recv_multipart(copy=False)
            n += 1
    return n


def camera_addresses(config_file: str, cam: str) -> tuple[str, str, str]:
    """A camera's (connection, control server, writer) addresses from a pco_rclient file.

    The file is JSON: ``{"cameras": [{"name", "connection_address", "flask_api_address",
    "writer_api_address"}, ...]}``.
    """
    try:
        cameras = json.loads(Path(config_file).expanduser().read_text())["cameras"]
        entry = next(c for c in cameras if c.get("name") == cam)
        return entry["connection_address"], entry["flask_api_address"], entry["writer_api_address"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClientError(f"cannot read camera {cam!r} from {config_file!r}: {exc!r}") from None
    except StopIteration:
        raise ClientError(f"camera {cam!r} is not in {config_file}; check the name") from None

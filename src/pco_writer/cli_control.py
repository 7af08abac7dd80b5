"""Sub-commands of the control plane: server, acquire, status, stop, kill, demo."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["COMMANDS"]

log = logging.getLogger("pco_writer")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_DEFAULT_SERVER = "http://127.0.0.1:9901"


def add_server(commands: Any) -> None:
    """``pco-writer server``: the control server that starts one writer per acquisition."""
    p = commands.add_parser("server", help="the control server that starts the writers")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=9901, help="port without --config; 0 = any")
    p.add_argument("--config", type=Path, default=None, help="cameras (YAML or JSON)")
    p.add_argument("--data-root", type=Path, default=None, help="outputs go below it (cwd)")
    p.set_defaults(handler=_run_server)


def _run_server(args: argparse.Namespace) -> int:
    from pco_writer.control import ControlServer, LogBuffer, load_config, setup_logging
    from pco_writer.errors import ConfigError

    setup_logging(LogBuffer(1), args.verbose)
    try:
        config = load_config(args.config) if args.config else None
        server = ControlServer(args.host, args.port, config, args.data_root).start()
    except (ConfigError, OSError) as exc:
        log.error("cannot start the control server: %s", exc)
        return EXIT_USAGE
    print(f"control server at {server.url}", flush=True)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    log.info("shutting down: stopping the writers")
    server.stop()
    return EXIT_OK


COMMANDS: list[Callable[[Any], None]] = [add_server]

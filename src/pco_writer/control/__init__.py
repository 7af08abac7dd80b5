"""The control server: camera configuration, spawning and tracking writer processes.

``pco-writer server`` runs a :class:`ControlServer`; pco_rclient and
:class:`pco_writer.client.PcoWriter` drive it over HTTP.
"""

from pco_writer.control._app import build_app
from pco_writer.control._config import (
    CameraConfig,
    Limits,
    ServerConfig,
    load_config,
    server_config,
)
from pco_writer.control._controller import Controller, WriterStartError
from pco_writer.control._logs import JsonFormatter, LogBuffer, PlainFormatter, setup_logging
from pco_writer.control._monitor import Monitor
from pco_writer.control._request import StartRequest, parse_start_request, resolve_output
from pco_writer.control._server import ControlServer

__all__ = [
    "CameraConfig",
    "ControlServer",
    "Controller",
    "JsonFormatter",
    "Limits",
    "LogBuffer",
    "Monitor",
    "PlainFormatter",
    "ServerConfig",
    "StartRequest",
    "WriterStartError",
    "build_app",
    "load_config",
    "parse_start_request",
    "resolve_output",
    "server_config",
    "setup_logging",
]

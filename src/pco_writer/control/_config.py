"""The control server's settings file (``pco-writer server --config FILE``), YAML or JSON.

One model, :class:`ServerConfig`: where to listen, the data root, the token, user switching,
limits, the log format and the cameras. The original deployment's camera file
(lib_cpp_h5_writer's ``tomcat/pco_config.json``: a ``cameras`` list of ``name``,
``connection_address``, ``flask_api_address``, ``writer_api_address``) is such a file as it
is: the ports come from the two addresses, the data root from ``--data-root``, and
``--camera pco1`` (or ``--camera 1``, as ``deployment_server.py -c 1``) serves one of its
cameras. Flags given on the command line win over the file. See docs/deploying.md and
docs/decisions/0093-server-settings-file.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pco_writer.errors import ConfigError, describe_validation
from pco_writer.settings import (
    DEFAULT_BUFFER_BYTES,
    MAX_WRITERS,
    ByteCount,
    CameraAddress,
    OptionalAddress,
    Port,
)

__all__ = ["CameraConfig", "Limits", "ServerConfig", "load_config", "server_config"]

_HTTP_ADDRESS = re.compile(r"https?://(?P<host>[^/:]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})/?")
_STRICT = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class CameraConfig(BaseModel):
    """One camera served by the control server, on its own port."""

    model_config = _STRICT

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    """A short name, e.g. ``pco1``."""
    connection_address: CameraAddress
    """Where the camera binds PUSH, e.g. ``tcp://10.10.1.26:8080``."""
    control_port: Port
    """The control server answers this camera's client on this port (pco_rclient: 9901);
    the original file's ``flask_api_address`` gives it."""
    writer_port: Port
    """The REST port of this camera's writer process (pco_rclient: 9555); the original
    file's ``writer_api_address`` gives it."""
    data_root: Path
    """Output files must lie below this directory (default: the server's ``data_root``)."""
    live_stream: OptionalAddress = ""
    """Publish every ``live_stream_every``-th written frame on a ZeroMQ PUB socket bound here
    (Array-1.0), e.g. ``tcp://0.0.0.0:8090``; '' for none."""
    live_stream_every: Annotated[int, Field(ge=1)] = 10
    """With ``live_stream``: publish every N-th frame written."""

    @model_validator(mode="before")
    @classmethod
    def _original_addresses(cls, data: Any) -> Any:
        """``flask_api_address`` and ``writer_api_address`` (the original file) -> ports."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for original, port in (("flask_api_address", "control_port"),
                               ("writer_api_address", "writer_port")):  # fmt: skip
            if original in data:
                given = _port_of(original, data.pop(original))
                if data.get(port, given) != given:
                    raise ValueError(
                        f"{original} says port {given} but {port} says {data[port]}; "
                        "give one of the two"
                    )
                data[port] = given
        return data

    def writer_settings(self) -> dict[str, Any]:
        """What this camera adds to its writers' settings."""
        if not self.live_stream:
            return {}
        return {"live_stream": self.live_stream, "live_stream_every": self.live_stream_every}


class Limits(BaseModel):
    """What the server allows its writers, and what it keeps."""

    model_config = _STRICT

    buffer_bytes: ByteCount = DEFAULT_BUFFER_BYTES
    """Memory each writer buffers frames in (e.g. 2G); with N cameras, N times this."""
    start_timeout: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = 20.0
    """Seconds a writer has to answer on its port after it was started."""
    runs_kept: Annotated[int, Field(ge=1, le=1000)] = 20
    """Ended runs per camera the status page lists."""


class ServerConfig(BaseModel):
    """The whole settings file; every key is optional but the cameras' own."""

    model_config = _STRICT

    host: str = Field(default="127.0.0.1", min_length=1)
    """The address to listen on (0.0.0.0: every interface; then set a token)."""
    port: Annotated[int, Field(ge=0, le=65535)] = 9901
    """The port without ``cameras`` (any camera a client names; 0 picks a free one);
    cameras have their own."""
    data_root: Path | None = None
    """Outputs must lie below it (default: the server's working directory)."""
    token_file: Path | None = None
    """A file whose first line is the shared secret of the state-changing routes."""
    allow_user_switch: bool = False
    """Run each writer as the request's ``user_id`` (the server must run as root)."""
    max_writers: Annotated[int, Field(ge=1, le=MAX_WRITERS)] = 8
    """The most writer processes one acquisition may have (its ``n_writers``)."""
    log_format: Literal["plain", "json"] = "plain"
    """``json``: one JSON object per log line (journald, Elastic); ``plain``: key=value."""
    limits: Limits = Limits()
    """Buffer memory per writer, start timeout, runs kept."""
    live_stream: OptionalAddress = ""
    """Without ``cameras``: the writers' live stream address ('' for none)."""
    live_stream_every: Annotated[int, Field(ge=1)] = 10
    """Without ``cameras``: publish every N-th frame written."""
    cameras: Annotated[list[CameraConfig], Field(min_length=1)] | None = None
    """The cameras, each on its own control port; names and ports must be unique. Leave it
    out to serve any camera on ``port``."""

    @model_validator(mode="before")
    @classmethod
    def _cameras_inherit_the_data_root(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("cameras"), list):
            return data
        root = data.get("data_root")
        if root is None:
            return data  # a camera without one is then named as missing it
        cameras = [
            {**c, "data_root": root} if isinstance(c, dict) and "data_root" not in c else c
            for c in data["cameras"]
        ]
        return {**data, "cameras": cameras}

    @model_validator(mode="after")
    def _unique(self) -> ServerConfig:
        for what in ("name", "control_port", "writer_port", "connection_address"):
            values = [getattr(camera, what) for camera in self.cameras or []]
            repeated = sorted({str(v) for v in values if values.count(v) > 1})
            if repeated:
                hint = "" if what == "name" else (
                    "; serve each camera from its own server (--camera NAME), as the original "
                    "deployment did"
                )  # fmt: skip
                raise ValueError(
                    f"cameras: {what} must be unique, {', '.join(repeated)} repeats{hint}"
                )
        return self

    def writer_defaults(self) -> dict[str, Any]:
        """What the server adds to every writer's settings (a camera's own come on top)."""
        defaults: dict[str, Any] = {"buffer_bytes": self.limits.buffer_bytes}
        if self.live_stream:
            defaults |= {"live_stream": self.live_stream,
                         "live_stream_every": self.live_stream_every}  # fmt: skip
        return defaults


def load_config(path: Path, camera: str | None = None, **overrides: Any) -> ServerConfig:
    """Read and validate a settings file (YAML, or JSON by its ``.json`` suffix).

    Args:
        path: the file.
        camera: serve only this camera of the file (a name, or N for ``pcoN``).
        overrides: top-level values given on the command line; None values are left out.

    Raises:
        ConfigError: the file cannot be read, or a value is wrong (the message names it).
    """
    try:
        text = path.read_text()
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the server settings {path}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the settings must be a mapping, not {type(data).__name__}")
    if camera is not None:
        data = {**data, "cameras": _one_camera(data.get("cameras"), camera, path)}
    return server_config(data, where=str(path), **overrides)


def server_config(
    data: dict[str, Any] | None = None, where: str = "server settings", **overrides: Any
) -> ServerConfig:
    """Settings from a mapping and command-line overrides (None values are left out).

    Raises:
        ConfigError: naming each wrong value.
    """
    values = {**(data or {}), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return ServerConfig.model_validate(values)
    except ValidationError as exc:
        message = describe_validation(exc)
        if ".data_root: Field required" in message:
            message += (
                "; give data_root for every camera (in the file or --data-root) or per camera"
            )
        raise ConfigError(f"{where}: {message}") from None


def _one_camera(cameras: Any, wanted: str, path: Path) -> list[Any]:
    name = f"pco{wanted}" if wanted.isdigit() else wanted
    listed = cameras if isinstance(cameras, list) else []
    found = [c for c in listed if isinstance(c, dict) and c.get("name") == name]
    if not found:
        names = ", ".join(str(c.get("name")) for c in listed if isinstance(c, dict))
        raise ConfigError(f"{path}: no camera named {name!r}; the file has {names or 'no cameras'}")
    return found


def _port_of(key: str, address: Any) -> int:
    match = _HTTP_ADDRESS.fullmatch(address) if isinstance(address, str) else None
    if match is None:
        raise ValueError(f"{key} {address!r} is not http://HOST:PORT (e.g. http://xbl-daq-32:9901)")
    return int(match["port"])

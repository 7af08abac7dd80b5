"""The control server's configuration: cameras, ports and data roots, validated by a schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pco_writer.errors import ConfigError, describe_validation
from pco_writer.settings import MAX_WRITERS, CameraAddress, Port

__all__ = ["CameraConfig", "ServerConfig", "load_config"]


class CameraConfig(BaseModel):
    """One camera served by the control server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    """A short name, e.g. ``pco1``."""
    connection_address: CameraAddress
    """Where the camera binds PUSH, e.g. ``tcp://10.10.1.26:8080``."""
    control_port: Port
    """The control server answers this camera's client on this port (pco_rclient: 9901)."""
    writer_port: Port
    """The REST port of this camera's writer process (pco_rclient: 9555)."""
    data_root: Path
    """Output files must lie below this directory."""


class ServerConfig(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cameras: list[CameraConfig] = Field(min_length=1)
    """The cameras; names and ports must be unique."""
    token_file: Path | None = None
    """A file whose first line is the shared secret of the state-changing routes."""
    allow_user_switch: bool = False
    max_writers: Annotated[int, Field(ge=1, le=MAX_WRITERS)] = 8
    """The most writer processes one acquisition may have (its ``n_writers``)."""
    """Run each writer as the request's ``user_id`` (the server must run as root)."""

    @model_validator(mode="after")
    def _unique(self) -> ServerConfig:
        for what in ("name", "control_port", "writer_port", "connection_address"):
            values = [getattr(camera, what) for camera in self.cameras]
            repeated = sorted({str(v) for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"cameras: {what} must be unique, {', '.join(repeated)} repeats")
        return self


def load_config(path: Path) -> ServerConfig:
    """Read and validate a YAML or JSON configuration file.

    Raises:
        ConfigError: the file cannot be read, or a field is wrong (the message names it).
    """
    try:
        text = path.read_text()
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the server configuration {path}: {exc}") from None
    try:
        return ServerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation(exc)}") from None

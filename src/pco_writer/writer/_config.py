"""The settings of one acquisition, validated at the edge."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pco_writer.codecs import Compression
from pco_writer.ledger import DEFAULT_MAX_FRAME_GAP
from pco_writer.names import validate_dataset_name

__all__ = ["WriterConfig", "DEFAULT_BUFFER_BYTES"]

DEFAULT_BUFFER_BYTES = 1 << 30


class WriterConfig(BaseModel):
    """What to receive and where to write it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect: str = Field(pattern=r"^(tcp|ipc|inproc)://\S+$")
    """The camera's PUSH address, e.g. ``tcp://127.0.0.1:8080``."""
    output: str = Field(min_length=1)
    """The output file; a printf template such as ``scan_%03d.h5`` with roll-over."""
    dataset_name: str = "data"
    """The name under ``/exchange`` (data, data_white, data_black...)."""
    n_frames: int = Field(default=0, ge=0)
    """Frames to write; 0 means until stopped."""
    max_frames_per_file: int = Field(default=0, ge=0)
    """Start a new file after this many frames; 0 means one file."""
    buffer_bytes: int = Field(default=DEFAULT_BUFFER_BYTES, gt=0)
    """Memory for frames waiting to be written; a full buffer slows the camera down."""
    max_frame_gap: int = Field(default=DEFAULT_MAX_FRAME_GAP, gt=0)
    """A frame id more than this beyond the highest seen is rejected as implausible."""
    idle_timeout: float = Field(default=0.0, ge=0)
    """Finish after this many seconds without a message; 0 means wait for ever."""
    flush_interval: float = Field(default=1.0, gt=0, le=60)
    """Seconds between flushes: what a crash can lose at most."""
    user_id: int = -1
    """The user id recorded in the statistics (the writer does not switch users)."""
    layout: str = "tomcat"
    """The file layout: a built-in name (tomcat, nxtomo) or a layout file (YAML or JSON)."""
    compression: Compression = "none"
    """Chunk compression: none, bitshuffle-lz4 (HDF5 filter 32008) or blosc-lz4 (32001)."""
    compression_threads: int = Field(default=0, ge=0, le=64)
    """Threads that compress; 0 means one per core."""
    data_root: str = ""
    """When set, every output file must lie below it once links are followed (checked as
    each file is opened, so that a link placed after the start cannot lead elsewhere)."""

    @field_validator("dataset_name")
    @classmethod
    def _dataset_name(cls, value: str) -> str:
        return validate_dataset_name(value)

    @field_validator("layout")
    @classmethod
    def _layout(cls, value: str) -> str:
        from pco_writer.errors import ConfigError, LayoutError
        from pco_writer.layouts import load_layout

        try:
            load_layout(value)
        except LayoutError as exc:
            raise ConfigError(str(exc)) from None
        return value

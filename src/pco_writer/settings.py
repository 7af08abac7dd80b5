"""The settings of one acquisition: one model, its wire form, and the field types they share.

:class:`AcquisitionSettings` is what a writer process runs with. It is handed to the writer as
JSON (``pco-writer write --settings``), read back unchanged by a restarted control server, and
generates the per-field flags of ``pco-writer write``. :class:`StartRequest` is the same
settings as pco_rclient sends them to ``POST /start_pco_writer``. Both inherit the fields of
:class:`RequestSettings`, so a setting that a start request carries is declared once; each
bound and rule lives in one of the ``Annotated`` types below. Importable without h5py (the
client validates with it). See docs/decisions/0050-one-acquisition-settings-model.md.

How to add a setting: declare it, with its type and a docstring, in :class:`RequestSettings`
when a start request may carry it (same name on the wire), else in
:class:`AcquisitionSettings`. The flag, its help, the JSON hand-over, the adoption and the
request-to-settings mapping follow.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
)

from pco_writer.errors import ConfigError, describe_validation
from pco_writer.names import (
    SWMR_BY_DEFAULT,
    Compression,
    check_address,
    check_layout_name,
    check_output_template,
    validate_dataset_name,
)

__all__ = [
    "DEFAULT_BUFFER_BYTES",
    "DEFAULT_MAX_FRAME_GAP",
    "INT64_MAX",
    "NO_FRAME_NOTICE_S",
    "AcquisitionSettings",
    "ByteCount",
    "CameraAddress",
    "DatasetName",
    "MAX_WRITERS",
    "FrameCount",
    "LayoutName",
    "OptionalAddress",
    "OutputTemplate",
    "Port",
    "RequestSettings",
    "Shard",
    "StartRequest",
    "UserId",
    "WriterCount",
    "parse_size",
    "validate_field",
]

INT64_MAX = 2**63 - 1  # the writer keeps counts and ids in int64: beyond, it would die mid-run
DEFAULT_BUFFER_BYTES = 1 << 30
DEFAULT_MAX_FRAME_GAP = 100_000
NO_FRAME_NOTICE_S = 5.0
"""After this long without a frame the writer's log and the client's progress say so (a wrong
camera address must not look like a slow start)."""
_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: Any) -> Any:
    """``"1G"``, ``"512M"``, ``"64KiB"`` -> bytes; numbers and anything else pass unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in _SIZE_UNITS:
        try:
            return int(float(text[:-1]) * _SIZE_UNITS[text[-1]])
        except ValueError:
            pass
    return value  # an integer in text, or a mistake that the int check names


# --- the field types: each bound and rule once ------------------------------------------------

CameraAddress = Annotated[str, AfterValidator(check_address)]
"""Where the camera binds PUSH: ``tcp://HOST:PORT`` (host name, IPv4 or ``[IPv6]``)."""
OptionalAddress = Annotated[str, AfterValidator(lambda v: v and check_address(v))]
"""``tcp://HOST:PORT`` as :data:`CameraAddress`, or '' for none."""
OutputTemplate = Annotated[str, Field(max_length=4096), AfterValidator(check_output_template)]
"""An output path, a printf template (``scan_%03d.h5``) when the run rolls over."""
DatasetName = Annotated[str, AfterValidator(validate_dataset_name)]
"""One HDF5 name component: data, data_white, data_black..."""
FrameCount = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A number of frames, 0 to 2**63 - 1."""
UserId = Annotated[int, Field(ge=-1, le=INT64_MAX)]
"""A numeric user id; -1 for none."""
Port = Annotated[int, Field(ge=1, le=65535)]
"""A TCP port."""
LayoutName = Annotated[
    str, Field(min_length=1, max_length=4096, pattern=r"\S"), AfterValidator(check_layout_name)
]
"""A built-in layout name or a layout file (a path with a folder or a .yaml/.yml/.json suffix)."""
ByteCount = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]
"""A size in bytes; text may say ``1G``, ``512M``, ``64K``."""
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
"""A duration in seconds."""
ParameterValues = Annotated[dict[str, JsonValue], Field(max_length=1000)]
"""Layout parameters by name: text, numbers, booleans or lists of them (checked against the
layout at the start)."""
MAX_WRITERS = 64
WriterCount = Annotated[int, Field(ge=1, le=MAX_WRITERS)]
"""A number of writer processes, 1 to 64 (a control server may allow fewer)."""


# --- the models -------------------------------------------------------------------------------


class RequestSettings(BaseModel):
    """The acquisition settings that a start request carries, under the same names.

    A field declared here is in :class:`AcquisitionSettings` and in :class:`StartRequest`
    alike, and :meth:`StartRequest.to_settings` copies it without a further edit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    n_frames: FrameCount = 0
    """Frames to write (a count); 0 writes until stopped."""
    dataset_name: DatasetName = "data"
    """The dataset's name in the layout, e.g. under /exchange: data, data_white, data_black."""
    max_frames_per_file: FrameCount = 0
    """Frames per file before the next file starts (a count); 0 keeps one file."""
    user_id: UserId = -1
    """The numeric user id recorded in the statistics; -1 for none."""
    compression: Compression = "none"
    """Chunk compression: bitshuffle-lz4 (HDF5 filter 32008) or blosc-lz4 (32001)."""
    layout: LayoutName = "tomcat"
    """The file layout: a built-in one (tomcat, nxtomo) or a layout file (YAML or JSON)."""
    idle_timeout: Seconds = 0.0
    """Seconds without a message (from the start, or since the last one) after which the run
    ends; 0 waits for ever. A run that ends without a frame written is an error."""
    parameters: ParameterValues = Field(default_factory=dict)
    """Values of the layout's parameters, written into the file (e.g. {"sample_name":
    "foam"}); names and types are checked against the layout at the start."""
    swmr: bool = SWMR_BY_DEFAULT
    """Write a file that readers can follow during the run (HDF5 SWMR, read by HDF5 1.10 and
    newer); --no-swmr (swmr: false) writes the HDF5 1.8 format for older readers."""
    n_writers: WriterCount = 1
    """Writer processes that share the acquisition, each taking the frames ZeroMQ deals it;
    with more than one, the output file is a master file over their part files (ADR 0042)."""


class Shard(BaseModel):
    """Which part of a shared acquisition one writer process writes."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    index: Annotated[int, Field(ge=0, lt=MAX_WRITERS)]
    """This writer's number, from 0."""
    count: WriterCount
    """How many writers share the acquisition."""


class AcquisitionSettings(RequestSettings):
    """What one writer process receives and how it writes it: the one settings model.

    Frozen and closed (unknown keys are refused); a JSON dump of it validates back to an
    equal object.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    connect: CameraAddress
    """The camera's PUSH address, tcp://HOST:PORT (e.g. tcp://127.0.0.1:8080)."""
    output: OutputTemplate
    """The output file; with roll-over a printf template such as scan_%03d.h5 (a plain name
    gets _%03d before its extension when the run can need more than one file)."""
    buffer_bytes: ByteCount = DEFAULT_BUFFER_BYTES
    """Memory for frames waiting to be written, in bytes (e.g. 1G, 512M); a full buffer
    slows the camera down."""
    max_frame_gap: Annotated[int, Field(gt=0, le=INT64_MAX)] = DEFAULT_MAX_FRAME_GAP
    """A frame id more than this many ids beyond the highest seen is rejected as implausible."""
    flush_interval: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 1.0
    """Seconds between flushes to disk: what a crash can lose at most."""
    compression_threads: Annotated[int, Field(ge=0, le=64)] = 0
    """Threads that compress chunks (a count); 0 means one per core."""
    shard: Shard | None = None
    """Set by the writer that shares an acquisition among several processes: this process
    writes only its part file (output), in the order frames come; not for users."""
    data_root: str = ""
    """When set, every output file must lie below this folder once links are followed
    (checked as each file opens, so a link placed after the start cannot lead elsewhere)."""
    live_stream: OptionalAddress = ""
    """Publish written frames (Array-1.0, raw pixels) on a ZeroMQ PUB socket bound here for
    live viewers, e.g. tcp://0.0.0.0:8090; '' for none."""
    live_stream_every: Annotated[int, Field(ge=1, le=INT64_MAX)] = 10
    """With live_stream: publish every N-th frame written (1: all)."""


class StartRequest(RequestSettings):
    """The settings of one acquisition as ``POST /start_pco_writer`` carries them.

    pco_rclient sends every value as a string (``"100"``); they are converted by the same
    field types as :class:`AcquisitionSettings`. Extra keys that it sends (``n_modules``,
    ``flask_api_address``, ``statistics_monitor_address``...) are ignored.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)

    connection_address: CameraAddress
    """Where the camera binds PUSH, tcp://HOST:PORT: the writer's ``connect``."""
    output_file: OutputTemplate
    """The output path (a printf template with roll-over); relative paths are below the data
    root: the writer's ``output`` once resolved."""
    n_frames: FrameCount
    """Frames to write; 0 writes until stopped. Required: pco_rclient always sends it."""
    dataset_name: DatasetName
    """data, data_white, data_black... Required: pco_rclient always sends it."""
    writer_rest_port: Port | None = None
    """The writer's REST port (pco_rclient 0.4)."""
    rest_api_port: Port | None = None
    """Older clients name the writer's REST port so."""

    @property
    def writer_port(self) -> int | None:
        """The writer's REST port, whichever key carried it."""
        return self.writer_rest_port or self.rest_api_port

    def to_settings(self, **resolved: Any) -> AcquisitionSettings:
        """The writer's settings: the shared fields as sent, the two renamed ones, and what
        the server resolved (``output``, ``layout``, ``data_root``) in ``resolved``.

        Raises:
            pydantic.ValidationError: a resolved value is not valid.
        """
        shared = {name: getattr(self, name) for name in RequestSettings.model_fields}
        renamed = {"connect": self.connection_address, "output": self.output_file}
        return AcquisitionSettings.model_validate({**shared, **renamed, **resolved})


def validate_field(model: type[BaseModel], name: str, value: Any) -> Any:
    """One value checked and converted by the type of ``model``'s field ``name`` alone.

    Raises:
        ConfigError: ``name: what is wrong (got value)``.
    """
    try:
        return _adapter(model, name).validate_python(value)
    except ValidationError as exc:
        raise ConfigError(describe_validation(exc, prefix=name)) from None


@cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    field = model.model_fields[name]
    return TypeAdapter(Annotated[field.annotation, field])  # type: ignore[arg-type]

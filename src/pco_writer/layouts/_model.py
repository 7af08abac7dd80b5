"""The layout model: a tree of groups, datasets, attributes and links, each value with its source.

A layout file (YAML or JSON) reads like the HDF5 file it describes::

    name: example
    parameters:                        # values set over REST (/parameters), typed
      sample_name: {type: NX_CHAR, required: true}
    attributes: {default: entry}       # attributes of the file's root
    tree:
      entry:
        NX_class: NXentry
        entries:
          title: {parameter: sample_name}
          data: {frames: {append: true}}          # where the frames go
          angle: {header: angle, dtype: float64}  # a header field, one value per frame
          n_frames: {writer: frame_count}         # a value the writer knows
          definition: NXtomo                      # a constant
          plot: {link: /entry/data}

This module only describes; :mod:`pco_writer.layouts._load` builds the model from a file and
reports mistakes by node path, and :mod:`pco_writer.h5._layout_file` writes it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "NX_TYPES",
    "WRITER_VALUES",
    "Attribute",
    "Dataset",
    "Frames",
    "Group",
    "Layout",
    "Linear",
    "Link",
    "Node",
    "Parameter",
    "Source",
]

NXType = Literal["NX_CHAR", "NX_INT", "NX_FLOAT", "NX_NUMBER", "NX_DATE_TIME", "NX_BOOLEAN"]
NX_TYPES: tuple[str, ...] = NXType.__args__  # type: ignore[attr-defined]

WriterValue = Literal[
    "dataset_name", "file_name", "start_time", "end_time", "first_index", "first_frame_id",
    "offset", "frame_count", "n_frames_requested", "n_frames_written", "image_nr_low",
    "image_nr_high", "end_reason", "missing_frame_ids", "missing_frame_ranges",
    "n_frames_missing", "origin",
]  # fmt: skip
WRITER_VALUES: tuple[str, ...] = WriterValue.__args__  # type: ignore[attr-defined]
"""Values the writer knows: see docs/decisions/0020-layout-files.md for each one's meaning."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Parameter(_Strict):
    """A value set over REST (``/parameters``) and written where the layout uses it."""

    type: NXType
    """The NeXus type; values of another type are refused."""
    units: str = ""
    """Written as ``@units`` of every dataset that takes its value from this parameter."""
    required: bool = False
    """When still missing as frames stop, the writer waits ("waiting for parameters")."""
    default: Any = None
    """The value used while none was set (a required parameter has none)."""
    doc: str = ""
    """What it is, for ``pco-writer layout show`` and the REST API."""


class Linear(_Strict):
    """``start + step * i`` for the frame at acquisition index ``i`` (per-frame datasets only)."""

    start: Source
    """Where the first value comes from (e.g. a parameter)."""
    step: Source
    """Where the increment comes from."""


class Source(_Strict):
    """Where a value comes from: exactly one of value, parameter, header, writer, linear."""

    value: Any = None
    """A constant (a number, a string, a list)."""
    parameter: str | None = None
    """The name of a parameter declared under ``parameters``."""
    header: str | None = None
    """A stream header field (``frame``, ``shape``, ``type``... or any extra field)."""
    writer: WriterValue | None = None
    """A value the writer knows (frame_count, start_time, dataset_name...)."""
    linear: Linear | None = None
    """A per-frame ramp, e.g. rotation angles from a start angle and a step."""
    of: str | None = None
    """With ``writer: origin``: the per-frame dataset whose origin to describe."""
    fallback: Source | None = None
    """With ``header``: the value for frames whose header lacks the field."""
    map: dict[str, Any] | None = None
    """Translate the value through this table (e.g. dataset_name -> image_key)."""
    map_default: Any = None
    """The result for a value the map does not have; without it such a value is refused."""
    dtype: str | None = None
    """numpy dtype name (uint16, float64...), ``string`` or ``bool``; inferred when omitted."""

    @property
    def kind(self) -> str:
        """Which source this is: value, parameter, header, writer or linear."""
        for name in ("parameter", "header", "writer", "linear"):
            if getattr(self, name) is not None:
                return name
        return "value"


class Attribute(Source):
    """An HDF5 attribute; a header source gives the value of the first frame."""


class Frames(_Strict):
    """Marks the dataset that receives the frames (exactly one per layout)."""

    append: bool = False
    """Append to the dataset when the file already has it (successive acquisitions)."""


class Dataset(Source):
    """An HDF5 dataset."""

    frames: Frames | None = None
    """This dataset receives the frames: (n, y, x), one chunk per frame."""
    per_frame: bool | None = None
    """One value per frame, aligned with the frames (default: true for header sources)."""
    shape: list[int | Literal["ndim"]] = Field(default_factory=list)
    """Shape of one frame's value; ``ndim`` is the number of image dimensions."""
    fill: Any = None
    """Value of a per-frame dataset where no frame (or no header field) gave one."""
    units: str = ""
    """Written as ``@units``."""
    chunk: int = Field(default=4096, gt=0)
    """Values per HDF5 chunk of a per-frame dataset."""
    on_append: Literal["keep", "replace"] | None = None
    """In a file that has it already: keep (default for constants) or replace."""
    attributes: dict[str, Attribute] = Field(default_factory=dict)
    """Attributes of the dataset."""
    doc: str = ""
    """What it is (not written)."""

    @property
    def is_per_frame(self) -> bool:
        """True for one value per frame (header sources unless ``per_frame: false``)."""
        if self.per_frame is not None:
            return self.per_frame
        return self.kind in ("header", "linear")


class Link(_Strict):
    """A soft link; its target gets the NeXus ``@target`` attribute."""

    link: str
    """The absolute path of the linked dataset or group."""


class Group(_Strict):
    """An HDF5 group, optionally a NeXus class."""

    NX_class: str | None = None  # noqa: N815 - the NeXus attribute's own spelling
    """The NeXus class (NXentry, NXdata...), written as ``@NX_class``."""
    attributes: dict[str, Attribute] = Field(default_factory=dict)
    """Attributes of the group."""
    entries: dict[str, Node] = Field(default_factory=dict)
    """Its groups, datasets and links, by name; ``{dataset_name}`` in a name is replaced."""
    doc: str = ""
    """What it is (not written)."""


Node = Group | Dataset | Link


class Layout(_Strict):
    """A whole layout file."""

    name: str
    """Its name (built-in layouts: tomcat, nxtomo)."""
    description: str = ""
    """What it writes."""
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    """The REST parameters it accepts."""
    attributes: dict[str, Attribute] = Field(default_factory=dict)
    """Attributes of the file's root group."""
    tree: dict[str, Node] = Field(default_factory=dict)
    """The groups, datasets and links below the root."""

    def walk(self) -> list[tuple[str, Node]]:
        """Every node with its absolute path template, parents before children."""
        out: list[tuple[str, Node]] = []
        _walk(self.tree, "", out)
        return out

    def frames_path(self) -> str:
        """The path template of the dataset that receives the frames."""
        return next(p for p, n in self.walk() if isinstance(n, Dataset) and n.frames)


def _walk(entries: dict[str, Node], prefix: str, out: list[tuple[str, Node]]) -> None:
    for name, node in entries.items():
        path = f"{prefix}/{name}"
        out.append((path, node))
        if isinstance(node, Group):
            _walk(node.entries, path, out)


Linear.model_rebuild()
Source.model_rebuild()
Group.model_rebuild()

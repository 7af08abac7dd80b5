"""Layouts: the HDF5/NeXus file a user specifies, as YAML or JSON; tomcat and nxtomo built in."""

from pco_writer.layouts._load import builtin_names, load_layout, parse_layout, read_layout_text
from pco_writer.layouts._model import (
    NX_TYPES,
    WRITER_VALUES,
    Attribute,
    Dataset,
    Frames,
    Group,
    Layout,
    Linear,
    Link,
    Node,
    Parameter,
    Source,
)
from pco_writer.layouts._parameters import (
    ParameterSet,
    check_parameters,
    check_value,
    parameter_from_text,
)

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
    "ParameterSet",
    "Source",
    "builtin_names",
    "check_parameters",
    "check_value",
    "load_layout",
    "parameter_from_text",
    "parse_layout",
    "read_layout_text",
]

"""Reading layout files (YAML or JSON) and the built-in layouts, with mistakes named by path.

Every mistake is reported with the path of the node it is in (``/entry/data@units: ...``), all
of them at once, as a :class:`~pco_writer.errors.LayoutError`, before any acquisition starts.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from pco_writer.errors import ConfigError, LayoutError, describe_error
from pco_writer.layouts._model import (
    Dataset,
    Frames,
    Group,
    Layout,
    Link,
    Node,
    Parameter,
    Source,
)
from pco_writer.layouts._parameters import check_value
from pco_writer.names import builtin_layouts

__all__ = ["builtin_names", "load_layout", "parse_layout", "read_layout_text"]

_SOURCE_KEYS = ("value", "parameter", "header", "writer", "linear")
M = TypeVar("M", bound=BaseModel)
_NAME = re.compile(r"^[^/{}]+$|^[^/]*\{dataset_name\}[^/]*$")


def builtin_names() -> list[str]:
    """The names of the layouts shipped with the package."""
    return list(builtin_layouts())


def read_layout_text(name_or_file: str) -> tuple[str, str]:
    """The text of a built-in layout or a layout file, and where it came from."""
    if name_or_file in builtin_names():
        ref = resources.files("pco_writer.layouts") / "builtin" / f"{name_or_file}.yaml"
        return ref.read_text(encoding="utf-8"), f"built-in layout {name_or_file!r}"
    path = Path(name_or_file)
    if not path.is_file():
        raise LayoutError(
            f"no layout {name_or_file!r}: neither a built-in layout "
            f"({', '.join(builtin_names())}) nor a layout file"
        )
    try:
        return path.read_text(encoding="utf-8"), f"layout file {path}"
    except (OSError, UnicodeDecodeError) as exc:
        raise LayoutError(f"cannot read layout file {path}: {exc}") from None


def load_layout(name_or_file: str) -> Layout:
    """Load a built-in layout by name, or a layout file (YAML, or JSON by its ``.json`` suffix).

    Raises:
        LayoutError: naming each mistake with its node path.
    """
    text, origin = read_layout_text(name_or_file)
    try:
        raw = json.loads(text) if name_or_file.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise LayoutError(f"{origin} is not valid YAML/JSON: {exc}") from None
    return parse_layout(raw, origin)


def parse_layout(raw: Any, origin: str = "layout") -> Layout:
    """Build and check a layout from parsed YAML/JSON.

    Every mistake is found in one pass: a part that is wrong itself (a parameter, a node, the
    head) is reported and replaced by a stand-in while the rest is checked, so a mistake
    never hides another one, and a stand-in adds no mistake of its own.

    Raises:
        LayoutError: listing every mistake, each with its node path.
    """
    errors: list[str] = []
    if not isinstance(raw, dict):
        raise LayoutError(f"{origin}: must be a mapping with name, parameters and tree")
    head = {k: v for k, v in raw.items() if k not in ("tree", "parameters")}
    layout = _validate(Layout, head, "", errors) or Layout(name=str(raw.get("name", "?")))
    parameters = _parameters(raw.get("parameters", {}), errors)
    tree = _entries(raw.get("tree", {}), "", errors)
    layout = layout.model_copy(update={"tree": tree, "parameters": parameters})
    _check_layout(layout, errors)
    if errors:
        listing = "\n  ".join(errors)
        raise LayoutError(f"{origin} has {len(errors)} mistake(s):\n  {listing}")
    return layout


def _parameters(raw: Any, errors: list[str]) -> dict[str, Parameter]:
    """Each parameter checked alone; a wrong one stays declared (as text) for the checks."""
    if not isinstance(raw, dict):
        errors.append("parameters: must be a mapping of names to {type: NX_..., ...}")
        return {}
    out: dict[str, Parameter] = {}
    for name, spec in raw.items():
        where = f"parameters.{name}"
        if not isinstance(spec, dict):
            errors.append(f"{where}: expected a mapping such as {{type: NX_FLOAT}} (got {spec!r})")
            out[str(name)] = _STAND_IN_PARAMETER
            continue
        out[str(name)] = _validate(Parameter, spec, where, errors) or _STAND_IN_PARAMETER
    return out


def _entries(raw: Any, path: str, errors: list[str]) -> dict[str, Node]:
    if not isinstance(raw, dict):
        errors.append(f"{path or '/'}: entries must be a mapping of names to nodes")
        return {}
    out: dict[str, Node] = {}
    for name, value in raw.items():
        child = f"{path}/{name}"
        if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
            errors.append(
                f"{child}: bad name; a name has no '/' and its only placeholder is {{dataset_name}}"
            )
            continue
        node = _node(value, child, errors)
        if node is not None:
            out[name] = node
    return out


def _node(raw: Any, path: str, errors: list[str]) -> Node | None:
    if not isinstance(raw, dict):
        return _validate(Dataset, {"value": raw}, path, errors)
    if "link" in raw:
        return _validate(Link, raw, path, errors)
    if "entries" in raw or "NX_class" in raw:
        entries = _entries(raw.get("entries", {}), path, errors)
        group = _validate(Group, {k: v for k, v in raw.items() if k != "entries"}, path, errors)
        return (group or Group()).model_copy(update={"entries": entries})
    if "frames" in raw or any(k in raw for k in _SOURCE_KEYS):
        return _validate(Dataset, raw, path, errors) or _stand_in_dataset(raw)
    errors.append(
        f"{path}: cannot tell what this node is; a group has NX_class or entries, a dataset "
        f"one of {', '.join(_SOURCE_KEYS)} or frames, a link has link (keys given: "
        f"{', '.join(map(str, raw)) or 'none'})"
    )
    return None


_STAND_IN_PARAMETER = Parameter(type="NX_CHAR")
"""In place of a parameter that is wrong itself: it is still declared for the other checks."""


def _stand_in_dataset(raw: dict[str, Any]) -> Dataset:
    """In place of a dataset that is wrong itself, so that the frames count, links and
    ``of:`` that name it are checked as if it were right (and add no mistake of their own)."""
    if "frames" in raw:
        return Dataset(frames=Frames(append=True))
    if raw.get("per_frame") is True or "header" in raw or "linear" in raw:
        return Dataset(header="frame")
    return Dataset(value=0)


def _validate(model: type[M], raw: dict[str, Any], path: str, errors: list[str]) -> M | None:
    raw = _expand_attributes(raw)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors.extend(_describe(err, model, path) for err in exc.errors())
        return None


def _expand_attributes(raw: dict[str, Any]) -> dict[str, Any]:
    """``attributes: {units: mm}`` is short for ``attributes: {units: {value: mm}}``."""
    attrs = raw.get("attributes")
    if not isinstance(attrs, dict):
        return raw
    expanded = {k: v if isinstance(v, dict) else {"value": v} for k, v in attrs.items()}
    return {**raw, "attributes": expanded}


def _describe(err: Any, model: type[BaseModel], path: str) -> str:
    loc = [str(p) for p in err["loc"]]
    where = path or "/"
    if loc and loc[0] == "attributes" and len(loc) > 1:
        where, loc = f"{path}@{loc[1]}", loc[2:]
    elif loc and loc[0] == "parameters" and len(loc) > 1:
        where, loc = f"parameters.{loc[1]}", loc[2:]
    key = ".".join(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = Parameter if where.startswith("parameters.") else model
        allowed = ", ".join(f for f in owner.model_fields if f != "entries")
        return f"{where}: unknown key {key!r} (allowed: {allowed})"
    if kind == "missing":
        return f"{where}: {key} is missing"
    got = err.get("input")
    if kind == "model_type":
        example = "{value: 0} or {parameter: name}"
        return f"{where}: {key}: expected a mapping such as {example} (got {got!r})"
    return f"{where}: {describe_error({**err, 'loc': loc})}"


def _check_layout(layout: Layout, errors: list[str]) -> None:
    for name, param in layout.parameters.items():
        _check_parameter(name, param, errors)
    nodes = dict(layout.walk())
    frames = [p for p, n in nodes.items() if isinstance(n, Dataset) and n.frames]
    if len(frames) != 1:
        errors.append(
            f"/: a layout needs exactly one dataset with 'frames' (where the frames go), "
            f"found {len(frames)}{': ' + ', '.join(frames) if frames else ''}"
        )
    for name, attr in layout.attributes.items():
        _check_source(attr, f"@{name}", layout, nodes, errors, attribute=True)
    for path, node in nodes.items():
        _check_node(path, node, layout, nodes, errors)


def _check_parameter(name: str, param: Parameter, errors: list[str]) -> None:
    where = f"parameters.{name}"
    if param.required and param.default is not None:
        errors.append(f"{where}: a required parameter has no default; drop one of them")
    if param.default is not None:
        try:
            check_value(name, param.type, param.default)
        except ConfigError as exc:
            errors.append(f"{where}: default: {exc}")


def _check_node(
    path: str, node: Node, layout: Layout, nodes: dict[str, Node], errors: list[str]
) -> None:
    if isinstance(node, Link):
        target = nodes.get(node.link)
        if target is None or isinstance(target, Link):
            errors.append(
                f"{path}: link target {node.link!r} is not a group or dataset of this layout"
            )
        return
    for name, attr in node.attributes.items():
        _check_source(attr, f"{path}@{name}", layout, nodes, errors, attribute=True)
    if isinstance(node, Group):
        if node.NX_class is not None and not node.NX_class.startswith("NX"):
            errors.append(f"{path}: NX_class {node.NX_class!r} is not a NeXus class (NX...)")
        return
    if node.frames is not None:
        _check_frames(path, node, errors)
        return
    _check_source(node, path, layout, nodes, errors, attribute=False)


def _check_frames(path: str, node: Dataset, errors: list[str]) -> None:
    others = sorted(k for k in node.model_fields_set if k in (*_SOURCE_KEYS, "per_frame", "fill"))
    if others:
        errors.append(f"{path}: the frames dataset takes no {', '.join(others)}")
    if "{dataset_name}" not in path and not node.frames.append:  # type: ignore[union-attr]
        errors.append(
            f"{path}: a second acquisition into the same file would find this dataset taken; "
            "put {dataset_name} in its path or set frames: {append: true}"
        )


def _check_source(
    src: Source,
    where: str,
    layout: Layout,
    nodes: dict[str, Node],
    errors: list[str],
    attribute: bool,
) -> None:
    given = [k for k in _SOURCE_KEYS if k in src.model_fields_set]
    if len(given) != 1:
        errors.append(
            f"{where}: needs exactly one source of {', '.join(_SOURCE_KEYS)}, "
            f"got {', '.join(given) or 'none'}"
        )
        return
    per_frame = isinstance(src, Dataset) and src.is_per_frame
    problems = _source_problems(src, layout, nodes, attribute, per_frame)
    errors.extend(f"{where}: {p}" for p in problems)
    if isinstance(src, Dataset):
        errors.extend(f"{where}: {p}" for p in _dataset_problems(src, per_frame))


def _source_problems(
    src: Source, layout: Layout, nodes: dict[str, Node], attribute: bool, per_frame: bool
) -> list[str]:
    out: list[str] = []
    if src.parameter is not None and src.parameter not in layout.parameters:
        declared = ", ".join(layout.parameters) or "none"
        out.append(f"parameter {src.parameter!r} is not declared under parameters ({declared})")
    if src.linear is not None:
        if not per_frame or attribute:
            out.append("linear makes one value per frame; use it on a per-frame dataset")
        for part in (src.linear.start, src.linear.step):
            out.extend(f"linear: {p}" for p in _source_problems(part, layout, nodes, True, False))
    if src.fallback is not None:
        if src.header is None:
            out.append("fallback is for header sources (frames whose header lacks the field)")
        out.extend(
            f"fallback: {p}"
            for p in _source_problems(src.fallback, layout, nodes, attribute, per_frame)
        )
    if (src.writer == "origin") != (src.of is not None):
        out.append("'writer: origin' and 'of: <per-frame dataset path>' go together")
    if src.of is not None:
        target = nodes.get(src.of)
        if not (isinstance(target, Dataset) and target.is_per_frame):
            out.append(f"of: {src.of!r} is not a per-frame dataset of this layout")
    if src.dtype is not None and _dtype_problem(src.dtype):
        out.append(f"dtype {src.dtype!r} is not a numpy dtype name, 'string' or 'bool'")
    elif src.kind == "value" and src.dtype is not None and _cast_problem(src.value, src.dtype):
        out.append(f"value {src.value!r} does not fit dtype {src.dtype}")
    return out


def _dataset_problems(ds: Dataset, per_frame: bool) -> list[str]:
    out: list[str] = []
    if ds.shape and not (per_frame and ds.header is not None):
        out.append("shape is the shape of one frame's header value; only for header datasets")
    if ds.fill is not None and not per_frame:
        out.append("fill is for per-frame datasets")
    checkable = ds.fill is not None and ds.dtype is not None and not _dtype_problem(ds.dtype)
    if checkable and _cast_problem(ds.fill, ds.dtype or ""):
        out.append(f"fill {ds.fill!r} does not fit dtype {ds.dtype}")
    if (
        per_frame
        and ds.kind == "writer"
        and ds.writer in ("missing_frame_ids", "missing_frame_ranges", "origin")
    ):
        out.append(f"writer value {ds.writer!r} is not one value per frame; set per_frame: false")
    return out


def _dtype_problem(name: str) -> bool:
    if name in ("string", "bool"):
        return False
    try:
        np.dtype(name)
    except TypeError:
        return True
    return False


def _cast_problem(value: Any, dtype: str) -> bool:
    if dtype == "string":
        return not isinstance(value, str)
    try:
        arr = np.asarray(value)
        cast = arr.astype(dtype)
        return bool(arr.dtype.kind in "iuf" and not np.all(cast == arr))
    except (TypeError, ValueError, OverflowError):
        return True

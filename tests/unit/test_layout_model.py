"""Layout files: the built-ins load, mistakes are named by node path, parameters are typed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pco_writer.errors import ConfigError, LayoutError, StateError
from pco_writer.layouts import (
    Dataset,
    Group,
    ParameterSet,
    builtin_names,
    load_layout,
    parameter_from_text,
    parse_layout,
)


def minimal(**tree: Any) -> dict[str, Any]:
    return {"name": "t", "tree": {"data": {"frames": {"append": True}}, **tree}}


def test_builtin_layouts_are_tomcat_and_nxtomo_and_load() -> None:
    assert builtin_names() == ["nxtomo", "tomcat"]
    tomcat = load_layout("tomcat")
    assert tomcat.frames_path() == "/exchange/{dataset_name}"
    assert tomcat.parameters == {}
    nxtomo = load_layout("nxtomo")
    assert nxtomo.frames_path() == "/entry/instrument/detector/data"
    assert not any(p.required for p in nxtomo.parameters.values())


def test_nxtomo_layout_tree_has_what_the_definition_requires() -> None:
    nodes = dict(load_layout("nxtomo").walk())
    entry = nodes["/entry"]
    assert isinstance(entry, Group) and entry.NX_class == "NXentry"
    definition = nodes["/entry/definition"]
    assert isinstance(definition, Dataset) and definition.value == "NXtomo"
    for path in ("/entry/sample/name", "/entry/sample/rotation_angle", "/entry/control/data",
                 "/entry/instrument/detector/image_key", "/entry/data/data"):  # fmt: skip
        assert path in nodes, path
    monitor = nodes["/entry/control/data"]
    assert isinstance(monitor, Dataset) and monitor.units in ("", "mA", "A", "uA")


def test_a_json_layout_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(minimal(n={"writer": "frame_count"})))
    layout = load_layout(str(path))
    assert layout.frames_path() == "/data"


def test_a_yaml_layout_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(minimal(title="hello")))
    node = dict(load_layout(str(path)).walk())["/title"]
    assert isinstance(node, Dataset) and node.value == "hello"


def test_an_unknown_layout_name_says_which_are_built_in() -> None:
    with pytest.raises(LayoutError, match="nxtomo, tomcat"):
        load_layout("no-such-layout")


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("tree: {a: [1, 2\n")
    with pytest.raises(LayoutError, match="not valid YAML"):
        load_layout(str(path))


BAD_LAYOUTS = [
    pytest.param({"g": {"NX_class": "NXentry", "entries": {"x": {"valeu": 1}}}},
                 "/g/x: cannot tell what this node is", id="unknown-node"),
    pytest.param({"x": {"value": 1, "unit": "mm"}}, "/x: unknown key 'unit'", id="unknown-key"),
    pytest.param({"x": {"parameter": "energy"}}, "/x: parameter 'energy' is not declared",
                 id="undeclared-parameter"),
    pytest.param({"x": {"writer": "frame_number"}}, "/x: writer: Input should be",
                 id="unknown-writer-value"),
    pytest.param({"x": {"value": 1, "header": "angle"}}, "/x: needs exactly one source",
                 id="two-sources"),
    pytest.param({"x": {"value": 1, "dtype": "uint17"}}, "/x: dtype 'uint17'", id="bad-dtype"),
    pytest.param({"x": {"value": "a", "dtype": "int32"}}, "/x: value 'a' does not fit",
                 id="value-not-of-dtype"),
    pytest.param({"g": {"NX_class": "entry"}}, "/g: NX_class 'entry' is not a NeXus class",
                 id="bad-nx-class"),
    pytest.param({"l": {"link": "/nowhere"}}, "/l: link target '/nowhere'", id="bad-link"),
    pytest.param({"g": {"entries": {"a/b": 1}}}, "/g/a/b: bad name", id="slash-in-name"),
    pytest.param({"x": {"header": "a", "fallback": {"linear": {"start": 0, "step": 1}}}},
                 "/x: fallback.linear.start: expected a mapping", id="linear-parts-are-sources"),
    pytest.param({"g": {"entries": {}, "attributes": {"a": {"linear": {
        "start": {"value": 0}, "step": {"value": 1}}}}}},
                 "/g@a: linear makes one value per frame", id="linear-attribute"),
    pytest.param({"x": {"value": 1, "fill": 0}}, "/x: fill is for per-frame", id="fill-static"),
    pytest.param({"x": {"writer": "origin"}}, "/x: 'writer: origin' and 'of:", id="origin-no-of"),
    pytest.param({"x": {"value": 1, "attributes": {"u": {"value": 1, "dtype": "nope"}}}},
                 "/x@u: dtype 'nope'", id="bad-attribute"),
]  # fmt: skip


@pytest.mark.parametrize(("tree", "message"), BAD_LAYOUTS)
def test_each_mistake_is_reported_with_its_node_path(tree: dict[str, Any], message: str) -> None:
    with pytest.raises(LayoutError) as info:
        parse_layout(minimal(**tree), "mine.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("mine.yaml has ")


def test_every_mistake_is_reported_at_once() -> None:
    raw = minimal(a={"parameter": "p"}, b={"value": 1, "colour": "red"}, c={"link": "/x"})
    with pytest.raises(LayoutError) as info:
        parse_layout(raw)
    text = str(info.value)
    assert "3 mistake(s)" in text
    assert "/a: parameter 'p'" in text and "/b: unknown key 'colour'" in text
    assert "/c: link target '/x'" in text


def test_a_wrong_parameter_or_node_hides_no_other_mistake() -> None:
    """A user saw 2 mistakes, fixed them, and only then a third: a parameter or node that is
    wrong itself used to stop the checks of the rest."""
    raw = {
        "name": "t",
        "parameters": {"energy": {"type": "NX_FLOT"}, "sample": {"type": "NX_CHAR", "requird": 1}},
        "tree": {
            "entry": {
                "NX_class": "NXentry",
                "colour": "red",  # the group itself is wrong: its entries are still checked
                "entries": {
                    "data": {"frames": {"apend": True}},  # wrong, but still the frames dataset
                    "angle": {"header": "angle", "colour": 1},
                    "origin": {"writer": "origin", "of": "/entry/angle"},
                    "plot": {"link": "/entry/angle"},
                    "e": {"parameter": "energy"},  # declared, though wrong: no extra mistake
                    "typo": {"parameter": "energi"},
                    "x": {"value": 1, "dtype": "flot"},
                },
            }
        },
    }
    with pytest.raises(LayoutError) as info:
        parse_layout(raw)
    lines = [line.strip() for line in str(info.value).splitlines()[1:]]
    expected = [
        "parameters.energy: type:", "parameters.sample: unknown key 'requird'",
        "/entry: unknown key 'colour'", "/entry/data: unknown key 'frames.apend'",
        "/entry/angle: unknown key 'colour'", "/entry/typo: parameter 'energi' is not declared",
        "/entry/x: dtype 'flot'",
    ]  # fmt: skip
    assert len(lines) == len(expected), lines
    for prefix in expected:
        assert sum(line.startswith(prefix) for line in lines) == 1, (prefix, lines)


def test_a_layout_needs_exactly_one_frames_dataset() -> None:
    with pytest.raises(LayoutError, match="exactly one dataset with 'frames'.*found 0"):
        parse_layout({"name": "t", "tree": {"x": 1}})
    two = {"name": "t", "tree": {"a": {"frames": {}}, "b": {"frames": {}}}}
    with pytest.raises(LayoutError, match="found 2: /a, /b"):
        parse_layout(two)


def test_frames_without_dataset_name_or_append_would_clash_on_a_second_acquisition() -> None:
    raw = {"name": "t", "tree": {"data": {"frames": {}}}}
    with pytest.raises(LayoutError, match="/data: a second acquisition"):
        parse_layout(raw)
    parse_layout({"name": "t", "tree": {"data": {"frames": {"append": True}}}})
    parse_layout({"name": "t", "tree": {"{dataset_name}": {"frames": {}}}})


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ({"type": "NX_FLOAT", "default": "x"}, "parameters.p: default: parameter 'p' is NX_FLOAT"),
        ({"type": "NX_FLOAT", "required": True, "default": 1.0}, "parameters.p: a required"),
        ({"type": "NX_REAL"}, "parameters.p: type: Input should be"),
        ({"type": "NX_INT", "unit": "mm"}, "parameters.p: unknown key 'unit'"),
    ],
)
def test_parameter_mistakes_name_the_parameter(param: dict[str, Any], message: str) -> None:
    raw = {**minimal(x={"parameter": "p"}), "parameters": {"p": param}}
    with pytest.raises(LayoutError, match=message):
        parse_layout(raw)


@pytest.mark.parametrize(
    ("nx_type", "good", "bad"),
    [
        ("NX_CHAR", "sample A", 3),
        ("NX_INT", 3, 3.5),
        ("NX_INT", -1, True),
        ("NX_FLOAT", 1, "1.0"),
        ("NX_NUMBER", 2.5, None),
        ("NX_BOOLEAN", False, 0),
        ("NX_DATE_TIME", "2024-05-01T12:00:00+02:00", "yesterday"),
    ],
)
def test_parameters_take_values_of_their_nexus_type(nx_type: str, good: Any, bad: Any) -> None:
    layout = parse_layout({**minimal(), "parameters": {"p": {"type": nx_type}}})
    params = ParameterSet(layout.parameters)
    params.set({"p": good})
    assert params.given() == {"p": good}
    with pytest.raises(ConfigError, match=f"parameter 'p' is {nx_type}"):
        params.set({"p": bad})
    assert params.given() == {"p": good}


def test_unknown_parameters_are_refused_and_nothing_is_set() -> None:
    layout = load_layout("nxtomo")
    params = ParameterSet(layout.parameters)
    with pytest.raises(ConfigError, match="unknown parameter.*energy.*sample_name"):
        params.set({"sample_name": "x", "energy": 20.0})
    assert params.given() == {}
    assert params.effective()["sample_name"] == "unknown"
    assert params.types()["start_angle"] == "NX_FLOAT"


def test_required_parameters_are_missing_until_set() -> None:
    raw = {**minimal(), "parameters": {"p": {"type": "NX_INT", "required": True}}}
    params = ParameterSet(parse_layout(raw).parameters)
    assert params.missing_required() == ["p"]
    params.set({"p": 4})
    assert params.missing_required() == []
    assert params.wait_changed(0.01)


def test_parameters_set_once_the_file_is_being_closed_are_refused_not_lost() -> None:
    params = ParameterSet(load_layout("nxtomo").parameters)
    params.set({"sample_name": "wood"})
    params.close()
    with pytest.raises(StateError, match="being closed; set them before it ends"):
        params.set({"sample_name": "late"})
    assert params.given() == {"sample_name": "wood"}


@pytest.mark.parametrize(
    ("text", "nx_type", "value"),
    [
        ("2024", "NX_CHAR", "2024"),  # a text parameter keeps its text
        ("120.5", "NX_FLOAT", 120.5),
        ("3", "NX_INT", 3),
        ("3.5", "NX_INT", 3.5),  # converted as written: the check refuses it by its type
        ("yes", "NX_BOOLEAN", True),
        ("off", "NX_BOOLEAN", False),
        ("far", "NX_FLOAT", "far"),
        ("[1, 2]", None, [1, 2]),  # no layout at hand: JSON where it parses
        ("foam", None, "foam"),
    ],
)
def test_a_parameter_typed_on_the_command_line_takes_the_layouts_type(
    text: str, nx_type: str | None, value: object
) -> None:
    assert parameter_from_text(text, nx_type) == value

"""The layout engine, fed ReceivedFrame batches through H5Sink: no sockets, files in tmp_path."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from _tomcat_reference import TomcatLayout

from pco_writer.buffer import ReceivedFrame
from pco_writer.errors import ConfigError, DatasetExistsError, OutputError
from pco_writer.h5 import FileLayout, H5Sink, OutputFiles
from pco_writer.h5._layout_file import H5Layout
from pco_writer.h5._superblock import clear_open_flags
from pco_writer.layouts import ParameterSet, load_layout, parse_layout
from pco_writer.ledger import FrameLedger
from pco_writer.protocol import parse_header

Extra = Callable[[int], dict[str, Any]]


def acquire(
    layout: FileLayout,
    output: Path | str,
    dataset_name: str = "data",
    n: int = 10,
    shape: tuple[int, ...] = (4, 6),
    skip: tuple[int, ...] = (),
    extra: Extra | None = None,
    per_file: int = 0,
    batch: int = 4,
) -> H5Sink:
    """Feed ``n`` frames (ids from 100, minus ``skip``) into a sink, flushing between batches."""
    ledger = FrameLedger(n)
    files = OutputFiles.from_output(str(output), n, per_file)
    sink = H5Sink(files, dataset_name, ledger, flush_interval=0.0, layout=layout)
    sink.check()
    frames = make_frames(ledger, n, shape, extra, skip)
    for start in range(0, len(frames), batch):
        sink.write(frames[start : start + batch])
        sink.flush_if_due()
    sink.close("completed")
    return sink


def make_frames(
    ledger: FrameLedger,
    n: int,
    shape: tuple[int, ...],
    extra: Extra | None,
    skip: tuple[int, ...] = (),
) -> list[ReceivedFrame]:
    """Frames with ids from 100 (minus ``skip``), placed in ``ledger`` (their index set)."""
    out = []
    for i in (i for i in range(n) if i not in skip):
        header = {"htype": "array-1.0", "shape": list(shape), "frame": 100 + i,
                  "type": "uint16", "endianess": "little"}  # fmt: skip
        header.update(extra(i) if extra else {})
        parsed = parse_header(json.dumps(header))
        data = np.full(shape, i + 1, np.uint16).tobytes()
        out.append(ReceivedFrame(-1, parsed, data, len(data)))
    ledger.decide(out)
    assert ledger.place(out).accepted == out
    return out


def tree(path: Path) -> dict[str, Any]:
    """Every group, dataset and attribute of a file, with dtypes, chunks and values."""
    out: dict[str, Any] = {}

    def visit(name: str, obj: Any) -> None:
        attrs = {k: (type(v).__name__, _plain(v)) for k, v in obj.attrs.items()}
        if isinstance(obj, h5py.Dataset):
            value = obj[()]
            out[name] = ("dataset", str(obj.dtype), obj.shape, obj.maxshape, obj.chunks,
                         _plain(obj.fillvalue), _plain(value), attrs)  # fmt: skip
        else:
            out[name] = ("group", attrs)

    with h5py.File(path, "r") as f:
        out["/"] = ("group", {k: _plain(v) for k, v in f.attrs.items()})
        f.visititems(visit)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return (value.dtype.str if value.dtype != object else "object", value.tolist())
    return value.decode() if isinstance(value, bytes) else value


def tomcat_engine(swmr: bool = True) -> H5Layout:
    return H5Layout(load_layout("tomcat"), swmr=swmr)


def as_hdf5_1_8_format(entry: Any) -> Any:
    """A dataset entry of :func:`tree` from a SWMR file as the HDF5 1.8 format has it: text
    per frame of variable length (chunks of as many bytes of 16-byte references), and the
    frames dataset's image dimensions bounded: what differs between the formats (ADR 0060)."""
    if entry[0] != "dataset":
        return entry
    kind, dtype, shape, maxshape, chunks, fill, (vtype, values), attrs = entry
    if dtype.startswith("|S"):
        dtype, vtype = "object", "object"
        chunks = (chunks[0] * int(entry[1][2:]) // 16, *chunks[1:])
    if len(maxshape) > 1 and chunks == (1, *shape[1:]):  # the frames
        maxshape = (None, *shape[1:])
    return (kind, dtype, shape, maxshape, chunks, fill, (vtype, values), attrs)


@pytest.mark.parametrize(
    "scenario",
    [
        {},
        {"skip": (3, 7)},
        {"n": 11, "per_file": 4, "output": "scan_%03d.h5"},
        {"extra": lambda i: {"angle": 0.5 * i, "tag": "t"}},
        {"shape": (2, 3, 5)},
    ],
    ids=["plain", "lost-frames", "roll-over", "extra-header", "3d-frames"],
)
@pytest.mark.parametrize("swmr", [False, True], ids=["hdf5-1.8-format", "swmr"])
def test_tomcat_layout_file_writes_what_tomcat_file_writes(
    tmp_path: Path, scenario: dict[str, Any], swmr: bool
) -> None:
    output = scenario.pop("output", "scan.h5")
    for name, layout in (("old", TomcatLayout()), ("new", tomcat_engine(swmr))):
        (tmp_path / name).mkdir()
        acquire(layout, tmp_path / name / output, **scenario)
        acquire(layout, tmp_path / name / output, "data_white", **scenario)  # appended
    old = sorted(p.name for p in (tmp_path / "old").iterdir())
    assert old == sorted(p.name for p in (tmp_path / "new").iterdir())
    for file_name in old:
        a, b = tree(tmp_path / "old" / file_name), tree(tmp_path / "new" / file_name)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == (as_hdf5_1_8_format(b[key]) if swmr else b[key]), key
    assert len(a) > 10


def test_a_taken_dataset_name_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "scan.h5"
    acquire(tomcat_engine(), path)
    before = path.read_bytes()
    with pytest.raises(DatasetExistsError, match="'data' already exists"):
        acquire(tomcat_engine(), path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("swmr", [False, True], ids=["hdf5-1.8-format", "swmr"])
def test_a_flushed_file_is_readable_as_a_crash_leaves_it(tmp_path: Path, swmr: bool) -> None:
    layout = H5Layout(load_layout("nxtomo"), swmr=swmr)
    ledger = FrameLedger(8)
    sink = H5Sink(OutputFiles("scan.h5".join([str(tmp_path) + "/", ""])), "data", ledger,
                  flush_interval=0.0, layout=layout)  # fmt: skip
    sink.write(make_frames(ledger, 8, (4, 6), lambda i: {"angle": float(i)})[:5])
    sink.flush_if_due()
    crashed = tmp_path / "crashed.h5"
    shutil.copy(tmp_path / "scan.h5", crashed)  # what kill -9 would leave on disk
    sink.close("completed")
    if swmr:  # a SWMR reader opens it as it is; a plain open needs the flags cleared
        with h5py.File(crashed, "r", swmr=True) as f:
            assert f["entry/instrument/detector/data"].shape == (5, 4, 6)
        assert clear_open_flags(crashed) is not None
    with h5py.File(crashed, "r") as f:
        assert f["entry/instrument/detector/data"].shape == (5, 4, 6)
        assert f["entry/sample/rotation_angle"][()].tolist() == [0, 1, 2, 3, 4]
        assert "end_reason" not in f["entry/acquisitions/data"]  # no end marker: it crashed
    with h5py.File(tmp_path / "scan.h5", "r") as f:
        assert f["entry/acquisitions/data/end_reason"][()] == b"completed"


EVERY_SOURCE = """
name: every-source
parameters:
  sample: {type: NX_CHAR, required: true}
  energy: {type: NX_FLOAT, units: keV, default: 20.0}
  repeats: {type: NX_INT}
  step: {type: NX_FLOAT, default: 0.25}
attributes:
  default: entry
  creator: {writer: file_name}
tree:
  entry:
    NX_class: NXentry
    attributes: {started: {writer: start_time}}
    entries:
      "{dataset_name}":
        NX_class: NXcollection
        entries:
          images: {frames: {}, attributes: {low: {writer: image_nr_low}}}
          frame_id: {header: frame, dtype: int64, fill: -1}
          angle: {header: angle, dtype: float32, units: deg, fallback: {value: -1.0}}
          ramp: {linear: {start: {value: 10.0}, step: {parameter: step}}}
          key: {writer: dataset_name, map: {data: 0}, map_default: 9, per_frame: true,
                dtype: uint8, fill: 3}
          first_type: {header: type, per_frame: false}
          count: {writer: frame_count}
          end: {writer: end_reason}
          missing: {writer: missing_frame_ids}
          first_id: {writer: first_frame_id}
          angle_origin: {writer: origin, of: "/entry/{dataset_name}/angle"}
      sample: {parameter: sample}
      energy: {parameter: energy}
      repeats: {parameter: repeats}
      version: {value: 3, dtype: int16, attributes: {note: constant}}
      names: {value: [a, b]}
      plot: {link: "/entry/{dataset_name}/images"}
"""


def test_a_layout_with_every_kind_of_source_is_written_and_read_back(tmp_path: Path) -> None:
    import yaml

    layout = parse_layout(yaml.safe_load(EVERY_SOURCE))
    params = ParameterSet(layout.parameters)
    params.set({"sample": "rock", "step": 0.5})
    path = tmp_path / "every.h5"
    angle: Extra = lambda i: {"angle": 2.0 * i} if i % 2 == 0 else {}  # noqa: E731
    acquire(H5Layout(layout, params), path, "scan1", n=6, skip=(4,), extra=angle)
    with h5py.File(path, "r") as f:
        assert f.attrs["default"] == "entry" and f.attrs["creator"] == str(path)
        assert "started" in f["entry"].attrs and f["entry"].attrs["NX_class"] == "NXentry"
        g = f["entry/scan1"]
        assert g["images"].shape == (6, 4, 6) and g["images"].attrs["low"] == 1
        assert g["images"][5, 0, 0] == 6 and g["images"][4, 0, 0] == 0  # frame 4 lost
        assert g["frame_id"][()].tolist() == [100, 101, 102, 103, -1, 105]
        assert g["angle"].dtype == np.float32 and g["angle"].attrs["units"] == "deg"
        assert g["angle"][()].tolist() == [0.0, -1.0, 4.0, -1.0, -1.0, -1.0]
        assert g["ramp"][()].tolist() == [10.0, 10.5, 11.0, 11.5, 12.0, 12.5]
        assert g["key"].dtype == np.uint8 and g["key"][()].tolist() == [9, 9, 9, 9, 3, 9]
        assert g["first_type"][()] == b"uint16"
        assert g["count"][()] == 5 and g["first_id"][()] == 100
        assert g["end"][()] == b"completed" and g["missing"][()].tolist() == [104]
        origin = g["angle_origin"][()].decode()
        assert "header field 'angle' for 2 frames" in origin and "3 frames without it" in origin
        assert f["entry/sample"][()] == b"rock"
        assert f["entry/energy"][()] == 20.0 and f["entry/energy"].attrs["units"] == "keV"
        assert "repeats" not in f["entry"]  # optional, not set, no default: left out
        assert (
            f["entry/version"].dtype == np.int16 and f["entry/version"].attrs["note"] == "constant"
        )
        assert [v.decode() for v in f["entry/names"][()]] == ["a", "b"]
        assert f.get("entry/plot", getlink=True).path == "/entry/scan1/images"
        assert g["images"].attrs["target"] == "/entry/scan1/images"


def test_a_required_parameter_never_set_is_left_out(tmp_path: Path) -> None:
    import yaml

    layout = parse_layout(yaml.safe_load(EVERY_SOURCE))
    acquire(H5Layout(layout), tmp_path / "a.h5", "scan1", n=2)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert "sample" not in f["entry"] and f["entry/energy"][()] == 20.0


def test_a_dataset_name_the_layout_cannot_map_is_refused_before_writing(tmp_path: Path) -> None:
    layout = H5Layout(load_layout("nxtomo"))
    with pytest.raises(ConfigError, match="dataset_name 'projections'.*data, data_white"):
        layout.check(tmp_path / "scan.h5", "projections")
    assert not (tmp_path / "scan.h5").exists()


def test_frames_of_another_shape_are_not_appended(tmp_path: Path) -> None:
    path = tmp_path / "scan.h5"
    acquire(H5Layout(load_layout("nxtomo")), path, "data_black", n=2)
    before = path.read_bytes()
    with pytest.raises(OutputError, match=r"cannot append frames of shape \[5, 5\]"):
        acquire(H5Layout(load_layout("nxtomo")), path, "data_white", n=2, shape=(5, 5))
    with h5py.File(path, "r") as f:
        assert "data_white" not in f["entry/acquisitions"]
        assert f["entry/instrument/detector/data"].shape == (2, 4, 6)
    assert len(path.read_bytes()) == len(before)


def test_the_same_dataset_name_twice_in_an_nxtomo_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scan.h5"
    acquire(H5Layout(load_layout("nxtomo")), path, "data_black", n=2)
    before = path.read_bytes()
    with pytest.raises(DatasetExistsError, match="'data_black' already exists"):
        acquire(H5Layout(load_layout("nxtomo")), path, "data_black", n=2)
    assert path.read_bytes() == before


def test_per_frame_values_reach_hdf5_only_at_flush(tmp_path: Path) -> None:
    """Header values are batched in memory: a write adds no per-frame dataset rows."""
    layout = H5Layout(load_layout("tomcat"))
    ledger = FrameLedger(6)
    sink = H5Sink(OutputFiles(str(tmp_path / "a.h5")), "data", ledger, flush_interval=3600.0,
                  layout=layout)  # fmt: skip
    frames = make_frames(ledger, 6, (4, 6), None)
    sink.write(frames[:3])
    sink.write(frames[3:])
    current = sink._open.get(1)
    assert current is not None
    data_file = current._file  # type: ignore[attr-defined]
    assert data_file["measurement/acquisition/data/frame"].shape == (0,)
    assert data_file["exchange/data"].shape == (6, 4, 6)
    sink.close("completed")
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["measurement/acquisition/data/frame"][()].tolist() == list(range(100, 106))


FROM_THE_FIRST_HEADER = """
name: first-header
parameters:
  energy: {type: NX_FLOAT, units: keV, default: 20.0}
tree:
  entry:
    NX_class: NXentry
    attributes:
      first_angle: {header: angle}
      mode: {header: mode, map: {fast: 1}}
    entries:
      "{dataset_name}": {frames: {}}
      first_angle: {header: angle, per_frame: false, attributes: {mode: {header: mode}}}
      energy: {parameter: energy, per_frame: true}
"""


@pytest.mark.parametrize(
    "extra",
    [{}, {"angle": {"a": 1}, "mode": "slow"}, {"angle": "a\x00b", "mode": [1, "x"]}],
    ids=["absent", "unstorable-or-unmapped", "nul-or-mixed-list"],
)
def test_a_header_field_the_first_frame_lacks_or_hdf5_cannot_store_is_left_out(
    tmp_path: Path, extra: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Camera data must not fail the acquisition: such values are skipped, with one warning."""
    import yaml

    layout = parse_layout(yaml.safe_load(FROM_THE_FIRST_HEADER))
    with caplog.at_level("WARNING", "pco_writer.h5"):
        acquire(H5Layout(layout), tmp_path / "a.h5", n=3, extra=lambda i: extra)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["entry/data"].shape == (3, 4, 6)
        assert set(f["entry"].attrs) == {"NX_class"} and "first_angle" not in f["entry"]
    warned = sorted(r.getMessage().split(" left out")[0] for r in caplog.records)
    assert warned == ["/entry/first_angle", "/entry@first_angle", "/entry@mode"]


def test_a_header_field_the_first_frame_has_is_written(tmp_path: Path) -> None:
    import yaml

    layout = parse_layout(yaml.safe_load(FROM_THE_FIRST_HEADER))
    extra: Extra = lambda i: {"angle": 0.5 + i, "mode": "fast"}  # noqa: E731
    acquire(H5Layout(layout), tmp_path / "a.h5", n=3, extra=extra)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["entry"].attrs["first_angle"] == 0.5 and f["entry"].attrs["mode"] == 1
        assert f["entry/first_angle"][()] == 0.5
        assert f["entry/first_angle"].attrs["mode"] == "fast"


def test_a_per_frame_dataset_fed_by_a_parameter_has_the_parameters_units(
    tmp_path: Path,
) -> None:
    import yaml

    layout = parse_layout(yaml.safe_load(FROM_THE_FIRST_HEADER))
    acquire(H5Layout(layout), tmp_path / "a.h5", n=3)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["entry/energy"][()].tolist() == [20.0, 20.0, 20.0]
        assert f["entry/energy"].attrs["units"] == "keV"


PER_FRAME_TEXT = """
name: per-frame-text
tree:
  entry:
    entries:
      "{dataset_name}": {frames: {}}
      comment: {header: comment, dtype: string}
"""


def test_a_per_frame_text_value_hdf5_cannot_store_is_left_out_for_that_frame(
    tmp_path: Path,
) -> None:
    import yaml

    layout = parse_layout(yaml.safe_load(PER_FRAME_TEXT))
    comments = ["ok", {"not": "text"}, "\ud800", 5, True, [1, 2], "a\x00b"]
    acquire(H5Layout(layout), tmp_path / "a.h5", n=7, extra=lambda i: {"comment": comments[i]})
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["entry/data"].shape == (7, 4, 6)
        assert [c.decode() for c in f["entry/comment"][()]] == ["ok", "", "", "5", "true", "", ""]


def test_a_late_frame_fills_its_row_and_leaves_the_rows_flushed_before_as_they_were(
    tmp_path: Path,
) -> None:
    ledger = FrameLedger(0)
    sink = H5Sink(OutputFiles(str(tmp_path / "late.h5")), "data", ledger, flush_interval=0.0,
                  layout=tomcat_engine())  # fmt: skip
    frames = make_frames(ledger, 12, (4, 6), lambda i: {"tag": f"t{i}"})
    sink.write([f for f in frames if f.index not in (5, 9)])  # 5 and 9 late; 10, 11 after 9
    sink.flush_if_due()
    sink.write([frames[5]])
    sink.flush_if_due()
    sink.close("completed")
    with h5py.File(tmp_path / "late.h5", "r") as f:
        group = f["measurement/acquisition/data"]
        no_frame = np.iinfo(np.uint64).max
        assert group["frame"][:].tolist() == [100 + i if i != 9 else no_frame for i in range(12)]
        assert [t.decode() for t in group["tag"][:]] == [
            f"t{i}" if i != 9 else "" for i in range(12)
        ]
        assert group["missing_frame_ids"][:].tolist() == [109]


def test_per_frame_values_cost_no_chunks_across_a_long_gap(tmp_path: Path) -> None:
    ledger = FrameLedger(0, max_frame_gap=10**6)
    sink = H5Sink(OutputFiles(str(tmp_path / "gap.h5")), "data", ledger, flush_interval=0.0,
                  layout=H5Layout(load_layout("nxtomo")))  # fmt: skip
    frames = make_frames(ledger, 2, (4, 6), lambda i: {"angle": 1.5})
    far = make_frames(FrameLedger(0), 1, (4, 6), lambda i: {"angle": 2.5})[0]
    far.header = far.header.with_frame(100 + 500_000)
    assert ledger.place([far]).accepted == [far]
    sink.write([*frames, far])
    sink.close("stopped")
    with h5py.File(tmp_path / "gap.h5", "r") as f:
        angle = f["entry/sample/rotation_angle"]
        assert angle.shape[0] == 500_001
        assert angle[0] == 1.5 and angle[500_000] == 2.5 and angle[250_000] == 0
        assert angle.id.get_num_chunks() == 2  # two chunks of 4096 rows, nothing between

"""Layouts end to end: camera simulator -> Writer -> layout file, over ZMQ on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import httpx
import pytest

from pco_writer.api import ServerThread, build_app
from pco_writer.errors import ConfigError, DatasetExistsError, LayoutError, StateError
from pco_writer.settings import AcquisitionSettings
from pco_writer.simulate import CameraSimulator
from pco_writer.writer import Writer, WriterStatus

TIMEOUT = 20.0
REQUIRED = """
name: needs-sample
parameters:
  sample: {type: NX_CHAR, required: true}
  energy: {type: NX_FLOAT, units: keV}
tree:
  entry:
    NX_class: NXentry
    entries:
      "{dataset_name}": {frames: {}}
      sample: {parameter: sample}
      energy: {parameter: energy}
"""


class Camera:
    """A simulator sending ``frames`` frames from a thread; closed with linger 0."""

    def __init__(self, frames: int) -> None:
        self.sim = CameraSimulator("tcp://127.0.0.1:*", shape=(8, 12), frames=frames)
        self.address = self.sim.bind()
        self.thread = threading.Thread(target=self.sim.run, daemon=True)

    def close(self) -> None:
        self.sim.stop()
        self.thread.join(TIMEOUT)
        self.sim.close(0)


@pytest.fixture
def camera() -> Iterator[Any]:
    cameras: list[Camera] = []

    def make(frames: int) -> Camera:
        cameras.append(Camera(frames))
        return cameras[-1]

    yield make
    for cam in cameras:
        cam.close()


def run(camera: Any, output: Path, dataset_name: str, layout: str, n: int = 5) -> Writer:
    cam = camera(n)
    settings = AcquisitionSettings(
        connect=cam.address, output=str(output), n_frames=n, dataset_name=dataset_name,
        layout=layout, flush_interval=0.1,
    )  # fmt: skip
    writer = Writer(settings)
    writer.start()
    cam.thread.start()
    return writer


def wait_for(predicate: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_scan_of_darks_and_projections_appends_into_one_nxtomo_file(
    tmp_path: Path, camera: Any
) -> None:
    path = tmp_path / "scan.h5"
    for name, n in (("data_black", 3), ("data", 5)):
        writer = run(camera, path, name, "nxtomo", n)
        assert writer.wait(TIMEOUT)
        assert writer.statistics()["status"] == "finished"
        assert writer.statistics()["missing_parameters"] == []
    before = path.read_bytes()
    with pytest.raises(DatasetExistsError):
        Writer(AcquisitionSettings(connect="tcp://127.0.0.1:1", output=str(path),
                                   dataset_name="data", layout="nxtomo")).start()  # fmt: skip
    assert path.read_bytes() == before
    with h5py.File(path, "r") as f:
        assert f["entry/instrument/detector/image_key"][()].tolist() == [2] * 3 + [0] * 5
        assert f["entry/instrument/detector/data"].shape == (8, 8, 12)


def test_a_missing_required_parameter_holds_the_file_until_it_arrives(
    tmp_path: Path, camera: Any
) -> None:
    layout = tmp_path / "needs.yaml"
    layout.write_text(REQUIRED)
    writer = run(camera, tmp_path / "a.h5", "data", str(layout))
    wait_for(lambda: writer.status is WriterStatus.WAITING_FOR_PARAMETERS)
    assert writer.statistics()["missing_parameters"] == ["sample"]
    assert not writer.wait(0.3)  # still waiting
    writer.set_parameters({"sample": "rock", "energy": 21})
    assert writer.wait(TIMEOUT)
    stats = writer.statistics()
    assert stats["status"] == "finished" and stats["missing_parameters"] == []
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["entry/sample"][()] == b"rock" and f["entry/energy"][()] == 21.0
        assert f["entry/energy"].attrs["units"] == "keV"
        assert f["entry/data"].shape == (5, 8, 12)


def test_stopping_again_writes_the_file_without_the_missing_parameter(
    tmp_path: Path, camera: Any
) -> None:
    layout = tmp_path / "needs.yaml"
    layout.write_text(REQUIRED)
    writer = run(camera, tmp_path / "a.h5", "data", str(layout))
    wait_for(lambda: writer.status is WriterStatus.WAITING_FOR_PARAMETERS)
    writer.stop()
    assert writer.wait(TIMEOUT)
    stats = writer.statistics()
    assert stats["status"] == "finished" and stats["missing_parameters"] == ["sample"]
    assert stats["n_written_frames"] == 5
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert "sample" not in f["entry"] and f["entry/data"].shape == (5, 8, 12)


def test_writer_parameters_are_the_layouts_typed(tmp_path: Path) -> None:
    settings = AcquisitionSettings(connect="tcp://127.0.0.1:1", output=str(tmp_path / "a.h5"),
                          layout="nxtomo")  # fmt: skip
    writer = Writer(settings)
    assert writer.parameter_types()["start_angle"] == "NX_FLOAT"
    assert writer.parameter_types()["sample_name"] == "NX_CHAR"
    with pytest.raises(ConfigError, match="unknown parameter.*energy"):
        writer.set_parameters({"energy": 3.0})
    with pytest.raises(ConfigError, match="'start_angle' is NX_FLOAT"):
        writer.set_parameters({"start_angle": "ten"})
    writer.set_parameters({"start_angle": 10})
    assert writer.parameters()["start_angle"] == 10.0
    assert writer.parameters()["sample_name"] == "unknown"
    assert (
        Writer(AcquisitionSettings(connect="tcp://127.0.0.1:1", output="x.h5")).parameter_types()
        == {}
    )


def test_a_bad_layout_file_is_a_layout_error_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntree:\n  data: {frames: {}, colour: red}\n")
    settings = AcquisitionSettings(
        connect="tcp://127.0.0.1:1", output=str(tmp_path / "a.h5"), layout=str(bad)
    )
    with pytest.raises(LayoutError, match="/data: unknown key 'colour'"):
        Writer(settings)
    assert not (tmp_path / "a.h5").exists()


STORED_AT_CLOSE = """
name: stored-at-close
parameters:
  count: {type: NX_INT}
  note: {type: NX_CHAR}
tree:
  entry:
    NX_class: NXentry
    attributes:
      end_reason: {writer: end_reason}
      first_angle: {header: angle}
    entries:
      "{dataset_name}": {frames: {}}
      count: {parameter: count}
      note: {parameter: note}
"""


@pytest.mark.parametrize(
    ("values", "words"),
    [({"count": 2**63}, "'count' is NX_INT"), ({"count": -(2**63) - 1}, "'count' is NX_INT"),
     ({"note": "a\x00b"}, "'note' is NX_CHAR.*without NUL")],
    ids=["int64+1", "int64-1", "nul"],
)  # fmt: skip
def test_a_value_hdf5_cannot_store_is_refused_and_the_acquisition_still_completes(
    tmp_path: Path, camera: Any, values: dict[str, Any], words: str
) -> None:
    """Once accepted, such a value made the close fail: the run ended as an error."""
    layout = tmp_path / "close.yaml"
    layout.write_text(STORED_AT_CLOSE)
    writer = run(camera, tmp_path / "a.h5", "data", str(layout), n=3)
    with pytest.raises(ConfigError, match=words):
        writer.set_parameters(values)
    assert writer.wait(TIMEOUT)
    stats = writer.statistics()
    assert (stats["status"], stats["end_reason"], stats["n_written_frames"]) == (
        "finished", "completed", 3)  # fmt: skip
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["entry"].attrs["end_reason"] == "completed"
        assert "count" not in f["entry"] and "note" not in f["entry"]


def test_a_header_field_the_camera_does_not_send_leaves_out_its_attribute_not_the_run(
    tmp_path: Path, camera: Any
) -> None:
    layout = tmp_path / "close.yaml"
    layout.write_text(STORED_AT_CLOSE)
    writer = run(camera, tmp_path / "a.h5", "data", str(layout), n=3)  # no 'angle' sent
    assert writer.wait(TIMEOUT)
    stats = writer.statistics()
    assert (stats["status"], stats["n_written_frames"], stats["error"]) == ("finished", 3, "")
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert "first_angle" not in f["entry"].attrs
        assert f["entry/data"].shape == (3, 8, 12)


def test_parameters_posted_after_the_file_is_closed_get_409_not_silently_lost(
    tmp_path: Path, camera: Any
) -> None:
    writer = run(camera, tmp_path / "t.h5", "data", "nxtomo", n=3)
    server = ServerThread(build_app(writer), "127.0.0.1", 0).start()
    try:
        assert writer.wait(TIMEOUT)
        with httpx.Client(base_url=server.url, timeout=5) as http:
            answer = http.post("/parameters", json={"sample_name": "mouse-42"})
            after = http.get("/parameters").json()["parameters"]
    finally:
        server.stop()
    assert answer.status_code == 409
    assert "acquisition has ended" in answer.json()["detail"]
    assert "set them before it ends" in answer.json()["detail"]
    assert after["sample_name"] == "unknown"
    with pytest.raises(StateError, match="cannot set parameters"):
        writer.set_parameters({"sample_name": "mouse-42"})

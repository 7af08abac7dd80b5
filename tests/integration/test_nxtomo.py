"""An NXtomo scan (darks, flats, projections) that the NeXus readers of the field accept.

The scan's three acquisitions are fed through H5Sink as ReceivedFrame batches (no sockets);
the readers are ESRF's ``nxtomo`` and ``nexusformat`` (its validator, against the NXDL files
shipped in tests/data/nxdl, so nothing downloads).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from pco_writer.buffer import ReceivedFrame
from pco_writer.h5 import H5Sink, OutputFiles
from pco_writer.h5._layout_file import H5Layout
from pco_writer.layouts import ParameterSet, load_layout
from pco_writer.ledger import FrameLedger
from pco_writer.protocol import parse_header

NXDL = Path(__file__).parent.parent / "data" / "nxdl"
SHAPE = (6, 8)
N_DARK, N_FLAT, N_PROJ = 3, 4, 9


def acquire(
    path: Path,
    dataset_name: str,
    n: int,
    angles: bool,
    params: dict[str, Any] | None = None,
    angle_of: Any = lambda i: 20.0 * i,
) -> None:
    layout = load_layout("nxtomo")
    parameters = ParameterSet(layout.parameters)
    parameters.set(params or {})
    ledger = FrameLedger(n)
    sink = H5Sink(OutputFiles(str(path)), dataset_name, ledger, flush_interval=0.0,
                  layout=H5Layout(layout, parameters))  # fmt: skip
    sink.check()
    frames = []
    for i in range(n):
        header: dict[str, Any] = {"htype": "array-1.0", "shape": list(SHAPE), "frame": 50 + i,
                                  "type": "uint16", "endianess": "little"}  # fmt: skip
        if angles:
            header["angle"] = angle_of(i)
        parsed = parse_header(json.dumps(header))
        data = np.full(SHAPE, {"data_black": 10, "data_white": 1000}.get(dataset_name, 500) + i,
                       np.uint16).tobytes()  # fmt: skip
        frames.append(ReceivedFrame(-1, parsed, data, len(data)))
    ledger.decide(frames)
    ledger.place(frames)
    for start in range(0, n, 4):
        sink.write(frames[start : start + 4])
        sink.flush_if_due()
    sink.close("completed")


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Darks, then flats, then projections with an angle header, appended into one file."""
    path = tmp_path_factory.mktemp("nxtomo") / "scan.h5"
    acquire(path, "data_black", N_DARK, angles=False)
    acquire(path, "data_white", N_FLAT, angles=False, params={"sample_name": "wood"})
    acquire(path, "data", N_PROJ, angles=True)  # keeps the sample name set before
    return path


KEYS = [2] * N_DARK + [1] * N_FLAT + [0] * N_PROJ
ANGLES = [0.0] * (N_DARK + N_FLAT) + [20.0 * i for i in range(N_PROJ)]


def test_esrf_nxtomo_loads_the_scan_with_its_image_keys_and_angles(scan: Path) -> None:
    from nxtomo import NXtomo

    tomo = NXtomo().load(str(scan), "entry", detector_data_as="as_numpy_array")
    detector = tomo.instrument.detector
    assert [int(k.value) for k in detector.image_key] == KEYS
    assert np.asarray(tomo.sample.rotation_angle.magnitude).tolist() == ANGLES
    assert str(tomo.sample.rotation_angle.units) == "degree"
    assert detector.data.shape == (len(KEYS), *SHAPE)
    assert detector.data[0, 0, 0] == 10 and detector.data[N_DARK, 0, 0] == 1000
    assert detector.data[-1, 0, 0] == 500 + N_PROJ - 1
    assert tomo.sample.name == "wood"


def test_nexusformat_validator_finds_no_error_against_nxtomo(scan: Path) -> None:
    from nexusformat.nexus.validate import validate_application, validate_file

    n_warnings, n_errors = validate_application(
        str(scan), path="/entry", application="NXtomo", definitions=str(NXDL)
    )
    assert n_errors == 0
    n_warnings, n_errors = validate_file(str(scan), definitions=str(NXDL))
    assert n_errors == 0


def test_nexusformat_reads_the_default_plot(scan: Path) -> None:
    from nexusformat.nexus import nxload

    root = nxload(str(scan))
    try:
        plottable = root.plottable_data
        assert plottable.nxpath == "/entry/data"
        assert plottable.nxsignal.shape == (len(KEYS), *SHAPE)
        assert root["entry/definition"].nxvalue == "NXtomo"
    finally:
        root.nxfile.close()


def test_frames_are_written_once_and_linked_with_target(scan: Path) -> None:
    with h5py.File(scan, "r") as f:
        frames: list[str] = []
        f.visititems(
            lambda name, obj: (
                frames.append(name) if isinstance(obj, h5py.Dataset) and obj.ndim == 3 else None
            )
        )
        assert frames == ["entry/instrument/detector/data"]
        for name, target in [
            ("entry/data/data", "/entry/instrument/detector/data"),
            ("entry/data/rotation_angle", "/entry/sample/rotation_angle"),
            ("entry/data/image_key", "/entry/instrument/detector/image_key"),
        ]:
            link = f.get(name, getlink=True)
            assert isinstance(link, h5py.SoftLink) and link.path == target
            assert f[target].attrs["target"] == target
        assert f.attrs["default"] == "entry" and f["entry"].attrs["default"] == "data"
        assert f["entry/data"].attrs["signal"] == "data"


def test_each_acquisition_is_recorded_with_its_offset_and_end(scan: Path) -> None:
    with h5py.File(scan, "r") as f:
        records = f["entry/acquisitions"]
        assert list(records) == ["data", "data_black", "data_white"]
        assert [records[n]["offset"][()] for n in ("data_black", "data_white", "data")] == [
            0, N_DARK, N_DARK + N_FLAT,
        ]  # fmt: skip
        assert records["data"]["end_reason"][()] == b"completed"
        assert records["data/rotation_angle_origin"][()] == b"header field 'angle' for 9 frames"


def test_without_rest_parameters_angles_default_to_zero_and_the_file_says_so(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plain.h5"
    acquire(path, "data", 5, angles=False)
    with h5py.File(path, "r") as f:
        assert f["entry/sample/rotation_angle"][()].tolist() == [0.0] * 5
        origin = f["entry/acquisitions/data/rotation_angle_origin"][()].decode()
        assert "start_angle=0.0 (default)" in origin and "angle_step=0.0 (default)" in origin
        assert f["entry/sample/name"][()] == b"unknown"


def test_without_an_angle_header_angles_come_from_start_angle_and_step(tmp_path: Path) -> None:
    path = tmp_path / "ramp.h5"
    acquire(path, "data", 4, angles=False, params={"start_angle": 10, "angle_step": 0.5})
    with h5py.File(path, "r") as f:
        assert f["entry/sample/rotation_angle"][()].tolist() == [10.0, 10.5, 11.0, 11.5]
        assert b"angle_step=0.5 (set)" in f["entry/acquisitions/data/rotation_angle_origin"][()]


def test_an_angle_header_float64_cannot_hold_leaves_that_angle_out_not_the_run(
    tmp_path: Path,
) -> None:
    path = tmp_path / "huge.h5"
    acquire(path, "data", 4, angles=True, angle_of=lambda i: 10**400 if i == 2 else 1.5 * i)
    with h5py.File(path, "r") as f:
        assert f["entry/acquisitions/data/end_reason"][()] == b"completed"
        assert f["entry/instrument/detector/data"].shape[0] == 4
        angles = f["entry/sample/rotation_angle"][()].tolist()
        assert [angles[i] for i in (0, 1, 3)] == [0.0, 1.5, 4.5]

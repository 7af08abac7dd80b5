"""The real pco.edge capture, replayed as TOMCAT does: data, data_white, data_black in one file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from _stream_helpers import camera, capture_or_skip, finish, running_writer

from pco_writer.errors import DatasetExistsError
from pco_writer.simulate import read_capture

NAMES = ("data", "data_white", "data_black")


def replay(output: Path, dataset_name: str, messages: list[tuple[bytes, bytes]]) -> dict:
    with (
        camera() as cam,
        running_writer(
            connect=cam.address,
            output=str(output),
            dataset_name=dataset_name,
            n_frames=len(messages),
        ) as writer,
    ):
        for header, data in messages:
            cam.send([header, data])
        return finish(writer)


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[bytes, bytes]]]:
    messages = read_capture(capture_or_skip())
    output = tmp_path_factory.mktemp("capture") / "scan.h5"
    for name in NAMES:
        stats = replay(output, name, messages)
        assert stats["end_reason"] == "completed", stats
        assert stats["n_written_frames"] == len(messages) == 50
    return output, messages


@pytest.mark.parametrize("name", NAMES)
def test_every_frame_of_the_capture_is_bit_exact_at_its_index(scan, name: str) -> None:
    output, messages = scan
    with h5py.File(output, "r") as f:
        data = f[f"exchange/{name}"]
        assert data.shape == (50, 64, 250) and data.dtype == np.dtype("<u2")
        assert data.chunks == (1, 64, 250)
        for i, (_, payload) in enumerate(messages):
            expected = np.frombuffer(payload, "<u2").reshape(64, 250)
            assert np.array_equal(data[i], expected), f"{name}[{i}] differs from the capture"
        assert (data.attrs["image_nr_low"], data.attrs["image_nr_high"]) == (1, 50)


@pytest.mark.parametrize("name", NAMES)
def test_frame_ids_and_header_strings_are_recorded_as_the_camera_sent_them(scan, name) -> None:
    output, _ = scan
    with h5py.File(output, "r") as f:
        group = f[f"measurement/acquisition/{name}"]
        assert list(group["frame"][:]) == list(range(375, 425))
        assert group["shape"][:].tolist() == [[64, 250]] * 50
        strings = {key: group[key].asstr()[:].tolist() for key in ("htype", "type", "endianness")}
        assert strings == {
            "htype": ["array-1.0"] * 50, "type": ["uint16"] * 50, "endianness": ["little"] * 50
        }  # fmt: skip
        assert group["tag"].asstr()[:].tolist() == [""] * 50
        assert group["source"].asstr()[:].tolist() == [""] * 50
        assert group.attrs["end_reason"] == "completed"
        assert group.attrs["n_frames_written"] == 50
        assert group["missing_frame_ids"].shape == (0,)


def test_a_fourth_run_with_a_taken_name_is_refused_and_the_file_is_unchanged(scan) -> None:
    output, messages = scan
    before = hashlib.sha256(output.read_bytes()).hexdigest()
    with camera() as cam:
        from pco_writer.settings import AcquisitionSettings
        from pco_writer.writer import Writer

        settings = AcquisitionSettings(connect=cam.address, output=str(output), dataset_name="data")
        writer = Writer(settings)
        with pytest.raises(DatasetExistsError, match="'data' already exists in .*scan.h5"):
            writer.start()
    assert hashlib.sha256(output.read_bytes()).hexdigest() == before

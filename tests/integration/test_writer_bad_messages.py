"""Every kind of bad message, between good frames: good frames exact, bad ones counted by reason."""

from __future__ import annotations

import json

import h5py
import numpy as np
from _stream_helpers import SHAPE, camera, finish, frame, image, running_writer, wait_until_written

from pco_writer.simulate import camera_header

FIRST = 500


def bad_messages() -> list[tuple[str, list[bytes]]]:
    """(reason, message) for each kind the writer must refuse, given frames FIRST.. so far."""
    good_header = json.loads(camera_header(FIRST + 1, SHAPE))
    payload = image(FIRST + 1).tobytes()

    def header(**changes: object) -> bytes:
        return json.dumps({**good_header, **changes}).encode()

    no_frame = {k: v for k, v in good_header.items() if k != "frame"}
    return [
        ("parts", [header()]),
        ("parts", [header(), payload, b"extra"]),
        ("header_not_json", [b"{not json", payload]),
        ("header_not_object", [b"[1, 2]", payload]),
        ("frame", [json.dumps(no_frame).encode(), payload]),
        ("frame", [header(frame=-3), payload]),
        ("frame", [header(frame="12"), payload]),
        ("shape", [header(shape=[0, 24]), payload]),
        ("shape", [header(shape="16x24"), payload]),
        ("type", [header(type="complex64"), payload]),
        ("endianness", [header(endianess="middle"), payload]),
        ("payload_size", [header(), payload[:-2]]),
        ("payload_size", [header(), payload + b"\0\0"]),
        ("shape_changed", [header(shape=[24, 16]), payload]),
        ("type_changed", [header(type="int16"), payload]),
        ("duplicate_frame_id", frame(FIRST)),
        ("frame_before_first", frame(FIRST - 1)),
        ("implausible_frame_id", frame(FIRST + 1 + 100_001)),  # past the gap from FIRST + 1
    ]


def test_bad_messages_are_counted_by_reason_and_good_frames_stay_exact(tmp_path) -> None:
    output = tmp_path / "bad.h5"
    bad = bad_messages()
    with (
        camera() as cam,
        running_writer(connect=cam.address, output=str(output), n_frames=3) as writer,
    ):
        cam.send(frame(FIRST))
        cam.send(frame(FIRST + 1))
        wait_until_written(writer, 2)  # the start is decided (ADR 0041): these come after it
        for _, message in bad:
            cam.send(message)
        cam.send(frame(FIRST + 2))
        stats = finish(writer)
    expected: dict[str, int] = {}
    for reason, _ in bad:
        expected[reason] = expected.get(reason, 0) + 1
    assert stats["invalid_by_reason"] == expected
    assert stats["n_invalid_frames"] == len(bad)
    assert (stats["n_written_frames"], stats["n_lost_frames"]) == (3, 0)
    assert stats["end_reason"] == "completed" and stats["error"] == ""
    with h5py.File(output, "r") as f:
        data = f["exchange/data"]
        assert data.shape == (3, *SHAPE)
        for i in range(3):
            assert np.array_equal(data[i], image(FIRST + i))
        assert list(f["measurement/acquisition/data/frame"][:]) == [FIRST, FIRST + 1, FIRST + 2]


def test_a_frame_larger_than_the_whole_buffer_is_refused_and_the_stream_goes_on(tmp_path) -> None:
    big = (64, 64)  # 8 KiB: more than the 4 KiB buffer below
    with (
        camera() as cam,
        running_writer(
            connect=cam.address, output=str(tmp_path / "b.h5"), n_frames=2, buffer_bytes=4096
        ) as writer,
    ):
        cam.send(frame(FIRST, big))
        cam.send(frame(FIRST))
        cam.send(frame(FIRST + 1))
        stats = finish(writer)
    assert stats["invalid_by_reason"] == {"frame_larger_than_buffer": 1}
    assert stats["n_written_frames"] == 2

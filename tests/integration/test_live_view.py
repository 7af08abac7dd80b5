"""A running writer's live view: the preview of its latest frame and the PUB stream of every
N-th frame, read by a SUB socket on loopback as an external viewer would."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from _control_helpers import free_port
from _stream_helpers import SHAPE, camera, finish, frame, image, running_writer

from pco_writer.protocol import parse_header


@pytest.fixture
def viewer() -> Iterator[tuple[str, zmq.Socket[Any]]]:
    """A SUB socket (all topics) and the address it will connect to, once told to."""
    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.setsockopt(zmq.LINGER, 0)
    try:
        yield f"tcp://127.0.0.1:{free_port()}", sock
    finally:
        sock.close(linger=0)
        ctx.term()


def receive_one(sock: zmq.Socket[Any], timeout_s: float = 10.0) -> list[bytes]:
    assert sock.poll(int(timeout_s * 1000)), f"no frame on the live stream within {timeout_s} s"
    return list(sock.recv_multipart())


def connected(sock: zmq.Socket[Any], address: str) -> None:
    """Connect, and give the subscription time to reach the publisher (PUB drops until then)."""
    sock.connect(address)
    time.sleep(0.5)


@pytest.mark.parametrize("compression", ["none", "bitshuffle-lz4"])
def test_a_viewer_gets_every_nth_frame_as_array_1_0_with_raw_pixels(
    tmp_path: Path, viewer: tuple[str, zmq.Socket[Any]], compression: str
) -> None:
    address, sub = viewer
    with camera() as cam, running_writer(
        connect=cam.address, output=str(tmp_path / "a.h5"), n_frames=40, compression=compression,
        live_stream=address, live_stream_every=10,
    ) as writer:  # fmt: skip
        connected(sub, address)
        messages = []
        for i in range(40):
            cam.send(frame(1000 + i))
            if i % 10 == 1:  # a viewer that keeps up: wait for the frame to come out (the
                messages.append(receive_one(sub))  # first once a second shows a stream)
        stats = finish(writer)
        assert not sub.poll(300), "only every 10th frame is published"
    assert stats["n_written_frames"] == 40
    assert [json.loads(m[0])["frame"] for m in messages] == [1000, 1010, 1020, 1030]
    for header_part, payload in messages:
        header = parse_header(header_part)  # our own receiver takes it
        assert header.shape == SHAPE and header.type == "uint16"
        got = np.frombuffer(payload, header.dtype).reshape(header.shape)
        assert np.array_equal(got, image(header.frame))


def test_a_live_stream_that_cannot_bind_costs_the_acquisition_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    taken = zmq.Context.instance().socket(zmq.PUB)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    try:
        with caplog.at_level(logging.WARNING), camera() as cam, running_writer(
            connect=cam.address, output=str(tmp_path / "b.h5"), n_frames=10,
            live_stream=f"tcp://127.0.0.1:{port}",
        ) as writer:  # fmt: skip
            for i in range(10):
                cam.send(frame(7 + i))
            stats = finish(writer)
    finally:
        taken.close(linger=0)
    assert stats["n_written_frames"] == 10 and stats["end_reason"] == "completed"
    assert f"live stream: cannot bind tcp://127.0.0.1:{port}" in caplog.text


def test_the_preview_shows_the_last_frame_of_a_finished_run_and_latency_is_measured(
    tmp_path: Path,
) -> None:
    with (
        camera() as cam,
        running_writer(connect=cam.address, output=str(tmp_path / "c.h5"), n_frames=30) as writer,
    ):
        assert writer.preview() is None
        for i in range(30):
            cam.send(frame(500 + i))
        stats = finish(writer)
    preview = writer.preview()
    assert preview is not None and preview.frame_id == 529 and preview.index == 29
    assert preview.png.startswith(b"\x89PNG") and preview.shape == SHAPE
    latency = stats["write_latency"]
    assert sum(latency["counts"]) >= 1 and latency["sum_s"] > 0
    assert writer.watch.tap.n_copies <= 3, "a copy now and then, not one per frame"


def test_with_several_writers_the_preview_and_the_stream_come_from_the_writers(
    tmp_path: Path, viewer: tuple[str, zmq.Socket[Any]]
) -> None:
    from pco_writer.settings import AcquisitionSettings
    from pco_writer.writer import MultiWriter

    address, sub = viewer
    with camera() as cam:
        writer = MultiWriter(AcquisitionSettings(
            connect=cam.address, output=str(tmp_path / "m.h5"), n_frames=60, n_writers=2,
            buffer_bytes=1 << 24, live_stream=address, live_stream_every=4,
        ))  # fmt: skip
        writer.start()
        try:
            connected(sub, address)
            messages = []
            for i in range(60):
                cam.send(frame(1000 + i))
                time.sleep(0.01)  # the two writers get the frames in turn
                while sub.poll(0):
                    messages.append(sub.recv_multipart())
            during = writer.preview()
            stats = finish(writer, timeout=60)
            preview = writer.preview()  # after the run: the master's last frame, from its part
        finally:
            if not writer.done:
                writer.kill()
            assert writer.wait(30)
    assert stats["n_written_frames"] == 60
    assert during is not None and 1000 <= during.frame_id < 1060
    assert preview is not None and (preview.frame_id, preview.shape) == (1059, SHAPE)
    assert preview.index == 59, "the acquisition's index, not a writer's"
    assert preview.png.startswith(b"\x89PNG")
    assert sum(stats["write_latency"]["counts"]) >= 2, "both writers' batches"
    assert len(messages) >= 3, "the first writer publishes about every 4th frame"
    for header_part, payload in messages:
        header = parse_header(header_part)
        assert np.array_equal(np.frombuffer(payload, header.dtype).reshape(SHAPE),
                              image(header.frame))  # fmt: skip

"""The compression pool: frames come out in the order they went in, memory stays bounded."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pco_writer.buffer import FrameBuffer, ReceivedFrame
from pco_writer.errors import OutputError
from pco_writer.protocol import FrameHeader
from pco_writer.writer._compressing import CompressingSource

SHAPE = (4, 4)


def fill(buffer: FrameBuffer, ids: range, encoding: str = "") -> None:
    for i in ids:
        header = FrameHeader(i, SHAPE, "uint16", "little", encoding=encoding)
        slot = buffer.reserve(header.nbytes, 1.0)
        assert slot is not None
        np.frombuffer(slot.view, "<u2")[:] = i
        buffer.commit(ReceivedFrame(i, header, slot.view, header.nbytes, slot.span))


def slow_for_early_frames(frame: ReceivedFrame) -> ReceivedFrame:
    """Takes longer the lower the id, so later frames finish first."""
    time.sleep(0.002 * (20 - frame.index % 20))
    data = bytes(frame.data)[::-1]
    return ReceivedFrame(frame.index, frame.header, data, len(data), frame.span)


def drain(source: CompressingSource, timeout: float = 10.0) -> list[ReceivedFrame]:
    out: list[ReceivedFrame] = []
    deadline = time.monotonic() + timeout
    while not source.drained:
        assert time.monotonic() < deadline, "the pool did not drain in time"
        batch = source.get_batch(7, 0.05)
        out.extend(batch)
        source.release(batch)
    return out


def test_frames_come_out_in_order_whatever_order_workers_finish_in() -> None:
    buffer = FrameBuffer(1 << 20)
    finished: list[int] = []
    lock = threading.Lock()

    def encode(frame: ReceivedFrame) -> ReceivedFrame:
        out = slow_for_early_frames(frame)
        with lock:
            finished.append(frame.index)
        return out

    source = CompressingSource(buffer, encode, workers=4, max_in_flight=12)
    try:
        fill(buffer, range(60))
        buffer.close()
        out = drain(source)
    finally:
        assert source.shutdown() == 0
    assert [f.index for f in out] == list(range(60))
    assert finished != sorted(finished), "the test must make workers finish out of order"
    for f in out:
        assert f.data == np.full(SHAPE, f.index, "<u2").tobytes()[::-1]
    assert buffer.stats.used_bytes == 0


def test_no_more_than_max_in_flight_frames_are_taken_from_the_ring() -> None:
    buffer = FrameBuffer(1 << 20)
    gate = threading.Event()

    def blocked(frame: ReceivedFrame) -> ReceivedFrame:
        gate.wait(5)
        return frame

    source = CompressingSource(buffer, blocked, workers=2, max_in_flight=5)
    try:
        fill(buffer, range(20))
        assert source.get_batch(64, 0.05) == []
        assert source.in_flight == 5 and len(buffer) == 15
    finally:
        gate.set()
        source.shutdown()


def test_frames_that_arrived_compressed_are_handed_out_without_a_worker() -> None:
    buffer = FrameBuffer(1 << 20)
    called: list[int] = []

    def encode(frame: ReceivedFrame) -> ReceivedFrame:
        called.append(frame.index)
        return frame

    source = CompressingSource(buffer, encode, workers=1)
    try:
        fill(buffer, range(3), encoding="bs16-lz4")
        buffer.close()
        assert [f.index for f in drain(source)] == [0, 1, 2]
    finally:
        source.shutdown()


def test_a_failing_codec_raises_an_output_error_naming_the_frame() -> None:
    buffer = FrameBuffer(1 << 20)

    def broken(frame: ReceivedFrame) -> ReceivedFrame:
        raise RuntimeError("codec exploded")

    source = CompressingSource(buffer, broken, workers=1, max_in_flight=4)
    try:
        fill(buffer, range(3))
        with pytest.raises(OutputError, match="compressing frame 0 failed: RuntimeError"):
            source.get_batch(8, 1.0)
    finally:
        assert source.shutdown() == 0  # the first frame is taken alone (its size bounds the rest)
        assert len(buffer) == 2  # the others were never taken: nothing lost without a count


def test_shutdown_counts_frames_taken_but_never_handed_out() -> None:
    buffer = FrameBuffer(1 << 20)
    source = CompressingSource(buffer, lambda f: f, workers=1, max_in_flight=4)
    fill(buffer, range(6))
    source.get_batch(0, 0.5)  # takes 4 into the pool, hands none out
    assert source.shutdown() == 4


def test_the_bytes_in_flight_are_bounded_whatever_the_number_of_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pco_writer.writer import _compressing

    frame_bytes = int(np.prod(SHAPE)) * 2  # 32 bytes
    monkeypatch.setattr(_compressing, "IN_FLIGHT_BYTES", 5 * frame_bytes)
    buffer = FrameBuffer(1 << 20)
    most = [0]
    lock = threading.Lock()

    def encode(frame: ReceivedFrame) -> ReceivedFrame:
        with lock:
            most[0] = max(most[0], source.in_flight)
        time.sleep(0.002)
        return frame

    source = CompressingSource(buffer, encode, workers=16)  # would take 32 frames at once
    try:
        fill(buffer, range(60))
        buffer.close()
        assert [f.index for f in drain(source)] == list(range(60))
    finally:
        source.shutdown()
    assert 0 < most[0] <= 5

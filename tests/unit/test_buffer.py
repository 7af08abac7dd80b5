"""The ring buffer: payloads that survive wrap-around, back-pressure, and closing."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pco_writer.buffer import FrameBuffer, ReceivedFrame
from pco_writer.protocol import FrameHeader


def header(frame: int, shape: tuple[int, ...] = (2, 3)) -> FrameHeader:
    return FrameHeader(frame, shape, "uint16", "little")


def _fill(slot_view: memoryview, i: int) -> None:
    slot_view[:] = bytes([i % 251]) * len(slot_view)


def _check(frames: list[ReceivedFrame]) -> None:
    for f in frames:
        assert bytes(f.data) == bytes([f.index % 251]) * f.nbytes, f"frame {f.index} overwritten"


def _frame(buf: FrameBuffer, i: int, size: int) -> ReceivedFrame:
    slot = buf.reserve(size, 1.0)
    assert slot is not None
    _fill(slot.view, i)
    return ReceivedFrame(i, header(i), slot.view, size, slot.span)


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(1, 900), min_size=1, max_size=60), batch=st.integers(1, 5))
def test_payloads_stay_intact_through_wrap_around(sizes: list[int], batch: int) -> None:
    buf = FrameBuffer(1024)
    for i, size in enumerate(sizes):
        slot = buf.reserve(size, 0.001)
        while slot is None:  # full: the consumer writes a batch and releases it
            taken = buf.get_batch(batch, 0.1)
            assert taken, "the buffer is full but holds no frame"
            _check(taken)
            buf.release(taken)
            slot = buf.reserve(size, 0.001)
        _fill(slot.view, i)
        buf.commit(ReceivedFrame(i, header(i), slot.view, size, slot.span))
    rest = buf.get_batch(len(sizes), 0.1)
    _check(rest)
    buf.release(rest)
    assert buf.stats.used_bytes == 0 and buf.stats.peak_bytes <= 1024


def test_a_full_buffer_makes_the_producer_wait_until_the_consumer_releases() -> None:
    buf = FrameBuffer(256)
    buf.commit(_frame(buf, 0, 200))
    assert buf.reserve(100, 0.05) is None  # full: the receiver would stop reading
    assert buf.stats.n_full_waits == 1

    def consume() -> None:
        buf.release(buf.get_batch(1, 1.0))

    t = threading.Timer(0.1, consume)
    t.start()
    assert buf.reserve(100, 2.0) is not None
    t.join(2)


def test_a_frame_larger_than_the_buffer_says_how_to_fix_it() -> None:
    with pytest.raises(ValueError, match="--buffer-bytes"):
        FrameBuffer(1000).reserve(2000, 0.1)


def test_closing_wakes_a_producer_that_waits_for_room() -> None:
    buf = FrameBuffer(256)
    buf.commit(_frame(buf, 0, 200))
    threading.Timer(0.1, buf.close).start()
    t0 = time.monotonic()
    assert buf.reserve(100, 5.0) is None  # closed: the receiver gives up instead of waiting
    assert time.monotonic() - t0 < 2.0
    assert not buf.drained  # the frame committed before is still there for the writer


def test_a_frame_committed_after_close_still_reaches_the_consumer() -> None:
    # the receiver was filling this slot when the run was killed: the writer must see the
    # frame (to record it as dropped), not lose it without a trace
    buf = FrameBuffer(256)
    slot = buf.reserve(100, 0.1)
    assert slot is not None
    buf.close()
    buf.commit(ReceivedFrame(0, header(0), slot.view, 100, slot.span))
    taken = buf.get_batch(4, 0.1)
    assert [f.index for f in taken] == [0]
    buf.release(taken)
    assert buf.drained and buf.stats.used_bytes == 0

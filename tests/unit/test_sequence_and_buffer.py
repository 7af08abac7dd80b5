"""Frame bookkeeping and the ring buffer: indices, gaps, and payloads that survive wrap-around."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pco_writer import buffer as buffer_module
from pco_writer.buffer import FrameBuffer, ReceivedFrame
from pco_writer.errors import ProtocolError
from pco_writer.protocol import FrameHeader
from pco_writer.sequence import FrameSequence


def header(frame: int, shape: tuple[int, ...] = (2, 3)) -> FrameHeader:
    return FrameHeader(frame, shape, "uint16", "little")


def test_the_first_frame_id_is_index_0_and_gaps_are_missing() -> None:
    seq = FrameSequence(n_frames=6)
    assert [seq.accept(header(f)) for f in (375, 376, 379)] == [0, 1, 4]
    assert (seq.n_lost, seq.complete) == (2, False)
    assert seq.missing_indices().tolist() == [2, 3]
    assert seq.accept(header(377)) == 2  # late, but not a duplicate: fills its gap
    assert seq.accept(header(380)) == 5 and seq.complete


@pytest.mark.parametrize(
    ("frame", "reason"),
    [(375, "duplicate_frame_id"), (374, "frame_before_first"), (375 + 11, "implausible_frame_id")],
)
def test_frames_that_do_not_belong_are_refused_and_not_recorded(frame: int, reason: str) -> None:
    seq = FrameSequence(max_frame_gap=10)
    seq.accept(header(375))
    with pytest.raises(ProtocolError) as info:
        seq.accept(header(frame))
    assert info.value.reason == reason
    assert (seq.n_accepted, seq.highest_index) == (1, 0)


def test_a_frame_past_n_frames_ends_the_acquisition_without_being_taken() -> None:
    seq = FrameSequence(n_frames=3)
    seq.accept(header(10))
    with pytest.raises(ProtocolError, match="beyond the 3 frames"):
        seq.accept(header(13))
    assert seq.complete and seq.n_accepted == 1


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


def test_kill_clears_what_is_waiting_and_wakes_the_producer() -> None:
    buf = FrameBuffer(256)
    buf.commit(_frame(buf, 0, 200))
    assert buf.clear() == 1
    assert buf.reserve(100, 0.01) is None and buf.drained


@pytest.mark.parametrize(
    ("ids", "lost"), [([*range(9), 10], [9]), ([0, 1, 2, 3, 4, 12], [5, 6, 7, 8, 9]), ([0, 10], [])]
)
def test_requested_frames_skipped_before_one_past_the_end_are_lost(
    ids: list[int], lost: list[int]
) -> None:
    seq = FrameSequence(n_frames=10 if ids != [0, 10] else 1)
    for i in ids:
        try:
            seq.accept(header(i))
        except ProtocolError as exc:
            assert exc.reason == "beyond_n_frames"
    assert seq.complete
    assert seq.n_lost == len(lost)
    assert seq.missing_indices().tolist() == lost


def test_a_frame_committed_after_a_kill_is_counted_as_dropped_not_kept() -> None:
    buf = FrameBuffer(256)
    slot = buf.reserve(100, 0.1)  # the receiver is filling this slot when the kill comes
    assert slot is not None
    assert buf.clear() == 0
    buf.commit(ReceivedFrame(0, header(0), slot.view, 100, slot.span))
    assert (len(buf), buf.stats.n_dropped, buf.stats.used_bytes) == (0, 1, 0)


def test_cancel_gives_the_room_back() -> None:
    buf = FrameBuffer(256)
    slot = buf.reserve(200, 0.1)
    assert slot is not None
    buf.cancel(slot)
    assert buf.stats.used_bytes == 0
    assert np.frombuffer(buf.reserve(256, 0.1).view, np.uint8).size == 256  # type: ignore[union-attr]


def test_a_lingering_consumer_gets_the_frames_of_a_burst_in_one_batch() -> None:
    buf = FrameBuffer(4096)
    buf.commit(_frame(buf, 0, 16))

    def produce() -> None:
        for i in range(1, 8):
            buf.commit(_frame(buf, i, 16))

    producer = threading.Timer(0.05, produce)  # the rest of the burst comes 50 ms later
    producer.daemon = True
    producer.start()
    batch = buf.get_batch(8, 5.0, linger=5.0)  # wakes when the 8th frame is in, not at once
    producer.join(5)
    assert [f.index for f in batch] == list(range(8))


def test_a_lingering_consumer_stops_lingering_when_the_producer_waits_for_room() -> None:
    buf = FrameBuffer(256)
    buf.commit(_frame(buf, 0, 200))
    got: list[list[ReceivedFrame]] = []

    def consume() -> None:
        got.append(buf.get_batch(10, 5.0, linger=60.0))
        buf.release(got[0])

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    # The ring is full and the receiver waits: the writer takes the frame now, not in 60 s.
    assert buf.reserve(200, 10.0) is not None
    consumer.join(10)
    assert [f.index for f in got[0]] == [0]


def test_without_linger_the_consumer_takes_what_is_there() -> None:
    buf = FrameBuffer(4096)
    buf.commit(_frame(buf, 0, 16))
    buf.commit(_frame(buf, 1, 16))
    assert [f.index for f in buf.get_batch(8, 1.0)] == [0, 1]


def test_a_lingering_consumer_takes_a_batch_once_enough_bytes_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(buffer_module, "BATCH_BYTES", 2048)
    buf = FrameBuffer(8192)
    got: list[list[ReceivedFrame]] = []
    consumer = threading.Thread(
        target=lambda: got.append(buf.get_batch(64, 5.0, linger=60.0)), daemon=True
    )
    consumer.start()
    buf.commit(_frame(buf, 0, 16))  # small: worth lingering for 63 more
    for i in range(1, 4):  # then larger ones (compressed chunks vary): 2048 bytes wait after 3
        buf.commit(_frame(buf, i, 1000))
    consumer.join(10)
    assert not consumer.is_alive()
    assert [f.index for f in got[0]] == [0, 1, 2, 3]
    # What was taken no longer counts: the next small frame is lingered for again.
    buf.commit(_frame(buf, 4, 16))
    t0 = time.monotonic()
    assert [f.index for f in buf.get_batch(64, 5.0, linger=0.2)] == [4]
    assert time.monotonic() - t0 >= 0.15


def test_a_large_frame_is_not_held_back_for_a_batch() -> None:
    buf = FrameBuffer(64 << 20)
    buf.commit(_frame(buf, 0, 11 << 20))  # a pco.edge frame: a batch of its own
    t0 = time.monotonic()
    assert [f.index for f in buf.get_batch(64, 5.0, linger=5.0)] == [0]
    assert time.monotonic() - t0 < 4.0


def test_an_empty_buffer_waits_for_frames_even_while_the_producer_waits_for_room() -> None:
    buf = FrameBuffer(256)
    buf.commit(_frame(buf, 0, 200))
    taken = buf.get_batch(1, 1.0)  # being written: its room is not free yet
    producer = threading.Thread(target=lambda: buf.reserve(200, 5.0))
    producer.start()
    deadline = time.monotonic() + 5
    while not buf.stats.n_full_waits and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    assert buf.get_batch(8, 0.3, linger=0.01) == []  # nothing to take: a wait, not a spin
    assert time.monotonic() - t0 >= 0.25
    buf.release(taken)
    producer.join(5)
    assert not producer.is_alive()

"""What the writer thread hands out for viewers (bounded), the write latency and end kinds."""

from __future__ import annotations

import numpy as np
import pytest

from pco_writer.buffer import ReceivedFrame
from pco_writer.codecs import get_codec
from pco_writer.exit_record import END_KINDS, REFUSED, STOPPED_AT_START, end_kind
from pco_writer.protocol import parse_header
from pco_writer.simulate import camera_header
from pco_writer.statistics import LatencyHistogram
from pco_writer.writer._tap import FrameTap, TakenFrame

SHAPE = (6, 10)


def pixels(frame_id: int) -> np.ndarray:
    return (np.arange(60, dtype="<u2").reshape(SHAPE) + frame_id).astype("<u2")


def written(first: int, n: int, compression: str = "none") -> list[ReceivedFrame]:
    """Frames as the write loop hands them on: placed, their payload in a (fake) ring."""
    codec = get_codec(compression)
    out = []
    for i in range(first, first + n):
        raw = pixels(1000 + i).tobytes()
        data = bytearray(raw if codec is None else bytes(np.asarray(codec.compress(raw, 2))))
        out.append(ReceivedFrame(i, parse_header(camera_header(1000 + i, SHAPE)), data, len(data)))
    return out


class FakeStream:
    """A live stream that takes what it is given, with room for ``room`` frames."""

    def __init__(self, every: int, room: int = 100) -> None:
        self.every = every
        self.room = room
        self.got: list[TakenFrame] = []

    def has_room(self) -> bool:
        return len(self.got) < self.room

    def put(self, frame: TakenFrame) -> None:
        self.got.append(frame)


def test_the_writer_thread_copies_a_frame_at_most_every_interval() -> None:
    tap = FrameTap("none", interval=0.5)
    for k in range(20):  # 20 batches of 8 frames, 0.1 s apart: 2 s
        tap.offer(written(8 * k, 8), now=100.0 + 0.1 * k)
    assert tap.n_copies == 4  # at 0.0, 0.5, 1.0, 1.5 s
    preview = tap.preview()
    assert preview is not None and preview.index == 8 * 15 + 7  # the last of the batch at 1.5 s


def test_the_acquisitions_last_frame_is_copied_whatever_the_interval() -> None:
    tap = FrameTap("none", interval=0.5, last_index=15)
    tap.offer(written(0, 8), now=10.0)
    tap.offer(written(8, 8), now=10.01)
    preview = tap.preview()
    assert tap.n_copies == 2 and preview is not None and preview.frame_id == 1015


def test_the_copy_outlives_the_ring_room_it_came_from() -> None:
    tap = FrameTap("none")
    batch = written(0, 1)
    tap.offer(batch, now=1.0)
    batch[0].data[:] = bytes(len(batch[0].data))  # the ring room is reused by later frames
    preview = tap.preview()
    assert preview is not None
    taken = tap._latest
    assert taken is not None and np.array_equal(taken.pixels(), pixels(1000))


def test_the_png_is_made_once_per_copied_frame_on_the_asking_thread() -> None:
    tap = FrameTap("none")
    assert tap.preview() is None
    tap.offer(written(0, 2), now=1.0)
    first = tap.preview()
    assert first is not None and first is tap.preview()
    assert first.png.startswith(b"\x89PNG") and first.shape == SHAPE


@pytest.mark.parametrize("compression", ["bitshuffle-lz4", "blosc-lz4"])
def test_a_compressed_chunk_is_decompressed_for_the_viewer(compression: str) -> None:
    tap = FrameTap(compression)
    tap.offer(written(3, 1, compression), now=1.0)
    taken = tap._latest
    assert taken is not None and taken.payload != pixels(1003).tobytes()
    assert np.array_equal(taken.pixels(), pixels(1003))


def test_the_live_stream_gets_every_nth_frame_by_index() -> None:
    stream = FakeStream(every=5)
    tap = FrameTap("none", stream)
    for k in range(4):
        tap.offer(written(8 * k, 8), now=0.0)
    assert [f.index for f in stream.got] == [0, 5, 10, 15, 20, 25, 30]
    assert np.array_equal(stream.got[2].pixels(), pixels(1010))


def test_while_the_live_stream_is_behind_nothing_is_copied_for_it() -> None:
    stream = FakeStream(every=1, room=3)
    tap = FrameTap("none", stream, interval=1e9)
    tap.offer(written(0, 50), now=1.0)
    assert len(stream.got) == 3
    assert tap.n_copies == 1 + 3  # the preview's copy and the three the stream took


def test_latency_buckets_are_inclusive_upper_bounds_with_a_last_one_for_the_rest() -> None:
    histogram = LatencyHistogram(bounds=(0.01, 0.1))
    for seconds in (0.005, 0.01, 0.05, 0.1, 3.0):
        histogram.observe(seconds)
    assert histogram.as_dict() == {"bounds_s": [0.01, 0.1], "counts": [2, 2, 1], "sum_s": 3.165}


@pytest.mark.parametrize(
    ("end_reason", "kind"),
    [
        ("completed", "completed"),
        ("stopped", "stopped"),
        ("stopped: no frame for 5 s (idle timeout)", "idle_timeout"),
        ("killed", "killed"),
        ("error: disk full: only 1.0 MB left", "error"),
        (REFUSED, "refused"),
        (STOPPED_AT_START, "stopped"),
        ("", "error"),
        ("something new", "error"),
    ],
)
def test_every_end_reason_counts_as_one_of_a_few_kinds(end_reason: str, kind: str) -> None:
    assert end_kind(end_reason) == kind
    assert kind in END_KINDS

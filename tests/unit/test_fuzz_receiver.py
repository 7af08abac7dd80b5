"""Fuzzing the receive path over a real ZeroMQ socket, receiver and frame ledger together:
garbage is counted (at the door or by the ledger), good frames come through exact."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pco_writer.buffer import FrameBuffer
from pco_writer.ledger import FrameLedger
from pco_writer.receiver import Receiver, ReceiverSettings
from pco_writer.simulate import camera_header

SHAPE = (4, 6)
FIRST_ID = 100
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def image(frame_id: int) -> bytes:
    return np.full(SHAPE, frame_id % 65536, dtype="<u2").tobytes()


def good(frame_id: int) -> list[bytes]:
    return [camera_header(frame_id, SHAPE), image(frame_id)]


def hostile(kind: str, frame_id: int, noise: bytes) -> list[bytes]:
    """A message of this acquisition that must be rejected (``frame_id`` was already sent)."""
    header, data = good(frame_id)
    obj = json.loads(header)
    if kind == "duplicate":
        return [header, data]
    if kind == "before_first":
        return good(FIRST_ID - 1 - len(noise))
    if kind == "shape_changed":
        return [json.dumps({**obj, "frame": frame_id + 1, "shape": [2, 12]}).encode(), data]
    if kind == "type_changed":
        return [json.dumps({**obj, "frame": frame_id + 1, "type": "int16"}).encode(), data]
    if kind == "short_payload":
        return [camera_header(frame_id + 1, SHAPE), data[: len(noise) % len(data)]]
    if kind == "one_part":
        return [header]
    if kind == "three_parts":
        return [camera_header(frame_id + 1, SHAPE), data, noise]
    if kind == "implausible_id":
        return good(frame_id + 10_000_000)
    if kind == "nested":
        return [b"[" * 50_000, data]
    return [noise or b"\x00", noise]  # "noise": random bytes for header and payload


messages = st.lists(
    st.tuples(
        st.sampled_from(
            ["duplicate", "before_first", "shape_changed", "type_changed", "short_payload",
             "one_part", "three_parts", "implausible_id", "nested", "noise", "noise"]
        ),
        st.binary(max_size=64),
    ),
    max_size=6,
)  # fmt: skip


@pytest.fixture
def push() -> Iterator[tuple[zmq.Socket[Any], str]]:
    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    try:
        yield sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)
    finally:
        sock.close(linger=0)
        ctx.term()


@pytest.fixture
def receiver(push: tuple[zmq.Socket[Any], str]) -> Iterator[Receiver]:
    rx = Receiver(ReceiverSettings(push[1]), FrameBuffer(1 << 24))
    rx.start()
    try:
        yield rx
    finally:
        rx.stop()
        assert rx.join(5.0), "the receiver thread did not stop"


def next_frame(buffer: FrameBuffer, ledger: FrameLedger) -> Any:
    """The next frame the ledger accepts; every other message must have been rejected."""
    for _ in range(50):  # 10 s at most
        batch = buffer.get_batch(64, 0.2)
        ledger.decide(batch)
        placed = ledger.place(batch).accepted
        buffer.release(batch)
        if placed:
            assert len(placed) == 1, f"garbage got through: {[f.header for f in placed]}"
            return placed[0]
    raise AssertionError("a good frame did not arrive within 10 s")


def test_garbage_between_good_frames_is_rejected_and_every_good_frame_is_exact(
    push: tuple[zmq.Socket[Any], str], receiver: Receiver
) -> None:
    sock, _ = push
    sent = [FIRST_ID]
    ledger = FrameLedger()
    sock.send_multipart(good(FIRST_ID))
    assert next_frame(receiver.buffer, ledger).header.frame == FIRST_ID

    @FUZZ
    @given(messages)
    def garbage_then_a_good_frame(bad: list[tuple[str, bytes]]) -> None:
        for kind, noise in bad:
            sock.send_multipart(hostile(kind, sent[-1], noise))
        frame_id = sent[-1] + 1
        sock.send_multipart(good(frame_id))
        frame = next_frame(receiver.buffer, ledger)
        assert frame.header.frame == frame_id
        assert frame.index == frame_id - FIRST_ID
        assert bytes(frame.data) == image(frame_id)
        sent.append(frame_id)

    garbage_then_a_good_frame()
    assert not receiver.error and receiver.end_cause == ""  # still receiving
    snap = ledger.snapshot()
    assert (snap.n_placed, snap.n_never_received) == (len(sent), 0)
    assert receiver.stats.n_received >= len(sent)  # valid messages, some of them no frame of ours
    assert sum(receiver.stats.invalid_by_reason.values()) + snap.n_rejected > 0

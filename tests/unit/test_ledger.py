"""The frame ledger: where an acquisition starts, what belongs to it, when it is complete."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pco_writer.buffer import ReceivedFrame
from pco_writer.ledger import FrameLedger, by_id, choose_start
from pco_writer.protocol import FrameHeader
from pco_writer.runs import RunSet

SHAPE = (2, 3)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frame(frame_id: int, shape: tuple[int, ...] = SHAPE, dtype: str = "uint16") -> ReceivedFrame:
    return ReceivedFrame(-1, FrameHeader(frame_id, shape, dtype, "little"), b"", 0)


def frames(*ids: int) -> list[ReceivedFrame]:
    return [frame(i) for i in ids]


def started(n_frames: int = 0, first: int = 375, **kw: object) -> FrameLedger:
    ledger = FrameLedger(n_frames, **kw)  # type: ignore[arg-type]
    ledger.decide(frames(first))
    return ledger


def accepted(ledger: FrameLedger, *ids: int) -> list[int]:
    return [f.index for f in ledger.place(frames(*ids)).accepted]


# -- RunSet ------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=40
    ),  # (start, length): length 0 adds one index
    lo=st.integers(0, 70),
    width=st.integers(0, 70),
)
def test_a_run_set_is_the_set_of_what_was_added(
    ops: list[tuple[int, int]], lo: int, width: int
) -> None:
    runs, model = RunSet(), set()
    for start, length in ops:
        if length == 0:
            assert runs.add(start) == (start not in model)
            model.add(start)
        else:
            new = set(range(start, start + length)) - model
            assert runs.add_run(start, start + length) == len(new)
            model |= new
    hi = lo + width
    assert len(runs) == len(model) and list(runs) == sorted(model)
    assert [i for a, b in runs.runs(lo, hi) for i in range(a, b)] == sorted(
        i for i in model if lo <= i < hi
    )
    assert [i for a, b in runs.gaps(lo, hi) for i in range(a, b)] == [
        i for i in range(lo, hi) if i not in model
    ]
    assert runs.count(lo, hi) == sum(lo <= i < hi for i in model)
    assert all((i in runs) == (i in model) for i in range(80))
    pairs = runs.runs()
    assert all(b < c for (_, b), (c, _) in zip(pairs, pairs[1:], strict=False))  # merged


# -- where the acquisition starts --------------------------------------------------------------


def test_the_first_frame_id_is_index_0_and_a_late_frame_fills_its_gap() -> None:
    ledger = started(6)
    assert accepted(ledger, 375, 376, 379) == [0, 1, 4]
    snap = ledger.snapshot()
    assert (snap.first_frame_id, snap.covered, snap.n_never_received) == (375, 5, 2)
    assert accepted(ledger, 377) == [2]  # late, not a duplicate
    assert ledger.snapshot().n_never_received == 1


def test_a_stray_first_frame_far_away_does_not_move_the_start() -> None:
    # issue 12.2: a valid header with id 10**15 first, then frames 0..9
    kind, first = choose_start([f.header for f in frames(10**15, *range(10))], 100_000)
    assert (kind, first) == ((SHAPE, "uint16", "little"), 0)
    ledger = FrameLedger(10)
    window = frames(10**15, *range(10))
    ledger.decide(window)
    placement = ledger.place(window)
    assert [f.index for f in placement.accepted] == list(range(10))
    assert [(h.frame, why, n) for h, why, n in placement.rejected] == [
        (10**15, "implausible_frame_id", 1)
    ]
    assert ledger.complete


def test_a_first_frame_overtaken_by_the_next_is_not_lost() -> None:
    # issue 12.2: frames 1, 0, 2, 3 ...: frame 0 was lost and the run never completed
    ledger = FrameLedger(10)
    window = frames(1, 0, 2, 3)
    ledger.decide(window)
    assert [f.index for f in ledger.place(window).accepted] == [1, 0, 2, 3]
    assert accepted(ledger, *range(4, 10)) == list(range(4, 10))
    assert ledger.complete and ledger.snapshot().n_lost == 0


def test_the_kind_most_first_frames_share_wins_over_a_stray_first_one() -> None:
    window = [frame(7, (9, 9), "int32"), *frames(0, 1, 2)]
    assert choose_start([f.header for f in window], 100) == ((SHAPE, "uint16", "little"), 0)


def test_a_tie_goes_to_the_frames_that_came_last() -> None:
    # one stray, then one good frame: nothing to count, so the stream's latest state wins
    assert choose_start([f.header for f in frames(10**12, 5)], 100)[1] == 5
    assert choose_start([f.header for f in frames(5, 10**12)], 100)[1] == 10**12


def test_the_window_is_full_after_enough_frames_or_enough_time_with_a_stream_flowing() -> None:
    clock = Clock()
    ledger = FrameLedger(window_frames=4, window_s=0.25, clock=clock)
    since = clock.now
    assert not ledger.window_full(frames(0, 1, 2), since)
    assert ledger.window_full(frames(10**15, 7, 10**9, 3), since)  # enough frames: decide
    clock.now += 0.3
    assert ledger.window_full(frames(0, 1), since)
    assert ledger.window_full(frames(5, 0, 7), since)


@pytest.mark.parametrize(
    "held",
    [
        [frame(1001)],  # a lone frame: left over from the last scan, or the first of this one
        [frame(1001), frame(0)],  # two far apart: which one is the stream?
        [frame(10**15), frame(0)],
        [frame(0, (9, 9)), frame(1)],  # two kinds, one frame each
    ],
)
def test_the_window_waits_for_a_stream_however_long_a_stray_was_alone(
    held: list[ReceivedFrame],
) -> None:
    """Issue 12.2: a leftover frame, then the camera starts a second later (or a minute)."""
    clock = Clock()
    ledger = FrameLedger(10, clock=clock)
    since = clock.now
    clock.now += 60.0
    assert not ledger.window_full(held, since)


def test_a_stray_long_before_the_stream_costs_nothing() -> None:
    clock = Clock()
    ledger = FrameLedger(10, clock=clock)
    since, held = clock.now, frames(1001)
    clock.now += 1.0
    assert not ledger.window_full(held, since)
    held += frames(0, 1)
    assert ledger.window_full(held, since)
    ledger.decide(held)
    placement = ledger.place(sorted(held, key=by_id) + frames(*range(2, 10)))
    assert [f.index for f in placement.accepted] == list(range(10))
    assert [r for _, r, _ in placement.rejected] == ["beyond_n_frames"]
    assert ledger.complete and ledger.snapshot().n_lost == 0


def test_a_stray_of_another_kind_long_before_the_stream_costs_nothing() -> None:
    clock = Clock()
    ledger = FrameLedger(10, clock=clock)
    held = [frame(5, (9, 9))]
    clock.now += 1.0
    held += frames(0, 1)
    assert ledger.window_full(held, 100.0)
    ledger.decide(held)
    assert accepted(ledger, *range(10)) == list(range(10))


def test_a_lone_frame_is_the_acquisition_when_one_frame_is_requested() -> None:
    clock = Clock()
    ledger = FrameLedger(1, clock=clock)
    clock.now += 0.3
    assert ledger.window_full(frames(7), 100.0)


def test_one_of_several_writers_decides_a_lone_frame_after_a_while_and_places_by_id() -> None:
    """It does not know where the acquisition starts: the acquisition decides that."""
    clock = Clock()
    ledger = FrameLedger(sees_all=False, clock=clock)
    clock.now += 1.0
    assert not ledger.window_full(frames(10**15), 100.0)
    clock.now += 1.5
    assert ledger.window_full(frames(10**15), 100.0)
    ledger.decide(frames(10**15))
    placement = ledger.place(frames(10**15, 0, 2, 4, 2))
    assert [f.index for f in placement.accepted] == [10**15, 0, 2, 4]
    assert [r for _, r, _ in placement.rejected] == ["duplicate_frame_id"]


# -- what belongs to it ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame_id", "reason"),
    [
        (375, "duplicate_frame_id"),
        (374, "frame_before_first"),
        (375 + 14 + 11, "implausible_frame_id"),
        (375 + 20, "beyond_n_frames"),
    ],
)
def test_frames_that_do_not_belong_are_refused_by_reason_and_not_placed(
    frame_id: int, reason: str
) -> None:
    ledger = started(20, max_frame_gap=10)
    assert accepted(ledger, *range(375, 375 + 15)) == list(range(15))
    placement = ledger.place(frames(frame_id))
    assert placement.accepted == [] and [r for _, r, _ in placement.rejected] == [reason]
    assert ledger.snapshot().rejected_by_reason == {reason: 1}
    assert f"frame {frame_id} " in ledger.explain(placement.rejected[0][0], reason)


def test_a_frame_of_another_shape_or_type_is_refused() -> None:
    ledger = started(0)
    placement = ledger.place([frame(376, (3, 2)), frame(377, SHAPE, "int16"), frame(378)])
    assert [f.index for f in placement.accepted] == [3]
    assert [(r, n) for _, r, n in placement.rejected] == [("shape_changed", 1), ("type_changed", 1)]
    again = ledger.place([frame(379, (3, 2)), frame(380, (3, 2))]).rejected
    assert [n for _, _, n in again] == [2, 3]  # counted one by one: the log shows the first


def test_frame_ids_grow_the_extent_by_at_most_the_gap_per_frame() -> None:
    ledger = started(0, first=0, max_frame_gap=100)
    assert accepted(ledger, 0, 100, 200, 301) == [0, 100, 200]
    assert ledger.snapshot().covered == 201


# -- when it is complete -----------------------------------------------------------------------


def test_a_frame_beyond_n_frames_does_not_end_the_run() -> None:
    # issue 12.1: good frame 0, then a frame with id n+1, then good frames 1..n-1
    ledger = started(100, first=0)
    assert accepted(ledger, 0) == [0]
    assert accepted(ledger, 101) == []
    assert not ledger.complete
    assert accepted(ledger, *range(1, 100)) == list(range(1, 100))
    assert ledger.complete and ledger.snapshot().n_lost == 0


def test_a_stray_frame_beyond_n_frames_does_not_end_a_run_whose_camera_is_slow() -> None:
    """Issue 12.1, found again: frames 0-59, one valid frame with id 105, then 60-99 at 2 fps."""
    clock = Clock()
    ledger = FrameLedger(100, settle_s=0.25, clock=clock)
    ledger.decide(frames(0))
    accepted(ledger, *range(60))
    assert accepted(ledger, 105) == []
    for i in range(60, 100):
        clock.now += 0.5
        assert not ledger.complete, f"complete after {i} of 100 frames"
        accepted(ledger, i)
    assert ledger.complete and ledger.snapshot().n_lost == 0


def test_a_stray_beyond_the_range_read_by_the_master_does_not_end_the_run() -> None:
    clock = Clock()
    ledger = FrameLedger(20, settle_s=0.25, clock=clock)
    ledger.decide(frames(0))
    accepted(ledger, *range(8))
    ledger.saw(frame(105).header)
    clock.now += 1.0
    assert not ledger.complete
    ledger.saw(frame(21).header)
    ledger.saw(frame(22).header)  # the camera streams past the end: 12 .. 19 are not coming
    assert not ledger.complete  # most of the tail is not in
    accepted(ledger, *range(8, 19))
    clock.now += 0.3
    assert ledger.complete and ledger.snapshot().n_never_received == 1


def test_a_stray_frame_with_the_last_id_does_not_end_the_run_even_after_a_pause() -> None:
    clock = Clock()
    ledger = FrameLedger(100, clock=clock)
    ledger.decide(frames(0))
    accepted(ledger, 0, 99)  # a stray with the last requested id
    clock.now += 60.0
    assert not ledger.complete  # the stream never reached the end: wait (or stop, idle timeout)
    accepted(ledger, *range(1, 99))
    assert ledger.complete


@pytest.mark.parametrize(("n_frames", "sent"), [(20, 10), (20, 15), (100, 84)])
def test_a_camera_that_pauses_or_sends_slowly_has_not_passed_the_end(
    n_frames: int, sent: int
) -> None:
    """A frame a second (a long exposure), or a pause: each pause passes the settle time."""
    clock = Clock()
    ledger = FrameLedger(n_frames, settle_s=0.25, clock=clock)
    ledger.decide(frames(0))
    for i in range(sent):
        accepted(ledger, i)
        clock.now += 1.0
        assert not ledger.complete, f"complete after {i + 1} of {n_frames} frames"
    accepted(ledger, *range(sent, n_frames))
    assert ledger.complete and ledger.snapshot().n_lost == 0


def test_a_run_whose_stream_went_past_its_end_completes_without_its_lost_last_frames() -> None:
    clock = Clock()
    ledger = FrameLedger(20, settle_s=0.25, clock=clock)
    ledger.decide(frames(0))
    accepted(ledger, *range(17))  # 17, 18, 19 are lost ...
    assert accepted(ledger, 20, 21) == []  # ... and the camera streams on
    clock.now += 0.3
    assert ledger.complete and ledger.snapshot().n_never_received == 3


def test_the_last_frame_read_but_not_yet_placed_counts_as_the_end_of_the_stream() -> None:
    """The master of several writers holds a part's frames until every part passed them."""
    clock = Clock()
    ledger = FrameLedger(20, settle_s=0.25, clock=clock)
    ledger.decide(frames(0))
    accepted(ledger, *(i for i in range(19) if i != 7))  # 19 is read, 7 is lost
    clock.now += 1.0
    assert not ledger.complete
    ledger.saw(frame(19).header)
    assert ledger.complete and ledger.snapshot().n_never_received == 2


def test_every_requested_frame_read_completes_the_run_before_it_is_placed() -> None:
    """The master holds frames of a part that is ahead: every id is in a part, so done.

    It tells the ledger of every frame it reads, placed at once or held."""
    ledger = FrameLedger(20, clock=Clock())
    ledger.decide(frames(0))
    accepted(ledger, *range(10))
    for i in (*range(20), 3):
        ledger.saw(frame(i).header)
    ledger.saw(frame(19, (9, 9)).header)  # another kind: no frame of this acquisition
    assert ledger.complete, "at once: no settle time, every id is read"
    ledger = FrameLedger(20, clock=Clock())
    ledger.decide(frames(0))
    for i in range(19):
        ledger.saw(frame(i).header)
    ledger.saw(frame(19, (9, 9)).header)
    assert not ledger.complete


def test_a_run_with_a_lost_frame_completes_once_the_stream_reached_its_end_and_settled() -> None:
    clock = Clock()
    ledger = FrameLedger(100, settle_s=0.25, clock=clock)
    ledger.decide(frames(0))
    accepted(ledger, *(i for i in range(100) if i != 42))
    assert not ledger.complete  # frame 42 may still come
    clock.now += 0.3
    assert ledger.complete
    snap = ledger.snapshot()
    assert (snap.covered, snap.n_never_received, snap.lost_by_reason) == (
        100,
        1,
        {"never_received": 1},
    )


def test_lost_counts_what_never_came_and_what_was_dropped() -> None:
    ledger = started(0, first=0)
    accepted(ledger, 0, 1, 2, 4)
    ledger.record_written([0, 1])
    ledger.record_dropped(1, "killed")
    snap = ledger.snapshot()
    assert (snap.n_placed, snap.n_written, snap.n_dropped, snap.n_never_received) == (4, 2, 1, 1)
    assert snap.n_lost == 2 and snap.lost_by_reason == {"never_received": 1, "killed": 1}
    assert ledger.missing(0, snap.covered) == [(2, 5)]


def test_a_chain_of_large_gaps_costs_memory_by_frame_not_by_id() -> None:
    # issue 12.5: 200 frames, each 99,999 ids after the last
    ledger = started(0, first=0)
    ids = [i * 99_999 for i in range(200)]
    assert len(accepted(ledger, *ids)) == 200
    ledger.record_written(i for i in ids)
    snap = ledger.snapshot()
    assert snap.covered == ids[-1] + 1 and snap.n_never_received == ids[-1] + 1 - 200
    assert len(ledger.missing(0, snap.covered)) == 199
    assert ledger.n_written_runs == 200


def test_ids_that_step_by_less_than_the_gap_are_one_group_however_far_they_go() -> None:
    headers = [f.header for f in frames(*(i * 99_999 for i in range(40)))]
    assert choose_start(headers, 100_000)[1] == 0
    assert choose_start([headers[5], *headers], 100_000)[1] == 0  # a duplicate changes nothing


def test_the_first_frames_placed_sorted_by_id_are_accepted_whole() -> None:
    ledger = FrameLedger(0, max_frame_gap=100)
    window = frames(150, 0, 60, 120)  # 150 came first, more than the gap above the start
    ledger.decide(window)
    assert [f.index for f in ledger.place(sorted(window, key=by_id)).accepted] == [0, 60, 120, 150]

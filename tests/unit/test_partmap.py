"""Part file rows as strided runs of frame ids: exact, compact, and clipped to a file's range."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pco_writer.partmap import IdRun, PartRows, clip, expand


def dealt(n_frames: int, n_writers: int, p_skip: float, seed: int) -> list[list[int]]:
    """The ids each writer gets from ZeroMQ's round robin that skips a writer now and then."""
    rng = random.Random(seed)
    parts: list[list[int]] = [[] for _ in range(n_writers)]
    order = list(range(n_writers))
    for frame_id in range(n_frames):  # the frame id is also the turn
        if rng.random() < p_skip:  # this writer's queue is full: it rejoins at the end
            order.append(order.pop(frame_id % n_writers))
        parts[order[frame_id % n_writers]].append(frame_id)
    return parts


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.integers(0, 10**6), max_size=60))
def test_the_runs_give_back_every_row_in_order(ids: list[int]) -> None:
    rows = PartRows()
    rows.extend(ids)
    assert rows.n_rows == len(ids)
    assert [frame_id for frame_id, _ in expand(rows.runs())] == ids
    assert [row for _, row in expand(rows.runs())] == list(range(len(ids)))
    assert all(run.stride >= 1 for run in rows.runs())


def test_round_robin_needs_one_run_per_writer_and_a_few_per_skip() -> None:
    strict = dealt(100_000, 4, 0.0, seed=1)
    for ids in strict:
        rows = PartRows()
        rows.extend(ids)
        assert len(rows) == 1 and rows.runs()[0].stride == 4
    skipping = dealt(100_000, 4, 1e-3, seed=2)
    n_runs = 0
    for ids in skipping:
        rows = PartRows()
        rows.extend(ids)
        n_runs += len(rows)
    assert n_runs < 15 * 100  # ~100 skips: a handful of runs each, not one per frame


def test_runs_clip_to_a_files_range_of_ids() -> None:
    run = IdRun(first_id=3, stride=4, count=10, first_row=20)  # ids 3, 7, ... 39
    assert clip(run, 10, 30) == IdRun(11, 4, 5, 22)  # ids 11..27
    assert clip(run, 0, 4) == IdRun(3, 4, 1, 20)
    assert clip(run, 40, 50) is None and clip(run, 4, 7) is None
    for lo, hi in ((0, 100), (5, 6), (7, 8), (12, 39), (12, 40)):
        part = clip(run, lo, hi)
        kept = [i for i in run.ids() if lo <= i < hi]
        assert (list(part.ids()) if part else []) == kept


def test_runs_read_since_a_point_for_the_incremental_report() -> None:
    rows = PartRows()
    rows.extend([0, 2, 4, 5, 6])
    first = rows.runs()
    rows.extend([7, 20])
    assert first == [IdRun(0, 2, 3, 0), IdRun(5, 1, 2, 3)]
    assert rows.runs(since=1) == [IdRun(5, 1, 3, 3), IdRun(20, 1, 1, 6)]


def test_rows_left_out_break_a_run_and_are_not_mapped() -> None:
    rows = PartRows()
    for frame_id, row in ((0, 0), (2, 1), (4, 3), (6, 4)):  # row 2 held a frame not mapped
        rows.append(frame_id, row)
    assert list(expand(rows.runs())) == [(0, 0), (2, 1), (4, 3), (6, 4)]
    assert rows.n_rows == 5

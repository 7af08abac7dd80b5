"""The master of several writers: where it starts and when it is complete, from part files
that the writers flush on their own clocks (written here by hand, no writer processes)."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np

from pco_writer.h5._part import PART_HEADERS, PART_IDS, header_text
from pco_writer.h5._virtual import PART_FRAMES
from pco_writer.protocol import parse_header
from pco_writer.settings import AcquisitionSettings
from pco_writer.simulate import camera_header
from pco_writer.writer import MultiWriter

SHAPE = (4, 6)


def write_part(path: Path, ids: list[int]) -> None:
    """A part file as a writer flushes it: rows of frames, their ids, the first header."""
    header = parse_header(camera_header(0, SHAPE).decode())
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset(
            PART_FRAMES, data=np.stack([np.full(SHAPE, i % 65536, np.uint16) for i in ids])
        )
        f.create_dataset(PART_IDS, data=np.array(ids, np.uint64))
        texts = [header_text(header)] + [""] * (len(ids) - 1)
        f.create_dataset(PART_HEADERS, data=np.array(texts, dtype=h5py.string_dtype()))


def acquisition(tmp_path: Path, n_frames: int) -> MultiWriter:
    return MultiWriter(
        AcquisitionSettings(
            connect="tcp://127.0.0.1:9", output=str(tmp_path / "scan.h5"), n_frames=n_frames,
            n_writers=2,
        )
    )  # fmt: skip


def test_the_start_waits_for_the_first_rows_of_every_part(tmp_path: Path) -> None:
    """Writer 0 flushed odd ids from 1001; writer 1 flushes its even ids from 1000 later."""
    writer = acquisition(tmp_path, 80)
    part0, part1 = writer.parts
    write_part(part0, list(range(1001, 1080, 2)))
    writer.builder.read()
    time.sleep(0.3)  # longer than the window: one part alone must still not decide
    writer.builder.read()
    assert writer.ledger.first_frame_id == -1
    write_part(part1, list(range(1000, 1080, 2)))
    writer.builder.read()
    snap = writer.ledger.snapshot()
    # 1079 waits until part 1 has passed it (a part that flushed later may hold lower ids)
    assert (snap.first_frame_id, snap.n_placed, dict(snap.rejected_by_reason)) == (1000, 79, {})
    writer.sink.close("completed")


def test_a_run_complete_with_a_lost_frame_stays_complete_after_the_last_read(
    tmp_path: Path,
) -> None:
    writer = acquisition(tmp_path, 80)
    part0, part1 = writer.parts
    write_part(part0, list(range(1001, 1080, 2)))
    write_part(part1, [i for i in range(1000, 1080, 2) if i != 1040])  # 1040 is lost
    writer.builder.read()
    time.sleep(0.3)
    writer.builder.read()
    assert writer.ledger.complete  # the acquisition stops its writers
    writer.builder.read(final=True)  # as at the end: frames placed late reset no clock
    assert writer.ledger.complete and writer._end_reason() == "completed"
    writer.sink.close("completed")


def test_a_part_the_stream_no_longer_reaches_holds_nothing_back(tmp_path: Path) -> None:
    """ZeroMQ dealt the end of the stream to writer 1 alone: writer 0's part stops at 1038."""
    writer = acquisition(tmp_path, 80)
    writer.builder.quiet_s = 0.2
    part0, part1 = writer.parts
    write_part(part0, list(range(1000, 1040, 2)))
    write_part(part1, [*range(1001, 1040, 2), *range(1040, 1080)])
    writer.builder.read()
    assert writer.ledger.snapshot().n_placed == 39  # up to part 0's last id, for now
    time.sleep(0.3)
    writer.builder.read()
    assert writer.ledger.snapshot().n_placed == 39, "its writer was not seen drained"
    for part, n in zip(writer.frames.parts, (20, 60), strict=True):
        part.drained = n  # as polled: empty buffer, every frame written is in the part
    writer.builder.read()
    assert writer.ledger.snapshot().n_placed == 80
    writer.sink.close("completed")


def test_a_stray_high_id_in_a_part_does_not_let_the_others_run_ahead(tmp_path: Path) -> None:
    """Part 0's first row is a leftover (id 5000): its progress is its last row, 1018."""
    writer = acquisition(tmp_path, 80)
    part0, part1 = writer.parts
    write_part(part0, [5000, *range(1000, 1020, 2)])
    write_part(part1, list(range(1001, 1080, 2)))
    writer.builder.read()
    assert writer.ledger.snapshot().n_placed == 19  # 1000 .. 1018: part 0 may still hold 1020
    writer.sink.close("completed")

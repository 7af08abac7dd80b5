"""How the sink hands bytes to the disk: page-aligned large chunks, write-behind within a batch."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from test_layout_file import acquire, make_frames, tomcat_engine

from pco_writer.h5 import H5Sink, OutputFiles, _sink
from pco_writer.h5._writeback import WriteBehind
from pco_writer.ledger import FrameLedger


def chunk_offsets(path: Path, n: int) -> list[int]:
    with h5py.File(path, "r") as f:
        dsid = f["exchange/data"].id
        return [dsid.get_chunk_info(i).byte_offset for i in range(n)]


def test_large_chunks_start_on_a_page_boundary(tmp_path: Path) -> None:
    # 300 KB chunks: unaligned, each would share its first and last page with a neighbour
    acquire(tomcat_engine(), tmp_path / "big.h5", n=6, shape=(250, 600))
    offsets = chunk_offsets(tmp_path / "big.h5", 6)
    assert [o % 4096 for o in offsets] == [0] * 6
    with h5py.File(tmp_path / "big.h5", "r") as f:
        assert f["exchange/data"][5].tolist() == np.full((250, 600), 6, np.uint16).tolist()


def test_small_chunks_stay_packed(tmp_path: Path) -> None:
    acquire(tomcat_engine(), tmp_path / "small.h5", n=6, shape=(4, 6), batch=6)
    offsets = chunk_offsets(tmp_path / "small.h5", 6)
    assert np.diff(offsets).tolist() == [48] * 5  # 4 x 6 uint16, back to back


def test_write_behind_is_advanced_within_a_large_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real_advance = WriteBehind.advance

    def spy(self: WriteBehind) -> None:
        sizes.append((tmp_path / "out.h5").stat().st_size)
        real_advance(self)

    monkeypatch.setattr(WriteBehind, "advance", spy)
    shape, n = (400, 400), 12
    monkeypatch.setattr(_sink, "_WRITE_BEHIND_STEP", 3 * 400 * 400 * 2)  # three frames
    ledger = FrameLedger(n)
    sink = H5Sink(OutputFiles.from_output(str(tmp_path / "out.h5"), n, 0), "data", ledger,
                  layout=tomcat_engine())  # fmt: skip
    sink.write(make_frames(ledger, n, shape, None))  # one batch of 12 frames
    sink.close("completed")
    assert len(sizes) == 4  # after every third frame, not once after the batch
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert [int(f["exchange/data"][i, 0, 0]) for i in range(n)] == list(range(1, n + 1))


@pytest.mark.parametrize(
    ("sizes", "limit", "runs"),
    [
        ([5, 5, 5, 5], 10, [[5, 5], [5, 5]]),
        ([20, 1, 1], 10, [[20], [1, 1]]),  # a frame larger than the limit is a run of its own
        ([3, 3, 3], 100, [[3, 3, 3]]),
        ([], 10, []),
    ],
)
def test_batches_are_cut_into_runs_of_at_most_the_limit(
    sizes: list[int], limit: int, runs: list[list[int]]
) -> None:
    frames = make_frames(FrameLedger(0), len(sizes), (1, 1), None)
    for frame, size in zip(frames, sizes, strict=True):
        frame.nbytes = size
    assert [[f.nbytes for f in run] for run in _sink._by_bytes(frames, limit)] == runs

"""Roll-over, stopping by signal, gaps: what the file says about how an acquisition went."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import pytest
from _stream_helpers import SHAPE, camera, finish, frame, image, running_writer

from pco_writer.errors import DatasetExistsError
from pco_writer.h5._layout_file import LayoutFile
from pco_writer.h5._superblock import read_superblock
from pco_writer.settings import AcquisitionSettings
from pco_writer.writer import Writer, WriterStatus

FIRST = 1000


def test_roll_over_writes_complete_files_of_max_frames_each(tmp_path: Path) -> None:
    with camera() as cam, running_writer(
        connect=cam.address, output=str(tmp_path / "scan_%03d.h5"), n_frames=7,
        max_frames_per_file=3,
    ) as writer:  # fmt: skip
        for i in range(7):
            cam.send(frame(FIRST + i))
        stats = finish(writer)
    names = [f"scan_{n:03d}.h5" for n in (1, 2, 3)]
    assert stats["files"] == [str(tmp_path / n) for n in names]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    for number, (name, ids) in enumerate(
        zip(names, ([0, 1, 2], [3, 4, 5], [6]), strict=True), start=1
    ):
        with h5py.File(tmp_path / name, "r") as f:
            data = f["exchange/data"]
            assert data.shape == (len(ids), *SHAPE)
            for row, i in enumerate(ids):
                assert np.array_equal(data[row], image(FIRST + i))
            assert data.attrs["image_nr_low"] == 3 * (number - 1) + 1
            assert data.attrs["image_nr_high"] == 3 * (number - 1) + len(ids)
            group = f["measurement/acquisition/data"]
            assert list(group["frame"][:]) == [FIRST + i for i in ids]
            assert group.attrs["end_reason"] == "completed"
            assert group.attrs["n_frames_requested"] == len(ids)


def test_a_plain_output_name_gets_a_file_number_when_it_rolls_over(tmp_path: Path) -> None:
    with (
        camera() as cam,
        running_writer(
            connect=cam.address,
            output=str(tmp_path / "plain.h5"),
            n_frames=4,
            max_frames_per_file=2,
        ) as writer,
    ):
        for i in range(4):
            cam.send(frame(FIRST + i))
        stats = finish(writer)
    assert stats["files"] == [str(tmp_path / "plain_001.h5"), str(tmp_path / "plain_002.h5")]


def _roll_over(
    tmp_path: Path,
    sent: list[int],
    n_frames: int,
    per_file: int,
    stop: bool = False,
    sink: list[Any] | None = None,
) -> dict[str, Any]:
    """Roll-over files of the frames ``sent``; with ``stop``, the writer is stopped once they
    are all written (and its sink appended to ``sink``).

    The first two frames (a stream flowing) are written before the others are sent: frames
    that come in the first window are placed sorted by id (ADR 0041), and these tests are
    about the order after it.
    """
    with camera() as cam, running_writer(
        connect=cam.address, output=str(tmp_path / "scan_%03d.h5"), n_frames=n_frames,
        max_frames_per_file=per_file,
    ) as writer:  # fmt: skip
        cam.send(frame(FIRST + sent[0]))
        cam.send(frame(FIRST + sent[1]))
        deadline = time.monotonic() + 10
        while writer.statistics()["n_written_frames"] < 2:
            assert time.monotonic() < deadline, "the first frames were not written in 10 s"
            time.sleep(0.02)
        for i in sent[2:]:
            cam.send(frame(FIRST + i))
        while stop and writer.statistics()["n_written_frames"] < len(sent):
            assert time.monotonic() < deadline, "the frames sent were not written in 10 s"
            time.sleep(0.02)
        if stop:
            writer.stop()
        (sink if sink is not None else []).append(writer.sink)
        return finish(writer)


def _file(tmp_path: Path, number: int) -> tuple[list[int], list[int], npt.NDArray[Any]]:
    """A roll-over file's frame ids, missing frame ids and frames."""
    with h5py.File(tmp_path / f"scan_{number:03d}.h5", "r") as f:
        group = f["measurement/acquisition/data"]
        ids = [int(i) for i in group["frame"][:]]
        return ids, [int(i) for i in group["missing_frame_ids"][:]], f["exchange/data"][:]


def test_a_frame_overtaken_by_the_next_files_first_frame_is_written_to_its_file(
    tmp_path: Path,
) -> None:
    stats = _roll_over(tmp_path, [0, 1, 2, 3, 5, 4, 6, 7, 8, 9], n_frames=10, per_file=5)
    assert (stats["n_written_frames"], stats["n_dropped_frames"], stats["n_lost_frames"]) == (
        10, 0, 0,
    )  # fmt: skip
    for number in (1, 2):
        ids, missing, data = _file(tmp_path, number)
        expected = [FIRST + i for i in range(5 * (number - 1), 5 * number)]
        assert (ids, missing) == (expected, [])
        assert all(np.array_equal(data[row], image(i)) for row, i in enumerate(expected))


def test_a_frame_later_than_two_files_on_is_dropped_counted_and_listed_missing(
    tmp_path: Path,
) -> None:
    stats = _roll_over(tmp_path, [0, 2, 4, 1, 3, 5, 6, 7], n_frames=8, per_file=2)
    assert (stats["n_received_frames"], stats["n_written_frames"]) == (8, 7)
    assert stats["n_dropped_frames"] == 1  # frame 1 came after file 1 was closed
    ids, missing, _ = _file(tmp_path, 1)
    assert missing == [FIRST + 1]
    assert ids[0] == FIRST
    assert [_file(tmp_path, n)[1] for n in (2, 3, 4)] == [[], [], []]
    _every_id_listed_once(tmp_path, stats)


@pytest.mark.parametrize(
    ("sent", "n_frames", "listed"),
    [
        ([*range(5), *range(10, 15)], 15, {1: [], 3: list(range(5, 10))}),
        # the stream went past the end of the range (most of its last frames came, then
        # frames beyond it), file 3 never got a frame: the last file lists its ids
        ([*range(10), 15, 16], 15, {1: [], 2: list(range(10, 15))}),
    ],
    ids=["skipped-file-listed-by-the-next", "files-after-the-last-listed-by-the-last"],
)
def test_the_ids_of_a_file_that_got_no_frame_are_listed_as_missing_in_another(
    tmp_path: Path, sent: list[int], n_frames: int, listed: dict[int, list[int]]
) -> None:
    stats = _roll_over(tmp_path, sent, n_frames=n_frames, per_file=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"scan_{n:03d}.h5" for n in listed]
    for number, missing in listed.items():
        assert _file(tmp_path, number)[1] == [FIRST + i for i in missing]
    assert stats["n_lost_frames"] == sum(len(m) for m in listed.values())
    _every_id_listed_once(tmp_path, stats)


def test_a_start_with_roll_over_and_a_huge_n_frames_looks_at_the_folder_once(
    tmp_path: Path,
) -> None:
    writer = Writer(AcquisitionSettings(connect="tcp://127.0.0.1:1",
                                        output=str(tmp_path / "s_%03d.h5"),
                                        n_frames=2**63 - 1, max_frames_per_file=1000))  # fmt: skip
    checking = threading.Thread(target=writer.sink.check, daemon=True)  # what start() runs
    checking.start()
    checking.join(10.0)
    assert not checking.is_alive(), "checking the roll-over files took more than 10 s"


def test_a_later_roll_over_file_with_the_dataset_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    with (
        camera() as cam,
        running_writer(
            connect=cam.address, output=str(tmp_path / "scan_002.h5"), n_frames=1
        ) as writer,
    ):
        cam.send(frame(FIRST))
        finish(writer)
    before = (tmp_path / "scan_002.h5").read_bytes()
    with pytest.raises(DatasetExistsError, match="scan_002.h5"):
        Writer(AcquisitionSettings(connect="tcp://127.0.0.1:1",
                                   output=str(tmp_path / "scan_%03d.h5"),
                                   n_frames=10, max_frames_per_file=5)).start()  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan_002.h5"]
    assert (tmp_path / "scan_002.h5").read_bytes() == before


def _every_id_listed_once(tmp_path: Path, stats: dict[str, Any]) -> None:
    """No file lists an id written anywhere, none is listed twice, and the lists agree with
    the statistics (lost: every id of the range in no file; dropped: the received ones)."""
    files = [_file(tmp_path, int(p.stem.split("_")[1])) for p in sorted(tmp_path.iterdir())]
    written = [i for ids, _, _ in files for i in ids if i != np.iinfo(np.uint64).max]
    listed = [i for _, missing, _ in files for i in missing]
    assert not set(listed) & set(written), (listed, written)
    assert sorted(listed) == sorted(set(listed)), f"listed twice: {sorted(listed)}"
    assert len(listed) == stats["n_lost_frames"], (listed, stats)
    lost_by_reason = stats["lost_by_reason"]
    assert sum(lost_by_reason.values()) == stats["n_lost_frames"], stats
    assert stats["n_dropped_frames"] == stats["n_lost_frames"] - lost_by_reason.get(
        "never_received", 0
    )


def test_a_file_closed_before_a_lower_one_lists_none_of_the_lower_files_frames(
    tmp_path: Path,
) -> None:
    stats = _roll_over(tmp_path, [0, 1, 4, 5, 2, 3, 6, 7], n_frames=8, per_file=2)
    assert (stats["n_written_frames"], stats["n_lost_frames"], stats["n_dropped_frames"]) == (
        8, 0, 0,
    )  # fmt: skip
    assert [_file(tmp_path, n)[1] for n in (1, 2, 3, 4)] == [[], [], [], []]


def test_a_late_frame_of_a_file_number_that_had_none_still_reaches_its_file(
    tmp_path: Path,
) -> None:
    stats = _roll_over(tmp_path, [*range(5), *range(10, 16), 7], 20, per_file=5, stop=True)
    assert stats["n_written_frames"] == 12
    ids, missing, _ = _file(tmp_path, 2)
    assert FIRST + 7 in ids and missing == [FIRST + i for i in (5, 6, 8, 9)]
    _every_id_listed_once(tmp_path, stats)


def test_a_failed_close_of_one_file_still_closes_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_close = LayoutFile.close

    def close(self: LayoutFile, end: Any) -> None:
        real_close(self, end)
        if self.path.name == "scan_001.h5":  # e.g. the disk failing as file 1 is closed
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LayoutFile, "close", close)
    sink: list[Any] = []
    stats = _roll_over(tmp_path, [0, 2, 3], 0, per_file=2, stop=True, sink=sink)  # no 1:
    assert sink[0]._open == {}  # file 1 stayed open next to file 2, and both were closed
    assert "No space left" in stats["error"]
    with h5py.File(tmp_path / "scan_002.h5", "r") as f:
        assert f["measurement/acquisition/data"].attrs["end_reason"] == "stopped"


def test_a_link_placed_after_the_start_cannot_lead_a_roll_over_file_out_of_the_data_root(
    tmp_path: Path,
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    h5py.File(outside / "victim.h5", "w").close()
    before = (outside / "victim.h5").read_bytes()
    with camera() as cam, running_writer(
        connect=cam.address, output=str(root / "scan_%03d.h5"), n_frames=4,
        max_frames_per_file=2, data_root=str(root),
    ) as writer:  # fmt: skip
        (root / "scan_002.h5").symlink_to(outside / "victim.h5")  # after the start's checks
        for i in range(4):
            cam.send(frame(FIRST + i))
        stats = finish(writer)
    assert "outside the data root" in stats["error"] and "remove the link" in stats["error"]
    assert (stats["n_written_frames"], stats["n_dropped_frames"]) == (2, 2)
    assert (outside / "victim.h5").read_bytes() == before


def test_gaps_are_recorded_as_missing_frame_ids_and_the_end_reason(tmp_path: Path) -> None:
    sent = [0, 1, 3, 4, 7, 9]  # 2, 5, 6, 8 never come
    with (
        camera() as cam,
        running_writer(
            connect=cam.address, output=str(tmp_path / "gaps.h5"), n_frames=10
        ) as writer,
    ):
        for i in sent:
            cam.send(frame(FIRST + i))
        stats = finish(writer)
    assert (stats["n_written_frames"], stats["n_lost_frames"]) == (6, 4)
    with h5py.File(tmp_path / "gaps.h5", "r") as f:
        group = f["measurement/acquisition/data"]
        assert list(group["missing_frame_ids"][:]) == [FIRST + i for i in (2, 5, 6, 8)]
        assert group.attrs["end_reason"] == "completed"
        assert (group.attrs["n_frames_requested"], group.attrs["n_frames_written"]) == (10, 6)
        frames = group["frame"][:]
        assert [int(x) for x in frames[sent]] == [FIRST + i for i in sent]
        assert all(frames[i] == np.iinfo(np.uint64).max for i in (2, 5, 6, 8))
        data = f["exchange/data"]
        assert data.shape[0] == 10
        assert np.array_equal(data[7], image(FIRST + 7))
        assert not data[2].any()  # a gap reads as the fill value


def test_stop_ends_an_open_ended_acquisition_as_stopped(tmp_path: Path) -> None:
    with (
        camera() as cam,
        running_writer(connect=cam.address, output=str(tmp_path / "open.h5"), n_frames=0) as writer,
    ):
        for i in range(5):
            cam.send(frame(FIRST + i))
        deadline = time.monotonic() + 10
        while writer.statistics()["n_written_frames"] < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        writer.stop()
        stats = finish(writer)
    assert (stats["n_written_frames"], stats["end_reason"]) == (5, "stopped")
    assert writer.status is WriterStatus.FINISHED


def _write_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pco_writer.cli", "write", *args, "--buffer-bytes", "16M"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@contextmanager
def writer_process(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``pco-writer write`` as a process; killed at the end if the test left it running."""
    proc = _write_cli(*args)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@contextmanager
def streamed_until_stopped(
    output: Path, n: int, settle_s: float, shape: tuple[int, ...] = SHAPE, *more: str
) -> Iterator[subprocess.Popen[str]]:
    """A ``--n-frames 0`` writer process that was sent ``n`` frames ``settle_s`` s ago."""
    with (
        camera() as cam,
        writer_process(
            "--connect", cam.address, "--output", str(output), "--n-frames", "0", *more
        ) as proc,
    ):
        for i in range(n):
            cam.send(frame(FIRST + i, shape), timeout_ms=20_000)
        time.sleep(settle_s)
        yield proc


def test_sigterm_ends_n_frames_0_cleanly_with_exit_0(tmp_path: Path) -> None:
    output = tmp_path / "sig.h5"
    with streamed_until_stopped(output, 20, settle_s=1.5) as proc:  # taken and flushed
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    stats = json.loads(out)["statistics"]  # the exit record
    assert (stats["n_written_frames"], stats["end_reason"]) == (20, "stopped")
    with h5py.File(output, "r") as f:
        assert f["exchange/data"].shape == (20, *SHAPE)
        assert f["measurement/acquisition/data"].attrs["end_reason"] == "stopped"


def test_sigterm_while_the_writer_starts_ends_it_with_exit_0_and_says_so(tmp_path: Path) -> None:
    # issue 12.6: SIGTERM 0.5 s after the start, before any frame: exit 143 and an empty log
    output = tmp_path / "early.h5"
    with writer_process("--connect", "tcp://127.0.0.1:9", "--output", str(output)) as proc:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # written before the imports and the buffer
        assert "starting the writer" in first, first
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, first + err
    assert "signal 15" in err
    assert json.loads(out)["status"] == "finished"  # the exit record
    assert not output.exists()


def test_sigterm_while_the_command_line_is_parsed_ends_the_writer_with_exit_0(
    tmp_path: Path,
) -> None:
    """The parser's imports take ~0.2 s: a SIGTERM in them killed the writer (exit 143)."""
    output = tmp_path / "parsed.h5"
    script = (
        "import os, signal, sys\n"
        "from pco_writer import cli\n"
        "parser = cli.build_parser\n"
        "def build():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return parser()\n"
        "cli.build_parser = build\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "write", "--connect", "tcp://127.0.0.1:9",
         "--output", str(output)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "signal 15: not started yet" in done.stderr
    assert json.loads(done.stdout)["status"] == "finished"


def test_the_cli_refuses_a_taken_dataset_name_with_exit_2_and_a_clear_message(
    tmp_path: Path,
) -> None:
    output = tmp_path / "taken.h5"
    with camera() as cam, running_writer(connect=cam.address, output=str(output), n_frames=1) as w:
        cam.send(frame(FIRST))
        finish(w)
    before = output.read_bytes()
    proc = _write_cli("--connect", "tcp://127.0.0.1:1", "--output", str(output))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "dataset name 'data' already exists in" in err and "choose another" in err
    assert output.read_bytes() == before


def test_a_taken_rest_port_ends_the_writer_with_exit_2_and_a_clear_message(
    tmp_path: Path,
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        proc = _write_cli("--connect", "tcp://127.0.0.1:1", "--output", str(tmp_path / "x.h5"),
                          "--rest-port", str(port))  # fmt: skip
        try:
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    assert proc.returncode == 2
    assert f"cannot serve the writer API on 127.0.0.1:{port}" in err
    assert "choose a free --rest-port" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("bad", ["/", "scan_%s.h5", "scan_%d_%d.h5", "a" * 300 + ".h5"])
def test_a_bad_output_name_is_refused_before_connecting(bad: str, tmp_path: Path) -> None:
    proc = _write_cli("--connect", "tcp://127.0.0.1:1", "--output", bad if bad == "/" else
                      str(tmp_path / bad), "--max-frames-per-file", "5")  # fmt: skip
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "output file" in err
    assert not any(tmp_path.iterdir())


def check_killed_file(output: Path, n: int, shape: tuple[int, ...]) -> dict[str, Any]:
    """The frames and their values as streamed; returns the acquisition's attributes."""
    with h5py.File(output, "r") as f:  # plain open: no h5clear, no SWMR
        data = f["exchange/data"]
        assert data.shape == (n, *shape)
        for i in range(n):
            assert np.array_equal(data[i], image(FIRST + i, shape))
        group = f["measurement/acquisition/data"]
        assert list(group["frame"][:]) == [FIRST + i for i in range(n)]
        return dict(group.attrs)


@pytest.mark.parametrize(
    "shape", [SHAPE, (512, 1024)], ids=["small-frames", "1-MiB-frames-aligned-and-gil-free"]
)
def test_kill_minus_9_of_a_swmr_writer_leaves_a_file_that_pco_writer_repair_opens(
    tmp_path: Path, shape: tuple[int, int]
) -> None:
    output = tmp_path / "crash.h5"
    # 2.5 s: more than a flush interval after the last frame
    with streamed_until_stopped(output, 30, settle_s=2.5, shape=shape) as proc:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    with h5py.File(output, "r", swmr=True) as f:  # a reader that follows it reads on
        assert f["exchange/data"].shape == (30, *shape)
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(output, "r")
    repair = subprocess.run([sys.executable, "-m", "pco_writer.cli", "repair", str(output)],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert repair.returncode == 0, repair.stderr
    assert "cleared the superblock's open-for-writing flags" in repair.stdout
    attrs = check_killed_file(output, 30, shape)
    assert attrs["end_reason"] == "error: the writer died; repaired by pco-writer repair"
    assert attrs["repair_reason"].startswith("the writer died; repaired by pco-writer repair")
    assert attrs["repair_time"].startswith(time.strftime("%Y-"))


def test_kill_minus_9_of_a_no_swmr_writer_leaves_a_file_that_opens_as_it_is(
    tmp_path: Path,
) -> None:
    output = tmp_path / "crash.h5"
    with streamed_until_stopped(output, 30, 2.5, SHAPE, "--no-swmr") as proc:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    assert "end_reason" not in check_killed_file(output, 30, SHAPE)  # never closed: it shows
    block = read_superblock(output)
    assert block is not None and block.version == 0  # the HDF5 1.8 format, as before SWMR


def test_missing_parent_folders_are_created(tmp_path: Path) -> None:
    output = tmp_path / "e12345" / "sample" / "scan.h5"
    with camera() as cam, running_writer(connect=cam.address, output=str(output), n_frames=1) as w:
        cam.send(frame(FIRST))
        assert finish(w)["n_written_frames"] == 1
    with h5py.File(output, "r") as f:
        assert np.array_equal(f["exchange/data"][0], image(FIRST))

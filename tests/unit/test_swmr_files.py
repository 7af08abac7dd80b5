"""SWMR files in-process: the superblock flags and their checksum, the repair, the formats.

A crash is simulated by copying a file while its writer has it open: what ``kill -9`` leaves.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_layout_file import acquire, make_frames

from pco_writer.cli import main
from pco_writer.errors import OutputError
from pco_writer.h5 import H5Sink, OutputFiles
from pco_writer.h5._layout_file import H5Layout
from pco_writer.h5._repair import repair_file
from pco_writer.h5._superblock import clear_open_flags, lookup3, read_superblock
from pco_writer.layouts import load_layout, parse_layout
from pco_writer.ledger import FrameLedger


def test_lookup3_gives_the_values_of_bob_jenkins_reference_driver() -> None:
    assert lookup3(b"") == 0xDEADBEEF
    assert lookup3(b"", 0xDEADBEEF) == 0xBD5B7DDE
    assert lookup3(b"Four score and seven years ago") == 0x17770551
    assert lookup3(b"Four score and seven years ago", 1) == 0xCD628161


@pytest.mark.parametrize("userblock", [0, 512, 4096])
def test_the_checksum_of_a_superblock_written_by_hdf5_is_lookup3_of_its_bytes(
    tmp_path: Path, userblock: int
) -> None:
    path = tmp_path / "a.h5"
    with h5py.File(path, "w", libver=("v110", "v110"), userblock_size=userblock) as f:
        f["x"] = np.arange(3)
    block = read_superblock(path)
    assert block is not None and (block.offset, block.version, block.size) == (userblock, 3, 48)
    raw = path.read_bytes()[userblock : userblock + block.size]
    assert lookup3(raw[:-4]) == struct.unpack("<I", raw[-4:])[0]


def crashed_copy(tmp_path: Path, layout: str = "tomcat", swmr: bool = True) -> Path:
    """A file as a writer killed after its first flush leaves it (5 of 8 frames flushed)."""
    ledger = FrameLedger(8)
    sink = H5Sink(OutputFiles(str(tmp_path / "scan.h5")), "data", ledger,
                  flush_interval=0.0, layout=H5Layout(load_layout(layout), swmr=swmr))  # fmt: skip
    sink.write(make_frames(ledger, 8, (4, 6), lambda i: {"angle": float(i)})[:5])
    sink.flush_if_due()
    crashed = tmp_path / "crashed.h5"
    shutil.copy(tmp_path / "scan.h5", crashed)
    sink.close("completed")
    return crashed


def test_clearing_the_flags_of_a_crashed_swmr_file_lets_a_plain_open_read_it(
    tmp_path: Path,
) -> None:
    crashed = crashed_copy(tmp_path)
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(crashed, "r")
    before = read_superblock(crashed)
    assert before is not None and before.open_for_writing
    assert clear_open_flags(crashed) == before
    assert clear_open_flags(crashed) is None  # nothing left to do
    with h5py.File(crashed, "r") as f:
        data = f["exchange/data"]
        assert data.shape == (5, 4, 6)
        assert all(np.array_equal(data[i], np.full((4, 6), i + 1)) for i in range(5))


def test_a_damaged_superblock_is_left_alone(tmp_path: Path) -> None:
    crashed = crashed_copy(tmp_path)
    raw = bytearray(crashed.read_bytes())
    raw[20] ^= 0xFF  # in the base/extension addresses: the checksum no longer fits
    crashed.write_bytes(bytes(raw))
    with pytest.raises(OSError, match="checksum .* is wrong"):
        clear_open_flags(crashed)
    assert crashed.read_bytes() == bytes(raw)


@pytest.mark.parametrize("layout", ["tomcat", "nxtomo"])
def test_the_repair_records_the_end_and_itself_where_the_layout_keeps_the_end_reason(
    tmp_path: Path, layout: str
) -> None:
    crashed = crashed_copy(tmp_path, layout)
    done = repair_file(crashed, load_layout(layout), "the writer died (SIGKILL)", "a test")
    assert (done.cleared_flags, done.ended) == (True, ["data"])
    assert "cleared the superblock's open-for-writing flags" in done.describe()
    expected = "error: the writer died (SIGKILL); repaired by a test"
    with h5py.File(crashed, "r") as f:
        if layout == "tomcat":
            group = f["measurement/acquisition/data"]
            assert group.attrs["end_reason"] == expected
        else:
            group = f["entry/acquisitions/data"]
            assert group["end_reason"][()] == expected.encode()
        assert group.attrs["repair_reason"].startswith("the writer died (SIGKILL); repaired by")
        assert group.attrs["repair_time"]
    again = repair_file(crashed, load_layout(layout), "the writer died", "a test")
    assert (again.cleared_flags, again.ended) == (False, [])
    assert again.describe().endswith("nothing to repair")


def test_the_repair_of_a_1_8_format_file_records_the_end_without_flags(tmp_path: Path) -> None:
    crashed = crashed_copy(tmp_path, swmr=False)
    with h5py.File(crashed, "r") as f:  # opens as it is
        assert "end_reason" not in f["measurement/acquisition/data"].attrs
    done = repair_file(crashed, load_layout("tomcat"), "the writer died", "a test")
    assert (done.cleared_flags, done.ended) == (False, ["data"])
    block = read_superblock(crashed)
    assert block is not None and block.version == 0


def test_the_repair_leaves_ended_acquisitions_and_other_names_alone(tmp_path: Path) -> None:
    path = tmp_path / "scan.h5"
    acquire(H5Layout(load_layout("tomcat")), path)
    done = repair_file(path, load_layout("tomcat"), "the writer died", "a test")
    assert (done.cleared_flags, done.ended) == (False, [])
    done = repair_file(path, load_layout("tomcat"), "x", "a test", dataset_name="data_white")
    assert done.ended == []
    with h5py.File(path, "r") as f:
        assert f["measurement/acquisition/data"].attrs["end_reason"] == "completed"


def test_the_repair_refuses_a_file_a_process_still_writes(tmp_path: Path) -> None:
    crashed = crashed_copy(tmp_path)
    before = crashed.read_bytes()
    refused = pytest.raises(OutputError, match=f"process {os.getpid()} has it open for writing")
    with open(crashed, "r+b"), refused:  # this process: a writer that still runs
        repair_file(crashed, load_layout("tomcat"), "the writer died", "a test")
    assert crashed.read_bytes() == before
    with open(crashed, "rb"):  # a reader that follows the file is no reason to refuse
        assert repair_file(crashed, load_layout("tomcat"), "died", "a test").cleared_flags


def test_the_repair_of_a_layout_without_end_reason_notes_it_on_the_root(tmp_path: Path) -> None:
    layout = parse_layout({"name": "bare", "tree": {"frames": {"frames": {"append": True}}}})
    ledger = FrameLedger(4)
    sink = H5Sink(OutputFiles(str(tmp_path / "scan.h5")), "data", ledger,
                  flush_interval=0.0, layout=H5Layout(layout))  # fmt: skip
    sink.write(make_frames(ledger, 4, (4, 6), None))
    sink.flush_if_due()
    shutil.copy(tmp_path / "scan.h5", tmp_path / "crashed.h5")
    sink.close("completed")
    assert (
        repair_file(tmp_path / "scan.h5", layout, "died", "t")
        .describe()
        .endswith("nothing to repair")
    )
    repair_file(tmp_path / "crashed.h5", layout, "the writer died", "a test")
    with h5py.File(tmp_path / "crashed.h5", "r") as f:
        assert f.attrs["repair_reason"].startswith("the writer died; repaired by a test")
        assert f["frames"].shape == (4, 4, 6)


def test_a_swmr_file_keeps_per_frame_text_fixed_length_and_leaves_out_what_does_not_fit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "scan.h5"
    tags = ["short", "é" * 20, "x" * 65, "again"]  # 64 bytes at least: the 65 do not fit
    with caplog.at_level(logging.WARNING):
        acquire(H5Layout(load_layout("tomcat")), path, n=4, extra=lambda i: {"tag": tags[i]})
    with h5py.File(path, "r") as f:
        tag = f["measurement/acquisition/data/tag"]
        info = h5py.check_string_dtype(tag.dtype)
        assert info is not None and (info.encoding, info.length) == ("utf-8", 64)
        assert tag.asstr()[:].tolist() == ["short", "é" * 20, "", "again"]
    assert "a value of 65 bytes is longer than the dataset's fixed length (64" in caplog.text


def test_a_file_in_the_1_8_format_is_appended_to_in_its_format_without_swmr(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "scan.h5"
    acquire(H5Layout(load_layout("tomcat"), swmr=False), path)
    with caplog.at_level(logging.WARNING):
        acquire(H5Layout(load_layout("tomcat"), swmr=True), path, "data_white")
    assert "HDF5 1.8 format (superblock 0): appending without SWMR" in caplog.text
    block = read_superblock(path)
    assert block is not None and (block.version, block.flags) == (0, 0)
    with h5py.File(path, "r") as f:
        assert f["exchange/data_white"].shape == (10, 4, 6)
        assert f["measurement/acquisition/data_white/tag"].dtype == h5py.string_dtype()


def test_a_start_into_a_file_its_killed_writer_left_open_names_the_repair(tmp_path: Path) -> None:
    crashed = crashed_copy(tmp_path)
    layout = H5Layout(load_layout("tomcat"))
    with pytest.raises(OutputError, match=f"`pco-writer repair {crashed}` makes it readable"):
        layout.check(crashed, "data_white")
    repair_file(crashed, load_layout("tomcat"), "the writer died", "a test")
    layout.check(crashed, "data_white")  # repaired: a next acquisition may append


def test_pco_writer_repair_takes_a_roll_over_template_for_each_of_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crashed = crashed_copy(tmp_path)
    for number in (1, 2):
        shutil.copy(crashed, tmp_path / f"scan_{number:03d}.h5")
    assert main(["repair", str(tmp_path / "scan_%03d.h5")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        str(tmp_path / "scan_001.h5"), str(tmp_path / "scan_002.h5")
    ]  # fmt: skip
    for number in (1, 2):
        with h5py.File(tmp_path / f"scan_{number:03d}.h5", "r") as f:
            attrs = f["measurement/acquisition/data"].attrs
            assert attrs["end_reason"] == "error: the writer died; repaired by pco-writer repair"
    assert main(["repair", str(tmp_path / "nothing_%03d.h5")]) == 1


@pytest.mark.parametrize("swmr", [True, False], ids=["swmr", "1.8-format"])
def test_pco_writer_repair_finds_the_built_in_layout_a_file_was_written_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], swmr: bool
) -> None:
    crashed = crashed_copy(tmp_path, "nxtomo", swmr=swmr)
    assert main(["repair", str(crashed)]) == 0  # no --layout: an nxtomo file, not tomcat
    assert "recorded the end of 'data'" in capsys.readouterr().out
    with h5py.File(crashed, "r") as f:  # nxtomo records the end in a dataset of its own
        ends: list[str] = []
        f.visititems(lambda name, obj: ends.extend(
            [obj.asstr()[()]] if name.endswith("data/end_reason") else []
        ))  # fmt: skip
        assert ends == ["error: the writer died; repaired by pco-writer repair"]


def test_pco_writer_repair_asks_for_the_layout_of_a_file_no_built_in_layout_fits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = 1
    with caplog.at_level(logging.ERROR):
        assert main(["repair", str(path)]) == 1
    assert "name it with --layout" in caplog.text


def test_pco_writer_repair_finds_the_layout_of_a_file_killed_open_without_swmr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A writer killed while it closes (``r+`` without SWMR) leaves a flag a SWMR reader
    refuses: the layout is looked for once the flags are cleared."""
    import subprocess
    import sys

    crashed = crashed_copy(tmp_path)
    assert clear_open_flags(crashed) is not None
    kill_while_open = (
        f"import h5py, os; f = h5py.File({str(crashed)!r}, 'r+', libver='latest'); "
        "f.flush(); os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", kill_while_open], timeout=60, check=False)
    block = read_superblock(crashed)
    assert block is not None and block.open_for_writing
    assert main(["repair", str(crashed)]) == 0
    assert "recorded the end of 'data'" in capsys.readouterr().out

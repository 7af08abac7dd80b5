"""Output file names with roll-over, as pco_rclient makes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pco_writer.errors import ConfigError
from pco_writer.h5 import OutputFiles
from pco_writer.names import validate_dataset_name


def test_a_template_is_filled_with_the_1_based_file_number() -> None:
    files = OutputFiles.from_output("/d/scan_%03d.h5", n_frames=10, max_frames_per_file=4)
    assert [files.file_number(i) for i in (0, 3, 4, 9)] == [1, 1, 2, 3]
    assert files.path(2) == Path("/d/scan_002.h5") and files.first_index(3) == 8


def test_a_plain_name_gets_a_number_by_pco_rclients_rule_without_its_holes() -> None:
    assert OutputFiles.from_output("/d/s.h5", 10, 4).template == "/d/s_%03d.h5"
    assert OutputFiles.from_output("/d/s.h5", 0, 4).template == "/d/s_%03d.h5"  # until stopped
    assert OutputFiles.from_output("/d/s.h5", 4, 4).path(1) == Path("/d/s_001.h5")  # as rclient
    assert OutputFiles.from_output("/d/s.h5", 3, 4).path(1) == Path("/d/s.h5")
    assert OutputFiles.from_output("/d/s.h5", 10, 0).path(1) == Path("/d/s.h5")  # one file


def test_a_literal_percent_is_kept() -> None:
    assert OutputFiles.from_output("/d/100%%_%d.h5", 10, 5).path(2) == Path("/d/100%_2.h5")


@pytest.mark.parametrize("bad", ["/d/", "/d/%s.h5", "/d/%d_%d.h5", ""])
def test_bad_output_names_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(ConfigError, match="output file"):
        OutputFiles.from_output(bad, 10, 5)


@pytest.mark.parametrize("bad", ["", "a/b", "..", ".hidden", "x" * 129, "dat a"])
def test_bad_dataset_names_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="dataset name"):
        validate_dataset_name(bad)


@pytest.mark.parametrize(
    ("template", "names", "numbers"),
    [
        ("scan_%03d.h5", ["scan_001.h5", "scan_002.h5", "scan_7.h5", "scan_abc.h5"], [1, 2]),
        ("scan_%d.h5", ["scan_001.h5", "scan_7.h5"], [7]),
        ("scan_%3d.h5", ["scan_  2.h5", "scan_002.h5", "scan_ 12.h5"], [2, 12]),
        ("a%%_%d.h5", ["a%_3.h5", "a_3.h5"], [3]),
    ],
)
def test_existing_numbers_are_those_the_template_itself_would_write(
    tmp_path: Path, template: str, names: list[str], numbers: list[int]
) -> None:
    for name in names:
        (tmp_path / name).touch()
    assert OutputFiles(str(tmp_path / template), 5).existing_numbers() == numbers

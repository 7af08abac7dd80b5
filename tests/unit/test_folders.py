"""Output folders made below the data root: mkdir -p, never through a link out of the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pco_writer.errors import OutputError
from pco_writer.folders import make_folders, missing_folders


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


def test_missing_folders_are_made_outermost_first_and_returned(root: Path) -> None:
    made = make_folders(root / "e12345" / "scan_7" / "raw", root)
    assert made == [root / "e12345", root / "e12345/scan_7", root / "e12345/scan_7/raw"]
    assert (root / "e12345/scan_7/raw").is_dir()
    assert make_folders(root / "e12345" / "scan_7" / "raw", root) == []  # mkdir -p: no error


def test_without_a_root_any_absolute_folder_is_made(tmp_path: Path) -> None:
    assert make_folders(tmp_path / "a" / "b") == [tmp_path / "a", tmp_path / "a/b"]


def test_a_link_inside_the_root_is_followed_and_the_folder_made_where_it_leads(
    root: Path,
) -> None:
    (root / "real").mkdir()
    (root / "current").symlink_to(root / "real")
    assert make_folders(root / "current" / "scan", root) == [root / "current/scan"]
    assert (root / "real" / "scan").is_dir()


def test_a_link_that_leads_out_of_the_root_is_refused_and_nothing_is_made(
    root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "out").symlink_to(outside)
    with pytest.raises(OutputError, match="outside the data root"):
        make_folders(root / "out" / "scan" / "raw", root)
    assert list(outside.iterdir()) == []
    with pytest.raises(OutputError, match="outside the data root"):
        missing_folders(root / "out" / "scan", root)


def test_dotdot_after_a_missing_folder_is_refused(root: Path) -> None:
    with pytest.raises(OutputError, match=r"'\.\.'"):
        make_folders(Path(f"{root}/new/../../escape"), root)
    assert not (root / "new").exists()


def test_a_file_in_the_way_is_named_in_the_error(root: Path) -> None:
    (root / "scan").write_text("not a folder")
    with pytest.raises(OutputError, match="is not a folder"):
        make_folders(root / "scan" / "raw", root)


def test_a_dangling_link_in_the_way_is_refused(root: Path, tmp_path: Path) -> None:
    (root / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match="gone"):
        make_folders(root / "gone" / "scan", root)
    assert not (tmp_path / "nowhere").exists()


def test_a_link_put_where_a_folder_is_being_made_is_not_followed(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link placed between the check and the mkdir (a race) makes it fail, not escape."""
    outside = tmp_path / "outside"
    outside.mkdir()
    real_mkdir = os.mkdir

    def mkdir_losing_a_race(name: str, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        if name == "scan":  # someone else puts a link there first
            os.symlink(outside, name, dir_fd=dir_fd)
            raise FileExistsError(name)
        real_mkdir(name, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", mkdir_losing_a_race)
    with pytest.raises(OutputError, match="a link or a file is in the way"):
        make_folders(root / "e1" / "scan" / "raw", root)
    assert list(outside.iterdir()) == []


def test_a_folder_the_user_may_not_write_gives_an_error_naming_it(root: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    (root / "locked").mkdir(mode=0o555)
    with pytest.raises(OutputError, match="cannot make folder .*locked/scan"):
        make_folders(root / "locked" / "scan", root)


def test_a_relative_folder_is_refused(root: Path) -> None:
    with pytest.raises(OutputError, match="not absolute"):
        make_folders(Path("relative/scan"), root)

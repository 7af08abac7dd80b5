"""``pco-writer layout list|show|check`` and ``write --layout``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pco_writer.cli import main


def test_layout_list_names_the_built_in_layouts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["layout", "list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["nxtomo", "tomcat"]


def test_layout_show_prints_the_file_and_its_parameters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["layout", "show", "nxtomo"]) == 0
    out = capsys.readouterr().out
    assert "definition: NXtomo" in out
    assert "start_angle: NX_FLOAT [degree], optional, default 0.0" in out


def test_layout_check_accepts_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: g\ntree:\n  '{dataset_name}': {frames: {}}\n")
    assert main(["layout", "check", str(good)]) == 0
    assert "is valid" in capsys.readouterr().out


def test_layout_check_names_each_mistake_by_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: b\ntree:\n  entry:\n    NX_class: NXentry\n    entries:\n"
        "      data: {frames: {append: true}}\n      angle: {parameter: start}\n"
        "      plot: {link: /entry/nothing}\n"
    )
    assert main(["layout", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "/entry/angle: parameter 'start' is not declared" in err
    assert "/entry/plot: link target '/entry/nothing'" in err


def test_write_refuses_an_unknown_layout_before_connecting(tmp_path: Path) -> None:
    args = ["write", "--connect", "tcp://127.0.0.1:1", "--output", str(tmp_path / "a.h5"),
            "--layout", str(tmp_path / "missing.yaml")]  # fmt: skip
    assert main(args) == 2
    assert not (tmp_path / "a.h5").exists()

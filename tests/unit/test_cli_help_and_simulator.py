"""The command line's help and its door, and the simulator's rate (issue 17, items 3, 5, 6)."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from typing import Any

import pytest
import zmq

from pco_writer.cli import _subparsers, build_parser, main
from pco_writer.simulate import CameraSimulator


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    flags = (argparse._HelpAction, argparse._StoreTrueAction, argparse._StoreFalseAction)
    return [a for a in parser._actions if a.option_strings and not isinstance(a, flags)]


def test_every_option_of_every_command_says_its_default_or_that_it_is_required() -> None:
    missing = []
    for sub in _subparsers(build_parser()):
        formatter = sub._get_formatter()
        for action in _options(sub):
            text = formatter._expand_help(action)  # as --help shows it, default added
            if not action.required and not ("(default: " in text or "(required" in text):
                missing.append(f"{sub.prog} {action.option_strings[-1]}: {text}")
    assert missing == []


def test_the_simulator_says_the_frame_shape_it_sends() -> None:
    parser = dict((s.prog, s) for s in _subparsers(build_parser()))["pco-writer simulate"]
    text = " ".join(parser.format_help().split())
    assert "(default: 2160 2560)" in text and "(default: uint16)" in text
    assert "while no writer receives" in text and "no burst" in text


def test_the_top_level_help_is_plain_text_without_rest_markup() -> None:
    text = build_parser().format_help()
    for markup in ("``", ":func:", ":class:", ":mod:", ".. "):
        assert markup not in text
    assert "docs/guide.md" in text


def test_simulate_on_a_busy_port_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        code = main(["simulate", "--bind", address, "--frames", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"pco-writer simulate: error: cannot bind {address}: Address already in use" in err
    assert "another camera or simulator uses it" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--dtype", "floaty"], "pixel type 'floaty' is not one Array-1.0 carries"),
        (["--shape", "2"], "image shape [2] is not 2 or 3 positive numbers"),
        (["--shape", "4", "0"], "image shape [4, 0] is not 2 or 3 positive numbers"),
    ],
)
def test_simulate_with_a_bad_pixel_type_or_shape_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    assert main(["simulate", "--bind", "tcp://127.0.0.1:*", "--frames", "1", *args]) == 2
    err = capsys.readouterr().err
    assert f"pco-writer simulate: error: {said}" in err and "Traceback" not in err


def test_replaying_a_folder_without_a_capture_is_one_line(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--replay", str(tmp_path)]) == 2
    assert "is it a capture folder?" in capsys.readouterr().err


def test_the_simulator_keeps_its_rate_after_waiting_for_a_receiver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It used to catch up in bursts of 900-1500 frames/s once a writer connected."""
    sent: list[float] = []
    real_count = CameraSimulator._count

    def count(self: CameraSimulator) -> bool:
        sent.append(time.monotonic())
        return real_count(self)

    monkeypatch.setattr(CameraSimulator, "_count", count)
    fps, n = 50.0, 30
    sim = CameraSimulator("tcp://127.0.0.1:*", (4, 4), fps=fps, frames=n)
    address = sim.bind()
    sender = threading.Thread(target=sim.run)
    sender.start()
    ctx: zmq.Context[Any] = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    try:
        time.sleep(0.5)  # nobody receives for 25 frames' time
        pull.connect(address)
        for _ in range(n):
            assert pull.poll(5000), "a frame did not come"
            pull.recv_multipart()
    finally:
        sim.stop()
        sender.join(10)
        pull.close(linger=0)
        sim.close(linger_ms=0)
        ctx.term()
    assert len(sent) == n and sim.n_late >= 1
    spans = [sent[i + 10] - sent[i] for i in range(n - 10)]
    assert min(spans) >= 5 / fps, f"a burst: 10 frames in {min(spans):.3f} s at {fps:g} fps"


def test_a_warning_on_the_command_line_is_one_line_without_a_source_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import warnings

    from pco_writer import cli
    from pco_writer.errors import UnusualNameWarning

    shown: list[str] = []

    def handler(_args: Any) -> int:  # what the command's own warnings.warn would print
        warning = UnusualNameWarning("dataset_name 'data_blak' is not one of the usual names")
        shown.append(warnings.formatwarning(warning, UnusualNameWarning, "/src/x.py", 7))
        return 0

    python_format = warnings.formatwarning
    monkeypatch.setattr(cli, "_run_repair", handler)  # any sub-command will do
    assert cli.main(["repair", "f.h5"]) == 0
    assert shown == [
        "pco-writer: warning: dataset_name 'data_blak' is not one of the usual names\n"
    ]
    assert warnings.formatwarning is python_format, "restored for the rest of the process"

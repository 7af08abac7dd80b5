"""PcoWriter catches a new user's mistakes in configure(), all at once, and says what a run did.

Issue 17: ``configure(layout="nxtom")`` passed and ``validate_configuration()`` said True; a
typo in the dataset name was written silently; the statistics and the bar hid dropped frames;
a camera that sent nothing looked like a hang.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pco_writer.client import ClientError, PcoWriter, RunStatistics
from pco_writer.client._progress import Progress
from pco_writer.errors import UnusualNameWarning
from pco_writer.exit_record import describe_end

NOWHERE = "http://127.0.0.1:1"  # configure() and get_configuration() reach no server


def client(**settings: object) -> PcoWriter:
    return PcoWriter("scan.h5", flask_api_address=NOWHERE, writer_api_address=NOWHERE,
                     **settings)  # type: ignore[arg-type]  # fmt: skip


def offline_configure(pco: PcoWriter, monkeypatch: pytest.MonkeyPatch, **settings: object) -> None:
    monkeypatch.setattr(pco, "is_running", lambda: False)  # no server to ask
    pco.configure(**settings)  # type: ignore[arg-type]


def test_a_misspelt_layout_is_refused_by_configure_not_first_by_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with client() as pco:
        with pytest.raises(ClientError, match="did you mean 'nxtomo'"):
            offline_configure(pco, monkeypatch, layout="nxtom")
        assert pco.layout == "tomcat" and pco.validate_configuration()
    with client(layout="nxtom") as pco:
        assert pco.validate_configuration() is False and pco.status == "unconfigured"


def test_every_wrong_value_of_one_configure_is_named_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with client() as pco, pytest.raises(ClientError) as info:
        offline_configure(pco, monkeypatch, n_frames=-1, layout="nxtom", compression="gzip")
    text = str(info.value)
    assert "n_frames:" in text and "layout:" in text and "compression:" in text
    assert pco.n_frames == 0  # all or nothing


def test_parameters_are_checked_against_a_built_in_layout_in_configure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with client(layout="nxtomo") as pco:
        with pytest.raises(ClientError, match=r"parameters: unknown parameter\(s\) sample_nme"):
            offline_configure(pco, monkeypatch, parameters={"sample_nme": "foam"})
        with pytest.raises(ClientError, match="'distance' is NX_FLOAT"):
            offline_configure(pco, monkeypatch, parameters={"distance": "far"})
        offline_configure(pco, monkeypatch, parameters={"sample_name": "foam", "distance": 120})
        config = pco.get_configuration()
    assert config["parameters"] == {"sample_name": "foam", "distance": 120}
    assert config["layout"] == "nxtomo"


def test_parameters_for_the_default_layout_are_refused_as_it_takes_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with client() as pco, pytest.raises(ClientError, match="this layout takes no parameters"):
        offline_configure(pco, monkeypatch, parameters={"sample_name": "foam"})


def test_a_layout_file_this_host_sees_is_checked_one_it_cannot_see_is_the_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntree:\n  entry: {NX_class: 5}\n")
    with client() as pco:
        with pytest.raises(ClientError, match="layout: layout file .* has 2 mistake"):
            offline_configure(pco, monkeypatch, layout=str(bad))
        offline_configure(pco, monkeypatch, layout="/on/the/server/only.yaml",
                          parameters={"anything": 1})  # fmt: skip
        assert pco.get_configuration()["layout"] == "/on/the/server/only.yaml"


def test_an_idle_timeout_is_sent_only_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    with client() as pco:
        assert "idle_timeout" not in pco.get_configuration()
        assert "parameters" not in pco.get_configuration()  # the request stays pco_rclient's
        offline_configure(pco, monkeypatch, idle_timeout=30)
        assert pco.get_configuration()["idle_timeout"] == "30.0"
        with pytest.raises(ClientError, match="idle_timeout"):
            offline_configure(pco, monkeypatch, idle_timeout=-1)


def test_a_dataset_name_that_looks_like_a_typo_gets_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with client() as pco:
        with pytest.warns(UnusualNameWarning, match="did you mean 'data_black'"):
            offline_configure(pco, monkeypatch, dataset_name="data_blak")
        assert pco.dataset_name == "data_blak"  # a warning, not a refusal


@pytest.mark.parametrize(
    ("stats", "line"),
    [
        ({"end_reason": "killed", "n_written_frames": 5169, "n_dropped_frames": 1049,
          "lost_by_reason": {"killed": 1049}}, "killed: 5169 written, 1049 dropped"),
        ({"end_reason": "completed", "n_frames": 100, "n_written_frames": 100},
         "completed: 100 of 100 written"),
        ({"end_reason": "stopped: no frame for 3 s (idle timeout)", "n_written_frames": 80,
          "lost_by_reason": {"never_received": 3}}, "stopped: 80 written, 3 never received"),
        ({"end_reason": "error: x", "status": "error", "error": "no frame written: nothing came",
          "n_written_frames": 0}, "error: 0 written (no frame written: nothing came)"),
    ],
)  # fmt: skip
def test_the_end_of_a_run_is_told_in_one_line(stats: dict[str, object], line: str) -> None:
    assert describe_end(stats) == line


def test_run_statistics_carry_the_dropped_frames_within_the_lost_ones() -> None:
    stats = RunStatistics.from_json({
        "status": "finished", "end_reason": "killed", "n_frames": 0, "n_written_frames": 5169,
        "n_lost_frames": 1049, "n_dropped_frames": 1049, "lost_by_reason": {"killed": 1049},
    })  # fmt: skip
    assert (stats.n_lost_frames, stats.n_dropped_frames) == (1049, 1049)
    assert stats.lost_by_reason == {"killed": 1049}
    assert stats.summary() == "killed: 5169 written, 1049 dropped"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def receiving(received: int, duration: float) -> dict[str, object]:
    return {"status": "receiving", "n_received_frames": received, "duration_sec": duration}


def test_the_bar_says_when_no_frame_has_come_for_a_few_seconds() -> None:
    clock = FakeClock()
    bar = Progress(True, 100, "data", "tcp://10.0.0.9:8080", clock=clock)
    try:
        bar.update(receiving(0, 2.0))
        assert bar.notice == ""
        bar.update(receiving(0, 6.4))  # nothing since the start
        assert bar.notice == "no frame from tcp://10.0.0.9:8080 for 6 s"
        bar.update(receiving(10, 7.0))
        assert bar.notice == ""
        clock.now += 8  # the camera stopped after 10 frames
        bar.update(receiving(10, 15.0))
        assert bar.notice == "no frame from tcp://10.0.0.9:8080 for 8 s"
        bar.update({**receiving(10, 16.0), "status": "writing"})  # stopped: nothing to wait for
        assert bar.notice == ""
    finally:
        bar.close()


def test_the_bar_draws_the_notice_while_no_frame_comes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 17.2: the notice was kept but not drawn until the bar closed."""
    bar = Progress(True, 10, "data", "tcp://127.0.0.1:1", clock=FakeClock())
    try:
        bar.update(receiving(0, 6.0))
        assert "no frame from tcp://127.0.0.1:1 for 6 s" in capsys.readouterr().err
    finally:
        bar.close()


def test_without_a_bar_the_log_says_it_less_and_less_often(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bar = Progress(False, 0, "data", "tcp://10.0.0.9:8080", clock=FakeClock())
    with caplog.at_level(logging.WARNING, "pco_writer.client"):
        for second in range(1, 30):
            bar.update(receiving(0, float(second)))
    bar.close()
    said = [r.getMessage() for r in caplog.records]
    assert [m.split(" for ")[1].split(" s")[0] for m in said] == ["5", "10", "20"]
    assert "is the camera sending to this address?" in said[0]

"""The one acquisition settings model: its flags, its JSON hand-over and its wire form."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, ValidationError

from pco_writer.cli import build_parser
from pco_writer.errors import ConfigError
from pco_writer.settings import AcquisitionSettings, RequestSettings, StartRequest
from pco_writer.writer_command import (
    WriteCommand,
    add_settings_flags,
    add_write_arguments,
    flag_of,
    parse_write_command,
    settings_from_args,
    write_command,
)

# Every field with a value other than its default: a field that a hand-over loses shows.
UNUSUAL: dict[str, Any] = {
    "connect": "tcp://[::1]:8081",
    "output": "/data/scans/scan_%03d.h5",
    "dataset_name": "data_white",
    "n_frames": 12345,
    "max_frames_per_file": 1000,
    "user_id": 503,
    "compression": "bitshuffle-lz4",
    "layout": "/data/layouts/mine.yaml",
    "buffer_bytes": 512 << 20,
    "max_frame_gap": 77,
    "idle_timeout": 2.5,
    "flush_interval": 0.25,
    "compression_threads": 3,
    "data_root": "/data",
    "parameters": {"sample_name": "foam", "distance": 120.5, "flags": [1, 2]},
    "swmr": False,
    "n_writers": 3,
    "shard": {"index": 1, "count": 3},
    "live_stream": "tcp://0.0.0.0:8090",
    "live_stream_every": 25,
}


def test_the_unusual_values_cover_every_field_and_none_is_a_default() -> None:
    fields = AcquisitionSettings.model_fields
    assert set(UNUSUAL) == set(fields)
    assert all(UNUSUAL[name] != field.default for name, field in fields.items())


def test_every_setting_has_a_docstring_that_becomes_its_help() -> None:
    for name, field in AcquisitionSettings.model_fields.items():
        assert field.description and len(field.description) > 20, name


def test_the_control_servers_command_line_hands_the_settings_over_unchanged() -> None:
    settings = AcquisitionSettings(**UNUSUAL)
    command = WriteCommand(settings, 9555, "127.0.0.1", "http://127.0.0.1:9901/writers/9555")
    argv = write_command("python", command)
    assert argv[:4] == ["python", "-m", "pco_writer.cli", "write"]
    assert parse_write_command(argv[4:]) == command


def test_every_setting_is_a_flag_named_after_it_with_its_default_in_the_help() -> None:
    parser = argparse.ArgumentParser()
    add_write_arguments(parser)
    text = parser.format_help()
    for name, field in AcquisitionSettings.model_fields.items():
        assert flag_of(name) in text, name
        if not field.is_required():
            assert "(default: " in text
    assert "(default: tomcat)" in text and "(default: 1073741824)" in text


def test_the_flags_people_and_scripts_use_keep_working() -> None:
    argv = [
        "write", "--connect", "tcp://127.0.0.1:8080", "--output", "/d/s.h5",
        "--n-frames", "10", "--dataset-name", "data_dark", "--max-frames-per-file", "5",
        "--buffer-bytes", "64M", "--max-frame-gap", "10", "--idle-timeout", "1.5",
        "--flush-interval", "0.5", "--user-id", "7", "--layout", "nxtomo",
        "--compression", "blosc-lz4", "--compression-threads", "2", "--data-root", "/d",
        "--rest-port", "9555", "--rest-host", "0.0.0.0", "--control-url", "http://c",
    ]  # fmt: skip
    args = build_parser().parse_args(argv)
    assert settings_from_args(args) == AcquisitionSettings(
        connect="tcp://127.0.0.1:8080", output="/d/s.h5", n_frames=10, dataset_name="data_dark",
        max_frames_per_file=5, buffer_bytes=64 << 20, max_frame_gap=10, idle_timeout=1.5,
        flush_interval=0.5, user_id=7, layout="nxtomo", compression="blosc-lz4",
        compression_threads=2, data_root="/d",
    )  # fmt: skip
    assert (args.rest_port, args.rest_host, args.control_url) == (9555, "0.0.0.0", "http://c")


def test_settings_come_from_json_or_a_file_and_flags_override_them(tmp_path: Path) -> None:
    file = tmp_path / "settings.json"
    file.write_text(json.dumps(UNUSUAL))
    for given in (str(file), json.dumps(UNUSUAL)):
        args = build_parser().parse_args(["write", "--settings", given, "--n-frames", "3"])
        assert settings_from_args(args) == AcquisitionSettings(**{**UNUSUAL, "n_frames": 3})


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--output", "x.h5"], "--connect: Field required"),
        (["--connect", "tcp://h:1", "--output", "x.h5", "--n-frames", "-1"], "--n-frames: "),
        (["--connect", "tcp://h:1", "--output", "x.h5", "--buffer-bytes", "1X"], "--buffer-bytes"),
        (["--settings", '{"connect": 1'], "neither a JSON object nor a readable JSON file"),
        (["--settings", "/no/such/file.json"], "neither a JSON object nor a readable JSON file"),
        (["--settings", '{"colour": "red"}'], "--colour: Extra inputs are not permitted"),
    ],
)
def test_a_bad_setting_names_its_flag(argv: list[str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        settings_from_args(build_parser().parse_args(["write", *argv]))


def test_a_start_request_becomes_the_settings_field_by_field() -> None:
    """Every field a start request shares with the settings is carried over by name."""
    wire: dict[str, Any] = {name: str(UNUSUAL[name]) for name in RequestSettings.model_fields}
    wire["parameters"] = UNUSUAL["parameters"]  # a JSON object, the one value that is no text
    request = StartRequest.model_validate(
        {
            **wire,
            "connection_address": UNUSUAL["connect"],
            "output_file": "scan.h5",
            "writer_rest_port": "9555",
            "n_modules": "1",
        }  # fmt: skip
    )
    expected = AcquisitionSettings(
        **{name: UNUSUAL[name] for name in RequestSettings.model_fields},
        connect=UNUSUAL["connect"], output=UNUSUAL["output"], data_root="/data",
    )  # fmt: skip
    assert request.to_settings(output=UNUSUAL["output"], data_root="/data") == expected


def test_the_settings_are_frozen_and_closed() -> None:
    settings = AcquisitionSettings(connect="tcp://h:1", output="x.h5")
    with pytest.raises(ValidationError):
        settings.n_frames = 5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="colour"):
        AcquisitionSettings(connect="tcp://h:1", output="x.h5", colour="red")  # type: ignore[call-arg]


class LaterSettings(AcquisitionSettings):
    """Fields of the kinds that later settings bring (swmr, n_writers, parameters)."""

    swmr: bool = False
    """Open the files for readers that follow the run (HDF5 SWMR)."""
    n_writers: int = Field(default=1, ge=1, le=64)
    """Writer processes of one acquisition."""
    parameters: dict[str, float | str] = {}
    """Layout parameter values given with the start."""


def test_a_new_field_needs_no_second_edit_for_its_flag() -> None:
    parser = argparse.ArgumentParser()
    add_settings_flags(parser, LaterSettings)
    assert "--swmr, --no-swmr" in parser.format_help()
    base = ["--connect", "tcp://h:1", "--output", "x.h5"]
    args = parser.parse_args([*base, "--no-swmr", "--n-writers", "4",
                              "--parameters", '{"energy": 21.5}'])  # fmt: skip
    later = settings_from_args(args, LaterSettings)
    assert (later.swmr, later.n_writers, later.parameters) == (False, 4, {"energy": 21.5})
    assert settings_from_args(parser.parse_args([*base, "--swmr"]), LaterSettings).swmr is True
    with pytest.raises(ConfigError, match="--n-writers: Input should be less than or equal to 64"):
        settings_from_args(parser.parse_args([*base, "--n-writers", "65"]), LaterSettings)

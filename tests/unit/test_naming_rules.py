"""Client, control server and writer agree on every naming rule, case by case.

Each rule lives once (``pco_writer.names``, ``pco_writer.settings``); these tables check that
each side applies it, through the entry point that side really uses: the client's
``PcoWriter``, the server's start-request parsing and settings, the writer's settings and
output files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pco_writer.client import ClientError, PcoWriter
from pco_writer.control import parse_start_request
from pco_writer.control._config import CameraConfig
from pco_writer.control._request import writer_settings
from pco_writer.errors import ConfigError
from pco_writer.h5 import OutputFiles
from pco_writer.names import USUAL_DATASET_NAMES, check_layout_name, unusual_dataset_name
from pco_writer.settings import AcquisitionSettings

CAMERA = "tcp://127.0.0.1:8080"


def request_body(**changes: Any) -> dict[str, Any]:
    body = {"connection_address": CAMERA, "output_file": "scan.h5", "n_frames": "10",
            "dataset_name": "data", "writer_rest_port": "9555"}  # fmt: skip
    return {**body, **{k: str(v) for k, v in changes.items()}}


# --- when a file number is added ------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "n_frames", "max_frames_per_file", "expected"),
    [
        ("scan.h5", 100, 40, "scan_%03d.h5"),  # rolls over
        ("scan.h5", 40, 40, "scan_%03d.h5"),  # one full file: numbered, as pco_rclient does
        ("scan.h5", 39, 40, "scan.h5"),  # fits in one file
        ("scan.h5", 0, 40, "scan_%03d.h5"),  # until stopped: may roll over (C++ crashed)
        ("scan.h5", 100, 0, "scan.h5"),  # no roll-over: one file, never numbered
        ("scan.h5", 0, 0, "scan.h5"),
        ("scan_%04d.h5", 100, 40, "scan_%04d.h5"),  # a placeholder is kept
        ("scan_%d.h5", 0, 0, "scan_%d.h5"),
        ("100%%.h5", 100, 40, "100%%_%03d.h5"),  # %% is a literal, not a placeholder
        ("scan.nxs", 100, 40, "scan_%03d.nxs"),  # before the extension, whatever it is
    ],
)
def test_the_file_number_is_added_by_one_rule_everywhere(
    tmp_path: Path, output: str, n_frames: int, max_frames_per_file: int, expected: str
) -> None:
    with PcoWriter(output, n_frames=n_frames, max_frames_per_file=max_frames_per_file) as client:
        by_client = client.get_configuration()["output_file"]
    request = parse_start_request(
        request_body(output_file=output, n_frames=n_frames, max_frames_per_file=max_frames_per_file)
    )
    by_server = Path(writer_settings(request, tmp_path).output).name
    by_writer = Path(OutputFiles.from_output(output, n_frames, max_frames_per_file).template).name
    assert (by_client, by_server, by_writer) == (expected, expected, expected)


# --- output templates and their placeholders ---------------------------------------------------


@pytest.mark.parametrize(
    ("output", "valid"),
    [
        ("scan_%03d.h5", True),
        ("scan_%d.h5", True),
        ("scan_%3d.h5", True),
        ("scans/a%%b.h5", True),
        ("scan_%s.h5", False),  # not a file-number placeholder
        ("scan%.h5", False),
        ("scan_%d_%03d.h5", False),  # two placeholders
        ("run_%03d/scan.h5", False),  # a placeholder in the folder
        ("scans/", False),  # not a file
        ("", False),
        ("a\0b.h5", False),
    ],
)
def test_client_server_and_writer_accept_the_same_output_templates(
    output: str, valid: bool
) -> None:
    with PcoWriter(output) as client:
        by_client = client.validate_configuration()
    assert (by_client, _accepted(lambda: parse_start_request(request_body(output_file=output))),
            _accepted(lambda: AcquisitionSettings(connect=CAMERA, output=output)),
            _accepted(lambda: OutputFiles.from_output(output, 10, 5))) == (valid,) * 4  # fmt: skip


# --- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("tcp://127.0.0.1:8080", True),
        ("tcp://localhost:8080", True),
        ("tcp://x05da-cam-1.psi.ch:8080", True),
        ("tcp://[::1]:8080", True),
        ("tcp://[fe80::1:2]:9", True),
        ("tcp://127.0.0.1:99999", False),
        ("tcp://127.0.0.1:0", False),
        ("10.0.0.1:8080", False),
        ("http://127.0.0.1:8080", False),
        ("tcp://::1:8080", False),  # IPv6 without brackets
        ("tcp://[::g]:8080", False),
        ("tcp://[127.0.0.1]:8080", False),
        ("tcp://cam:8080/x", False),
        ("tcp://a b:8080", False),
        ("ipc:///tmp/camera", False),
    ],
)
def test_client_server_and_writer_accept_the_same_camera_addresses(
    address: str, valid: bool
) -> None:
    assert (_accepted(lambda: PcoWriter(connection_address=address).close()),
            _accepted(lambda: parse_start_request(request_body(connection_address=address))),
            _accepted(lambda: CameraConfig(name="pco1", connection_address=address,
                                           control_port=9901, writer_port=9555,
                                           data_root=Path("/data"))),
            _accepted(lambda: AcquisitionSettings(connect=address, output="x.h5")),
            ) == (valid,) * 4  # fmt: skip


@pytest.mark.parametrize("address", ["http://[::1]:9901", "https://daq-1:9901"])
def test_the_client_takes_ipv6_and_https_server_addresses(address: str) -> None:
    with PcoWriter(flask_api_address=address) as client:
        assert client.flask_api_address == address


# --- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "valid"),
    [
        ("n_frames", 0, True),
        ("n_frames", 2**63 - 1, True),
        ("n_frames", -1, False),
        ("n_frames", 2**63, False),
        ("n_frames", "many", False),
        ("n_frames", "1.5", False),
        ("max_frames_per_file", -1, False),
        ("user_id", -1, True),
        ("user_id", -2, False),
        ("dataset_name", "data_white", True),
        ("dataset_name", "a/b", False),
        ("dataset_name", "", False),
        ("dataset_name", "..", False),
        ("compression", "blosc-lz4", True),
        ("compression", "gzip", False),
        ("layout", "nxtomo", True),
        ("layout", " ", False),
        ("layout", "nxtom", False),  # a misspelt built-in name, not a file
        ("layout", "mine.yaml", True),
        ("layout", "layouts/mine", True),
    ],
)
def test_client_server_and_writer_accept_the_same_values(
    name: str, value: Any, valid: bool
) -> None:
    with PcoWriter("scan.h5", **{name: value}) as client:
        by_client = client.validate_configuration()
    assert (by_client, _accepted(lambda: parse_start_request(request_body(**{name: value}))),
            _accepted(lambda: AcquisitionSettings(connect=CAMERA, output="x.h5", **{name: value})),
            ) == (valid,) * 3  # fmt: skip


def _accepted(make: Any) -> bool:
    try:
        make()
    except (ConfigError, ClientError, ValidationError):
        return False
    return True


# --- layouts and dataset names a user may mistype ------------------------------------------


def test_a_misspelt_built_in_layout_is_refused_with_the_closest_name() -> None:
    with pytest.raises(ConfigError) as info:
        check_layout_name("nxtom")
    assert "neither a built-in layout (nxtomo, tomcat)" in str(info.value)
    assert "did you mean 'nxtomo'?" in str(info.value)
    for good in ("tomcat", "mine.yaml", "MINE.JSON", "setups/mine", "~/l.yml"):
        assert check_layout_name(good) == good


@pytest.mark.parametrize(
    ("name", "hint"),
    [("data_blak", "data_black"), ("data_whte", "data_white"), ("Data", "data"),
     ("projections", None)],
)  # fmt: skip
def test_an_unusual_dataset_name_gets_a_warning_with_the_closest_usual_one(
    name: str, hint: str | None
) -> None:
    warning = unusual_dataset_name(name)
    assert warning is not None and f"dataset_name {name!r} is not one of the usual" in warning
    assert (f"did you mean {hint!r}?" in warning) if hint else ("did you mean" not in warning)
    assert [unusual_dataset_name(n) for n in USUAL_DATASET_NAMES] == [None, None, None]

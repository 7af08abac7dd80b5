"""PcoWriter without a camera: configuration, validation, errors, typed statistics."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pco_writer.api import ServerThread
from pco_writer.api import build_app as build_writer_app
from pco_writer.client import ClientError, PcoWriter, RunStatistics
from pco_writer.control import Controller, build_app


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    controller = Controller(tmp_path)
    server = ServerThread(build_app(controller), "127.0.0.1", 0).start()
    yield server.url
    server.stop()
    controller.shutdown(1.0)


@pytest.fixture
def pco(server_url: str) -> Iterator[PcoWriter]:
    with PcoWriter("scan.h5", "data", 10, flask_api_address=server_url) as client:
        yield client


def test_importing_the_client_pulls_in_neither_h5py_nor_zmq() -> None:
    code = "import sys, pco_writer.client; print(sorted({'h5py', 'zmq'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_defaults_point_at_localhost() -> None:
    with PcoWriter() as client:
        assert "127.0.0.1" in client.flask_api_address
        assert "127.0.0.1" in client.writer_api_address
        assert "127.0.0.1" in client.connection_address


def test_configuration_is_sent_with_every_value_a_string(pco: PcoWriter) -> None:
    config = pco.get_configuration()
    assert all(isinstance(value, str) for value in config.values())
    assert config["writer_rest_port"] == "9555"
    assert config["n_frames"] == "10"


def test_a_placeholder_is_inserted_when_the_run_rolls_over(pco: PcoWriter) -> None:
    pco.configure(n_frames=100, max_frames_per_file=40)
    assert pco.get_configuration()["output_file"] == "scan_%03d.h5"
    pco.configure(max_frames_per_file=0)
    assert pco.get_configuration()["output_file"] == "scan.h5"


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"output_file": "scan_%d_%d.h5"}, "output_file: output file 'scan_%d_%d.h5' has 2"),
        ({"dataset_name": "a/b"}, "dataset_name: dataset name 'a/b' is not valid"),
        ({"n_frames": -3}, "n_frames: Input should be greater than or equal to 0"),
        ({"n_frames": "many"}, "n_frames: Input should be a valid integer"),
        ({"connection_address": "10.0.0.1:8080"}, "tcp://HOST:PORT"),
        ({"layout": " "}, "layout: String should match pattern"),
    ],
)
def test_configure_refuses_bad_values_and_says_what_is_wrong(
    pco: PcoWriter, settings: dict[str, object], words: str
) -> None:
    with pytest.raises(ClientError, match=words.replace("(", r"\(")):
        pco.configure(**settings)  # type: ignore[arg-type]


def test_validate_configuration_is_false_until_an_output_is_given(server_url: str) -> None:
    with PcoWriter(flask_api_address=server_url) as client:
        assert client.validate_configuration() is False
        client.configure(output_file="a.h5")
        assert client.validate_configuration() is True
        assert client.get_status() == "configured"


def test_server_refusal_raises_with_the_server_message(pco: PcoWriter) -> None:
    pco.configure(output_file="/etc/outside.h5")
    with pytest.raises(ClientError, match="outside the data root"):
        pco.start()


def test_wait_without_any_run_says_to_start_one(pco: PcoWriter) -> None:
    with pytest.raises(ClientError, match="start"):
        pco.wait(progress=False)


def test_no_writer_means_no_writer_statistics_and_no_last_run(pco: PcoWriter) -> None:
    assert pco.get_statistics_writer() is None
    assert pco.get_statistics() is None
    assert pco.get_written_frames() is None
    assert pco.get_status_last_run() == "unknown"
    assert pco.stop() is None and pco.kill() is None


def test_log_and_uptime_services_follow_the_control_port(pco: PcoWriter) -> None:
    assert pco._service() == "pco_writer-pco2"  # not 9901: the second service, as pco_rclient


def test_a_camera_is_read_from_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "pco.json"
    config.write_text(json.dumps({"cameras": [{
        "name": "pco2", "connection_address": "tcp://10.0.0.2:8081",
        "flask_api_address": "http://daq:9902", "writer_api_address": "http://daq:9556",
    }]}))  # fmt: skip
    with PcoWriter(config_file=str(config), cam="pco2") as client:
        assert (client.connection_address, client.writer_port) == ("tcp://10.0.0.2:8081", 9556)
    with pytest.raises(ClientError, match="camera 'pco9' is not in"):
        PcoWriter(config_file=str(config), cam="pco9")


def test_run_statistics_take_numbers_or_numeric_text_and_keep_extras() -> None:
    stats = RunStatistics.from_json({
        "status": "finished", "n_frames": "20.0", "n_written_frames": 20, "n_lost_frames": "0",
        "first_frame_id": 7, "duration_sec": "1.5", "writing_rate": 13.3, "user_id": "503",
        "start_time": "a", "end_time": "b", "output_file": "/d/x.h5", "dataset_name": "data",
        "files": ["/d/x.h5"], "layout": "tomcat", "success": True,
    })  # fmt: skip
    assert (stats.n_frames, stats.user_id, stats.duration_sec) == (20, 503, 1.5)
    assert stats.files == ("/d/x.h5",)
    assert stats.extra == {"layout": "tomcat"}
    assert stats.as_dict()["n_written_frames"] == 20


@pytest.mark.parametrize(
    "settings",
    [
        {"writer_api_address": "http://127.0.0.1:95550"},
        {"flask_api_address": "http://127.0.0.1:99010"},
        {"flask_api_address": "http://127.0.0.1:0"},
        {"connection_address": "tcp://127.0.0.1:99999"},
    ],
)
def test_a_port_over_65535_is_a_client_error_that_names_the_setting(
    settings: dict[str, str],
) -> None:
    (name,) = settings
    with pytest.raises(ClientError, match=f"{name}: .* port in 1-65535"):
        PcoWriter(**settings)


@pytest.mark.parametrize("name", ["n_frames", "max_frames_per_file", "user_id"])
def test_counts_beyond_int64_are_refused_before_anything_is_sent(pco: PcoWriter, name: str) -> None:
    with pytest.raises(ClientError, match=f"{name}: .* less than or equal to {2**63 - 1}"):
        pco.configure(**{name: 2**63})  # type: ignore[arg-type]


class ParameterWriter:
    """A writer API stand-in that keeps the parameters it is sent."""

    status = "waiting for parameters"
    error = ""
    done = False

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def statistics(self) -> dict[str, Any]:
        return {"status": self.status}

    def stop(self) -> None: ...
    def kill(self) -> None: ...
    def parameters(self) -> dict[str, Any]:
        return dict(self.values)

    def set_parameters(self, values: dict[str, Any]) -> None:
        self.values.update(values)

    def parameter_types(self) -> dict[str, str]:
        return {}

    def add_done_callback(self, callback: Any) -> None: ...


def test_numpy_parameter_values_are_sent_as_python_numbers() -> None:
    writer = ParameterWriter()
    server = ServerThread(build_writer_app(writer), "127.0.0.1", 0).start()
    try:
        with PcoWriter(writer_api_address=server.url) as client:
            client.set_parameters(
                energy=np.float32(21.5), n_angles=np.int64(3), roi=np.arange(2, dtype=np.uint16)
            )
    finally:
        server.stop()
    assert writer.values == {"energy": 21.5, "n_angles": 3, "roi": [0, 1]}
    assert type(writer.values["n_angles"]) is int


@pytest.mark.parametrize("value", [object(), {1, 2}, float("nan")])
def test_a_parameter_value_json_cannot_carry_is_a_client_error_naming_it(value: object) -> None:
    with (
        PcoWriter(writer_api_address="http://127.0.0.1:1") as client,  # never reached
        pytest.raises(ClientError, match="parameter 'energy'"),
    ):
        client.set_parameters(energy=value)

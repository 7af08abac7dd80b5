"""The control server's settings file: good files, each mistake named, the original camera file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pco_writer.api._serving import bind_socket
from pco_writer.cli import build_parser
from pco_writer.cli_control import _server_settings
from pco_writer.control import ControlServer, Limits, load_config, server_config
from pco_writer.errors import ConfigError

# The shape of lib_cpp_h5_writer's tomcat/pco_config.json, tabs and all: both cameras are
# served from one host on the same ports, one server per camera (deployment_server.py -c N).
ORIGINAL = """{
\t"cameras": [
\t\t{
\t\t\t"name": "pco1",
\t\t\t"connection_address": "tcp://10.10.1.26:8080",
            "flask_api_address": "http://xbl-daq-32:9901",
            "writer_api_address": "http://xbl-daq-32:9555"
\t\t},
\t\t{
            "name": "pco2",
\t\t\t"connection_address": "tcp://10.10.1.202:8080",
            "flask_api_address": "http://xbl-daq-32:9901",
            "writer_api_address": "http://xbl-daq-32:9555"
\t\t}
\t]
}"""

FULL = """
host: 0.0.0.0
port: 9911
data_root: /sls/X02DA/data
token_file: /etc/pco-writer/token
allow_user_switch: true
log_format: json
limits: {buffer_bytes: 4G, start_timeout: 30, runs_kept: 5}
cameras:
  - name: pco1
    connection_address: tcp://10.10.1.26:8080
    control_port: 9901
    writer_port: 9555
    live_stream: tcp://0.0.0.0:8090
    live_stream_every: 5
  - name: pco2
    connection_address: tcp://10.10.1.202:8080
    control_port: 9902
    writer_port: 9556
    data_root: /sls/X02DA/data/pco2
"""


def free_port() -> int:
    with bind_socket("127.0.0.1", 0) as sock:
        return int(sock.getsockname()[1])


def written(tmp_path: Path, text: str, name: str = "server.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_full_settings_file_sets_every_part_of_the_server(tmp_path: Path) -> None:
    config = load_config(written(tmp_path, FULL))
    assert (config.host, config.port, config.log_format) == ("0.0.0.0", 9911, "json")
    assert config.token_file == Path("/etc/pco-writer/token") and config.allow_user_switch
    assert config.limits == Limits(buffer_bytes=4 << 30, start_timeout=30, runs_kept=5)
    assert config.cameras is not None
    pco1, pco2 = config.cameras
    assert pco1.data_root == Path("/sls/X02DA/data"), "a camera inherits the server's root"
    assert pco2.data_root == Path("/sls/X02DA/data/pco2"), "or has its own"
    assert pco1.writer_settings() == {"live_stream": "tcp://0.0.0.0:8090", "live_stream_every": 5}
    assert pco2.writer_settings() == {}
    assert config.writer_defaults() == {"buffer_bytes": 4 << 30}


def test_an_empty_file_is_the_default_server_for_any_camera(tmp_path: Path) -> None:
    config = load_config(written(tmp_path, ""))
    assert (config.host, config.port, config.cameras, config.log_format) == (
        "127.0.0.1", 9901, None, "plain")  # fmt: skip


def test_the_original_camera_file_is_taken_as_it_is_one_camera_per_server(
    tmp_path: Path,
) -> None:
    path = written(tmp_path, ORIGINAL, "pco_config.json")
    for wanted in ("pco2", "2"):  # deployment_server.py -c 2 meant pco2
        config = load_config(path, wanted, data_root=Path("/data"))
        assert config.cameras is not None and len(config.cameras) == 1
        camera = config.cameras[0]
        assert (camera.name, camera.connection_address) == ("pco2", "tcp://10.10.1.202:8080")
        assert (camera.control_port, camera.writer_port) == (9901, 9555)
        assert camera.data_root == Path("/data")


def test_the_original_file_whole_says_to_serve_one_camera_per_server(tmp_path: Path) -> None:
    path = written(tmp_path, ORIGINAL, "pco_config.json")
    with pytest.raises(ConfigError, match=r"control_port must be unique, 9901 repeats; serve "
                       r"each camera from its own server \(--camera NAME\)"):  # fmt: skip
        load_config(path, data_root=Path("/data"))


def test_the_original_file_without_a_data_root_says_where_to_give_one(tmp_path: Path) -> None:
    path = written(tmp_path, ORIGINAL, "pco_config.json")
    with pytest.raises(ConfigError, match=r"cameras\.0\.data_root: Field required; give "
                       r"data_root for every camera \(in the file or --data-root\)"):  # fmt: skip
        load_config(path, "pco1")


CAMERA = {"name": "pco1", "connection_address": "tcp://10.0.0.1:8080", "control_port": 9901,
          "writer_port": 9555}  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"port": 70000}, "port: Input should be less than or equal to 65535 (got 70000)"),
        ({"host": ""}, "host: String should have at least 1 character"),
        ({"log_format": "xml"}, "log_format: Input should be 'plain' or 'json' (got 'xml')"),
        ({"allow_user_switch": "perhaps"}, "allow_user_switch: Input should be a valid boolean"),
        ({"limits": {"buffer_bytes": "lots"}}, "limits.buffer_bytes: Input should be a valid"),
        ({"limits": {"start_timeout": 0}}, "limits.start_timeout: Input should be greater than 0"),
        ({"limits": {"runs_kept": 0}}, "limits.runs_kept: Input should be greater than or equal"),
        ({"limits": {"max_writers": 2}}, "limits.max_writers: Extra inputs are not permitted"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"live_stream": "tcp://*:8090"}, "live_stream: 'tcp://*:8090' is not tcp://HOST:PORT"),
        ({"cameras": []}, "cameras: List should have at least 1 item"),
        ({"data_root": "/d", "cameras": [{**CAMERA, "writer_port": "x"}]},
         "cameras.0.writer_port: Input should be a valid integer"),
        ({"data_root": "/d", "cameras": [{**CAMERA, "flask_api_address": "xbl-daq-32"}]},
         "cameras.0: flask_api_address 'xbl-daq-32' is not http://HOST:PORT"),
        ({"data_root": "/d", "cameras": [{**CAMERA, "flask_api_address": "http://h:9902"}]},
         "cameras.0: flask_api_address says port 9902 but control_port says 9901"),
        ({"data_root": "/d", "cameras": [CAMERA, {**CAMERA, "control_port": 9902}]},
         "cameras: name must be unique, pco1 repeats"),
        ({"data_root": "/d", "cameras": [{**CAMERA, "live_stream_every": 0}]},
         "cameras.0.live_stream_every: Input should be greater than or equal to 1"),
    ],
)  # fmt: skip
def test_each_mistake_is_named_with_its_place_in_the_file(
    tmp_path: Path, settings: dict[str, Any], words: str
) -> None:
    path = written(tmp_path, yaml.safe_dump(settings))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("cameras: [", "cannot read the server settings"),
        ("- just\n- a list\n", "the settings must be a mapping, not list"),
    ],
)
def test_a_file_that_is_no_settings_file_says_so(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_config(written(tmp_path, text))


def test_a_missing_file_and_an_unknown_camera_say_what_there_is(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the server settings .*nowhere.yaml"):
        load_config(tmp_path / "nowhere.yaml")
    path = written(tmp_path, ORIGINAL, "pco_config.json")
    with pytest.raises(ConfigError, match="no camera named 'pco3'; the file has pco1, pco2"):
        load_config(path, "3", data_root=Path("/data"))


def server_args(*argv: str) -> Any:
    return _server_settings(build_parser().parse_args(["server", *argv]))


def test_flags_given_on_the_command_line_win_over_the_file(tmp_path: Path) -> None:
    path = written(tmp_path, FULL)
    config = server_args("--config", str(path), "--camera", "pco2", "--host", "127.0.0.1",
                         "--log-format", "plain", "--data-root", "/elsewhere")  # fmt: skip
    assert (config.host, config.log_format) == ("127.0.0.1", "plain")
    assert config.cameras[0].data_root == Path("/sls/X02DA/data/pco2"), "its own root stays"
    assert server_args("--config", str(path)).host == "0.0.0.0", "flags not given change nothing"
    without_file = server_args("--port", "0", "--allow-user-switch")
    assert (without_file.port, without_file.allow_user_switch) == (0, True)
    with pytest.raises(ConfigError, match="--camera NAME needs --config FILE"):
        server_args("--camera", "pco1")


def test_a_server_made_from_the_file_gives_its_writers_the_limits_and_the_stream(
    tmp_path: Path,
) -> None:
    text = json.dumps({
        "host": "127.0.0.1", "data_root": str(tmp_path), "limits": {"buffer_bytes": "64M",
        "start_timeout": 7}, "cameras": [{**CAMERA, "control_port": free_port(),
        "live_stream": "tcp://127.0.0.1:8095"}],
    })  # fmt: skip
    config = load_config(written(tmp_path, text, "s.json"))
    server = ControlServer.from_config(config)
    try:
        controller = server.controller
        assert controller.start_timeout == 7 and controller.writer_defaults == {
            "buffer_bytes": 64 << 20}  # fmt: skip
        assert [s.host for s in server.servers] == ["127.0.0.1"]
        assert server.monitor.cameras == config.cameras
    finally:
        server.stop()


def test_without_cameras_the_server_serves_any_camera_on_its_port() -> None:
    config = server_config({"port": 0, "live_stream": "tcp://127.0.0.1:8096"})
    server = ControlServer.from_config(config)
    try:
        assert len(server.servers) == 1 and server.port > 0
        assert server.controller.writer_defaults["live_stream"] == "tcp://127.0.0.1:8096"
    finally:
        server.stop()

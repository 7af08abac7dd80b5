"""Compression end to end: camera -> writer -> file, read back through h5py + hdf5plugin."""

from __future__ import annotations

import json
import random
import struct
import threading
import time
from pathlib import Path

import bitshuffle
import blosc
import h5py
import hdf5plugin
import numpy as np
import pytest
from _control_helpers import SHAPE as CONTROL_SHAPE
from _control_helpers import camera as control_camera
from _control_helpers import free_port
from _stream_helpers import camera, finish, frame, image, running_writer

from pco_writer.buffer import ReceivedFrame
from pco_writer.cli import build_parser
from pco_writer.client import ClientError, PcoWriter
from pco_writer.control import ControlServer
from pco_writer.control._request import parse_start_request
from pco_writer.errors import ConfigError, OutputError
from pco_writer.h5._compress import check_frames_filter, frames_filter
from pco_writer.settings import AcquisitionSettings, StartRequest
from pco_writer.simulate import camera_header, make_frames
from pco_writer.writer import _writer as writer_module
from pco_writer.writer_command import (
    WriteCommand,
    parse_write_command,
    settings_from_args,
    write_command,
)

FIRST = 300
FILTER_ID = {"bitshuffle-lz4": 32008, "blosc-lz4": 32001}


def noisy_message(frame_id: int, pixels: np.ndarray) -> list[bytes]:
    return [camera_header(frame_id, pixels.shape, str(pixels.dtype)), pixels.tobytes()]


def message(frame_id: int, shape: tuple[int, ...], encoding: str, payload: bytes) -> list[bytes]:
    header = json.loads(camera_header(frame_id, shape))
    header["encoding"] = encoding
    return [json.dumps(header).encode(), payload]


def bslz4(pixels: np.ndarray, block: int = 512) -> bytes:
    """A bitshuffle-LZ4 chunk as a camera compressing on board sends it."""
    body = bitshuffle.compress_lz4(np.ascontiguousarray(pixels).ravel(), block)
    return struct.pack(">QI", pixels.nbytes, block * pixels.itemsize) + body.tobytes()


def frames_filter_id(path, dataset: str = "exchange/data") -> int:
    with h5py.File(path, "r") as f:
        return int(f[dataset].id.get_create_plist().get_filter(0)[0])


@pytest.mark.parametrize("compression", ["bitshuffle-lz4", "blosc-lz4"])
def test_noisy_frames_are_compressed_and_read_back_bit_exact(tmp_path, compression) -> None:
    pixels = make_frames((96, 128), count=6, seed=3)
    output = tmp_path / "c.h5"
    with camera() as cam, running_writer(
        connect=cam.address, output=str(output), n_frames=24, compression=compression,
        compression_threads=2,
    ) as writer:  # fmt: skip
        for i in range(24):
            cam.send(noisy_message(FIRST + i, pixels[i % 6]))
        stats = finish(writer)
    assert (stats["n_written_frames"], stats["n_lost_frames"], stats["error"]) == (24, 0, "")
    assert frames_filter_id(output) == FILTER_ID[compression]
    with h5py.File(output, "r") as f:
        data = f["exchange/data"]
        assert data[()].tobytes() == b"".join(pixels[i % 6].tobytes() for i in range(24))
        assert data.id.get_storage_size() < 0.8 * data.size * 2
        assert list(f["measurement/acquisition/data/frame"][:]) == list(range(FIRST, FIRST + 24))


def test_frames_are_written_in_id_order_when_workers_finish_out_of_order(
    tmp_path, monkeypatch
) -> None:
    real = writer_module.compressor_for
    finished: list[int] = []
    lock = threading.Lock()

    def jittery(codec):
        encode = real(codec)
        rng = random.Random(7)

        def slow(f: ReceivedFrame) -> ReceivedFrame:
            time.sleep(rng.choice([0.0, 0.001, 0.02]))
            out = encode(f)
            with lock:
                finished.append(f.header.frame)
            return out

        return slow

    monkeypatch.setattr(writer_module, "compressor_for", jittery)
    output = tmp_path / "order.h5"
    with camera() as cam, running_writer(
        connect=cam.address, output=str(output), n_frames=60,
        compression="bitshuffle-lz4", compression_threads=4,
    ) as writer:  # fmt: skip
        written: list[int] = []
        sink_write = writer.sink.write
        monkeypatch.setattr(
            writer.sink,
            "write",
            lambda fs: (written.extend(f.index for f in fs), sink_write(fs))[1],
        )
        for i in range(60):
            cam.send(frame(FIRST + i))
        stats = finish(writer)
    assert stats["n_written_frames"] == 60
    assert finished != sorted(finished), "the workers must finish out of order for this test"
    assert written == list(range(60))
    with h5py.File(output, "r") as f:
        for i in range(60):
            assert np.array_equal(f["exchange/data"][i], image(FIRST + i))


@pytest.mark.parametrize("encoding", ["bs16-lz4", "bitshuffle-lz4"])
def test_frames_that_arrive_bitshuffle_compressed_are_written_as_they_came(
    tmp_path, encoding
) -> None:
    pixels = make_frames((40, 56), count=3, seed=9)
    chunks = [bslz4(p) for p in pixels]
    output = tmp_path / "pre.h5"
    with (
        camera() as cam,
        running_writer(
            connect=cam.address, output=str(output), n_frames=4, compression="bitshuffle-lz4"
        ) as writer,
    ):
        for i in range(3):
            cam.send(message(FIRST + i, (40, 56), encoding, chunks[i]))
        cam.send(noisy_message(FIRST + 3, pixels[0]))  # a raw frame in between is compressed
        stats = finish(writer)
    assert (stats["n_written_frames"], stats["n_invalid_frames"]) == (4, 0)
    with h5py.File(output, "r") as f:
        data = f["exchange/data"]
        for i in range(3):
            assert data.id.read_direct_chunk((i, 0, 0))[1] == chunks[i]  # stored untouched
            assert np.array_equal(data[i], pixels[i])
        assert np.array_equal(data[3], pixels[0])


def test_frames_that_arrive_blosc_compressed_are_written_as_they_came(tmp_path) -> None:
    pixels = make_frames((40, 56), count=2, seed=2)
    chunks = [blosc.compress(p.tobytes(), typesize=2, cname="lz4") for p in pixels]
    output = tmp_path / "pre.h5"
    with (
        camera() as cam,
        running_writer(
            connect=cam.address, output=str(output), n_frames=2, compression="blosc-lz4"
        ) as writer,
    ):
        for i in range(2):
            cam.send(message(FIRST + i, (40, 56), "blosc-lz4", chunks[i]))
        stats = finish(writer)
    assert stats["n_written_frames"] == 2
    with h5py.File(output, "r") as f:
        assert f["exchange/data"].id.read_direct_chunk((1, 0, 0))[1] == chunks[1]
        assert np.array_equal(f["exchange/data"][()], np.stack(pixels))


def test_a_frame_whose_encoding_does_not_match_is_rejected_counted_and_never_written(
    tmp_path,
) -> None:
    shape = (16, 24)
    output = tmp_path / "mismatch.h5"
    with (
        camera() as cam,
        running_writer(connect=cam.address, output=str(output), n_frames=2) as writer,
    ):
        cam.send(frame(FIRST))
        cam.send(message(FIRST + 1, shape, "bs16-lz4", bslz4(image(FIRST + 1))))  # compression none
        cam.send(message(FIRST + 1, shape, "jpeg", b"\xff\xd8 not a frame"))
        cam.send(message(FIRST + 1, shape, "bs32-lz4", b"\0" * 64))
        cam.send(frame(FIRST + 1))
        stats = finish(writer)
    assert stats["invalid_by_reason"] == {"encoding_mismatch": 2, "encoding": 1}
    assert stats["n_written_frames"] == 2
    with h5py.File(output, "r") as f:
        assert f["exchange/data"].id.get_create_plist().get_nfilters() == 0
        assert np.array_equal(f["exchange/data"][1], image(FIRST + 1))


def test_a_compressed_frame_with_a_wrong_raw_size_is_rejected(tmp_path) -> None:
    output = tmp_path / "size.h5"
    with (
        camera() as cam,
        running_writer(
            connect=cam.address, output=str(output), n_frames=1, compression="bitshuffle-lz4"
        ) as writer,
    ):
        small = bslz4(image(FIRST, (8, 24)))  # says 8 x 24 pixels, the header 16 x 24
        cam.send(message(FIRST, (16, 24), "bs16-lz4", small))
        cam.send(frame(FIRST))
        stats = finish(writer)
    assert stats["invalid_by_reason"] == {"payload_size": 1}
    with h5py.File(output, "r") as f:
        assert np.array_equal(f["exchange/data"][0], image(FIRST))


def test_appending_chunks_to_a_dataset_with_another_filter_is_refused(tmp_path) -> None:
    path = tmp_path / "append.h5"
    with h5py.File(path, "w") as f:
        plain = f.create_dataset(
            "plain", shape=(0, 4), maxshape=(None, 4), chunks=(1, 4), dtype="u2"
        )
        packed = f.create_dataset(
            "packed", shape=(0, 4), maxshape=(None, 4), chunks=(1, 4), dtype="u2",
            **frames_filter("bitshuffle-lz4"),
        )  # fmt: skip
        check_frames_filter(plain, "none", path)
        check_frames_filter(packed, "bitshuffle-lz4", path)
        with pytest.raises(OutputError, match="cannot append 'bitshuffle-lz4' chunks to /plain"):
            check_frames_filter(plain, "bitshuffle-lz4", path)
        with pytest.raises(OutputError, match=r"filters \[32008\]"):
            check_frames_filter(packed, "none", path)
        with pytest.raises(OutputError):
            check_frames_filter(packed, "blosc-lz4", path)


# -- the flag through the command line, the control server and the client ----------------


def test_write_takes_compression_and_threads() -> None:
    args = build_parser().parse_args(
        ["write", "--connect", "tcp://127.0.0.1:1", "--output", "x.h5",
         "--compression", "bitshuffle-lz4", "--compression-threads", "3"]
    )  # fmt: skip
    settings = settings_from_args(args)
    assert (settings.compression, settings.compression_threads) == ("bitshuffle-lz4", 3)
    assert settings_from_args(build_parser().parse_args(
        ["write", "--connect", "tcp://127.0.0.1:1", "--output", "x.h5"]
    )).compression == "none"  # fmt: skip


def test_write_refuses_an_unknown_compression(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["write", "--connect", "tcp://127.0.0.1:1", "--output", "x.h5", "--compression", "gz"]
        )
    assert "invalid choice: 'gz'" in capsys.readouterr().err


def handed_over(request: StartRequest, tmp_path: Path) -> AcquisitionSettings:
    """The settings a writer reads from the command line the server makes for ``request``."""
    settings = request.to_settings(output=str(tmp_path / "x.h5"))
    argv = write_command("python", WriteCommand(settings, 9555, "127.0.0.1", "http://c"))
    return parse_write_command(argv[argv.index("write") + 1 :]).settings


def test_a_start_request_passes_compression_to_the_writer_command(tmp_path) -> None:
    body = {"connection_address": "tcp://127.0.0.1:8080", "output_file": "x.h5",
            "n_frames": "5", "dataset_name": "data"}  # fmt: skip
    plain = parse_start_request(body)  # as pco_rclient sends it: no compression key
    assert plain.compression == "none"
    assert handed_over(plain, tmp_path).compression == "none"
    request = parse_start_request({**body, "compression": "blosc-lz4"})
    assert handed_over(request, tmp_path).compression == "blosc-lz4"
    with pytest.raises(ConfigError, match="compression"):
        parse_start_request({**body, "compression": "zip"})


def test_the_client_asks_the_control_server_for_a_compressed_acquisition(tmp_path) -> None:
    server = ControlServer("127.0.0.1", 0, data_root=tmp_path).start()
    try:
        with control_camera(frames=0, fps=200) as (address, _), PcoWriter(
            output_file=str(tmp_path / "scan.h5"), n_frames=10, connection_address=address,
            flask_api_address=server.url, writer_api_address=f"http://127.0.0.1:{free_port()}",
        ) as pco:  # fmt: skip
            assert "compression" not in pco.get_configuration()  # as pco_rclient sends it
            pco.configure(compression="bitshuffle-lz4")
            assert pco.get_configuration()["compression"] == "bitshuffle-lz4"
            with pytest.raises(
                ClientError,
                match="compression: Input should be 'none', 'bitshuffle-lz4' or 'blosc-lz4'",
            ):
                pco.configure(compression="gzip")
            pco.start()
            stats = pco.wait(timeout=30, progress=False)
            assert (stats.status, stats.n_written_frames) == ("finished", 10)
    finally:
        server.stop(timeout=5.0)
    assert frames_filter_id(tmp_path / "scan.h5") == 32008
    with h5py.File(tmp_path / "scan.h5", "r") as f:
        assert f["exchange/data"][()].shape == (10, *CONTROL_SHAPE)


def test_acquire_passes_compression_to_the_client(monkeypatch) -> None:
    from pco_writer import cli_control

    seen: dict[str, object] = {}

    class FakeClient:
        def __enter__(self):
            return self

        def __exit__(self, *_):
            return None

        def configure(self, **kwargs):
            seen.update(kwargs)

        def start(self):
            return {}

        def wait(self):
            from pco_writer.client import RunStatistics

            return RunStatistics.from_json({"status": "finished", "end_reason": "completed"})

    monkeypatch.setattr(cli_control, "_client", lambda args: FakeClient())
    args = build_parser().parse_args(
        ["acquire", "--output", "x.h5", "--n-frames", "3", "--compression", "bitshuffle-lz4"]
    )
    assert args.handler(args) == 0
    assert seen["compression"] == "bitshuffle-lz4"


def test_hdf5plugin_is_what_reads_the_files() -> None:
    assert hdf5plugin.Bitshuffle(cname="lz4").filter_id == FILTER_ID["bitshuffle-lz4"]
    assert hdf5plugin.Blosc().filter_id == FILTER_ID["blosc-lz4"]

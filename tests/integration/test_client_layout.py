"""The layout chosen by a script reaches the writer through the control server."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
from _control_helpers import camera, free_port

from pco_writer.client import ClientError, PcoWriter
from pco_writer.control import ControlServer


def client(server: ControlServer, address: str, output: Path, **settings: object) -> PcoWriter:
    return PcoWriter(
        output_file=str(output), dataset_name="data", n_frames=5, connection_address=address,
        flask_api_address=server.url, writer_api_address=f"http://127.0.0.1:{free_port()}",
        **settings,  # type: ignore[arg-type]
    )  # fmt: skip


def test_an_nxtomo_acquisition_is_asked_for_by_the_client(server, tmp_path: Path) -> None:
    output = tmp_path / "tomo.h5"
    with (
        camera(frames=0, fps=100) as (address, _),
        client(server, address, output, layout="nxtomo") as pco,
    ):
        assert pco.get_configuration()["layout"] == "nxtomo"
        pco.start()
        stats = pco.wait(timeout=30)
    assert stats.n_written_frames == 5
    with h5py.File(output, "r") as f:
        assert f["entry"].attrs["NX_class"] == "NXentry"
        assert f["entry/definition"][()] == b"NXtomo"
        assert f["entry/instrument/detector/data"].shape[0] == 5


def test_the_default_layout_is_not_sent_so_the_request_stays_pco_rclients(server) -> None:
    pco = PcoWriter(output_file="/tmp/x.h5", flask_api_address=server.url)
    assert "layout" not in pco.get_configuration()


@pytest.mark.parametrize(
    ("layout", "words"),
    [
        ("{outside}", "neither a built-in layout"),  # a good file, but not below the data root
        ("/etc/hostname", "must be a mapping"),  # the client sees it: refused before the server
        ("no-such-layout", "neither a built-in layout"),
        ("bad.yaml", "layout 'bad.yaml'"),  # relative: the server's, below its data root
    ],
)
def test_a_layout_outside_the_root_or_with_mistakes_is_refused_before_any_spawn(
    server, tmp_path: Path, layout: str, words: str
) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\ntree:\n  entry: {NX_class: 5}\n")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.yaml"
    outside.write_text("name: good\ntree:\n  '{dataset_name}': {frames: {}}\n")
    pco = client(server, "tcp://127.0.0.1:1", tmp_path / "x.h5",
                 layout=layout.format(outside=outside))  # fmt: skip
    with pco, pytest.raises(ClientError, match=words):
        pco.start(timeout=5)
    assert not (tmp_path / "x.h5").exists()
    outside.unlink()

"""Direct chunk writes without the GIL: the same chunks as h5py's, and its errors."""

from __future__ import annotations

import ctypes
from pathlib import Path

import h5py
import numpy as np
import pytest
from h5py._objects import phil

from pco_writer.h5._chunk_write import GIL_FREE_FROM, ChunkWriter

SHAPE = (512, 1024)  # 1 MiB of uint16: written without the GIL


def frames_dataset(f: h5py.File, n: int, shape: tuple[int, int] = SHAPE) -> h5py.Dataset:
    return f.create_dataset("d", shape=(n, *shape), maxshape=(None, *shape),
                            chunks=(1, *shape), dtype="<u2")  # fmt: skip


def test_large_chunks_are_written_through_the_loaded_hdf5_and_read_back(tmp_path: Path) -> None:
    images = [np.random.default_rng(i).integers(0, 4000, SHAPE, dtype="<u2") for i in range(3)]
    with h5py.File(tmp_path / "f.h5", "w") as f:
        writer = ChunkWriter(frames_dataset(f, 3))
        assert writer.native is not None  # Linux with h5py's wheel: the GIL-free path is used
        native, held = writer.native, []

        def spy(*args: object) -> int:
            held.append(phil._is_owned())  # h5py's lock: no other thread is inside HDF5
            return int(native(*args))

        writer.native = spy
        writer._h5py_write = _must_not_be_called
        for i in (2, 0, 1):
            writer.write((i, 0, 0), images[i], images[i].nbytes)
    assert held == [True, True, True]
    with h5py.File(tmp_path / "f.h5", "r") as f:
        for i in range(3):
            assert np.array_equal(f["d"][i], images[i])


def _must_not_be_called(*args: object) -> None:
    raise AssertionError("a large chunk went through h5py's call")


def test_small_chunks_take_h5pys_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with h5py.File(tmp_path / "f.h5", "w") as f:
        writer = ChunkWriter(frames_dataset(f, 2, (4, 6)))
        calls: list[int] = []
        native = writer.native
        monkeypatch.setattr(writer, "native", lambda *a: calls.append(1) or native(*a))
        writer.write((0, 0, 0), np.ones((4, 6), "<u2"), 48)
        assert calls == [] and GIL_FREE_FROM > 48
        assert f["d"][0].sum() == 24


def test_a_failed_write_raises_hdf5s_error_through_h5py(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "f.h5", "w") as f:
        writer = ChunkWriter(frames_dataset(f, 1))
        image = np.zeros(SHAPE, "<u2")
        with pytest.raises((OSError, ValueError, RuntimeError)):
            writer.write((5, 0, 0), image, image.nbytes)  # beyond the extent of 1 frame


def test_the_native_call_releases_the_gil(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "f.h5", "w") as f:
        native = ChunkWriter(frames_dataset(f, 1)).native
    # A ctypes function of a CDLL releases the GIL for the call; one of a PyDLL would not.
    assert native is not None
    assert not native._flags_ & ctypes._FUNCFLAG_PYTHONAPI  # type: ignore[attr-defined]

"""Codecs: chunks read back bit-exact through h5py + hdf5plugin; encodings checked; ring shrink."""

from __future__ import annotations

import struct
import uuid

import bitshuffle
import blosc
import h5py
import hdf5plugin
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pco_writer.buffer import FrameBuffer
from pco_writer.codecs import check_chunk, check_encoding, get_codec, payload_room
from pco_writer.errors import ProtocolError
from pco_writer.h5._compress import frames_filter
from pco_writer.protocol import FrameHeader
from pco_writer.simulate import make_frames

CODECS = ("bitshuffle-lz4", "blosc-lz4")
DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64", "uint64")


def read_back(compression: str, frames: list[np.ndarray], chunks: list[object]) -> np.ndarray:
    """Write ``chunks`` with write_direct_chunk into an in-memory file and read them back."""
    shape, dtype = frames[0].shape, frames[0].dtype
    name = f"{uuid.uuid4().hex}.h5"
    with h5py.File(name, "w", driver="core", backing_store=False) as f:
        ds = f.create_dataset(
            "frames", shape=(len(frames), *shape), chunks=(1, *shape), dtype=dtype,
            **frames_filter(compression),
        )  # fmt: skip
        for i, chunk in enumerate(chunks):
            ds.id.write_direct_chunk((i, *(0,) * len(shape)), chunk)
        return ds[()]


def header(shape: tuple[int, ...], dtype: str, encoding: str = "", endianness: str = "little"):
    return FrameHeader(7, shape, dtype, endianness, encoding=encoding)


@pytest.mark.parametrize("compression", CODECS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.tuples(st.integers(1, 70), st.integers(1, 90))
    | st.tuples(st.integers(1, 4), st.integers(1, 20), st.integers(1, 20)),
    dtype=st.sampled_from(DTYPES),
    big_endian=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_chunk_reads_back_bit_exact_through_hdf5plugin(
    compression, shape, dtype, big_endian, seed
) -> None:
    dt = np.dtype(dtype).newbyteorder(">" if big_endian else "<")
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * dt.itemsize, dtype=np.uint8)
    frames = [raw.view(dt).reshape(shape), np.zeros(shape, dt)]
    codec = get_codec(compression)
    assert codec is not None
    chunks = [codec.compress(memoryview(f.tobytes()), dt.itemsize) for f in frames]
    got = read_back(compression, frames, chunks)
    assert got.dtype == dt  # np.stack would make the byte order native: compare bytes
    assert got.tobytes() == b"".join(f.tobytes() for f in frames)  # bit-exact, NaNs too


@pytest.mark.parametrize("compression", CODECS)
def test_noisy_pco_edge_frames_compress_and_read_back_exact(compression) -> None:
    frames = make_frames((512, 640), count=3, seed=4)
    codec = get_codec(compression)
    assert codec is not None
    chunks = [codec.compress(f.data, 2) for f in frames]
    assert sum(len(c) for c in chunks) < 0.8 * sum(f.nbytes for f in frames)
    assert np.array_equal(read_back(compression, frames, chunks), np.stack(frames))


def test_bitshuffle_chunks_have_the_filter_header_with_the_block_size_in_bytes() -> None:
    frame = np.arange(5000, dtype="<u4")
    codec = get_codec("bitshuffle-lz4")
    assert codec is not None
    chunk = bytes(codec.compress(frame.data, 4))
    assert struct.unpack(">QI", chunk[:12]) == (frame.nbytes, 4096 * 4)  # 16 KiB blocks
    assert chunk[12:] == bytes(bitshuffle.compress_lz4(frame, 4096))


def test_filters_are_those_of_hdf5plugin() -> None:
    assert frames_filter("none") == {}
    bs = hdf5plugin.Bitshuffle(cname="lz4")
    assert frames_filter("bitshuffle-lz4") == {
        "compression": bs.filter_id, "compression_opts": bs.filter_options,
    }  # fmt: skip
    bl = hdf5plugin.Blosc(cname="lz4", shuffle=hdf5plugin.Blosc.SHUFFLE)
    assert frames_filter("blosc-lz4") == {
        "compression": bl.filter_id, "compression_opts": bl.filter_options,
    }  # fmt: skip


def test_an_unknown_compression_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="lzma.*none, bitshuffle-lz4, blosc-lz4"):
        get_codec("lzma")


# -- encodings of frames that arrive compressed ---------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "compression"),
    [
        ("", "none"), ("raw", "bitshuffle-lz4"), ("bs16-lz4", "bitshuffle-lz4"),
        ("bs16-lz4<", "bitshuffle-lz4"), ("bitshuffle-lz4", "bitshuffle-lz4"),
        ("BSLZ4", "bitshuffle-lz4"), ("blosc-lz4", "blosc-lz4"), ("blosc", "blosc-lz4"),
    ],
)  # fmt: skip
def test_matching_encodings_are_accepted(encoding, compression) -> None:
    check_encoding(header((4, 4), "uint16", encoding), compression)


@pytest.mark.parametrize(
    ("encoding", "compression", "reason", "words"),
    [
        ("jpeg", "bitshuffle-lz4", "encoding", "unknown encoding 'jpeg'"),
        ("bs16-lz4", "none", "encoding_mismatch", "--compression bitshuffle-lz4"),
        ("blosc", "bitshuffle-lz4", "encoding_mismatch", "--compression blosc-lz4"),
        ("bs32-lz4", "bitshuffle-lz4", "encoding_mismatch", "32-bit elements"),
        ("bs16-lz4>", "bitshuffle-lz4", "encoding_mismatch", "byte order"),
    ],
)
def test_other_encodings_are_refused_with_a_reason(encoding, compression, reason, words) -> None:
    with pytest.raises(ProtocolError, match=words) as err:
        check_encoding(header((4, 4), "uint16", encoding), compression)
    assert err.value.reason == reason


def bslz4_chunk(frame: np.ndarray, block: int = 1024) -> bytes:
    """A bitshuffle-LZ4 chunk made as a camera would, independently of pco_writer.codecs."""
    body = bitshuffle.compress_lz4(frame.ravel(), block)
    return struct.pack(">QI", frame.nbytes, block * frame.itemsize) + body.tobytes()


def test_a_well_formed_compressed_payload_passes_its_checks() -> None:
    frame = np.arange(64, dtype="<u2").reshape(8, 8)
    for encoding, chunk in [
        ("bs16-lz4", bslz4_chunk(frame)),
        ("blosc", blosc.compress(frame.tobytes(), typesize=2, cname="lz4")),
    ]:
        room = bytearray(payload_room(header((8, 8), "uint16", encoding)))
        room[: len(chunk)] = chunk
        check_chunk(header((8, 8), "uint16", encoding), memoryview(room), len(chunk))


@pytest.mark.parametrize(
    ("encoding", "make", "words"),
    [
        ("bs16-lz4", lambda f: bslz4_chunk(f)[:8], "fewer than its 12-byte header"),
        ("bs16-lz4", lambda f: bslz4_chunk(np.zeros(10, "<u2")), "needs 128"),
        ("bs16-lz4", lambda f: bslz4_chunk(f)[:8] + b"\0\0\0\x05" + b"x", "block size 5"),
        ("blosc", lambda f: blosc.compress(f.tobytes()[:64], typesize=2), "needs 128"),
        ("blosc", lambda f: blosc.compress(f.tobytes(), typesize=4), "element size 4"),
        ("blosc", lambda f: blosc.compress(f.tobytes(), typesize=2) + b"x", "says it has"),
        ("blosc", lambda f: b"\x05" + blosc.compress(f.tobytes(), typesize=2)[1:], "format 5"),
        ("bs16-lz4", lambda f: b"\0" * 10_000, "larger than"),
    ],
)
def test_a_payload_that_does_not_fit_its_header_is_refused(encoding, make, words) -> None:
    frame = np.arange(64, dtype="<u2").reshape(8, 8)
    chunk = make(frame)
    room = bytearray(min(len(chunk), payload_room(header((8, 8), "uint16", encoding))))
    room[:] = chunk[: len(room)]
    with pytest.raises(ProtocolError, match=words) as err:
        check_chunk(header((8, 8), "uint16", encoding), memoryview(room), len(chunk))
    assert err.value.reason == "payload_size"


def test_room_for_a_compressed_payload_covers_incompressible_data() -> None:
    h = header((256, 256), "uint16", "bs16-lz4")
    noise = np.random.default_rng(1).integers(0, 2**16, (256, 256), dtype="<u2")
    assert len(bslz4_chunk(noise, block=128)) <= payload_room(h)
    assert len(blosc.compress(noise.tobytes(), typesize=2)) <= payload_room(h)
    assert payload_room(header((256, 256), "uint16")) == noise.nbytes


# -- the ring gives back the unused room of a compressed payload ----------------------------


def test_shrink_gives_the_unused_end_of_the_last_slot_back() -> None:
    ring = FrameBuffer(4096)
    slot = ring.reserve(1000, 0.1)
    assert slot is not None and ring.stats.used_bytes == 1024
    small = ring.shrink(slot, 100)
    assert len(small.view) == 100 and small.span == 128 and ring.stats.used_bytes == 128
    nxt = ring.reserve(64, 0.1)
    assert nxt is not None
    # the next payload starts right after the shrunk one, not after the reserved room
    ring_base = np.frombuffer(slot.view, np.uint8).ctypes.data
    assert np.frombuffer(nxt.view, np.uint8).ctypes.data - ring_base == 128


def test_shrink_at_the_end_of_the_ring_wraps_the_head_correctly() -> None:
    ring = FrameBuffer(1024)
    first = ring.reserve(512, 0.1)
    assert first is not None
    last = ring.reserve(512, 0.1)  # fills the ring to its end: the head wraps to 0
    assert last is not None
    ring.shrink(last, 64)
    assert ring.stats.used_bytes == 512 + 64
    third = ring.reserve(448, 0.1)  # exactly the rest of the ring, after the shrunk payload
    assert third is not None and ring.stats.used_bytes == 1024

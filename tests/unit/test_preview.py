"""The preview picture: downsampled, contrast stretched, a PNG that any reader decodes."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import numpy.typing as npt
import pytest

from pco_writer.preview import MAX_SIDE, downsample, encode_png, preview_png, stretch


def read_png(png: bytes) -> npt.NDArray[np.uint8]:
    """A strict reader of what encode_png may write: grey 8-bit, filter 0, CRCs checked."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF, kind
        chunks.append((kind, data))
        pos += 12 + length
    assert [k for k, _ in chunks][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, interlace) == (8, 0, 0)
    raw = zlib.decompress(b"".join(d for k, d in chunks if k == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(height, width + 1)
    assert (rows[:, 0] == 0).all(), "every row uses filter type 0"
    return rows[:, 1:]


def test_a_png_decodes_to_the_grey_levels_it_was_given() -> None:
    grey = np.arange(7 * 13, dtype=np.uint8).reshape(7, 13) * 2
    assert np.array_equal(read_png(encode_png(grey)), grey)


def test_a_pco_edge_frame_becomes_a_picture_no_larger_than_512_pixels() -> None:
    frame = np.random.default_rng(1).integers(90, 4000, (2160, 2560), dtype=np.uint16)
    picture = read_png(preview_png(frame))
    assert max(picture.shape) <= MAX_SIDE
    assert picture.shape == (432, 512)  # every 5th pixel of every 5th row


def test_downsampling_keeps_every_nth_pixel_and_leaves_small_frames_alone() -> None:
    frame = np.arange(1030 * 20).reshape(1030, 20)
    assert np.array_equal(downsample(frame), frame[::3, ::3])
    small = np.ones((16, 24))
    assert np.array_equal(downsample(small), small)


def test_a_stack_shows_its_first_plane_and_a_line_shows_as_one_row() -> None:
    stack = np.stack([np.zeros((4, 5)), np.ones((4, 5))])
    assert np.array_equal(downsample(stack), np.zeros((4, 5)))
    assert downsample(np.arange(6)).shape == (1, 6)


def test_a_few_hot_pixels_do_not_flatten_the_contrast() -> None:
    image = np.tile(np.linspace(100, 200, 100), (100, 1)).astype(np.uint16)
    image[0, :5] = 65535  # hot pixels: 0.05 % of the image
    grey = stretch(image)
    assert grey[50, 0] <= 5 and grey[50, -1] >= 250, "the ramp spans black to white"
    assert grey[0, 0] == 255


def test_a_flat_image_is_mid_grey_and_not_a_number_is_black() -> None:
    assert (stretch(np.full((3, 3), 7.0)) == 128).all()
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    image[1, 1], image[2, 2] = np.nan, np.inf
    grey = stretch(image)
    assert grey[1, 1] == 0 and grey[2, 2] == 0
    assert (stretch(np.full((2, 2), np.nan)) == 0).all()


@pytest.mark.parametrize("dtype", [">u2", "<u2", "<i4", ">f4", "uint8"])
def test_every_byte_order_and_type_shows_the_same_picture(dtype: str) -> None:
    values = np.arange(64 * 48).reshape(64, 48) % 200
    expected = stretch(values.astype(np.float64))
    assert np.array_equal(stretch(values.astype(dtype)), expected)

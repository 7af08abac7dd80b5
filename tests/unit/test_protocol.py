"""Array-1.0 header parsing: the camera's spelling, every field's check, the per-frame cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pco_writer.errors import ProtocolError
from pco_writer.protocol import HeaderParser, check_payload, parse_header
from pco_writer.simulate import camera_header

CAPTURE_HEADER = (
    b'{"htype":"array-1.0","tag":"","source":"","shape":[64,250] ,"frame":375,'
    b'"type":"uint16","endianess":"little"}'
)


def test_the_real_camera_header_parses_with_its_spelling_and_stray_space() -> None:
    h = parse_header(CAPTURE_HEADER)
    assert (h.frame, h.shape, h.type, h.endianness, h.htype) == (
        375, (64, 250), "uint16", "little", "array-1.0"
    )  # fmt: skip
    assert h.dtype == np.dtype("<u2") and h.nbytes == 32_000


def test_the_captured_headers_in_shared_parse_when_present() -> None:
    folder = Path(__file__).resolve().parents[3] / "shared/data/pco_edge_dump"
    if not folder.is_dir():
        pytest.skip(f"the capture is not at {folder}")
    ids = [parse_header(p.read_bytes()).frame for p in sorted(folder.glob("*_000.raw"))]
    assert ids == list(range(375, 425))


def test_both_spellings_of_endianness_are_accepted_and_big_endian_is_kept() -> None:
    base = {"frame": 1, "shape": [2, 3], "type": "int32"}
    assert parse_header(json.dumps({**base, "endianness": "big"})).dtype == np.dtype(">i4")
    assert parse_header(json.dumps({**base, "endianess": "big"})).dtype == np.dtype(">i4")
    assert parse_header(json.dumps(base)).endianness == "little"


def test_extra_header_fields_are_kept_for_layouts() -> None:
    h = parse_header(json.dumps({"frame": 1, "shape": [2, 3], "type": "uint8", "angle": 1.5}))
    assert h.extra == {"angle": 1.5}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"frame": True}, "frame"),
        ({"frame": 1.0}, "frame"),
        ({"shape": [2]}, "shape"),
        ({"shape": [2, 3, 4, 5]}, "shape"),
        ({"shape": [2, True]}, "shape"),
        ({"type": "uint128"}, "type"),
        ({"endianness": "LITTLE"}, "endianness"),
        ({"htype": "chunk-1.0"}, "htype"),
        ({"source": 5}, "source"),
        ({"tag": "\ud800"}, "tag"),  # valid JSON, but no file can store it
        ({"source": "a\x00b"}, "source"),  # nor this
        ({"htype": "array-1.0\x00"}, "htype"),
    ],
)
def test_each_wrong_field_is_named(changes: dict, reason: str) -> None:
    raw = json.dumps({"frame": 1, "shape": [2, 3], "type": "uint8", **changes})
    with pytest.raises(ProtocolError) as info:
        parse_header(raw)
    assert info.value.reason == reason
    assert reason.split("_")[0] in str(info.value)


def test_a_payload_of_the_wrong_size_names_both_sizes() -> None:
    h = parse_header(CAPTURE_HEADER)
    check_payload(h, 32_000)
    with pytest.raises(ProtocolError, match="31998 bytes.*needs 32000"):
        check_payload(h, 31_998)


@settings(max_examples=200, deadline=None)
@given(
    ids=st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=8),
    shape=st.sampled_from([(64, 250), (2160, 2560), (3, 4, 5)]),
    dtype=st.sampled_from(["uint16", "float32", "int8"]),
)
def test_the_parser_cache_gives_what_a_full_parse_gives(ids, shape, dtype) -> None:
    parser = HeaderParser()
    for frame_id in ids:
        raw = camera_header(frame_id, shape, dtype)
        assert parser.parse(raw) == parse_header(raw)


@pytest.mark.parametrize(
    "second",
    [
        b'{"frame":0376,"shape":[2,3],"type":"uint8"}',  # leading zero: not JSON
        b'{"frame":376,"shape":[2,3],"type":"uint8","frame":1}',  # the last key wins in JSON
        b'{"frame":376,"shape":[2,3],"type":"int8"}',  # anything else differs: parsed in full
    ],
)
def test_the_parser_cache_never_hides_a_difference(second: bytes) -> None:
    parser = HeaderParser()
    parser.parse(b'{"frame":375,"shape":[2,3],"type":"uint8"}')
    try:
        expected = parse_header(second)
    except ProtocolError as exc:
        with pytest.raises(ProtocolError) as info:
            parser.parse(second)
        assert info.value.reason == exc.reason
    else:
        assert parser.parse(second) == expected

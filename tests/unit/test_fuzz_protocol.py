"""Fuzzing the Array-1.0 header parser: any input is a frame header or a ProtocolError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pco_writer.errors import ProtocolError
from pco_writer.protocol import DTYPE_NAMES, FrameHeader, check_payload, parse_header

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
header_fields = st.fixed_dictionaries(
    {},
    optional={
        # mostly plausible values, so that the checks after the first one are reached too
        "frame": st.integers(min_value=-5, max_value=2**70) | json_values,
        "shape": st.lists(st.integers(-3, 5000), min_size=2, max_size=3) | json_values,
        "type": st.sampled_from(DTYPE_NAMES) | json_values,
        "endianness": st.sampled_from(["little", "big"]) | json_values,
        "endianess": st.sampled_from(["little", "big"]) | json_values,
        "htype": st.just("array-1.0") | json_values,
        "source": json_values,
        "tag": json_values,
        "encoding": json_values,
    },
).flatmap(lambda d: st.dictionaries(st.text(max_size=8), json_values, max_size=3).map(d.__or__))


def parse_or_reject(raw: Any) -> FrameHeader | None:
    try:
        return parse_header(raw)
    except ProtocolError as exc:
        assert exc.reason and str(exc), "a rejection must name its reason and say what is wrong"
        return None


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_are_a_header_or_a_protocol_error(raw: bytes) -> None:
    parse_or_reject(raw)


@FUZZ
@given(header_fields)
def test_json_objects_with_wrong_field_types_are_a_header_or_a_protocol_error(
    fields: dict[str, Any],
) -> None:
    header = parse_or_reject(json.dumps(fields).encode())
    if header is not None:  # whatever is accepted is a usable frame description
        assert header.frame >= 0 and all(n > 0 for n in header.shape)
        assert header.dtype.itemsize >= 1 and header.nbytes >= header.dtype.itemsize
        parse_or_reject_payload(header, header.nbytes)


def parse_or_reject_payload(header: FrameHeader, nbytes: int) -> None:
    try:
        check_payload(header, nbytes)
    except ProtocolError as exc:  # pragma: no cover - only compressed encodings get here
        assert exc.reason == "payload_size"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 100_000, "header_not_json"),
        (b'{"frame":1,"shape":[2,2],"type":"uint8","endianness":[1]}', "endianness"),
        (b'{"frame":1,"shape":[2,2],"type":"uint8","endianess":{"a":1}}', "endianness"),
        (b'{"frame":1,"shape":[2,2],"type":["uint8"]}', "type"),
        (b'{"frame":1,"shape":[2,2],"type":"uint8","htype":["array-1.0"]}', "htype"),
        (b'{"frame":1.0,"shape":[2,2],"type":"uint8"}', "frame"),
        (b'{"frame":true,"shape":[2,2],"type":"uint8"}', "frame"),
        (b'{"frame":1,"shape":[true,2],"type":"uint8"}', "shape"),
        (b"\xff\xfe", "header_not_json"),
        (b"", "header_not_json"),
    ],
)
def test_hostile_headers_are_rejected_with_their_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_header(raw)
    assert info.value.reason == reason

import uuid
import zlib

import pytest

from edgekit.toolkit.simulator.eventstream import (
    Decoder,
    Frame,
    FrameError,
    Header,
    HeaderType,
    decode,
    encode,
    int32,
    string,
)


def test_round_trip_every_header_type():
    headers = [
        Header("t", True, HeaderType.BOOL_TRUE),
        Header("f", False, HeaderType.BOOL_FALSE),
        Header("b", -5, HeaderType.BYTE),
        Header("s", -300, HeaderType.INT16),
        int32(":stream-id", 7),
        Header("l", 2**40, HeaderType.INT64),
        Header("raw", b"\x00\x01", HeaderType.BYTES),
        string(":content-type", "application/json"),
        Header("ts", 1_700_000_000_000, HeaderType.TIMESTAMP),
        Header("id", uuid.UUID(int=42), HeaderType.UUID),
    ]
    frame = decode(encode(Frame(headers, b'{"a":1}')))
    assert frame.payload == b'{"a":1}'
    assert [(h.name, h.value, h.type) for h in frame.headers] == [
        (h.name, h.value, h.type) for h in headers
    ]
    assert frame.get(":STREAM-ID") == 7  # lookup ignores case, like the client


def test_known_prelude_layout():
    data = encode(Frame([int32(":message-type", 4)], b""))
    total = int.from_bytes(data[0:4], "big")
    hlen = int.from_bytes(data[4:8], "big")
    assert total == len(data) == 12 + hlen + 4
    assert int.from_bytes(data[8:12], "big") == zlib.crc32(data[:8])
    assert int.from_bytes(data[-4:], "big") == zlib.crc32(data[:-4])


def test_incremental_decoding_byte_by_byte():
    frames = [Frame([int32(":stream-id", i)], b"x" * i) for i in range(5)]
    data = b"".join(encode(f) for f in frames)
    dec = Decoder()
    got = []
    for i in range(len(data)):
        got += dec.feed(data[i : i + 1])
    assert [f.get(":stream-id") for f in got] == [0, 1, 2, 3, 4]
    assert [f.payload for f in got] == [f.payload for f in frames]


@pytest.mark.parametrize("where", [9, -1, 20])
def test_corruption_is_detected(where):
    data = bytearray(encode(Frame([string("a", "bcdefgh")], b"payload")))
    data[where] ^= 0xFF
    with pytest.raises(FrameError):
        decode(bytes(data))

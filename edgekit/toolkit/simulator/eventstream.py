"""AWS eventstream framing: the binary envelope of Greengrass IPC (eventstream RPC).

frame = total_len:u32 | headers_len:u32 | prelude_crc:u32 | headers | payload | message_crc:u32,
big-endian, both CRCs plain CRC-32 (zlib). Kept free of any RPC meaning so it can be tested alone.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

PRELUDE_LEN = 12
MAX_FRAME = 64 * 1024 * 1024  # far above the 21 MiB frames the real client passes


class HeaderType(IntEnum):
    BOOL_TRUE = 0
    BOOL_FALSE = 1
    BYTE = 2
    INT16 = 3
    INT32 = 4
    INT64 = 5
    BYTES = 6
    STRING = 7
    TIMESTAMP = 8
    UUID = 9


class FrameError(Exception):
    """The bytes are not a valid eventstream frame (bad length or CRC): drop the connection."""


@dataclass(frozen=True)
class Header:
    name: str
    value: Any
    type: HeaderType


def int32(name: str, value: int) -> Header:
    return Header(name, value, HeaderType.INT32)


def string(name: str, value: str) -> Header:
    return Header(name, value, HeaderType.STRING)


@dataclass
class Frame:
    headers: list[Header] = field(default_factory=list)
    payload: bytes = b""

    def get(self, name: str, default: Any = None) -> Any:
        """Header value by name, ignoring case as the Python client does."""
        lname = name.lower()
        for h in self.headers:
            if h.name.lower() == lname:
                return h.value
        return default

    def header(self, name: str) -> Header | None:
        lname = name.lower()
        return next((h for h in self.headers if h.name.lower() == lname), None)


_FIXED = {
    HeaderType.BYTE: ">b",
    HeaderType.INT16: ">h",
    HeaderType.INT32: ">i",
    HeaderType.INT64: ">q",
    HeaderType.TIMESTAMP: ">q",
}


def _encode_header(h: Header) -> bytes:
    name = h.name.encode("utf-8")
    if len(name) > 255:
        raise ValueError(f"header name too long: {h.name!r}")
    out = bytearray([len(name)]) + name
    t = h.type
    if t in (HeaderType.BOOL_TRUE, HeaderType.BOOL_FALSE):
        out.append(HeaderType.BOOL_TRUE if h.value else HeaderType.BOOL_FALSE)
    elif t in _FIXED:
        out.append(t)
        out += struct.pack(_FIXED[t], int(h.value))
    elif t in (HeaderType.BYTES, HeaderType.STRING):
        raw = h.value.encode("utf-8") if isinstance(h.value, str) else bytes(h.value)
        if len(raw) > 0xFFFF:
            raise ValueError(f"header {h.name!r} value too long")
        out.append(t)
        out += struct.pack(">H", len(raw)) + raw
    elif t == HeaderType.UUID:
        out.append(t)
        out += h.value.bytes if isinstance(h.value, uuid.UUID) else bytes(h.value)
    else:  # pragma: no cover - enum is closed
        raise ValueError(f"unknown header type {t}")
    return bytes(out)


def encode(frame: Frame) -> bytes:
    headers = b"".join(_encode_header(h) for h in frame.headers)
    total = PRELUDE_LEN + len(headers) + len(frame.payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers + frame.payload
    return body + struct.pack(">I", zlib.crc32(body))


def _decode_headers(raw: bytes) -> list[Header]:
    headers: list[Header] = []
    i = 0
    n = len(raw)
    try:
        while i < n:
            name_len = raw[i]
            name = raw[i + 1 : i + 1 + name_len].decode("utf-8")
            i += 1 + name_len
            t = HeaderType(raw[i])
            i += 1
            if t == HeaderType.BOOL_TRUE:
                value: Any = True
            elif t == HeaderType.BOOL_FALSE:
                value = False
            elif t in _FIXED:
                size = struct.calcsize(_FIXED[t])
                (value,) = struct.unpack(_FIXED[t], raw[i : i + size])
                i += size
            elif t in (HeaderType.BYTES, HeaderType.STRING):
                (ln,) = struct.unpack(">H", raw[i : i + 2])
                value = raw[i + 2 : i + 2 + ln]
                if len(value) != ln:
                    raise FrameError("header value truncated")
                if t == HeaderType.STRING:
                    value = value.decode("utf-8")
                i += 2 + ln
            else:
                value = uuid.UUID(bytes=raw[i : i + 16])
                i += 16
            headers.append(Header(name, value, t))
    except (IndexError, struct.error, ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"malformed headers: {exc}") from exc
    return headers


class Decoder:
    """Incremental decoder: feed bytes as they arrive, get whole frames back."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= PRELUDE_LEN:
            total, headers_len, prelude_crc = struct.unpack_from(">III", self._buf, 0)
            if zlib.crc32(bytes(self._buf[:8])) != prelude_crc:
                raise FrameError("prelude CRC mismatch")
            if total < PRELUDE_LEN + 4 + headers_len or total > MAX_FRAME:
                raise FrameError(f"bad frame length {total}")
            if len(self._buf) < total:
                break
            raw = bytes(self._buf[:total])
            del self._buf[:total]
            (msg_crc,) = struct.unpack_from(">I", raw, total - 4)
            if zlib.crc32(raw[: total - 4]) != msg_crc:
                raise FrameError("message CRC mismatch")
            hdr = raw[PRELUDE_LEN : PRELUDE_LEN + headers_len]
            payload = raw[PRELUDE_LEN + headers_len : total - 4]
            frames.append(Frame(_decode_headers(hdr), payload))
        return frames


def decode(data: bytes) -> Frame:
    """Decode exactly one frame (tests and tools)."""
    frames = Decoder().feed(data)
    if len(frames) != 1:
        raise FrameError(f"expected one frame, got {len(frames)}")
    return frames[0]

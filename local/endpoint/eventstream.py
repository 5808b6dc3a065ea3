"""Encoder for the AWS event-stream framing that InvokeEndpointWithResponseStream answers with.

botocore ships only a decoder. One message: prelude (total length, headers length, CRC32 of those 8
bytes), string headers, payload, then CRC32 of everything before it; integers are big-endian.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping

_STRING_HEADER = 7
_PRELUDE_LENGTH = 12
_MESSAGE_CRC_LENGTH = 4


def _encode_headers(headers: Mapping[str, str]) -> bytes:
    encoded = bytearray()
    for name, value in headers.items():
        name_bytes, value_bytes = name.encode("utf-8"), value.encode("utf-8")
        encoded += struct.pack(">B", len(name_bytes)) + name_bytes
        encoded += struct.pack(">BH", _STRING_HEADER, len(value_bytes)) + value_bytes
    return bytes(encoded)


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    header_bytes = _encode_headers(headers)
    total_length = _PRELUDE_LENGTH + len(header_bytes) + len(payload) + _MESSAGE_CRC_LENGTH
    prelude = struct.pack(">II", total_length, len(header_bytes))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + header_bytes + payload
    return message + struct.pack(">I", zlib.crc32(message))


def payload_part(payload: bytes) -> bytes:
    """A `PayloadPart` event; boto3 yields it as `{"PayloadPart": {"Bytes": payload}}`."""
    headers = {":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"}
    return encode_message(headers, payload)


def exception_event(exception_type: str, message: str, error_code: str | None = None) -> bytes:
    """An in-stream exception (`ModelStreamError` or `InternalStreamFailure`); boto3 raises EventStreamError."""
    headers = {":message-type": "exception", ":exception-type": exception_type, ":content-type": "application/json"}
    body: dict[str, str] = {"Message": message}
    if error_code is not None:
        body["ErrorCode"] = error_code
    return encode_message(headers, json.dumps(body).encode("utf-8"))

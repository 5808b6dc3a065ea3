"""The event-stream encoder: what botocore's decoder reads back, byte for byte, with valid CRCs."""

from __future__ import annotations

import json

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from local.endpoint.eventstream import encode_message, exception_event, payload_part


def decode_all(data: bytes) -> list:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_payload_part_matches_the_verified_wire_bytes():
    # Given the payload of the reference capture (opaque bytes to the encoder: a line of the chat framing the
    # capture was taken with, kept byte for byte because the expected CRCs below are the captured ones)
    payload = b'{"token": "Hel"}\n'
    # When it is encoded as a PayloadPart
    message = payload_part(payload)
    # Then it is the 122 bytes boto3 was verified to parse, down to both CRCs
    assert len(message) == 122
    assert message[:12].hex() == "0000007a00000059c4f7ce57"
    assert message[-4:].hex() == "d7686727"


def test_parts_decode_in_order_with_their_headers_and_raw_payloads():
    # Given several parts written back to back, one with multi-byte UTF-8
    payloads = [b"first", "caf\u00e9 \u2603".encode(), b""]
    stream = b"".join(payload_part(payload) for payload in payloads)
    # When botocore decodes the stream
    messages = decode_all(stream)
    # Then each message carries the PayloadPart headers and its payload unchanged
    assert [message.payload for message in messages] == payloads
    for message in messages:
        assert message.headers == {
            ":event-type": "PayloadPart",
            ":content-type": "application/octet-stream",
            ":message-type": "event",
        }


def test_a_corrupted_byte_fails_the_message_crc():
    # Given an encoded part with one payload byte flipped
    message = bytearray(payload_part(b"hello"))
    message[-6] ^= 0xFF
    # When botocore decodes it, then the checksum is rejected
    with pytest.raises(ChecksumMismatch):
        decode_all(bytes(message))


def test_exception_event_carries_the_stream_error_shape():
    # When a ModelStreamError event is encoded
    message = decode_all(exception_event("ModelStreamError", "model broke", "StreamBroken"))[0]
    # Then it has exception headers and the modelled JSON members
    assert message.headers[":message-type"] == "exception"
    assert message.headers[":exception-type"] == "ModelStreamError"
    assert json.loads(message.payload) == {"Message": "model broke", "ErrorCode": "StreamBroken"}


def test_generic_message_lengths_are_consistent():
    # Given arbitrary headers and payload
    message = encode_message({"a": "b", ":x": "yy"}, b"12345")
    # When decoded, then the prelude lengths agree with what was written
    [decoded] = decode_all(message)
    assert decoded.prelude.total_length == len(message)
    assert decoded.headers == {"a": "b", ":x": "yy"}

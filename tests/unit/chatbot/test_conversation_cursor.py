import base64
import json

import pytest
from chatbot.cursor import decode_cursor, encode_cursor
from chatbot.errors import InvalidInputError

ATTRIBUTES = frozenset({"pk", "sk"})


def _mine(key):
    return key["pk"] == "CONV#1"


def test_round_trip():
    key = {"pk": "CONV#1", "sk": "MSG#0000000004"}
    cursor = encode_cursor(key)
    assert "CONV" not in cursor  # opaque
    assert decode_cursor(cursor, attributes=ATTRIBUTES, belongs=_mine) == key


def test_no_cursor_means_first_page():
    assert encode_cursor(None) is None
    assert decode_cursor(None, attributes=ATTRIBUTES, belongs=_mine) is None


def _encode(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !!",
        "%%%",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        _encode(["pk", "sk"]),
        _encode({"pk": "CONV#1"}),
        _encode({"pk": "CONV#1", "sk": "MSG#1", "extra": "x"}),
        _encode({"pk": "CONV#1", "sk": {"S": "MSG#1"}}),
        _encode({"pk": "CONV#2", "sk": "MSG#1"}),
        "A" * 5000,
    ],
    ids=["garbage", "symbols", "not-utf8", "list", "missing", "extra", "typed", "someone-elses", "huge"],
)
def test_tampered_cursors_are_bad_requests(cursor):
    with pytest.raises(InvalidInputError):
        decode_cursor(cursor, attributes=ATTRIBUTES, belongs=_mine)


def _encode_raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _encode_raw("[" * 1500),
        _encode_raw('{"pk":' * 250 + "1" + "}" * 250),
        _encode({"pk": "CONV#1", "sk": 7}),
        _encode({"pk": "CONV#1", "sk": None}),
        _encode({"pk": "CONV#1", "sk": ["MSG#1"]}),
        _encode({"pk": "CONV#1", "sk": ""}),
        _encode_raw('{"pk":"CONV#1","sk":"MSG#\\ud800"}'),
        _encode({"pk": "CONV#1", "sk": "é" * 600}),
    ],
    ids=["nested-lists", "nested-objects", "number", "null", "list-value", "empty", "lone-surrogate", "too-long-key"],
)
def test_crafted_cursors_are_bad_requests_not_crashes(cursor):
    # Given a cursor crafted to break the decoder or DynamoDB (deep nesting, values that are no key strings)
    # When it is decoded / Then it is refused as invalid input, never another exception
    with pytest.raises(InvalidInputError, match="cursor"):
        decode_cursor(cursor, attributes=ATTRIBUTES, belongs=lambda key: True)

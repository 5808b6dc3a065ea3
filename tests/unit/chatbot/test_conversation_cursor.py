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

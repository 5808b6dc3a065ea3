"""Bytes to text: BOMs, UTF-16 without a BOM, UTF-8, then the Windows and Latin-1 fallbacks."""

import codecs
import re

from chatbot.transcript_parsing.model import FailureCode, TranscriptError

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Text files hold almost no control characters; binary files (audio, archives, images) are full of them.
_MAX_CONTROL_SHARE = 0.01
# Control characters other than tab, line feed, form feed and carriage return.
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f]")


def decode_text(data: bytes) -> str:
    """Decode a transcript file to text with "\\n" line ends; raises TranscriptError for binary data."""
    text = _decode(data)
    text = text.replace("\r\n", "\n").replace("\r", "\n").removeprefix("\ufeff")
    controls = len(_CONTROL.findall(text))
    if text and controls / len(text) > _MAX_CONTROL_SHARE:
        raise TranscriptError(FailureCode.UNPARSEABLE, "the file is binary, not text")
    return text


def _decode(data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise TranscriptError(
                    FailureCode.UNPARSEABLE,
                    f"the file starts with a {encoding} byte order mark, but its bytes from offset "
                    f"{len(bom) + exc.start} on are not {encoding} text",
                ) from None
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        return utf16
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")  # every byte is a Latin-1 character


def _utf16_without_bom(data: bytes) -> str | None:
    """Mostly-ASCII UTF-16 has a zero in every other byte: high bytes first (BE) or second (LE)."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    pairs = len(sample) // 2
    even_zeros = sum(1 for index in range(0, pairs * 2, 2) if sample[index] == 0)
    odd_zeros = sum(1 for index in range(1, pairs * 2, 2) if sample[index] == 0)
    for zeros, other_zeros, encoding in ((odd_zeros, even_zeros, "utf-16-le"), (even_zeros, odd_zeros, "utf-16-be")):
        if zeros > 0.6 * pairs and other_zeros < 0.1 * pairs:
            try:
                return data[: len(data) - len(data) % 2].decode(encoding)
            except UnicodeDecodeError:
                return None
    return None

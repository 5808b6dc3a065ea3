"""A conservative token count for BART (byte-level BPE) and Llama (SentencePiece) without tokenizer files.

Both tokenizers give a common English word one token and split rarer words into a few; Llama spends one
token per digit and both fall back to one token per UTF-8 byte for characters outside their vocabulary.
The estimate errs on the high side in each of those cases so that text measured here fits the model's
real limit; the summarizer endpoint still has the final word (it rejects input that is too long).
"""

import math
import re

# One regex pass splits text into the pieces both tokenizers treat alike.
_PIECES = re.compile(
    r"(?P<ascii_word>[A-Za-z]+)"
    r"|(?P<digits>[0-9]+)"
    r"|(?P<single_space> (?=\S))"
    r"|(?P<whitespace>\s)"
    r"|(?P<other>[^\sA-Za-z0-9]+)"
)

# BPE merges keep common words whole and split rarer ones into pieces of about four characters; words
# in capitals (acronyms, shouting) split into much shorter pieces.
_CHARS_PER_WORD_PIECE = 4
_CHARS_PER_CAPITALS_PIECE = 2
_MAX_CHARS_PER_TOKEN = _CHARS_PER_WORD_PIECE + 1


def _word_cost(word: str) -> int:
    capitals = 0 if word.islower() else sum(char.isupper() for char in word)
    return math.ceil(len(word) / (_CHARS_PER_CAPITALS_PIECE if capitals > 1 else _CHARS_PER_WORD_PIECE))


def _piece_cost(kind: str | None, piece: str) -> int:
    if kind == "ascii_word":
        return _word_cost(piece)
    if kind in ("digits", "whitespace"):
        # Llama spends a token per digit; whitespace other than one space before a word costs its own.
        return len(piece)
    if kind == "other":
        # Punctuation costs one token a character; anything else may fall back to one token a byte.
        return len(piece.encode("utf-8"))
    return 0  # the single space before a word travels in that word's token


def estimate_tokens(text: str) -> int:
    """Return an over-estimate of the number of BPE tokens in `text` (special tokens not included)."""
    return sum(_piece_cost(match.lastgroup, match.group()) for match in _PIECES.finditer(text))


def fits(text: str, max_tokens: int) -> bool:
    """estimate_tokens(text) <= max_tokens, without reading a text far too long to fit."""
    return len(text) <= _MAX_CHARS_PER_TOKEN * (max_tokens + 1) and estimate_tokens(text) <= max_tokens


def prefix_end(text: str, max_tokens: int, start: int = 0) -> int:
    """The end index of the longest `text[start:end]` whose estimate is at most `max_tokens` (at least start + 1).

    Linear in the length of the prefix, whatever the length of `text`, so cutting a huge unbroken
    string into pieces stays linear overall.
    """
    total = 0
    previous_kind = None
    # Nothing costs less than a token per five characters ("abcd "), so the scan can stop there.
    window_end = min(len(text), start + _MAX_CHARS_PER_TOKEN * (max(max_tokens, 0) + 1))
    for match in _PIECES.finditer(text, start, window_end):
        kind, piece = match.lastgroup, match.group()
        cost = _piece_cost(kind, piece)
        if total + cost <= max_tokens:
            total, previous_kind = total + cost, kind
            continue
        room = max_tokens - total
        if kind == "ascii_word":
            taken = room * _CHARS_PER_WORD_PIECE
            if _word_cost(piece[:taken]) > room:
                taken = room * _CHARS_PER_CAPITALS_PIECE
        elif kind == "other":
            taken, used = 0, 0
            while used + len(piece[taken].encode("utf-8")) <= room:
                used += len(piece[taken].encode("utf-8"))
                taken += 1
        else:
            taken = room
        end = match.start() + taken
        if taken == 0 and previous_kind == "single_space":
            end -= 1  # a space left at the end of a prefix would cost a token of its own
        return max(end, start + 1)
    return window_end

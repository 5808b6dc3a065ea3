"""The context of one question about a summarized call: its summary, then its turns most relevant to the question.

Relevance is BM25 over the call's turns, from tantivy (Rust, no Python dependencies, an in-memory index built
per question: about half a second for 10,000 turns, see `bench/call_context.py`). Words are lowercased,
accent-folded, English-stemmed, and English stop words are dropped, so "was a refund promised?" looks for
"refund" and "promis". The question's words count fully; the conversation's recent messages count half, so a
follow-up ("and when is it due?") still finds the turns the earlier question was about.

Within the token budget (chatbot.tokens' estimate, speaker names and times included):
- every turn, when they all fit (the only case that is not a selection);
- otherwise the best-scoring turns first, then the turns beside them (an answer often follows its question),
  each that still fits; a turn that does not fit is passed over for smaller ones further down; turns that
  neither match nor sit beside a match stay out, however much room is left;
- with no word in common with the question, the call's opening and closing turns, alternately (the reason for
  the call, then its outcome and next steps), and the result says that nothing matched.
A turn longer than a quarter of the budget is split on sentence boundaries (words, characters for a
word that long) into passages ranked on their own, so a monologue does not crowd out the rest and its
relevant part is found; such passages are marked as excerpts.
The chosen lines are shown in call order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import tantivy

from chatbot.clock import clock_label
from chatbot.summarization import NEWLINE_TOKENS, SENTENCE_END, Turn
from chatbot.tokens import estimate_tokens, fits, prefix_end

# A turn longer than this share of the budget for turns is split into passages, so it cannot crowd out the rest.
_PASSAGE_SHARE = 4
_MIN_PASSAGE_TOKENS = 48
_RECENT_MESSAGES_BOOST = 0.5
# Tantivy's smallest indexing arena, for one writer thread: a Lambda function of 512 MB has less than a vCPU.
_WRITER_HEAP_BYTES = 15_000_000
# The cheapest line there can be (index 0, no speaker, one letter): less room than this ends the filling.
_MIN_LINE_TOKENS = estimate_tokens("[turn 0] : a") + NEWLINE_TOKENS
# No piece of text costs less than a token per five characters ("abcd "), nor more than a token per UTF-8 byte:
# bounds that spare most lines of a long call an exact count.
_MAX_CHARS_PER_TOKEN = 5

_ANALYZER = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.remove_long(40))
    .filter(tantivy.Filter.lowercase())
    .filter(tantivy.Filter.ascii_fold())
    .filter(tantivy.Filter.stopword("english"))
    .filter(tantivy.Filter.stemmer("english"))
    .build()
)


class NoTurnsError(Exception):
    """The call has no turn with text, so no answer can be grounded in it."""


@dataclass(frozen=True, slots=True)
class CallTurn:
    index: int  # position in the stored transcript, the number the answer cites
    speaker: str
    text: str
    start_s: float | None = None
    end_s: float | None = None


@dataclass(frozen=True, slots=True)
class TurnReference:
    index: int
    speaker: str
    start_s: float | None


@dataclass(frozen=True, slots=True)
class CallContext:
    text: str  # for the chat model's system/context message
    turns: tuple[TurnReference, ...]  # the turns quoted in `text`, in call order
    selection: bool  # some turns (or parts of turns) were left out
    matched: bool  # False when a selection holds no word of the question: the call's opening and closing instead
    tokens: int  # estimate_tokens(text)


@dataclass(frozen=True, slots=True)
class _Passage:
    turn: CallTurn
    text: str  # what is indexed: the speaker and time label stay out, or every turn would match a speaker's name
    line: str


def call_turns(turns: Iterable[Turn]) -> list[CallTurn]:
    """Parsed turns numbered in transcript order."""
    return [CallTurn(index, turn.speaker, turn.text, turn.start_s, turn.end_s) for index, turn in enumerate(turns)]


def build_call_context(
    summary: str,
    turns: Sequence[CallTurn],
    question: str,
    *,
    max_tokens: int,
    recent_messages: Sequence[str] = (),
) -> CallContext:
    """The context for one question, at most `max_tokens` by estimate_tokens.

    Raises NoTurnsError when no turn has text, ValueError when the summary and headings leave no room for a turn.
    """
    spoken = [turn for turn in turns if turn.text.strip()]
    if not spoken:
        raise NoTurnsError("the call has no transcript turns to answer from")
    summary_part = f"Summary of the call:\n{' '.join(summary.split())}\n\n"
    summary_tokens = estimate_tokens(summary_part)
    whole = [_whole(turn) for turn in spoken]
    everything = _heading(len(spoken), len(spoken), selection=False, matched=True)
    if fits("".join([summary_part, everything, *(f"\n{passage.line}" for passage in whole)]), max_tokens):
        return _context(summary_part, everything, whole, range(len(whole)), selection=False, matched=True)

    # Digits cost a token each, so a heading is dearest with the total in both places.
    heading_reserve = max(
        estimate_tokens(_heading(len(spoken), len(spoken), selection=True, matched=matched))
        for matched in (True, False)
    )
    room = max_tokens - summary_tokens - heading_reserve
    if room < _MIN_PASSAGE_TOKENS:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for turns after the summary")
    passages = _split_long(whole, max(room // _PASSAGE_SHARE, _MIN_PASSAGE_TOKENS))
    ranked = _ranked(passages, question, recent_messages)
    candidates = _with_neighbours(ranked, len(passages)) if ranked else _ends(len(passages))
    chosen = _fill(passages, candidates, room)
    shown = len({passages[ordinal].turn.index for ordinal in chosen})
    heading = _heading(shown, len(spoken), selection=True, matched=bool(ranked))
    return _context(summary_part, heading, passages, chosen, selection=True, matched=bool(ranked))


def _context(
    summary_part: str,
    heading: str,
    passages: Sequence[_Passage],
    chosen: Iterable[int],
    *,
    selection: bool,
    matched: bool,
) -> CallContext:
    chosen = list(chosen)
    references = tuple(
        dict.fromkeys(
            TurnReference(passages[ordinal].turn.index, passages[ordinal].turn.speaker, passages[ordinal].turn.start_s)
            for ordinal in chosen
        )
    )
    # Each line's token count includes one newline: the one before it.
    text = f"{summary_part}{heading}" + "".join(f"\n{passages[ordinal].line}" for ordinal in chosen)
    return CallContext(
        text=text,
        turns=references,
        selection=selection,
        matched=matched,
        tokens=estimate_tokens(text),
    )


def _heading(shown: int, total: int, *, selection: bool, matched: bool) -> str:
    if not selection:
        return f"The call's turns (all {total}), in call order:"
    if matched:
        return f"Selected turns of the call ({shown} of {total}, the most relevant to the question), in call order:"
    return f"Selected turns of the call ({shown} of {total}, its opening and closing: none matched the question):"


def _label(turn: CallTurn, excerpt: bool) -> str:
    details = [f"turn {turn.index}"]
    if turn.start_s is not None:
        details.append(clock_label(turn.start_s))
    if excerpt:
        details.append("excerpt")
    return f"[{', '.join(details)}] {' '.join(turn.speaker.split())}: "


def _whole(turn: CallTurn) -> _Passage:
    text = " ".join(turn.text.split())
    line = _label(turn, excerpt=False) + text
    return _Passage(turn, text, line)


def _tokens(passage: _Passage) -> int:
    """The passage's line and the newline before it."""
    return estimate_tokens(passage.line) + NEWLINE_TOKENS


def _split_long(passages: Sequence[_Passage], max_passage_tokens: int) -> list[_Passage]:
    """Each whole-turn passage, or sentence-bounded pieces of one longer than `max_passage_tokens`."""
    split = []
    for passage in passages:
        if len(passage.line.encode("utf-8")) + NEWLINE_TOKENS <= max_passage_tokens or (
            _tokens(passage) <= max_passage_tokens
        ):
            split.append(passage)
            continue
        label = _label(passage.turn, excerpt=True)
        text_room = max(max_passage_tokens - estimate_tokens(label) - NEWLINE_TOKENS, _MIN_PASSAGE_TOKENS)
        for piece in _pieces(passage.text, text_room):
            line = label + piece
            split.append(_Passage(passage.turn, piece, line))
    return split


def _pieces(text: str, max_tokens: int) -> Iterable[str]:
    """Consecutive sentences packed up to `max_tokens`; a sentence longer than that is cut where the estimate says."""
    current: list[str] = []
    current_tokens = 0
    for sentence in SENTENCE_END.split(text):
        for part in _cut(sentence, max_tokens):
            part_tokens = estimate_tokens(part) + 1  # the joining space may cost a token
            if current and current_tokens + part_tokens > max_tokens:
                yield " ".join(current)
                current, current_tokens = [], 0
            current.append(part)
            current_tokens += part_tokens
    if current:
        yield " ".join(current)


def _cut(sentence: str, max_tokens: int) -> Iterable[str]:
    """Pieces of at most `max_tokens - 1`, cut after the last space that fits (mid-word only for a huge word)."""
    start = 0
    while start < len(sentence):
        end = prefix_end(sentence, max_tokens - 1, start)
        space = sentence.rfind(" ", start + 1, end)
        if end < len(sentence) and not sentence[end].isspace() and space > start:
            end = space
        yield sentence[start:end].strip()
        start = end


def _ranked(passages: Sequence[_Passage], question: str, recent_messages: Sequence[str]) -> list[int]:
    """Ordinals of the passages sharing a word with the question (or recent messages), best BM25 score first."""
    question_terms = set(_ANALYZER.analyze(question))
    recent_terms = {term for message in recent_messages for term in _ANALYZER.analyze(message)} - question_terms
    if not question_terms and not recent_terms:
        return []
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("text", stored=False, tokenizer_name="call")
    builder.add_unsigned_field("ordinal", stored=True)
    schema = builder.build()
    index = tantivy.Index(schema)
    index.register_tokenizer("call", _ANALYZER)
    writer = index.writer(heap_size=_WRITER_HEAP_BYTES, num_threads=1)
    for ordinal, passage in enumerate(passages):
        document = tantivy.Document()
        document.add_text("text", passage.text)
        document.add_unsigned("ordinal", ordinal)
        writer.add_document(document)
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    searcher = index.searcher()

    clauses = [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "text", term)) for term in question_terms]
    clauses += [
        (
            tantivy.Occur.Should,
            tantivy.Query.boost_query(tantivy.Query.term_query(schema, "text", term), _RECENT_MESSAGES_BOOST),
        )
        for term in recent_terms
    ]
    hits = searcher.search(tantivy.Query.boolean_query(clauses), limit=len(passages)).hits
    scored = [(score, searcher.doc(address)["ordinal"][0]) for score, address in hits]
    return [ordinal for _, ordinal in sorted(scored, key=lambda hit: (-hit[0], hit[1]))]


def _with_neighbours(ranked: Sequence[int], count: int) -> list[int]:
    """The ranked ordinals, then each one's previous and next passage, in rank order."""
    neighbours = (near for ordinal in ranked for near in (ordinal - 1, ordinal + 1) if 0 <= near < count)
    return list(dict.fromkeys([*ranked, *neighbours]))


def _ends(count: int) -> list[int]:
    """0, count-1, 1, count-2, ...: the opening and the closing of the call, alternately."""
    return list(dict.fromkeys(ordinal for step in range(count) for ordinal in (step, count - 1 - step)))


def _fill(passages: Sequence[_Passage], candidates: Iterable[int], room: int) -> list[int]:
    """The candidates that fit in `room` tokens, taken in order (skipping those too big for what is left)."""
    chosen = []
    for ordinal in candidates:
        if room < _MIN_LINE_TOKENS:
            break
        if len(passages[ordinal].line) > _MAX_CHARS_PER_TOKEN * room:
            continue
        tokens = _tokens(passages[ordinal])
        if tokens <= room:
            chosen.append(ordinal)
            room -= tokens
    return sorted(chosen)

"""The default summarizer: an extractive dialogue summarizer that needs no weights.

It speaks the summarizer contract (see `summary_contract`). A dialogue ("Speaker: text" lines; lines without
a speaker continue the turn before) is split into sentences, and each sentence is scored by how central its
content words are to the conversation (TF-IDF cosine to the whole dialogue), plus cues of what a summary
must keep: problems and requests, numbers, dates and amounts, decisions and outcomes. Greetings, thanks and
fillers are penalised or dropped. The best sentences are picked without repeating each other (maximal
marginal relevance) until the length budget is spent, then written back in their original order, one line
per turn with its speaker's name. The budget is `parameters.max_length` (or max_new_tokens) in tokens, by
default a third of the input within 32..128 tokens. Inputs are limited to `context_tokens` by a conservative
token estimate, as BART is by its tokenizer, so callers chunk the same way for both.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from chatbot.tokens import estimate_tokens

from local.backends.base import Backend, TokenSink
from local.backends.summary_contract import (
    SummaryRequest,
    ToolkitFraming,
    check_input_length,
    deliver,
    parse_summary_request,
    response_body,
)

DEFAULT_MAX_SUMMARY_TOKENS = 128
MIN_DEFAULT_SUMMARY_TOKENS = 32
REDUNDANCY_WEIGHT = 0.6
MIN_RELATIVE_SCORE = 0.25

_SPEAKER_LINE = re.compile(r"^\s*(?P<speaker>[^\s:\d][^:\n]{0,40}?)\s*:\s*(?P<text>\S.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[\"“'(\[]?[A-Z0-9#])")
_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")

# Function words and conversational fillers: they say nothing about what a conversation was about.
_STOPWORD_TEXT = """
a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs
them themselves then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your yours yourself yourselves i'm i've i'll i'd you're
you've you'll we're we've we'll it's that's there's let's don't doesn't didn't isn't wasn't aren't won't can't
couldn't shouldn't wouldn't also get got go going know think see well yes yeah yep ok okay oh um uh hmm hi
hello hey thanks thank please sure right great good fine alright really actually like just one let us may
might must shall bye goodbye welcome mr mrs ms dr
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_GREETING = re.compile(
    r"\b(hi|hello|hey|good (morning|afternoon|evening)|thanks?( you)? (so much |very much )?(for (calling|contacting|"
    r"holding|waiting|your patience|your help|that))?|you'?re welcome|my pleasure|no problem|how (can|may) i help"
    r"( you)?( today)?|have a (nice|good|great|lovely) (day|evening|weekend|one)|(good)?bye|take care|is there "
    r"anything else( i can (help|do)[^.?!]*)?|nice to (meet|hear from) you|my name is|speaking)\b",
    re.IGNORECASE,
)
_PROBLEM_OR_REQUEST = re.compile(
    r"\b(problem|issue|error|fail\w*|broken|not (working|loading|arrived|received)|doesn'?t|does not|isn'?t|"
    r"can'?t|cannot|won'?t|unable|keeps?|stopped|down|outage|slow|wrong|overcharged|charged twice|missing|lost|"
    r"late|delayed|damaged|need|want|would like|could you|can you|please|help me|refund|cancel|return|replace|"
    r"complain\w*|worried|pain|symptom\w*|hurts?)\b",
    re.IGNORECASE,
)
_NUMBERS_AND_DATES = re.compile(
    r"\d|[$€£]|\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday|today|tomorrow|tonight|yesterday|"
    r"week|month|year|hours?|minutes?|days?|january|february|march|april|may|june|july|august|september|"
    r"october|november|december|deadline)\b",
    re.IGNORECASE,
)
_OUTCOME = re.compile(
    r"\b(will|i'?ll|we'?ll|going to|scheduled|booked|arranged|resolved|fixed|solved|reset|restarted|credit\w*|"
    r"refunded|issued|sent|send|confirm\w*|agreed?|decided?|decision|approved?|ticket|reference|case number|"
    r"follow[- ]up|next step|works now|working now|back (up|online)|done|replac\w+ (it|the)|prescrib\w*|"
    r"recommend\w*|plan)\b",
    re.IGNORECASE,
)

# How much each cue adds to a sentence's score (centrality is scaled to 0..1).
_PROBLEM_BONUS = 0.35
_NUMBER_BONUS = 0.25
_OUTCOME_BONUS = 0.4
_FIRST_WORDS_BONUS = 0.15  # a speaker's first substantive sentence usually states why they are here
_GREETING_FACTOR = 0.3
_SHORT_SENTENCE_FACTOR = 0.5
_SHORT_SENTENCE_WORDS = 5


@dataclass(frozen=True)
class Sentence:
    turn: int
    speaker: str | None
    text: str
    terms: Counter[str]


def parse_dialogue(text: str) -> list[tuple[str | None, str]]:
    """(speaker, text) turns: each "Speaker: text" line starts a turn; other lines continue the turn before."""
    turns: list[tuple[str | None, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _SPEAKER_LINE.match(line)
        if match and len(match["speaker"].split()) <= 4:
            turns.append((match["speaker"].strip(), match["text"].strip()))
        elif turns:
            speaker, previous = turns[-1]
            turns[-1] = (speaker, f"{previous} {line.strip()}")
        else:
            turns.append((None, line.strip()))
    return turns


def summarize_dialogue(text: str, budget_tokens: int, min_tokens: int = 0) -> str:
    """An extractive summary of text within budget_tokens (estimated), keeping speakers and original order."""
    sentences = [
        Sentence(turn, speaker, piece, Counter(_content_words(piece)))
        for turn, (speaker, turn_text) in enumerate(parse_dialogue(text))
        for piece in _SENTENCE_END.split(turn_text)
        if piece.strip()
    ]
    if not sentences:
        return ""
    scores = _score(sentences)
    chosen = _select(sentences, scores, budget_tokens, min_tokens)
    return _render([sentences[index] for index in sorted(chosen)], budget_tokens)


def _content_words(text: str) -> list[str]:
    return [word.replace("’", "'") for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]


def _score(sentences: list[Sentence]) -> list[float]:
    document_frequency = Counter(term for sentence in sentences for term in sentence.terms)
    count = len(sentences)
    idf = {term: math.log((count + 1) / (frequency + 1)) + 1 for term, frequency in document_frequency.items()}
    vectors = [{term: tf * idf[term] for term, tf in sentence.terms.items()} for sentence in sentences]
    centroid: Counter[str] = Counter()
    for vector in vectors:
        centroid.update(vector)
    centrality = [_cosine(vector, centroid) for vector in vectors]
    top = max(centrality) or 1.0
    seen_speakers: set[str | None] = set()
    scores = []
    for sentence, central in zip(sentences, centrality, strict=True):
        substance = _substance(sentence.text)
        if substance < 2 and not _NUMBERS_AND_DATES.search(sentence.text):
            scores.append(0.0)  # a greeting, thanks or filler: nothing a summary needs
            continue
        score = central / top
        score += _PROBLEM_BONUS * bool(_PROBLEM_OR_REQUEST.search(sentence.text))
        score += _NUMBER_BONUS * bool(_NUMBERS_AND_DATES.search(sentence.text))
        score += _OUTCOME_BONUS * bool(_OUTCOME.search(sentence.text))
        if sentence.speaker not in seen_speakers:
            score += _FIRST_WORDS_BONUS
            seen_speakers.add(sentence.speaker)
        if _GREETING.search(sentence.text):
            score *= _GREETING_FACTOR
        if len(sentence.text.split()) < _SHORT_SENTENCE_WORDS:
            score *= _SHORT_SENTENCE_FACTOR
        scores.append(score)
    return scores


def _substance(text: str) -> int:
    """Content words left once greetings and pleasantries are taken out."""
    return len(_content_words(_GREETING.sub(" ", text)))


def _select(sentences: list[Sentence], scores: list[float], budget_tokens: int, min_tokens: int) -> set[int]:
    costs = [estimate_tokens(_line(sentence) + "\n") for sentence in sentences]
    best_score = max(scores)
    # Sentences far below the best add little but words; they only fill a budget when min_length asks for it.
    candidates = [index for index, score in enumerate(scores) if score > MIN_RELATIVE_SCORE * best_score]
    extras = [index for index, score in enumerate(scores) if 0 < score <= MIN_RELATIVE_SCORE * best_score]
    chosen: set[int] = set()
    spent = 0
    while candidates:
        # Gain per token (softened) so that one long sentence does not crowd out two that say more.
        best = max(candidates, key=lambda index: _marginal(index, chosen, sentences, scores) / costs[index] ** 0.5)
        candidates.remove(best)
        if _marginal(best, chosen, sentences, scores) <= 0 and spent >= min_tokens:
            break
        if spent + costs[best] <= budget_tokens:
            chosen.add(best)
            spent += costs[best]
    for index in extras:
        if spent >= min_tokens:
            break
        if spent + costs[index] <= budget_tokens:
            chosen.add(index)
            spent += costs[index]
    if not chosen:  # even the best sentence is over budget (or all is filler): it is cut to fit in _render
        chosen.add(max(range(len(scores)), key=scores.__getitem__))
    return chosen


def _marginal(index: int, chosen: set[int], sentences: list[Sentence], scores: list[float]) -> float:
    redundancy = max((_cosine(sentences[index].terms, sentences[other].terms) for other in chosen), default=0.0)
    return scores[index] - REDUNDANCY_WEIGHT * redundancy


def _render(selected: list[Sentence], budget_tokens: int) -> str:
    lines: list[tuple[str | None, int, list[str]]] = []
    for sentence in selected:
        if lines and lines[-1][1] == sentence.turn:
            lines[-1][2].append(sentence.text)
        else:
            lines.append((sentence.speaker, sentence.turn, [sentence.text]))
    summary = "\n".join(f"{speaker}: {' '.join(texts)}" if speaker else " ".join(texts) for speaker, _, texts in lines)
    return _fit(summary, budget_tokens)


def _fit(text: str, budget_tokens: int) -> str:
    if estimate_tokens(text) <= budget_tokens:
        return text
    words = text.split(" ")
    while len(words) > 1 and estimate_tokens(" ".join(words) + " …") > budget_tokens:
        words.pop()
    return " ".join(words) + " …"


def _line(sentence: Sentence) -> str:
    return f"{sentence.speaker}: {sentence.text}" if sentence.speaker else sentence.text


def _cosine(left: dict[str, float], right: dict[str, float]) -> float:
    if len(left) > len(right):
        left, right = right, left
    dot = sum(weight * right.get(term, 0.0) for term, weight in left.items())
    norms = math.sqrt(sum(w * w for w in left.values())) * math.sqrt(sum(w * w for w in right.values()))
    return dot / norms if norms else 0.0


def summary_budget(request: SummaryRequest, input_tokens: int) -> tuple[int, int]:
    """(max, min) summary length in tokens from the request's parameters, or a default that fits the input."""
    parameters = dict(request.parameters)
    budget = parameters.get("max_length", parameters.get("max_new_tokens"))
    if budget is None:
        budget = min(DEFAULT_MAX_SUMMARY_TOKENS, max(MIN_DEFAULT_SUMMARY_TOKENS, input_tokens // 3))
    minimum = parameters.get("min_length", parameters.get("min_new_tokens", 0))
    return budget, min(minimum, budget)


class ExtractiveSummarizerBackend(ToolkitFraming, Backend):
    label = "extractive: weight-free extractive dialogue summarizer"

    def __init__(self, context_tokens: int):
        self.context_tokens = context_tokens

    def prepare(self, payload: Any) -> SummaryRequest:
        request = parse_summary_request(payload)
        for index, text in enumerate(request.inputs):
            check_input_length(request, index, estimate_tokens(text), self.context_tokens)
        return request

    def run_batch(self, prepared: list[SummaryRequest], sinks: list[TokenSink | None]) -> list[Any]:
        results: list[Any] = []
        for request, sink in zip(prepared, sinks, strict=True):
            try:
                summaries = []
                for text in request.inputs:
                    budget, minimum = summary_budget(request, estimate_tokens(text))
                    summaries.append(summarize_dialogue(text, budget, minimum))
                results.append(deliver(response_body(summaries), sink))
            except Exception as exc:  # one failed request must not fail its batch
                results.append(exc)
        return results

"""Turn normalisation shared by every format: readable speaker names, words joined, same-speaker turns merged."""

import re
from collections.abc import Iterable

from chatbot.summarization import Turn

MAX_SPEAKER_CHARS = 64
UNKNOWN_SPEAKER = "Speaker 1"

_ROLE_NAMES = {
    "agent": "Agent",
    "customer": "Customer",
    "caller": "Customer",
    "system": "System",
    "custom_bot": "Bot",
    "bot": "Bot",
    "supervisor": "Supervisor",
}
# Transcribe's spk_0 / ch_0 and bare numbered speakers become "Speaker 1", "Speaker 2", ...
_NUMBERED_LABEL = re.compile(r"^(?:spk|ch|speaker|channel)[ _-]?(\d+)$", re.IGNORECASE)
# Punctuation that hugs the previous word ("word," "word.") and marks that hug the next one ("¿" "(").
_ATTACH_LEFT = re.compile(r"^[.,!?;:%)\]}…'’”»]")
_ATTACH_RIGHT = re.compile(r"[(\[{¿¡“«$]$")


def speaker_name(label: object) -> str:
    """A readable speaker name for a role, a machine label or a person's name."""
    text = " ".join(str(label).split()) if label is not None else ""
    if not text:
        return UNKNOWN_SPEAKER
    role = _ROLE_NAMES.get(text.lower())
    if role:
        return role
    numbered = _NUMBERED_LABEL.match(text)
    if numbered:
        # Transcribe counts from 0 (spk_0); people count from 1.
        number = int(numbered.group(1))
        return f"Speaker {number + 1 if text.lower().startswith(('spk', 'ch')) else number}"
    return text[:MAX_SPEAKER_CHARS]


def join_words(words: Iterable[str]) -> str:
    """Join recognised words and punctuation marks with spaces only where they belong."""
    text = ""
    for word in words:
        word = word.strip()
        if not word:
            continue
        if not text or _ATTACH_LEFT.match(word) or _ATTACH_RIGHT.search(text):
            text += word
        else:
            text += " " + word
    return text


def clean_text(text: str) -> str:
    """Collapse whitespace (line breaks inside an utterance included)."""
    return " ".join(text.split())


def merge_turns(turns: Iterable[Turn]) -> tuple[Turn, ...]:
    """Drop empty turns and merge consecutive turns of one speaker."""
    runs: list[tuple[str, list[str]]] = []
    for turn in turns:
        text = clean_text(turn.text)
        if not text:
            continue
        if runs and runs[-1][0] == turn.speaker:
            runs[-1][1].append(text)
        else:
            runs.append((turn.speaker, [text]))
    return tuple(Turn(speaker, " ".join(texts)) for speaker, texts in runs)

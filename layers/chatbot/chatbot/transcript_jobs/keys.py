"""Where transcripts, summaries and failure records live in the bucket, and a job's id for a source key.

The prefixes match the bucket notification filter in template.yaml (a unit test checks it).
"""

import uuid

INCOMING_PREFIX = "incoming/"
SUMMARIES_PREFIX = "summaries/"
FAILED_PREFIX = "failed/"
UPLOADS_PREFIX = f"{INCOMING_PREFIX}uploads/"

#: Assumption: one call of the real summarizer (BART-large `knkarthick/MEETING_SUMMARY` on the HF container, the
#: reference GPU) takes at most 8 s for a batch of up to 8 chunks of 1,024 tokens with 160-token summaries.
ASSUMED_SUMMARIZER_CALL_S = 8
#: Larger transcripts are refused (the upload URL says so; the batch job fails them as too large). Sized so the
#: worst case per byte, plain `Speaker: text` lines, finishes within the batch function's timeout at that speed:
#: 900 KiB is ~320 chunks in 52 calls, ~420 s of the 600 s timeout less the 135 s kept for the last call and the
#: writes (a unit test checks it). JSON formats (Transcribe, Contact Lens) carry far fewer tokens per byte.
TRANSCRIPT_MAX_BYTES = 900 * 1024
#: Tokens per byte vary: a WebVTT cue of unclosed `<v ` tags costs about one token per 1.5 bytes, so 900 KiB of it
#: is ~600 chunks in ~94 calls, beyond the timeout. Longer transcripts (estimated) fail before any summarizer call:
#: 280,000 tokens is at most ~54 calls, as the worst case above (a unit test checks it).
TRANSCRIPT_MAX_TOKENS = 280_000

_JOB_NAMESPACE = uuid.UUID("5b2f8a4e-3c1d-4f0a-9b7e-2d6c1e8f4a90")


def is_incoming(key: str) -> bool:
    """A transcript to summarize: under incoming/, and not a "folder" placeholder."""
    return key.startswith(INCOMING_PREFIX) and not key.endswith("/") and len(key) > len(INCOMING_PREFIX)


def job_id_for_key(key: str) -> str:
    """One job per source key, whoever put it there (API upload, CLI or a plain copy into the bucket)."""
    return str(uuid.uuid5(_JOB_NAMESPACE, key))


def summary_key(source_key: str) -> str:
    return f"{SUMMARIES_PREFIX}{source_key.removeprefix(INCOMING_PREFIX)}.json"


def failure_key(source_key: str) -> str:
    return f"{FAILED_PREFIX}{source_key.removeprefix(INCOMING_PREFIX)}.json"

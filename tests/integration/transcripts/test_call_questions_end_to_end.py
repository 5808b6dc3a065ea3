"""Asking about a call end to end on loopback: the CLI uploads a transcript, the poller and the batch function
summarize it, then the REST API starts a conversation about it and answers from its turns (the local chat
stand-in, the extractive summarizer)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import requests
from test_transcripts_end_to_end import aws_env, stack  # noqa: F401  (the same local stack)

from local.transcripts import main as transcripts_cli

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "transcripts"
ALICE = {"Authorization": "Bearer local-alice"}


def test_a_summarized_call_answers_questions_with_the_turns_it_used(stack, tmp_path):  # noqa: F811
    # Given Alice's WebVTT call, uploaded and summarized through the bucket, the queue and the batch function
    shutil.copy(FIXTURES / "webvtt_voices.vtt", tmp_path / "router call.vtt")
    out = io.StringIO()
    arguments = ["--moto-url", stack.moto_url, "upload", str(tmp_path), "--prefix", "incoming/e2e-ask/"]
    exit_code = transcripts_cli([*arguments, "--user", "alice", "--timeout", "60", "--json"], out=out)
    assert exit_code == 0, out.getvalue()
    [job] = json.loads(out.getvalue())
    assert job["status"] == "succeeded"

    # When she starts a conversation about it and asks a question
    created = requests.post(f"{stack.api_url}/v1/transcripts/{job['job_id']}/conversations", headers=ALICE, timeout=10)
    assert created.status_code == 201, created.text
    conversation = created.json()
    answered = requests.post(
        f"{stack.api_url}/v1/conversations/{conversation['id']}/messages",
        json={"content": "What router model does the customer have?"},
        headers=ALICE,
        timeout=30,
    )

    # Then the answer names the turns it was shown (the whole short call), with speakers and start times
    assert answered.status_code == 201, answered.text
    answer = answered.json()["assistant_message"]
    assert answer["content"]
    assert answer["call_selection"] is False
    assert answer["call_turns"][0] == {"index": 0, "speaker": "Maria", "start_s": 0.5}
    assert {turn["speaker"] for turn in answer["call_turns"]} == {"Maria", "Sam Lee"}
    # And the conversation list says which call each conversation is about
    listed = requests.get(f"{stack.api_url}/v1/conversations", headers=ALICE, timeout=10).json()
    assert {"job_id": job["job_id"], "filename": "router call.vtt"} in [item.get("call") for item in listed["items"]]
    # And another user cannot ask about Alice's call
    bob = {"Authorization": "Bearer local-bob"}
    refused = requests.post(f"{stack.api_url}/v1/transcripts/{job['job_id']}/conversations", headers=bob, timeout=10)
    assert refused.status_code == 404

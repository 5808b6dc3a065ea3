"""`python -m local.invoke`: one function, one event from events/, in its own environment, against moto."""

import json

import boto3
import pytest

from local.aws import create_table_from_template, start_moto
from local.events import SAMPLE_DIR
from local.invoke import main


@pytest.fixture
def moto_url(template):
    with start_moto(port=0) as moto:
        client = boto3.client("dynamodb", endpoint_url=moto.url, region_name="us-east-1")
        create_table_from_template(template, client)
        yield moto.url


def test_a_sample_event_runs_the_function_and_prints_its_response(moto_url, capsys):
    # When the create-conversation sample event is invoked against the running moto
    code = main(["ConversationsFunction", str(SAMPLE_DIR / "create-conversation.json"), "--moto-url", moto_url])

    # Then the function answered as API Gateway would relay it
    response = json.loads(capsys.readouterr().out)
    assert code == 0
    assert response["statusCode"] == 201
    assert json.loads(response["body"])["id"]


def test_a_failing_invocation_prints_lambdas_error_and_exits_1(moto_url, tmp_path, capsys):
    # Given an event the batch function cannot take (no Records)
    event = tmp_path / "bad.json"
    event.write_text("{}")
    # When invoked
    code = main(["BatchSummarizeFunction", str(event), "--moto-url", moto_url])
    # Then the error is Lambda's error payload
    assert code == 1
    assert json.loads(capsys.readouterr().out)["errorType"]


def test_the_orphan_sweep_runs_from_its_schedule_event(moto_url, capsys):
    # When the scheduled sweep's sample event is invoked against the running moto (an empty table)
    code = main(["OrphanSweepFunction", str(SAMPLE_DIR / "orphan-sweep-schedule.json"), "--moto-url", moto_url])

    # Then it swept the whole table in one run
    response = json.loads(capsys.readouterr().out)
    assert code == 0
    assert response["finished"] is True

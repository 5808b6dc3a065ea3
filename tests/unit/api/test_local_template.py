"""template.yaml read locally: short tags and intrinsic functions resolved to local names."""

import pytest

from local.aws import table_definition
from local.template import LOCAL_ACCOUNT_ID, Template, TemplateError

SMALL = """
Parameters:
  Stage: {Type: String, Default: dev}
  Pool: {Type: String, Default: ""}
Conditions:
  NewPool: !Equals [!Ref Pool, ""]
  NotNewPool: !Not [!Condition NewPool]
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties: {TableName: !Sub "app-${Stage}"}
  Queue:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Join ["-", [app, !Ref Stage, q]]}
"""


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(SMALL)
    return path


def test_intrinsics_resolve_to_local_values(small):
    template = Template(small)
    assert template.resolve({"Ref": "Table"}) == "app-dev"
    assert template.physical_name("Queue") == "app-dev-q"
    assert template.resolve({"Fn::GetAtt": ["Table", "Arn"]}) == (
        f"arn:aws:dynamodb:us-east-1:{LOCAL_ACCOUNT_ID}:table/app-dev"
    )
    assert template.resolve({"Fn::Sub": "${AWS::Region}/${Table.Arn}"}).startswith("us-east-1/arn:aws:dynamodb")
    assert template.resolve({"Fn::Sub": ["${X}-${Stage}", {"X": {"Ref": "Queue"}}]}) == "app-dev-q-dev"
    assert template.resolve({"Fn::If": ["NewPool", "created", "given"]}) == "created"
    assert template.condition("NotNewPool") is False
    assert template.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b"]}]}) == "b"


def test_parameters_can_be_overridden(small):
    template = Template(small, {"Stage": "qa", "Pool": "arn:pool"})
    assert template.physical_name("Table") == "app-qa"
    assert template.resolve({"Fn::If": ["NewPool", "created", "given"]}) == "given"
    with pytest.raises(TemplateError, match="unknown parameter"):
        Template(small, {"Nope": "x"})


def test_unknown_references_are_reported(small):
    with pytest.raises(TemplateError, match="Missing"):
        Template(small).resolve({"Ref": "Missing"})


def test_project_template_table_and_function_environment(template):
    # The real template: table keys, GSI and name, and the conversations function's environment
    definition = table_definition(template)
    assert definition["TableName"] == "genai-chatbot-dev"
    assert [key["AttributeName"] for key in definition["KeySchema"]] == ["pk", "sk"]
    assert definition["GlobalSecondaryIndexes"][0]["IndexName"] == "gsi1"
    environment = template.function_environment("ConversationsFunction")
    assert environment["TABLE_NAME"] == "genai-chatbot-dev"
    assert environment["CONVERSATION_TTL_DAYS"] == "30"
    assert environment["POWERTOOLS_SERVICE_NAME"] == "genai-chatbot"

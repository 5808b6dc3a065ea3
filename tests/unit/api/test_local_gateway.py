"""The local API gateway, against a small template with an echo function (no AWS, no moto)."""

import base64
import json
import os
import textwrap

import pytest
import requests

from local.gateway import read_routes, start_gateway
from local.template import Template

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: test}
Globals:
  Function:
    Timeout: 5
    Environment:
      Variables:
        GREETING: !Sub hello-${Stage}
Resources:
  EchoApi:
    Type: AWS::Serverless::Api
    Properties:
      StageName: !Ref Stage
      Cors:
        AllowOrigin: "'http://ui.local'"
        AllowHeaders: "'Authorization,Content-Type'"
        AllowMethods: "'GET,POST,OPTIONS'"
        MaxAge: "'300'"
      Auth:
        DefaultAuthorizer: Cognito
        Authorizers: {Cognito: {UserPoolArn: arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_x}}
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: main.handler
      Events:
        GetItem: {Type: Api, Properties: {RestApiId: !Ref EchoApi, Path: "/items/{item_id}", Method: get}}
        PostItem: {Type: Api, Properties: {RestApiId: !Ref EchoApi, Path: /items, Method: post}}
        Health: {Type: Api, Properties: {RestApiId: !Ref EchoApi, Path: /health, Method: get, Auth: {Authorizer: NONE}}}
        Crash: {Type: Api, Properties: {RestApiId: !Ref EchoApi, Path: /crash, Method: get}}
"""

HANDLER = """
import json
import os

def handler(event, context):
    if event["path"] == "/crash":
        raise RuntimeError("handler bug")
    body = {"event": event, "greeting": os.environ.get("GREETING"), "remaining": context.get_remaining_time_in_millis()}
    return {"statusCode": 200, "multiValueHeaders": {"X-Echo": ["a", "b"]}, "body": json.dumps(body)}
"""


@pytest.fixture
def echo_template(tmp_path):
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "main.py").write_text(textwrap.dedent(HANDLER))
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return path


@pytest.fixture
def gateway(echo_template):
    handle = start_gateway(echo_template, port=0, environment={"EXTRA": "1"})
    yield handle
    handle.stop()


AUTH = {"Authorization": "Bearer local-alice"}


def test_routes_come_from_the_template_events(echo_template):
    routes, cors = read_routes(Template(echo_template))
    assert {(route.method, route.path, route.authorized) for route in routes} == {
        ("GET", "/items/{item_id}", True),
        ("POST", "/items", True),
        ("GET", "/health", False),
        ("GET", "/crash", True),
    }
    assert cors["EchoApi"].allow_origin == "http://ui.local"


def test_a_request_becomes_a_rest_proxy_event(gateway):
    # When a client calls a route with a path parameter, repeated query values and a local token
    response = requests.get(f"{gateway.url}/items/a%20b?tag=x&tag=y&empty=", headers=AUTH, timeout=10)
    # Then the handler got API Gateway's REST proxy event
    assert response.status_code == 200
    assert response.headers["X-Echo"] == "a, b"
    echoed = response.json()
    event = echoed["event"]
    assert event["resource"] == "/items/{item_id}"
    assert event["path"] == "/items/a%20b"
    assert event["pathParameters"] == {"item_id": "a b"}
    assert event["httpMethod"] == "GET"
    assert event["multiValueQueryStringParameters"] == {"tag": ["x", "y"], "empty": [""]}
    assert event["queryStringParameters"]["tag"] == "y"
    assert event["isBase64Encoded"] is False
    assert event["body"] is None
    assert event["requestContext"]["authorizer"]["claims"]["sub"] == "alice"
    assert event["requestContext"]["stage"] == "test"
    assert event["requestContext"]["resourcePath"] == "/items/{item_id}"
    assert "Bearer local-alice" in event["multiValueHeaders"]["Authorization"]
    # And the function's template environment (resolved) plus the overrides
    assert echoed["greeting"] == "hello-test"
    assert 0 < echoed["remaining"] <= 5000


def test_bodies_are_text_or_base64(gateway):
    text = requests.post(f"{gateway.url}/items", data='{"name": "é"}'.encode(), headers=AUTH, timeout=10).json()
    assert (text["event"]["body"], text["event"]["isBase64Encoded"]) == ('{"name": "é"}', False)
    binary = requests.post(f"{gateway.url}/items", data=b"\xff\x00\xfe", headers=AUTH, timeout=10).json()
    assert binary["event"]["isBase64Encoded"] is True
    assert base64.b64decode(binary["event"]["body"]) == b"\xff\x00\xfe"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer real-jwt"}, {"Authorization": "local-alice"}])
def test_missing_or_foreign_tokens_are_401(gateway, headers):
    response = requests.get(f"{gateway.url}/items/1", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}
    assert response.headers["Access-Control-Allow-Origin"] == "http://ui.local"


def test_routes_without_authorizer_need_no_token(gateway):
    response = requests.get(f"{gateway.url}/health", timeout=10)
    assert response.status_code == 200
    assert "authorizer" not in response.json()["event"]["requestContext"]


def test_unknown_path_is_404_json(gateway):
    response = requests.get(f"{gateway.url}/nothing/here", headers=AUTH, timeout=10)
    assert response.status_code == 404
    assert "message" in response.json()


def test_wrong_method_is_405_json(gateway):
    response = requests.delete(f"{gateway.url}/items/1", headers=AUTH, timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert "DELETE" in response.json()["message"]


def test_cors_preflight_needs_no_token(gateway):
    response = requests.options(
        f"{gateway.url}/items/1",
        headers={"Origin": "http://ui.local", "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://ui.local"
    assert response.headers["Access-Control-Allow-Methods"] == "GET,POST,OPTIONS"
    assert response.headers["Access-Control-Max-Age"] == "300"


def test_a_crashing_handler_is_502_json(gateway):
    response = requests.get(f"{gateway.url}/crash", headers=AUTH, timeout=10)
    assert response.status_code == 502
    assert json.loads(response.text) == {"message": "Internal server error"}


def test_the_gateway_leaves_this_process_environment_alone(echo_template, monkeypatch):
    # Given no GREETING in this process
    monkeypatch.delenv("GREETING", raising=False)
    handle = start_gateway(echo_template, port=0)
    try:
        # When a request runs the function
        echoed = requests.get(f"{handle.url}/health", timeout=10).json()
    finally:
        handle.stop()
    # Then the function saw its template variable, and this process never had it
    assert echoed["greeting"] == "hello-test"
    assert "GREETING" not in os.environ

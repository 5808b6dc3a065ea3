"""openapi.json is generated from the handlers' resolvers and must be committed up to date."""

import json

from local.openapi import OPENAPI_PATH, build_openapi, render

ROUTES = {
    "/v1/conversations": {"get", "post"},
    "/v1/conversations/{conversation_id}": {"get", "delete"},
    "/v1/conversations/{conversation_id}/messages": {"get", "post", "delete"},
    "/v1/conversations/{conversation_id}/messages/retry": {"post"},
    "/v1/conversations/{conversation_id}/summary": {"post"},
}


def test_committed_document_is_up_to_date():
    # Given the document generated from the code now
    document = build_openapi()
    # Then the committed file is identical (run `make openapi` / `python -m local.openapi` otherwise)
    assert OPENAPI_PATH.read_text(encoding="utf-8") == render(document)


def test_document_covers_every_conversation_route_with_bearer_auth():
    document = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    for path, methods in ROUTES.items():
        assert methods <= set(document["paths"][path]), path
    assert document["security"] == [{"CognitoAuthorizer": []}]
    send = document["paths"]["/v1/conversations/{conversation_id}/messages"]["post"]
    assert any(parameter["name"].lower() == "idempotency-key" for parameter in send["parameters"])
    assert "201" in send["responses"]

"""One user can neither read, change, summarize nor delete another's conversation or transcript job, through
any route: the routes come from template.yaml, so a new route is covered without editing this test."""

from __future__ import annotations

import re

import pytest
from fault_client import new_caller

from local.gateway import read_routes
from local.template import DEFAULT_TEMPLATE_PATH, Template

pytestmark = pytest.mark.integration

ROUTES, _ = read_routes(Template(DEFAULT_TEMPLATE_PATH))
ROUTES_WITH_AN_ID = [route for route in ROUTES if "{" in route.path]
# A valid body where a route needs one, so the answer is about ownership, not validation.
# A route added later whose body is not here gets 422 instead of 404, and this test says which route to add.
BODIES = {
    ("POST", "/messages"): {"content": "let me in"},
    ("POST", "/summary"): {},
    ("PATCH", "{conversation_id}"): {"title": "mine now"},
}


def route_id(route) -> str:
    return f"{route.method} {route.path}"


def body_for(method: str, path: str) -> dict | None:
    return next((body for (verb, suffix), body in BODIES.items() if verb == method and path.endswith(suffix)), None)


@pytest.fixture(scope="module")
def owned(faulty_stack):
    """Alice's conversation (with an answered message) and transcript job; Mallory is another user."""
    alice, mallory = new_caller(faulty_stack.api, "alice"), new_caller(faulty_stack.api, "mallory")
    conversation_id = alice.start_conversation()
    sent = alice.send(conversation_id, "My account number is 12345.", key="alice-1")
    assert sent == 201
    upload = alice.request("POST", "/v1/transcripts", json={"filename": "alice-call.txt"})
    assert upload.status_code == 201
    ids = {"conversation_id": conversation_id, "job_id": upload.json()["job"]["job_id"]}
    return alice, mallory, ids


def test_every_route_with_an_id_is_covered():
    # Given the template's routes / Then both resource kinds have routes here (the list is not empty by mistake)
    params = {name for route in ROUTES_WITH_AN_ID for name in re.findall(r"{(\w+)}", route.path)}
    assert params == {"conversation_id", "job_id"}


@pytest.mark.parametrize("route", ROUTES_WITH_AN_ID, ids=route_id)
def test_another_user_gets_404_on_every_route_and_changes_nothing(stack, owned, route):
    alice, mallory, ids = owned
    before = alice.messages(ids["conversation_id"])

    # When Mallory calls the route with Alice's ids
    path = re.sub(r"{(\w+)}", lambda match: ids[match.group(1)], route.path)
    response = mallory.request(route.method, path, json=body_for(route.method, route.path))

    # Then 404 with a JSON message, and Alice's conversation is untouched
    assert response.status_code == 404, f"{route_id(route)} -> {response.status_code} {response.text}"
    assert response.json()["message"]
    assert alice.messages(ids["conversation_id"]) == before
    assert alice.request("GET", f"/v1/transcripts/{ids['job_id']}").status_code == 200


@pytest.mark.parametrize("route", [r for r in ROUTES if "{" not in r.path and r.method == "GET"], ids=route_id)
def test_another_users_lists_never_show_the_owners_items(stack, owned, route):
    _alice, mallory, ids = owned

    # When Mallory lists conversations or jobs
    response = mallory.request("GET", route.path)

    # Then none of Alice's ids appear
    assert response.status_code == 200
    assert not set(ids.values()) & {str(value) for value in _ids_in(response.json())}


def _ids_in(document) -> list:
    items = document.get("items", [])
    return [item.get("id") or item.get("job_id") for item in items]

"""The deployed streaming runtime (chatbot.response_stream.serve) against a fake Lambda Runtime API over HTTP."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from chatbot.response_stream import DELIMITER, serve


class FakeRuntimeApi:
    """Hands out the queued events one by one (then holds the loop), and records what the runtime posts."""

    def __init__(self, events: list[dict]):
        self.events = list(events)
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.done = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if not api.events:
                    api.done.set()
                    threading.Event().wait(30)  # the loop's next invocation never comes
                    return
                body = json.dumps(api.events.pop(0)).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", f"request-{len(api.posts)}")
                self.send_header("Lambda-Runtime-Deadline-Ms", "9999999999999")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                if self.headers.get("Transfer-Encoding") == "chunked":
                    body = b""
                    while size := int(self.rfile.readline().strip(), 16):
                        body += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.posts.append((self.path, dict(self.headers), body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def runtime_api():
    apis = []

    def start(events):
        api = FakeRuntimeApi(events)
        apis.append(api)
        return api

    yield start
    for api in apis:
        api.server.shutdown()


def _run(api, handler):
    threading.Thread(target=serve, args=(handler, api.address), daemon=True).start()
    assert api.done.wait(10)


def test_a_streamed_body_is_posted_as_metadata_delimiter_and_pieces(runtime_api):
    seen_contexts = []

    def handler(event, context):
        seen_contexts.append(context)
        pieces = (f"event: delta\ndata: {json.dumps({'text': word})}\n\n" for word in event["words"])
        return {"statusCode": 200, "multiValueHeaders": {"Content-Type": ["text/event-stream"]}, "body": pieces}

    api = runtime_api([{"words": ["Hi", " there"]}])
    # When the runtime serves an invocation whose handler streams
    _run(api, handler)
    # Then it posts one streamed response: API Gateway's metadata, 8 NUL bytes, then the body's pieces
    path, headers, body = api.posts[0]
    assert path == "/2018-06-01/runtime/invocation/request-0/response"
    assert headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert headers["Content-Type"] == "application/vnd.awslambda.http-integration-response"
    metadata, payload = body.split(DELIMITER, 1)
    assert json.loads(metadata)["statusCode"] == 200
    assert payload == b'event: delta\ndata: {"text": "Hi"}\n\nevent: delta\ndata: {"text": " there"}\n\n'
    # And the handler got a Lambda context with the request id and a time budget
    assert seen_contexts[0].aws_request_id == "request-0" and seen_contexts[0].get_remaining_time_in_millis() > 0


def test_a_handler_that_raises_is_reported_as_the_invocations_error(runtime_api):
    def handler(event, context):
        raise RuntimeError("broken")

    api = runtime_api([{}, {}])
    _run(api, handler)
    # Then each invocation is answered on /error with Lambda's error payload, and the loop goes on
    assert [path for path, _, _ in api.posts] == [
        "/2018-06-01/runtime/invocation/request-0/error",
        "/2018-06-01/runtime/invocation/request-1/error",
    ]
    assert json.loads(api.posts[0][2])["errorType"] == "RuntimeError"

"""The Hugging Face inference container (the summarizer's image), run on loopback with its own serving code.

    .venv-hf/bin/python -m local.containers.huggingface --port P --model-dir DIR

with the component's container environment (HF_TASK, HF_MODEL_ID, ...). `.venv-hf` holds the image's
versions (requirements/hf-toolkit.txt). The image runs Multi Model Server: a Java frontend takes the HTTP
request and hands it to a Python worker, which calls the toolkit's handler. The Python side runs here as it
is, from the installed packages:

- `sagemaker_huggingface_inference_toolkit.handler_service.HuggingFaceHandlerService`: the pipeline from
  HF_TASK (or config.json's architecture), JSON/CSV decoding and encoding, and any failure turned into
  `PredictionException(message, 400)` (handler_service.py:278-279), which is how an over-long input
  surfaces: never truncated;
- `mms.service.Service.predict`, called as the worker calls it (mms/model_service_worker.py:141), with the
  context (`mms.context.Context`), request processors and metrics it builds, and the reply it encodes.

The frontend's part is mirrored from MMS 1.1.11's jar (mms/frontend/model-server.jar, read with javap):

- request: every HTTP header as received, and the payload as the parameter "body" with the request's
  MIME type (InferenceRequestHandler.java:195-198, 216-217). The toolkit's config sets
  decode_input_request=false (sagemaker_inference/etc/default-mms.properties), so the worker hands the
  handler bytes (mms/protocol/otf_message_handler.py:303-308);
- success: the handler's body with the content type and status it set (BatchAggregator.java:85-90,
  Job.java:82-96);
- failure: `HttpResponseStatus.valueOf(code)` with the body `{"code": N, "type": "InternalServerException",
  "message": "..."}` (BatchAggregator.java:98, Job.java:121-122, NettyUtils.java:130-133), pretty-printed
  by Gson with its default HTML-safe escapes and a closing newline (JsonUtils.java:22-24,
  NettyUtils.java:111-126). Checked byte for byte against the real frontend (Java 17, same packages).

As in the image on an instance with one GPU (MMS starts one worker per GPU, ConfigManager.java:278-294),
there is one worker with batch size 1: requests are served one at a time.

Local differences: HF_MODEL_ID is not downloaded from the Hub at start-up (no Hub here): the model
directory stands for that download. A model that fails to load stops the process, where MMS logs the error
and lets each request retry the load and answer 400 (mms/model_loader.py:141-154,
sagemaker_huggingface_inference_toolkit/handler_service.py:249-255). Form-encoded bodies are not split into
fields as the frontend does, but the toolkit rejects their content type either way. MMS's request queue
limit and response timeout are not enforced.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path

from local.containers.server import ContainerResponse, InvocationHandler, container_arguments, serve

logger = logging.getLogger(__name__)

# The model the toolkit registers with MMS when it serves /opt/ml/model (sagemaker_inference/model_server.py:47, 98).
MODEL_NAME = "model"
_GSON_HTML_SAFE = str.maketrans({char: f"\\u{ord(char):04x}" for char in "<>&='\u2028\u2029"})


def load(model_dir: str) -> InvocationHandler:
    """Initialise the toolkit's handler on model_dir and return the invocation that drives it."""
    # MMS's worker runs torch on one thread unless the environment says otherwise
    # (mms/model_service_worker.py:42-43); it must be set before the toolkit imports torch.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from mms.service import Service
    from sagemaker_huggingface_inference_toolkit.handler_service import HuggingFaceHandlerService

    model_id = os.environ.get("HF_MODEL_ID")
    if model_id:
        # The image downloads HF_MODEL_ID at start-up and serves that copy
        # (sagemaker_huggingface_inference_toolkit/mms_model_server.py:67-82).
        if not any(Path(model_dir).glob("*")):
            raise ValueError(f"HF_MODEL_ID={model_id}: no Hub here, so {model_dir} must hold its files")
        logger.info("HF_MODEL_ID=%s: serving its copy in %s", model_id, model_dir)
    # What MMS's class loader does with the toolkit's module (mms/model_loader.py:134-145), gpu None and
    # batch size 1 as the frontend sends them on CPU (otf_message_handler.py:195-200), but a failed load raises.
    handler = HuggingFaceHandlerService()
    service = Service(MODEL_NAME, str(Path(model_dir).resolve()), None, handler.handle, None, 1)
    handler.initialize(service.context)
    worker = threading.Lock()  # one worker: one request at a time

    def invoke(body: bytes, headers: Mapping[str, str]) -> ContainerResponse:
        content_type = next((value for name, value in headers.items() if name.lower() == "content-type"), "")
        request = {
            "requestId": str(uuid.uuid4()).encode(),
            "headers": [{"name": name.encode(), "value": value.encode()} for name, value in headers.items()],
            "parameters": [{"name": "body", "contentType": content_type.split(";")[0].strip(), "value": body}],
        }
        with worker:
            reply = service.predict([request])
        return _frontend_response(bytes(reply))

    return invoke


def _frontend_response(reply: bytes) -> ContainerResponse:
    """The HTTP answer MMS's frontend makes of the worker's reply to a one-request batch, whose layout is
    otf_message_handler.py:58-134: code, message, then per request its id, content type, status, reason
    phrase, headers and body."""
    offset = 0

    def integer() -> int:
        nonlocal offset
        (value,) = struct.unpack_from("!i", reply, offset)
        offset += 4
        return value

    def blob() -> bytes:
        nonlocal offset
        length = integer()
        offset += length
        return reply[offset - length : offset]

    code, message = integer(), blob().decode()
    if code != 200:
        return ContainerResponse(code, "application/json", mms_error_body(code, message))
    blob()  # request id
    content_type = blob().decode()
    status = integer()
    blob()  # reason phrase
    for _ in range(2 * integer()):  # response headers' names and values: the toolkit sets only the content type
        blob()
    return ContainerResponse(status, content_type, blob())


def mms_error_body(code: int, message: str) -> bytes:
    """MMS's error body, byte for byte as its Gson writes it (see the module docstring)."""
    text = json.dumps(
        {"code": code, "type": "InternalServerException", "message": message}, indent=2, ensure_ascii=False
    )
    return (text.translate(_GSON_HTML_SAFE) + "\n").encode()


def main() -> None:
    parser = container_arguments("The Hugging Face inference toolkit's handler behind SageMaker's container contract")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(lambda: load(options.model_dir), options.port, options.host)


if __name__ == "__main__":
    main()

"""Local model containers: each inference component copy runs as its own process, as on SageMaker.

A container module runs inside the virtualenv that carries the serving stack of its production image
(`.venv-vllm` for the LMI container's vLLM, `.venv-hf` for the Hugging Face inference toolkit) and speaks
SageMaker's container contract over HTTP on loopback: `GET /ping`, `POST /invocations`. The local endpoint
(`local.backends.container`) starts one per copy and relays invocations to it. Modules here import only the
standard library and what their own virtualenv holds: never the main venv's packages.
"""

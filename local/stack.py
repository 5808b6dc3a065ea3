"""The whole product on one machine: moto (DynamoDB, S3, SQS), the SageMaker-compatible endpoint, the API
gateway calling the real handlers, the SQS pollers (S3 -> SQS -> batch-summarize, summary requests -> summarize
conversation), the DynamoDB stream poller (table changes -> conversation clean-up), and the Streamlit UI.

`LocalStack` starts them in dependency order and stops them in reverse; `python -m local up` runs it in
the foreground. Tests use it with port 0 everywhere.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from local.aws import create_table_from_template, start_moto
from local.template import DEFAULT_TEMPLATE_PATH, Template
from provisioning.config import EndpointConfig, load_config

if TYPE_CHECKING:  # the endpoint's modules load model libraries: imported when the stack starts
    from local.endpoint.runtime import BackendFactory


@dataclass(frozen=True)
class Ports:
    moto: int = 5000
    endpoint: int = 8080
    api: int = 3000
    ui: int = 8501

    @classmethod
    def ephemeral(cls) -> Ports:
        return cls(moto=0, endpoint=0, api=0, ui=0)


class PortInUseError(RuntimeError):
    """A fixed port of the local stack is taken by another program."""


def _ensure_free(host: str, ports: Ports) -> None:
    # moto's server thread only logs a failed bind, so check first and say which flag moves it.
    for name, port in vars(ports).items():
        if port == 0:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                flag = f"--{name.replace('_', '-')}-port"
                raise PortInUseError(f"{host}:{port} ({name}) is in use: stop what uses it, or pass {flag}") from None


def endpoint_parameters(config: EndpointConfig) -> dict[str, str]:
    """template.yaml's endpoint parameters for the local endpoint that `config` describes."""
    return {"EndpointName": config.endpoint.name, "ChatComponentName": "chat", "SummarizerComponentName": "summarizer"}


@dataclass
class LocalStack:
    config: EndpointConfig = field(default_factory=load_config)
    template_path: Path = DEFAULT_TEMPLATE_PATH
    host: str = "127.0.0.1"
    ports: Ports = field(default_factory=Ports)
    with_ui: bool = True
    with_poller: bool = True
    urls: dict[str, str] = field(default_factory=dict)
    bucket_name: str = ""
    #: Template parameter values on top of the local endpoint's (e.g. a load test's per-user quotas).
    parameters: dict[str, str] = field(default_factory=dict)
    #: How the endpoint builds each component's model (default local.backends.create_backend; tests wrap it).
    backend_factory: BackendFactory | None = None
    #: The local platform's variables (boto3 endpoint overrides for moto and the endpoint, dummy credentials):
    #: every function environment gets them on top of its own template environment.
    environment: dict[str, str] = field(default_factory=dict)
    _running: ExitStack = field(default_factory=ExitStack)

    def start(self, on_step: Callable[[str], None] = lambda _: None) -> LocalStack:
        from local.endpoint.server import start_endpoint
        from local.gateway import start_gateway
        from local.s3_pipeline import create_pipeline_resources, sqs_triggered_functions, start_poller
        from local.streams import start_stream_poller, stream_triggered_functions

        _ensure_free(self.host, self.ports)
        try:
            template = Template(self.template_path, self.template_parameters())
            on_step("moto (DynamoDB, S3, SQS)")
            moto = self._running.enter_context(start_moto(self.host, self.ports.moto))
            self.urls["moto"] = moto.url
            on_step("local SageMaker endpoint: loading components")
            endpoint = self._running.enter_context(
                start_endpoint(self.config, self.host, self.ports.endpoint, self.backend_factory)
            )
            self.urls["endpoint"] = endpoint.url
            self.environment = {
                **moto.environment(),
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint.url,
                "AWS_ENDPOINT_URL_SAGEMAKER": endpoint.url,
            }
            # The table and bucket are created through the same variables the handlers' boto3 clients read.
            os.environ.update(self.environment)
            on_step("table, bucket and queues from template.yaml")
            session = boto3.session.Session()
            create_table_from_template(template, session.client("dynamodb"))
            self.bucket_name = create_pipeline_resources(template, session).bucket
            on_step("API gateway")
            gateway = self._running.enter_context(
                start_gateway(
                    self.template_path,
                    self.host,
                    self.ports.api,
                    environment=self.environment,
                    parameters=self.template_parameters(),
                )
            )
            self.urls["api"] = gateway.url
            if self.with_poller:
                for function_id in sqs_triggered_functions(template):
                    on_step(f"SQS poller for {function_id}")
                    self._running.enter_context(
                        start_poller(template, session, function_id=function_id, environment=self.environment)
                    )
                for function_id in stream_triggered_functions(template):
                    on_step(f"DynamoDB stream poller for {function_id}")
                    self._running.enter_context(
                        start_stream_poller(template, session, function_id, environment=self.environment)
                    )
            if self.with_ui:
                from ui.server import start_ui

                on_step("Streamlit UI")
                ui = self._running.enter_context(start_ui(gateway.url, self.host, self.ports.ui))
                self.urls["ui"] = ui.url
        except BaseException:
            self.stop()
            raise
        return self

    def template_parameters(self) -> dict[str, str]:
        """The template's parameters: the local endpoint's names (deployed, SSM holds them) and `parameters`."""
        return {**endpoint_parameters(self.config), **self.parameters}

    def stop(self) -> None:
        self._running.close()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

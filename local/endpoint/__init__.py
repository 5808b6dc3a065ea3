"""A local SageMaker-compatible real-time endpoint hosting several inference components.

`start_endpoint(config)` serves the components of `provisioning/endpoint.yaml` over HTTP so that an
unmodified boto3 `sagemaker-runtime` client with `endpoint_url` can invoke them.
"""

from local.endpoint.placement import PlacementError
from local.endpoint.server import RunningEndpoint, start_endpoint

__all__ = ["PlacementError", "RunningEndpoint", "start_endpoint"]

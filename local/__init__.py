"""The local stack: a SageMaker-compatible endpoint, moto, a local API gateway and an S3 poller."""

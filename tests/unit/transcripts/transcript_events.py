"""S3 notifications and SQS events as AWS builds them, and small S3 readers, for the transcript tests."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import boto3
from chatbot.transcript_jobs.events import ObjectCreated


def notification_body(*objects: ObjectCreated) -> str:
    """An S3 event notification as SQS delivers it (keys form-encoded like S3 does)."""
    records = [
        {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventName": "ObjectCreated:Put",
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": {"name": obj.bucket, "arn": f"arn:aws:s3:::{obj.bucket}"},
                "object": {
                    "key": quote_plus(obj.key, safe="/"),
                    "size": obj.size,
                    "eTag": obj.etag,
                    **({"versionId": obj.version_id} if obj.version_id else {}),
                    "sequencer": obj.sequencer,
                },
            },
        }
        for obj in objects
    ]
    return json.dumps({"Records": records})


def sqs_event(*bodies: str) -> dict:
    return {
        "Records": [
            {
                "messageId": f"message-{index}",
                "receiptHandle": f"handle-{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:genai-chatbot-dev-transcripts",
                "awsRegion": "us-east-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def read_json(bucket: str, key: str) -> dict:
    return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def exists(bucket: str, key: str) -> bool:
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=key)
    return any(item["Key"] == key for item in listing.get("Contents", []))

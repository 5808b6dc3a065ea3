"""S3 event notifications as SQS delivers them: the objects created, or nothing for S3's test event."""

import json
from dataclasses import dataclass
from urllib.parse import unquote_plus


class MalformedMessageError(ValueError):
    """The message is not an S3 event notification; it goes back to the queue and, in the end, the DLQ."""


@dataclass(frozen=True, slots=True)
class ObjectCreated:
    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None

    @property
    def identity(self) -> str:
        """What makes one upload distinct: the version where versioning is on, else the content's ETag."""
        return self.version_id or self.etag or ""


def parse_notification(body: str) -> list[ObjectCreated]:
    """Objects created in an S3 notification body ([] for s3:TestEvent and other event types)."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessageError(f"message body is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise MalformedMessageError("message body is not a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return []
    records = message.get("Records")
    if not isinstance(records, list):
        raise MalformedMessageError("message body has no S3 event Records")
    created = []
    for record in records:
        if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
            raise MalformedMessageError("a record is not an S3 event")
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        try:
            s3 = record["s3"]
            bucket, obj = s3["bucket"]["name"], s3["object"]
            # Keys arrive form-encoded: "+" for a space, %XX for UTF-8 bytes.
            key = unquote_plus(obj["key"])
        except (KeyError, TypeError) as exc:
            raise MalformedMessageError(f"S3 record without bucket or key: {exc!r}") from None
        created.append(
            ObjectCreated(
                bucket=str(bucket),
                key=key,
                size=obj.get("size") if isinstance(obj.get("size"), int) else None,
                etag=_text(obj.get("eTag")),
                version_id=_text(obj.get("versionId")),
                sequencer=_text(obj.get("sequencer")),
            )
        )
    return created


def _text(value: object) -> str | None:
    return str(value).strip('"') if value not in (None, "", "null") else None

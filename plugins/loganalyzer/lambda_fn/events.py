"""Reading the S3 ObjectCreated event shape (pure).

Keys in S3 events are URL-encoded the way HTML forms are (a space is '+'), so they are decoded
with unquote_plus; a key used as-is would name an object that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


class EventError(ValueError):
    """The event is not an S3 event this function can act on; the message says which field."""


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str


def is_test_event(event: Mapping[str, Any]) -> bool:
    """S3 sends one `s3:TestEvent` when a notification is configured: nothing to do."""
    return event.get("Event") == "s3:TestEvent"


def created_objects(event: Mapping[str, Any]) -> list[ObjectRef]:
    """The objects an S3 event says were created, in record order, without repeats."""
    if is_test_event(event):
        return []
    records = event.get("Records")
    if not isinstance(records, list):
        raise EventError("the event has no 'Records' list: not an S3 event notification")
    out: list[ObjectRef] = []
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise EventError(f"Records[{i}] is not an object")
        name = str(record.get("eventName", ""))
        if record.get("eventSource") != "aws:s3":
            raise EventError(f"Records[{i}].eventSource is {record.get('eventSource')!r}, not 'aws:s3'")
        if not name.startswith("ObjectCreated"):
            continue  # deletions of a re-export's stale parts are not for us
        try:
            bucket = record["s3"]["bucket"]["name"]
            raw_key = record["s3"]["object"]["key"]
        except (KeyError, TypeError):
            raise EventError(f"Records[{i}] lacks s3.bucket.name or s3.object.key") from None
        if not isinstance(bucket, str) or not isinstance(raw_key, str) or not bucket or not raw_key:
            raise EventError(f"Records[{i}] has an empty or non-string bucket name or object key")
        ref = ObjectRef(bucket, unquote_plus(raw_key))
        if ref not in out:
            out.append(ref)
    return out

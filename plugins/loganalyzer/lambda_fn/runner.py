"""Lambda's SQS event source, locally: long-poll the queue the bucket notifies, invoke the handler.

As Lambda does: a message is deleted only after the handler returned; on failure it is left,
comes back after the queue's visibility timeout, and after the redrive policy's
maxReceiveCount SQS moves it to the dead-letter queue. No retry logic of our own.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loganalyzer.lambda_fn.events import is_test_event

log = logging.getLogger(__name__)

Invoke = Callable[[Mapping[str, Any]], Any]


@dataclass
class RunnerStats:
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0


class QueueNotFoundError(RuntimeError):
    """The queue does not exist; the message says how to create it."""


def queue_url(sqs: Any, name: str) -> str:
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except Exception as exc:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
            raise QueueNotFoundError(
                f"SQS queue {name!r} (LAMBDA_QUEUE) does not exist: run `loganalyzer aws bootstrap`"
            ) from exc
        raise


def poll_once(sqs: Any, url: str, invoke: Invoke, stats: RunnerStats, wait_seconds: int) -> int:
    """One long poll; returns how many messages it received."""
    resp = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=wait_seconds,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    )
    messages = resp.get("Messages", [])
    for m in messages:
        receives = m.get("Attributes", {}).get("ApproximateReceiveCount", "?")
        try:
            event = json.loads(m["Body"])
            if not isinstance(event, dict):
                raise ValueError("the message body is not a JSON object")
            if is_test_event(event):
                stats.skipped += 1
            else:
                result = invoke(event)
                stats.succeeded += 1
                log.info("process-daily-logs: %s", result)
        except Exception as exc:
            stats.failed += 1
            log.error(
                "process-daily-logs failed on message %s (receive %s): %s; left on the queue for a "
                "retry after its visibility timeout, and for the dead-letter queue after its last",
                m.get("MessageId"),
                receives,
                exc,
            )
            continue
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return len(messages)


def run(
    sqs: Any,
    url: str,
    invoke: Invoke,
    *,
    stop: threading.Event,
    wait_seconds: int = 20,
    until_idle: bool = False,
) -> RunnerStats:
    """Poll until `stop` is set (or, with until_idle, until a poll comes back empty)."""
    stats = RunnerStats()
    while not stop.is_set():
        got = poll_once(sqs, url, invoke, stats, wait_seconds)
        if until_idle and got == 0:
            break
    return stats

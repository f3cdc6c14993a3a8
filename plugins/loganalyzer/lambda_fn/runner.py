"""Lambda's SQS event source, locally: long-poll the queue the bucket notifies, invoke the handler.

As Lambda does: a message is deleted only after the handler returned; on failure it is left,
comes back after the queue's visibility timeout, and after the redrive policy's
maxReceiveCount SQS moves it to the dead-letter queue. No retry logic of our own.

Each handler call is timed as Lambda's meter would time it and handed to `record` (the `up`
runner writes it to `lambda_invocations`, loganalyzer.lambda_fn.usage), failed calls included:
Lambda bills those too.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loganalyzer.lambda_fn.events import is_test_event

log = logging.getLogger(__name__)

Invoke = Callable[[Mapping[str, Any]], Any]
#: (event, when the call started, its wall time in seconds, whether it succeeded)
Record = Callable[[Mapping[str, Any], datetime, float, bool], None]


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


def poll_once(
    sqs: Any, url: str, invoke: Invoke, stats: RunnerStats, wait_seconds: int, record: Record | None = None
) -> int:
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
                result = _timed(invoke, event, record)
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


def _timed(invoke: Invoke, event: Mapping[str, Any], record: Record | None) -> Any:
    """Call the handler; hand its start, wall time and outcome to `record` (errors re-raised)."""
    started = datetime.now(UTC)
    t = time.perf_counter()
    ok = False
    try:
        result = invoke(event)
        ok = True
        return result
    finally:
        if record is not None:
            try:
                record(event, started, time.perf_counter() - t, ok)
            except Exception as exc:  # the event was handled: losing its cost record must not redo it
                log.error("could not record the invocation's duration (its cost is missing): %s", exc)


#: waits between polls while the queue's endpoint cannot be reached: doubling from the first
#: to the last, so a short outage costs seconds and a long one a request every half minute
OUTAGE_BACKOFF = (1.0, 30.0)


def endpoint_unavailable(exc: BaseException) -> bool:
    """True for what passes by itself: the endpoint unreachable, a timeout, a 5xx or throttling.

    A missing queue or refused credentials are not: retrying them would hide a wrong setting."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return status >= 500 or "Throttl" in code or code == "RequestThrottled"
    return False


def run(
    sqs: Any,
    url: str,
    invoke: Invoke,
    *,
    stop: threading.Event,
    wait_seconds: int = 20,
    until_idle: bool = False,
    record: Record | None = None,
    backoff: tuple[float, float] = OUTAGE_BACKOFF,
) -> RunnerStats:
    """Poll until `stop` is set (or, with until_idle, until a poll comes back empty).

    While the queue cannot be reached the runner waits and polls again with a doubling delay,
    saying so once per attempt; the messages wait on the queue (SQS keeps them) and are
    processed when it answers again. Under `loganalyzer up` an exit would only be a restart
    loop, and in AWS the event source mapping does the same waiting."""
    stats = RunnerStats()
    delay = backoff[0]
    while not stop.is_set():
        try:
            got = poll_once(sqs, url, invoke, stats, wait_seconds, record)
        except Exception as exc:
            if not endpoint_unavailable(exc):
                raise
            log.warning("SQS queue unavailable (%s); retrying in %.0f s", exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, backoff[1])
            continue
        if delay != backoff[0]:
            log.info("SQS queue reachable again; polling %s", url)
            delay = backoff[0]
        if until_idle and got == 0:
            break
    return stats

"""The lambda runner's waiting while SQS cannot be reached: which errors pass by themselves, and
that the poll loop waits with a doubling delay instead of dying (a scripted queue: pure logic)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from loganalyzer.lambda_fn.runner import RunnerStats, endpoint_unavailable, run


def client_error(status: int, code: str) -> ClientError:
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "ReceiveMessage")


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (client_error(503, "ServiceUnavailable"), True),
        (client_error(500, "InternalError"), True),
        (client_error(400, "ThrottlingException"), True),
        (client_error(400, "AWS.SimpleQueueService.NonExistentQueue"), False),
        (client_error(403, "InvalidClientTokenId"), False),
        (NoCredentialsError(), False),
        (ValueError("a bug"), False),
    ],
)
def test_which_errors_are_waited_out(exc: Exception, transient: bool) -> None:
    assert endpoint_unavailable(exc) is transient


class ScriptedQueue:
    """receive_message answers from a script: an exception to raise, or a list of messages."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls = 0

    def receive_message(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        step = self.script.pop(0) if self.script else []
        if isinstance(step, Exception):
            raise step
        return {"Messages": step}

    def delete_message(self, **_: Any) -> None:
        pass


def test_the_loop_waits_out_an_outage_with_doubling_delays_then_goes_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    message = {"Body": '{"Records": []}', "ReceiptHandle": "r", "MessageId": "m"}
    queue = ScriptedQueue(down, down, down, down, [message], [])
    waits: list[float] = []
    stop = threading.Event()

    def wait(delay: float) -> bool:
        waits.append(delay)
        return False

    monkeypatch.setattr(stop, "wait", wait)
    invoked: list[Any] = []
    with caplog.at_level(logging.INFO, logger="loganalyzer.lambda_fn.runner"):
        stats = run(
            queue, "q", invoked.append, stop=stop, wait_seconds=0, until_idle=True, backoff=(1.0, 4.0)
        )
    assert waits == [1.0, 2.0, 4.0, 4.0]  # doubling, capped
    assert invoked == [{"Records": []}] and stats == RunnerStats(succeeded=1)
    said = [r.getMessage() for r in caplog.records]
    assert sum("SQS queue unavailable" in m and "retrying in" in m for m in said) == 4
    assert any("reachable again" in m for m in said)


def test_a_wrong_setting_still_stops_the_runner() -> None:
    queue = ScriptedQueue(client_error(400, "AWS.SimpleQueueService.NonExistentQueue"))
    with pytest.raises(ClientError):
        run(queue, "q", lambda e: None, stop=threading.Event(), wait_seconds=0, until_idle=True)

"""The one side effect towards Slack: an HTTP POST of a payload to an incoming webhook.

A few quick in-call retries (exponential backoff with jitter, and Slack's Retry-After when it
is short) absorb a blip without waiting for the next poll; longer outages are retried from the
delivery table (store.py) so that they survive a restart. Errors never contain the webhook URL:
it is a secret.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loganalyzer.alerts.retry import backoff_seconds, is_permanent, parse_retry_after


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    status: int | None = None
    error: str | None = None
    #: seconds the receiver asked us to wait (429 Retry-After)
    retry_after: float | None = None
    permanent: bool = False
    #: HTTP requests made for this result
    requests: int = 1


Sender = Callable[[str, dict[str, Any]], DeliveryResult]


def post_once(url: str, payload: dict[str, Any], timeout: float) -> DeliveryResult:
    """One POST; any outcome becomes a DeliveryResult, never an exception."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read(4096)
            return DeliveryResult(ok=True, status=resp.status)
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", errors="replace").strip()
        return DeliveryResult(
            ok=False,
            status=exc.code,
            error=f"HTTP {exc.code}" + (f": {detail}" if detail else ""),
            retry_after=parse_retry_after(exc.headers.get("Retry-After"), datetime.now(UTC))
            if exc.code == 429
            else None,
            permanent=is_permanent(exc.code),
        )
    except TimeoutError:
        return DeliveryResult(ok=False, error=f"timed out after {timeout:g}s")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return DeliveryResult(ok=False, error=f"timed out after {timeout:g}s")
        return DeliveryResult(ok=False, error=f"connection failed: {reason}")
    except (ConnectionError, OSError) as exc:
        return DeliveryResult(ok=False, error=f"connection failed: {exc.__class__.__name__}: {exc}")


@dataclass
class WebhookSender:
    """POST with up to `attempts` tries per call; waits at most `max_inline_wait` s in between."""

    timeout: float = 5.0
    attempts: int = 2
    base_delay: float = 0.5
    max_inline_wait: float = 5.0
    rand: Callable[[], float] = random.random
    sleep: Callable[[float], None] = time.sleep

    def __call__(self, url: str, payload: dict[str, Any]) -> DeliveryResult:
        made = 0
        while True:
            result = post_once(url, payload, self.timeout)
            made += 1
            if result.ok or result.permanent or made >= self.attempts:
                return _with_requests(result, made)
            wait = backoff_seconds(made, self.base_delay, self.max_inline_wait, self.rand)
            if result.retry_after is not None:
                if result.retry_after > self.max_inline_wait:
                    return _with_requests(result, made)  # a long pause: the store reschedules
                wait = max(wait, result.retry_after)
            self.sleep(wait)


def _with_requests(result: DeliveryResult, made: int) -> DeliveryResult:
    return DeliveryResult(
        ok=result.ok,
        status=result.status,
        error=result.error,
        retry_after=result.retry_after,
        permanent=result.permanent,
        requests=made,
    )

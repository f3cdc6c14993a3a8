"""Pure parts of the API's defences: the token bucket, the size measures, refused settings."""

from __future__ import annotations

import hmac

import pytest
from pydantic import ValidationError

from serving import keys
from serving.limits import header_bytes, url_bytes
from serving.rate_limit import RateLimiter, caller_of
from serving.settings import ServingSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate_and_says_how_long_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3.0, clock=clock)
    assert [limiter.wait("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait("k") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.wait("k") == 0.0
    assert limiter.wait("other") == 0.0  # buckets are per caller
    clock.now += 10
    assert [limiter.wait("k") for _ in range(4)][-1] == pytest.approx(0.5)  # refilled to the burst only


def test_idle_buckets_are_forgotten_when_the_table_is_full() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=1.0, clock=clock)
    for i in range(100_000):
        limiter.wait(f"c{i}")
    clock.now += 5
    limiter.wait("new")
    assert len(limiter._buckets) == 1


@pytest.mark.parametrize(
    ("headers", "client", "expected"),
    [
        ([(b"x-api-key", b"la_abcdef012345_" + b"s" * 43)], ("10.0.0.1", 1), "key:abcdef012345"),
        ([(b"x-api-key", b"not-a-key")], ("10.0.0.1", 1), "addr:10.0.0.1"),
        ([], None, "addr:unknown"),
    ],
)
def test_the_bucket_is_the_key_id_or_else_the_address(
    headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None, expected: str
) -> None:
    assert caller_of({"headers": headers, "client": client}) == expected


def test_url_and_header_sizes_are_measured_as_sent() -> None:
    scope = {"raw_path": b"/api/v1/x", "query_string": b"a=1", "headers": [(b"host", b"h")]}
    assert url_bytes(scope) == len("/api/v1/x?a=1")
    assert header_bytes(scope) == len("host: h\r\n")


def test_keys_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest comparison is hmac.compare_digest (its time does not depend on where the
    first differing byte is), not ==."""
    new = keys.new_key()
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    assert keys.matches(new.secret_key, new.digest)
    assert not keys.matches(new.secret_key + "x", new.digest)
    assert len(calls) == 2


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://api:changeme@db/x",
        "postgresql://api:@db/x",  # empty
        "postgresql://api:PASSWORD@db/x",
        "host=db user=api password=secret dbname=x",
    ],
)
def test_placeholder_or_empty_passwords_are_refused_outside_dev(url: str) -> None:
    with pytest.raises(ValidationError, match="empty or placeholder password") as info:
        ServingSettings(database_url=url, profile="prod")
    assert "changeme" not in str(info.value).split("input_value")[0]
    ServingSettings(database_url=url, profile="dev")  # accepted in the dev profile


def test_a_real_password_or_none_at_all_is_accepted_outside_dev() -> None:
    ServingSettings(database_url="postgresql://api:Xq9-long-random@db/x", profile="prod")
    ServingSettings(database_url="postgresql://api@db/x", profile="prod")  # PGPASSFILE


def test_cors_wildcard_is_refused_outside_dev() -> None:
    with pytest.raises(ValidationError, match="API_CORS_ORIGINS"):
        ServingSettings(cors_origins="*", profile="prod")
    assert ServingSettings(cors_origins="https://a.example, https://b.example").cors_origin_list == [
        "https://a.example",
        "https://b.example",
    ]

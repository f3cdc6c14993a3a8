"""Pure parts of the consumer: batch building, retry policy, settings parsing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest

from loganalyzer.events import ParseLimits
from loganalyzer.settings import SettingsError, load_settings
from streaming.batch import build_batch
from streaming.log_row import OFFSET, TS
from streaming.retry import Backoff, retry_transient

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


@dataclass
class Rec:
    p: int
    o: int
    v: bytes | None
    err: Any = None

    def error(self) -> Any:
        return self.err

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o

    def value(self) -> bytes | None:
        return self.v

    def key(self) -> bytes | None:
        return b"k"

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


def ev(ts: datetime, msg: str = "m") -> bytes:
    return orjson.dumps(
        {"timestamp": ts.isoformat(), "level": "INFO", "service": "s", "host": "h", "message": msg}
    )


def test_batch_groups_by_partition_and_keeps_offsets() -> None:
    recs = [
        Rec(0, 10, ev(NOW - timedelta(hours=1))),
        Rec(1, 5, b"garbage"),
        Rec(0, 11, ev(NOW - timedelta(days=1))),
        Rec(1, 6, ev(NOW - timedelta(minutes=1))),
    ]
    b = build_batch("logs", recs, ParseLimits(), NOW)
    assert sorted(b.partitions) == [0, 1]
    p0, p1 = b.partitions[0], b.partitions[1]
    assert (p0.first_offset, p0.last_offset) == (10, 11)
    assert [r[OFFSET] for r in p0.rows] == [10, 11]
    assert (p1.first_offset, p1.last_offset) == (5, 6)
    assert [d.offset for d in p1.dead_letters] == [5]
    assert p1.dead_letters[0].reason == "invalid_json"
    assert p1.dead_letters[0].raw == b"garbage"
    assert p1.dead_letters[0].kafka_timestamp_ms == 1_700_000_000_000
    assert b.event_count == 3 and b.dead_letter_count == 1 and b.record_count == 4
    assert b.days == [date(2026, 11, 23), date(2026, 11, 24)]
    assert b.max_event_time == NOW - timedelta(minutes=1)
    assert all(r[TS].tzinfo is UTC for r in p0.rows)


def test_error_messages_are_not_records() -> None:
    b = build_batch("logs", [Rec(0, -1, None, err="EOF")], ParseLimits(), NOW)
    assert b.partitions == {} and b.errors == ["EOF"]


def test_empty_batch_has_no_days() -> None:
    assert build_batch("logs", [], ParseLimits(), NOW).days == []


def test_retry_waits_through_transient_errors_and_backs_off() -> None:
    calls: list[int] = []
    sleeps: list[float] = []
    reconnects: list[BaseException] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 5:
            raise psycopg.OperationalError("server closed the connection")
        return "done"

    out = retry_transient(flaky, reconnects.append, lambda: False, Backoff(0.1, 0.5, 2), sleeps.append)
    assert out == "done"
    assert sleeps == [0.1, 0.2, 0.4, 0.5]
    assert len(reconnects) == 4


def test_retry_gives_up_only_when_asked_to_stop() -> None:
    def down() -> None:
        raise psycopg.OperationalError("down")

    with pytest.raises(psycopg.OperationalError):
        retry_transient(down, lambda e: None, lambda: True, sleep=lambda s: None)


def test_retry_does_not_hide_real_errors() -> None:
    def broken() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        retry_transient(broken, lambda e: None, lambda: False, sleep=lambda s: None)


def test_retry_never_waits_for_a_program_limit() -> None:
    """psycopg files SQLSTATE class 54 (a value over an index's row size, ...) under
    OperationalError like a lost connection; the same value fails the same way every time."""
    from psycopg import errors as pgerrors

    calls: list[int] = []

    def too_big() -> None:
        calls.append(1)
        raise pgerrors.ProgramLimitExceeded("index row size 6016 exceeds btree version 4 maximum 2704")

    with pytest.raises(pgerrors.ProgramLimitExceeded):
        retry_transient(too_big, lambda e: None, lambda: False, sleep=lambda s: None)
    assert calls == [1]
    restarted: list[int] = []

    def server_restart() -> str:
        restarted.append(1)
        if len(restarted) < 3:
            raise pgerrors.AdminShutdown("terminating connection due to administrator command")
        return "done"

    assert retry_transient(server_restart, lambda e: None, lambda: False, sleep=lambda s: None) == "done"


def test_settings_defaults_and_overrides() -> None:
    s = load_settings({})
    assert s.kafka.topic == "logs" and s.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert s.consumer.parse_limits.max_message_bytes == 65536
    s2 = load_settings(
        {
            "KAFKA_TOPIC": "t",
            "KAFKA_PROPERTY_SECURITY_PROTOCOL": "SASL_SSL",
            "LOG_MAX_MESSAGE_BYTES": "1024",
            "LOG_MAX_AGE_DAYS": "2",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        }
    )
    assert s2.kafka.topic == "t"
    assert s2.kafka.extra == {"security.protocol": "SASL_SSL"}
    assert s2.consumer.parse_limits.max_message_bytes == 1024
    assert s2.consumer.parse_limits.max_age == timedelta(days=2)
    assert s2.aws_endpoint_url == "http://127.0.0.1:5000"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOG_MAX_MESSAGE_BYTES": "big"}, "LOG_MAX_MESSAGE_BYTES='big' is not an integer"),
        ({"LOG_MAX_MESSAGE_BYTES": "10"}, "must be >= 256"),
        ({"CONSUMER_BATCH_MAX_SECONDS": "soon"}, "is not a number"),
        ({"CONSUMER_BATCH_TARGET_WAIT_SECONDS": "0"}, "CONSUMER_BATCH_TARGET_WAIT_SECONDS"),
        ({"KAFKA_SESSION_TIMEOUT_MS": "5"}, "must be >= 1000"),
        ({"DETECTION_WARM_START_HOURS": "-1"}, "DETECTION_WARM_START_HOURS=-1.0 must be >= 0"),
        ({"DETECTION_WARM_START_HOURS": "two"}, "DETECTION_WARM_START_HOURS='two' is not a number"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_batch_sizer_shrinks_for_live_traffic_and_grows_for_a_backlog() -> None:
    from streaming.batch_size import BatchSizer

    sizer = BatchSizer(20_000, target_wait=0.1, backlog_age=1.0)
    for _ in range(12):  # live at 50k records/s: each cycle's records took size/50k s to arrive
        size = sizer.size
        sizer.update(size, size / 50_000, newest_age=0.01)
    assert 4_500 <= sizer.size <= 5_500  # ~0.1 s worth
    for _ in range(8):  # behind: even the newest record of each batch is 5 s old
        sizer.update(sizer.size, 0.05, newest_age=5.0)
    assert sizer.size >= 19_900
    for _ in range(12):  # a trickle: never below the minimum
        sizer.update(3, 0.5, newest_age=0.1)
    assert sizer.size == 500
    assert sizer.update(0, 0.5, None) == 500  # an empty poll says nothing


def test_batch_sizer_leaves_backlog_mode_once_a_batch_reaches_the_head() -> None:
    """A large batch that took 1.2 s drained everything that was waiting: its newest record is
    fresh although its oldest waited the whole cycle, so the next batch is live-sized at once."""
    from streaming.batch_size import BatchSizer

    sizer = BatchSizer(50_000, target_wait=0.1, backlog_age=1.0)
    assert sizer.size == 50_000  # a cold start assumes a backlog
    sizer.update(30_000, 1.2, newest_age=0.02)  # 25k records/s arrived while we worked
    assert sizer.size == round(30_000 / 1.2 * 0.1)  # 2,500: shrinks at once, not halfway
    sizer.update(2_500, 0.1, newest_age=0.01)
    sizer.update(10_000, 0.1, newest_age=0.01)  # one odd cycle: grows only halfway
    assert sizer.size == round((2_500 + 10_000) / 2)


def test_kafka_properties_override_tunables_but_not_exactly_once() -> None:
    from streaming.consumer import LogConsumer

    settings = load_settings(
        {
            "KAFKA_PROPERTY_FETCH_QUEUE_BACKOFF_MS": "100",
            "KAFKA_PROPERTY_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_PROPERTY_ENABLE_AUTO_COMMIT": "true",
            "KAFKA_GROUP_ID": "g1",
        }
    )
    config = LogConsumer(settings)._kafka_config()
    assert config["fetch.queue.backoff.ms"] == "100"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["enable.auto.commit"] is False and config["group.id"] == "g1"
    defaults = LogConsumer(load_settings({}))._kafka_config()
    assert defaults["fetch.queue.backoff.ms"] == 10
    assert defaults["fetch.wait.max.ms"] == 500  # shorter: Tansu answered fetches with no records
    overridden = load_settings({"KAFKA_PROPERTY_FETCH_WAIT_MAX_MS": "50"})
    assert LogConsumer(overridden)._kafka_config()["fetch.wait.max.ms"] == "50"

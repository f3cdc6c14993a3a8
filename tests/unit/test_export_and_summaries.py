"""Pure parts of the export and the summary function: key layout, S3 event decoding, summaries."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote_plus

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loganalyzer.export.checksum import RowChecksum, batch_checksum
from loganalyzer.export.layout import manifest_key, parse_part_key, part_key
from loganalyzer.export.schema import FILE_SCHEMA
from loganalyzer.export.writer import _runs
from loganalyzer.lambda_fn.events import EventError, created_objects
from loganalyzer.summaries import count_part, estimate_costs, summarize, usage_of_service_day

names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)


def _s3_event(*keys: str, bucket: str = "b", name: str = "ObjectCreated:Put") -> dict[str, object]:
    """The shape S3 sends: keys URL-encoded as in an HTML form."""
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": name,
                "s3": {"bucket": {"name": bucket}, "object": {"key": k}},
            }
            for k in keys
        ]
    }


@given(
    tenant=names, service=names, part=st.integers(0, 999), day=st.dates(date(2000, 1, 1), date(2099, 12, 31))
)
def test_any_name_survives_key_and_event_encoding(tenant: str, service: str, part: int, day: date) -> None:
    key = part_key("logs", day, tenant, service, part)
    [ref] = created_objects(_s3_event(quote_plus(key, safe="/")))
    assert ref.key == key
    parsed = parse_part_key(ref.key)
    assert (parsed.prefix, parsed.day, parsed.tenant, parsed.service, parsed.part) == (
        "logs",
        day,
        tenant,
        service,
        part,
    )
    assert not key.startswith(manifest_key("logs", day + timedelta(days=1)).rsplit("/", 1)[0])


def test_event_records_are_decoded_deduplicated_and_filtered() -> None:
    event = _s3_event("logs/a+b.parquet", "logs/a+b.parquet", "logs/c%2Bd.parquet")
    event["Records"].append(  # type: ignore[attr-defined]
        {
            "eventSource": "aws:s3",
            "eventName": "ObjectRemoved:Delete",
            "s3": {"bucket": {"name": "b"}, "object": {"key": "x"}},
        }
    )
    assert [r.key for r in created_objects(event)] == ["logs/a b.parquet", "logs/c+d.parquet"]
    assert created_objects({"Event": "s3:TestEvent", "Bucket": "b"}) == []


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ({}, "Records"),
        ({"Records": [{"eventSource": "aws:sqs"}]}, "eventSource"),
        (
            {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]},
            "s3.bucket.name",
        ),
        ({"Records": ["x"]}, "Records\\[0\\]"),
    ],
)
def test_bad_events_name_the_field(event: dict[str, object], says: str) -> None:
    with pytest.raises(EventError, match=says):
        created_objects(event)


def test_not_a_part_key_is_refused() -> None:
    with pytest.raises(ValueError, match="not an exported part"):
        parse_part_key("logs/date=2026-11-30/_manifest.json")


def _file_table(levels: list[str], messages: list[str]) -> pa.Table:
    n = len(levels)
    t0 = datetime(2026, 11, 30, tzinfo=UTC)
    return pa.Table.from_pydict(
        {
            "timestamp": [t0 + timedelta(seconds=i) for i in range(n)],
            "host": ["h"] * n,
            "level": levels,
            "message": messages,
            "metadata": ["{}"] * n,
            "kafka_topic": ["logs"] * n,
            "kafka_partition": [1] * n,
            "kafka_offset": list(range(10, 10 + n)),
            "ingested_at": [t0] * n,
            "duration_ms": [None] * n,
        },
        schema=FILE_SCHEMA,
    )


def test_checksum_adds_up_over_slices() -> None:
    t = _file_table(["INFO"] * 5, ["ab", "c", "", "dé", "x"])
    whole = batch_checksum(t, date(2026, 11, 30))
    assert whole == RowChecksum(
        5, 10 + 11 + 12 + 13 + 14, 5, sum(i * 1_000_000 for i in range(5)), 2 + 1 + 0 + 3 + 1
    )
    assert (
        batch_checksum(t.slice(0, 2), date(2026, 11, 30)) + batch_checksum(t.slice(2), date(2026, 11, 30))
        == whole
    )


def test_runs_split_an_ordered_batch_by_tenant_and_service() -> None:
    b = pa.record_batch({"tenant": ["a", "a", "a", "b", "b"], "service": ["x", "x", "y", "y", "y"]})
    assert _runs(b) == [(0, 2), (2, 3), (3, 5)]
    assert _runs(b.slice(3)) == [(0, 2)]


def test_summary_of_two_parts() -> None:
    p0 = count_part(
        _file_table(
            ["INFO", "ERROR", "ERROR", "WARN"],
            ["ok 1", "timeout after 30 ms", "timeout after 99 ms", "slow"],
        )
    )
    p1 = count_part(_file_table(["FATAL", "INFO"], ["disk full on /dev/sda1", "ok 2"]))
    s = summarize(
        "2026-11-30",
        "t",
        "svc",
        p0.merge(p1),
        anomaly_count=2,
        source_objects=["k0", "k1"],
        source_bytes=100,
        export_run_id="r",
        estimated_costs={},
    )
    assert (s.total_logs, s.error_count, s.warn_count, s.anomaly_count) == (6, 3, 1, 2)
    assert s.error_rate == Decimal("0.5")
    assert s.top_errors[0] == {
        "template": "timeout after <*> ms",
        "count": 2,
        "sample": "timeout after 30 ms",
    }
    assert s.top_errors[1]["count"] == 1
    assert s.to_item()["tenant_service"] == "t#svc"


def test_costs_are_kept_below_the_cent() -> None:
    costs = estimate_costs(
        usage_of_service_day(parts=2, source_bytes=50_000_000, item_kb=2, region="us-east-1")
    )
    assert Decimal(0) < costs["total_usd"] < Decimal("0.01")
    assert {li["service"] for li in costs["line_items"]} == {"s3", "lambda", "dynamodb"}


_rows = st.lists(
    st.tuples(
        st.sampled_from(["t0", "t1"]),
        st.sampled_from(["a", "b", "c/d"]),
        st.integers(0, 86_399_999_999),  # microseconds into the day
        st.text(max_size=20),
    ),
    max_size=60,
)


@settings(deadline=None, max_examples=60)  # each example writes real Parquet files
@given(rows=_rows, cuts=st.lists(st.integers(0, 60), max_size=6), max_rows=st.integers(1, 25))
def test_day_writer_files_hold_every_row_once_grouped_and_split(
    rows: list[tuple[str, str, int, str]], cuts: list[int], max_rows: int
) -> None:
    """Whatever the driver's batch boundaries, each (tenant, service) gets its own files, parts of
    at most max_rows rows, and the files' rows add up to the day's checksum."""
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    from loganalyzer.export.writer import DayWriter, FinishedFile

    day = date(2026, 11, 30)
    rows = sorted(rows, key=lambda r: (r[0], r[1], r[2]))
    t0 = datetime(2026, 11, 30, tzinfo=UTC)
    n = len(rows)
    driver = pa.table(
        {
            "timestamp": pa.array(
                [t0 + timedelta(microseconds=r[2]) for r in rows], pa.timestamp("us", tz="UTC")
            ),
            "tenant": [r[0] for r in rows],
            "service": [r[1] for r in rows],
            "host": ["h"] * n,
            "level": ["INFO"] * n,
            "message": [r[3] for r in rows],
            "metadata": ["{}"] * n,
            "kafka_topic": ["logs"] * n,
            "kafka_partition": pa.array([i % 3 for i in range(n)], pa.int32()),
            "kafka_offset": pa.array(list(range(n)), pa.int64()),
            "ingested_at": pa.array([t0] * n, pa.timestamp("us", tz="UTC")),
            "duration_ms": pa.array([None] * n, pa.float64()),
        }
    )
    bounds = sorted({0, n, *(c for c in cuts if c <= n)})
    files: list[FinishedFile] = []
    with tempfile.TemporaryDirectory() as spool:
        w = DayWriter(
            day,
            "logs",
            Path(spool),
            files.append,
            file_metadata={},
            anomaly_counts={},
            max_rows_per_file=max_rows,
        )
        for lo, hi in itertools.pairwise(bounds):
            for batch in driver.slice(lo, hi - lo).to_batches():
                w.write(batch)
        w.close()
        total = RowChecksum()
        seen: dict[tuple[str, str], list[int]] = {}
        for f in files:
            table = pq.read_table(f.path)
            assert table.num_rows == f.rows and 0 < f.rows <= max_rows
            assert batch_checksum(table, day) == f.checksum
            total = total + f.checksum
            seen.setdefault((f.tenant, f.service), []).append(f.part)
            assert parse_part_key(f.key).service == f.service
    expected_groups = {(r[0], r[1]) for r in rows}
    assert set(seen) == expected_groups
    assert all(parts == list(range(len(parts))) for parts in seen.values())
    whole = pa.Table.from_arrays([driver.column(f.name) for f in FILE_SCHEMA], schema=FILE_SCHEMA)
    assert total == batch_checksum(whole, day)

"""Pure logic of the batch jobs: labels, evaluation, the promotion decision, roll-up hours,
retention, DynamoDB item sizes and usage documents."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loganalyzer.batch.airflow_io import closed_day
from loganalyzer.batch.cost_snapshot import (
    Invocation,
    TenantUsage,
    combine,
    day_usage_of,
    dynamodb_item_size,
    item_tenant_service,
    tenant_of_key,
)
from loganalyzer.batch.maintenance import retention_plan
from loganalyzer.batch.retrain import (
    Evaluation,
    LabelError,
    LabelSpan,
    RetrainConfig,
    average_precision,
    decide,
    label_windows,
    parse_ground_truth,
)
from loganalyzer.batch.rollup import hours_to_roll_up
from loganalyzer.db.minute_counts import MinuteArrays
from loganalyzer.detection.features import Counts
from loganalyzer.model.training import ServiceWindows, window_arrays, windows_by_service


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6).map(lambda x: x / 2), st.booleans()), min_size=1, max_size=40
    ).filter(lambda xs: any(y for _, y in xs))
)
def test_average_precision_is_sklearns(pairs: list[tuple[float, bool]]) -> None:
    from sklearn.metrics import average_precision_score

    scores, labels = [s for s, _ in pairs], [y for _, y in pairs]
    assert average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores))


def evaluation(f1: float, ap: float, positives: int = 10) -> Evaluation:
    return Evaluation(100, positives, 10, 5, 0.5, 0.5, f1, ap, 0)


@pytest.mark.parametrize(
    ("candidate", "champion", "problem", "promote", "reason_start"),
    [
        (evaluation(0.1, 0.1), None, None, True, "no champion yet"),
        (
            evaluation(0.1, 0.1),
            evaluation(0.9, 0.9),
            "champion version 3 cannot score",
            True,
            "champion version 3",
        ),
        (evaluation(0.8, 0.5), evaluation(0.7, 0.9), None, True, "better:"),
        (evaluation(0.7, 0.9), evaluation(0.8, 0.5), None, False, "not better:"),
        (evaluation(0.8, 0.6), evaluation(0.8, 0.5), None, True, "better:"),  # AP breaks a tie
        (evaluation(0.8, 0.5), evaluation(0.8, 0.5), None, False, "not better:"),  # a tie keeps
        (evaluation(0.0, 0.0, positives=0), evaluation(0.0, 0.0, 0), None, False, "no labelled anomalies"),
    ],
)
def test_decision(
    candidate: Evaluation, champion: Evaluation | None, problem: str | None, promote: bool, reason_start: str
) -> None:
    d = decide(candidate, champion, problem)
    assert d.promote is promote and d.reason.startswith(reason_start)


T0 = datetime(2026, 11, 10, 12, tzinfo=UTC)
M0 = int(T0.timestamp() // 60)


def sw(minutes: list[int], values: list[float]) -> ServiceWindows:
    return ServiceWindows(np.asarray(minutes, dtype=np.int64), np.asarray([[v] * 6 for v in values]))


def test_windows_overlapping_an_incident_are_positive_and_the_rest_labelled_only_with_ground_truth() -> None:
    windows = {
        "a/x": sw([M0 + i for i in range(20)], [float(i) for i in range(20)]),
        "a/y": sw([M0 + 3], [0.0]),
    }
    incident = LabelSpan("a/x", T0 + timedelta(minutes=10), T0 + timedelta(minutes=12), True, "ground_truth")
    labelled = label_windows(windows, [incident], everything_labelled=True)
    positives = [row[0] for row, y in zip(labelled.rows, labelled.labels, strict=True) if y]
    # a window ending at minute m covers m-4 .. m: it overlaps [10, 12) when 10 <= m <= 15
    assert positives == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    assert len(labelled.rows) == 21
    noise = LabelSpan("a/x", T0, T0 + timedelta(minutes=1), False, "feedback")
    only_feedback = label_windows(windows, [noise], everything_labelled=False)
    assert only_feedback.labels == [False] * 5  # windows ending at minutes 0..4 touch minute 0


minute_counts_strategy = st.dictionaries(
    st.integers(0, 40),
    st.builds(
        Counts,
        st.integers(0, 10**6),
        st.integers(0, 10**5),
        st.integers(0, 10**5),
        st.floats(0, 1e9, allow_nan=False, allow_infinity=False),
        st.integers(0, 10**6),
        st.integers(0, 10**8),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(minute_counts_strategy)
def test_window_arrays_are_bit_identical_to_the_consumers_window_features(minutes: dict[int, Counts]) -> None:
    expected = windows_by_service({("t", "s"): minutes})
    ordered = sorted(minutes)
    arrays = MinuteArrays(
        np.asarray(ordered, dtype=np.int64),
        np.asarray(
            [
                [
                    minutes[m].total,
                    minutes[m].errors,
                    minutes[m].warns,
                    minutes[m].duration_n,
                    minutes[m].length_sum,
                ]
                for m in ordered
            ],
            dtype=np.int64,
        ).reshape(-1, 5),
        np.asarray([minutes[m].duration_sum for m in ordered], dtype=np.float64),
    )
    got = window_arrays({"t/s": arrays}).get("t/s")
    want = expected.get("t/s", [])
    if got is None:
        assert want == []
        return
    assert got.minutes.tolist() == [m for m, _ in want]
    assert [tuple(r) for r in got.features.tolist()] == [r for _, r in want]  # exact, not approx


def test_ground_truth_lines_are_parsed_and_a_bad_line_is_named() -> None:
    line = {"tenant": "t", "service": "s", "start": "2026-11-10T12:00:00Z", "end": "2026-11-10T12:30:00Z"}
    (span,) = parse_ground_truth(json.dumps(line) + "\n\n")
    assert span.key == "t/s" and span.end - span.start == timedelta(minutes=30)
    with pytest.raises(LabelError, match="line 2"):
        parse_ground_truth(json.dumps(line) + '\n{"service": "s"}\n')


def test_retrain_config_refuses_a_holdout_as_long_as_the_span() -> None:
    with pytest.raises(ValueError, match="holdout_hours"):
        RetrainConfig(days=1, holdout_hours=24)
    with pytest.raises(ValueError, match="calibration_quantile"):
        RetrainConfig(calibration_quantile=0)


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        (datetime(2026, 11, 10, 12, tzinfo=UTC), (datetime(2026, 11, 10, 10, tzinfo=UTC), T0)),
        (datetime(2026, 11, 10, 12, 40, tzinfo=UTC), (datetime(2026, 11, 10, 10, tzinfo=UTC), T0)),
    ],
)
def test_a_run_rolls_up_its_hour_and_the_one_before(
    end: datetime, expected: tuple[datetime, datetime]
) -> None:
    assert hours_to_roll_up(end) == expected


def test_closed_day_is_the_day_that_ended_at_the_interval_end() -> None:
    assert closed_day(datetime(2026, 11, 21, tzinfo=UTC)) == date(2026, 11, 20)
    assert closed_day(datetime(2026, 11, 21, 0, 15, tzinfo=UTC)) == date(2026, 11, 21)


def test_retention_drops_only_days_with_a_manifest() -> None:
    parts = [(f"logs_p202611{d:02d}", date(2026, 11, d)) for d in (1, 2, 3, 9)]
    drop, keep = retention_plan(parts, date(2026, 11, 5), lambda d: d.day != 2)
    assert [n for n, _ in drop] == ["logs_p20261101", "logs_p20261103"]
    assert [n for n, _ in keep] == ["logs_p20261102"]


def test_dynamodb_item_size_follows_the_documented_rules() -> None:
    # name "a" (1) + string "xyz" (3); name "n" (1) + number 12345 (3 digits pairs + 1 = 4)
    assert dynamodb_item_size({"a": {"S": "xyz"}, "n": {"N": "12345"}}) == 1 + 3 + 1 + 4
    # a list of two one-char strings: 3 + (1 + 1) * 2
    assert dynamodb_item_size({"l": {"L": [{"S": "a"}, {"S": "b"}]}}) == 1 + 3 + 4


def test_keys_and_items_name_their_tenant() -> None:
    assert tenant_of_key("logs/date=2026-11-20/tenant=a%2Fb/service=s/part-0.parquet") == "a/b"
    assert tenant_of_key("logs/date=2026-11-20/_manifest.json") is None
    assert item_tenant_service({"date": {"S": "2026-11-20"}, "sk": {"S": "t#s"}}) == ("t", "s")


def test_usage_of_a_day_from_objects_items_and_invocations() -> None:
    day = date(2026, 11, 20)
    objects = [
        ("logs/date=2026-11-20/tenant=t/service=a/part-0.parquet", 1000),
        ("logs/date=2026-11-20/tenant=t/service=a/part-1.parquet", 3000),
        ("logs/date=2026-11-20/_manifest.json", 500),
    ]
    items = [{"date": {"S": "2026-11-20"}, "tenant_service": {"S": "t#a"}, "x": {"S": "y" * 1500}}]
    usage = combine(day, objects, items, [Invocation("t", 200, 1024), Invocation("t", 300, 1024)], 0.5)
    t = usage["t"]
    assert (t.s3_bytes_stored, t.s3_objects, t.s3_put_requests, t.s3_get_requests) == (4000, 2, 2, 2)
    assert t.lambda_invocations == 2 and t.lambda_gb_seconds == pytest.approx(0.5)
    size = dynamodb_item_size(items[0])
    assert t.dynamodb_write_units == math.ceil(size / 1024) * 2  # two parts: written twice
    assert usage["*"].s3_put_requests == 2 and usage["*"].dynamodb_read_units == 0.5
    doc = day_usage_of(day, t, "us-east-1", stored_before=(2000.0, 0.0)).to_dict()
    assert doc["lambda"]["requests"] == 2 and doc["lambda"]["memory_mb"] == 1024
    assert doc["lambda"]["duration_ms"] == pytest.approx(250.0)
    assert doc["s3"]["storage_gb"] == pytest.approx(6000 / 1024**3, abs=1e-9)  # earlier days stay stored
    assert day_usage_of(day, TenantUsage(), "us-east-1", (0.0, 0.0)).to_dict()["lambda"]["requests"] == 0


def test_calibration_through_the_compiled_forest_equals_sklearns_scores() -> None:
    import numpy as np

    from loganalyzer.model.forest import CALIBRATION_QUANTILE, calibrate, train_forest

    rows = np.random.default_rng(0).normal(size=(9000, 6)).tolist()  # more than one 4096-row chunk
    estimator = train_forest(rows, n_estimators=50)
    scores = sorted(float(-s) for s in estimator.decision_function(np.asarray(rows)))
    expected = max(0.0, scores[int(CALIBRATION_QUANTILE * len(scores))])
    assert calibrate(estimator, rows) == expected

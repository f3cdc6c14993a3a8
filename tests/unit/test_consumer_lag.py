"""Lag from librdkafka statistics: watermark minus the offset stored with the rows."""

from __future__ import annotations

from loganalyzer.consumer_lag import high_watermarks, lag

STATS = {
    "topics": {
        "logs": {
            "partitions": {
                "0": {"hi_offset": 7500, "app_offset": 3000, "consumer_lag": -1},
                "1": {"hi_offset": 12500, "app_offset": -1001, "consumer_lag": -1},
                "2": {"hi_offset": -1},
                "-1": {"hi_offset": -1001},
            }
        },
        "other": {"partitions": {"0": {"hi_offset": 99}}},
    }
}


def test_watermarks_of_the_topic_only_and_only_of_fetched_partitions() -> None:
    assert high_watermarks(STATS, "logs") == {0: 7500, 1: 12500}
    assert high_watermarks(STATS, "missing") == {}
    assert high_watermarks({}, "logs") == {}


def test_lag_is_the_watermark_minus_the_stored_offset_never_negative() -> None:
    assert lag({0: 7500, 1: 12500}, {0: 3000, 1: 12500}) == {0: 4500, 1: 0}
    assert lag({0: 100}, {0: 140}) == {0: 0}  # an older statistics document
    assert lag({0: 100, 3: 5}, {0: 40}) == {0: 60}  # a partition not owned: no figure

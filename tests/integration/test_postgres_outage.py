"""A PostgreSQL outage mid-stream: the consumer waits, reconnects, and loses or duplicates nothing."""

from __future__ import annotations

import time

import pytest
from psycopg.conninfo import make_conninfo

from loganalyzer.db.connection import connect, ensure_database
from loganalyzer.db.migrate import migrate
from tests.integration.consumer_harness import consumer_env, running_consumer
from tests.support import PrivatePostgres, count, new_topic, produce, valid_values, wait_for

pytestmark = pytest.mark.integration


def test_postgres_restart_mid_stream_loses_nothing(broker: str, private_pg: PrivatePostgres) -> None:
    url = make_conninfo(private_pg.url, dbname="loganalyzer")
    ensure_database(url)
    with connect(url) as conn:
        migrate(conn)
    topic = new_topic(broker)
    n = 80_000
    produce(broker, topic, valid_values(n))
    env = consumer_env(url, broker, topic, CONSUMER_BATCH_MAX_MESSAGES="2000")
    with running_consumer(env) as consumer:
        wait_for(lambda: count(url) > 4_000, 60, "rows before the outage")
        before = count(url)
        private_pg.stop("immediate")  # a crash, not a clean shutdown
        time.sleep(3)  # the consumer keeps failing and backing off meanwhile
        private_pg.start()
        wait_for(lambda: count(url) >= n, 90, "every row after the restart")
        time.sleep(1)
    assert before < n, "the stream ended before the outage: raise n"
    assert count(url) == n
    assert count(url, "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM logs") == n
    assert consumer.metrics.db_retries._value.get() >= 1  # the outage was really hit

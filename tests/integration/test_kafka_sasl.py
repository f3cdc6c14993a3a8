"""SASL/SCRAM against a broker that requires authentication: a clear error, no secret in any log.

The embedded broker (Tansu 0.6.0, `--authentication`) speaks SASL/SCRAM-SHA-512 but cannot hold
a user: `tansu user create` is refused once authentication is on, and with it off the user is
not stored by the memory or s3 engines (its postgres engine is not built in). So every login
fails with `unknown-user`; a successful SCRAM session is only reachable on real Kafka
(docs/security.md). What is tested here is the configuration path end to end: the properties
reach librdkafka, the SCRAM exchange happens, its failure is logged plainly by the consumer and
the producer, and the password (read from a file) is in none of their output.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from loganalyzer.platform.local import broker_spec
from loganalyzer.platform.processes import free_port, port_open
from loganalyzer.settings import kafka_client_config, load_settings
from tests.integration.consumer_harness import consumer_env, consumer_process
from tests.support import wait_for

pytestmark = pytest.mark.integration

PASSWORD = "Xq7-never-in-a-log-91"


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("sasl") / "tansu.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*broker_spec(port).argv, "--authentication"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 30, "Tansu with authentication")
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(10)


def _sasl_env(tmp_path: Path, bootstrap: str) -> dict[str, str]:
    secret = tmp_path / "kafka-password"
    secret.write_text(PASSWORD + "\n")
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_PROPERTY_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_PROPERTY_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_PROPERTY_SASL_USERNAME": "loganalyzer",
        "KAFKA_SASL_PASSWORD_FILE": str(secret),
    }


def test_the_producer_reports_the_failed_scram_login(tmp_path: Path, sasl_broker: str) -> None:
    settings = load_settings(_sasl_env(tmp_path, sasl_broker))
    errors: list[Any] = []
    config = {**kafka_client_config(settings.kafka), "error_cb": errors.append, "log_level": 0}
    producer = Producer(config)
    producer.produce("logs", b"{}")
    wait_for(lambda: producer.poll(0.2) >= 0 and bool(errors), 30, "an authentication error")
    text = " ".join(str(e) for e in errors)
    assert "SASL authentication error" in text and "SCRAM" in text, text
    assert PASSWORD not in text


def test_the_consumer_logs_why_it_cannot_connect_and_never_the_password(
    tmp_path: Path, sasl_broker: str, database_url: str
) -> None:
    env = consumer_env(database_url, sasl_broker, "logs-sasl", **_sasl_env(tmp_path, sasl_broker))
    log = tmp_path / "consumer.log"
    with consumer_process(env, log) as proc:
        wait_for(
            lambda: "SASL authentication error" in log.read_text(), 60, "the consumer's authentication error"
        )
        assert proc.poll() is None, "an authentication failure must not crash the consumer"
    text = log.read_text()
    assert "Traceback" not in text
    assert PASSWORD not in text

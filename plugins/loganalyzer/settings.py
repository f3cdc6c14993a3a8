"""Process configuration, read from environment variables once in each entry point's `main()`.

Nothing here reads the environment at import time: tests and tools build `Settings` from an
explicit mapping. The same code talks to a local Tansu/moto or to real Kafka/AWS; only these
values change. docs/configuration.md lists every variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from loganalyzer.events import ParseLimits
from loganalyzer.kafka_security import KafkaSecurityError, check, redacted, secret_properties

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/loganalyzer"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable and what to set."""


def project_root() -> Path:
    """The repository root (two levels above plugins/loganalyzer)."""
    return Path(__file__).resolve().parents[2]


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be >= {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be >= {minimum}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (true/false)")


@dataclass(frozen=True)
class KafkaSettings:
    """Where and how to reach Kafka; its repr masks secret properties (kafka_security)."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    topic: str = "logs"
    group_id: str = "loganalyzer-consumer"
    #: Extra librdkafka properties (security.protocol, sasl.*, ...) from KAFKA_* variables.
    extra: Mapping[str, str] = field(default_factory=dict)
    session_timeout_ms: int = 10_000

    def __repr__(self) -> str:
        return (
            f"KafkaSettings(bootstrap_servers={self.bootstrap_servers!r}, topic={self.topic!r}, "
            f"group_id={self.group_id!r}, extra={redacted(self.extra)!r}, "
            f"session_timeout_ms={self.session_timeout_ms})"
        )


@dataclass(frozen=True)
class ConsumerSettings:
    #: a backlog's batch: each batch pays a commit and a few queries; measured +1 to +7 %
    #: logs/s against 20,000 (interleaved A/B runs), for ~50 MB more peak RSS (216 MB)
    batch_max_messages: int = 50_000
    batch_max_seconds: float = 0.5
    #: live traffic: batches shrink to what arrives in this time (detection latency); a backlog
    #: still gets batch_max_messages (streaming/batch_size.py)
    batch_target_wait_seconds: float = 0.1
    #: commit without waiting for the WAL flush (PostgreSQL's synchronous_commit = off). Safe
    #: here: a crash can only lose the newest commits, rows and offsets together, and the
    #: consumer notices and reads them again from Kafka (streaming/consumer.py, docs/ingestion.md)
    async_commit: bool = True
    metrics_port: int = 9108
    parse_limits: ParseLimits = field(default_factory=ParseLimits)


@dataclass(frozen=True)
class DetectionSettings:
    enabled: bool = True
    #: optional YAML file of thresholds (global and per service), docs/detection.md
    config_file: Path | None = None
    checkpoint_seconds: float = 10.0
    mlflow_tracking_uri: str | None = None
    model_refresh_seconds: float = 30.0
    #: stored history that warms the baselines of a partition with no detector checkpoint (0: none)
    warm_start_hours: float = 2.0


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    consumer: ConsumerSettings = field(default_factory=ConsumerSettings)
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    aws_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    state_dir: Path = field(default_factory=lambda: project_root() / ".state")

    def with_database(self, url: str) -> Settings:
        return replace(self, database_url=url)


#: Variables with a documented meaning of their own; any other KAFKA_X_Y becomes librdkafka's x.y.
_KAFKA_OWN = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_TOPIC",
    "KAFKA_GROUP_ID",
    "KAFKA_SESSION_TIMEOUT_MS",
}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the environment (or an explicit mapping, for tests)."""
    env = os.environ if env is None else env
    extra: dict[str, str] = {}
    for key, value in env.items():
        if key.startswith("KAFKA_PROPERTY_"):
            # KAFKA_PROPERTY_SECURITY_PROTOCOL=SASL_SSL -> security.protocol
            extra[key.removeprefix("KAFKA_PROPERTY_").lower().replace("_", ".")] = value
    try:
        extra.update(secret_properties(env, extra))
        check(extra)
    except KafkaSecurityError as exc:
        raise SettingsError(str(exc)) from None
    limits = ParseLimits(
        max_message_bytes=_int(env, "LOG_MAX_MESSAGE_BYTES", 64 * 1024, minimum=256),
        max_age=timedelta(days=_float(env, "LOG_MAX_AGE_DAYS", 30.0, minimum=0.001)),
        max_future_skew=timedelta(minutes=_float(env, "LOG_MAX_FUTURE_MINUTES", 120.0)),
    )
    state_dir = env.get("LOGANALYZER_STATE_DIR")
    return Settings(
        database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        kafka=KafkaSettings(
            bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP,
            topic=env.get("KAFKA_TOPIC") or "logs",
            group_id=env.get("KAFKA_GROUP_ID") or "loganalyzer-consumer",
            extra=extra,
            session_timeout_ms=_int(env, "KAFKA_SESSION_TIMEOUT_MS", 10_000, minimum=1000),
        ),
        consumer=ConsumerSettings(
            batch_max_messages=_int(env, "CONSUMER_BATCH_MAX_MESSAGES", 50_000, minimum=1),
            batch_max_seconds=_float(env, "CONSUMER_BATCH_MAX_SECONDS", 0.5, minimum=0.001),
            batch_target_wait_seconds=_float(env, "CONSUMER_BATCH_TARGET_WAIT_SECONDS", 0.1, minimum=0.001),
            async_commit=_bool(env, "CONSUMER_ASYNC_COMMIT", True),
            metrics_port=_int(env, "CONSUMER_METRICS_PORT", 9108),
            parse_limits=limits,
        ),
        detection=DetectionSettings(
            enabled=_bool(env, "DETECTION_ENABLED", True),
            config_file=Path(env["DETECTION_CONFIG"]) if env.get("DETECTION_CONFIG") else None,
            checkpoint_seconds=_float(env, "DETECTION_CHECKPOINT_SECONDS", 10.0, minimum=0.1),
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or None,
            model_refresh_seconds=_float(env, "MODEL_REFRESH_SECONDS", 30.0, minimum=1.0),
            warm_start_hours=_float(env, "DETECTION_WARM_START_HOURS", 2.0, minimum=0.0),
        ),
        aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        aws_region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1",
        state_dir=Path(state_dir) if state_dir else project_root() / ".state",
    )


def kafka_client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """librdkafka properties shared by the producer and the consumer."""
    return {"bootstrap.servers": kafka.bootstrap_servers, **kafka.extra}

"""Process configuration, read from environment variables once in each entry point's `main()`.

Nothing here reads the environment at import time: tests and tools build `Settings` from an
explicit mapping. The same code talks to a local Tansu/moto or to real Kafka/AWS; only these
values change. docs/configuration.md lists every variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from loganalyzer.events import DEFAULT_MAX_METADATA_DEPTH, MAX_METADATA_DEPTH_LIMIT, ParseLimits
from loganalyzer.kafka_security import KafkaSecurityError, check, redacted, secret_properties
from loganalyzer.platform.ports import parse_port

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/loganalyzer"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_METRICS_PORT = 9108
#: a year: a producer's clock further ahead than that is not skew
MAX_FUTURE_MINUTES = 525_600.0


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable and what to set."""


def project_root() -> Path:
    """The repository root (two levels above plugins/loganalyzer)."""
    return Path(__file__).resolve().parents[2]


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}={value} must be <= {maximum}")
    return value


def _float(
    env: Mapping[str, str], name: str, default: float, minimum: float = 0.0, maximum: float | None = None
) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:  # (also NaN)
        raise SettingsError(f"{name}={value} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}={value} must be <= {maximum}")
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
    #: /metrics on 127.0.0.1: a port, 0 for any free one, None for no endpoint
    metrics_port: int | None = DEFAULT_METRICS_PORT
    #: whether CONSUMER_METRICS_PORT chose the port: a taken port chosen by the user stops the
    #: consumer; the default one is only a first guess (several consumers on one host)
    metrics_port_explicit: bool = False
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
    #: how often the consumer re-reads the operators' pattern suppressions (a new one applies
    #: within this many seconds; one that ends stops applying at its end)
    suppression_refresh_seconds: float = 5.0


@dataclass(frozen=True)
class AwsResources:
    """Names of the platform's AWS resources (created by `loganalyzer aws bootstrap`)."""

    s3_bucket: str = "loganalyzer-logs"
    #: key prefix of the daily export: PREFIX/date=YYYY-MM-DD/...
    export_prefix: str = "logs"
    dynamodb_table: str = "anomaly_summaries"
    #: the queue the bucket notifies of new export objects, read by the lambda runner
    lambda_queue: str = "loganalyzer-logs-events"
    lambda_dlq: str = "loganalyzer-logs-events-dlq"
    #: receives of one message before SQS moves it to the dead-letter queue
    lambda_max_receives: int = 3
    #: how long a received message stays hidden: a failed one comes back after this
    lambda_visibility_timeout_seconds: int = 60
    #: the summary function's name and configured memory (deploy/aws/template.yaml: FunctionName,
    #: MemorySize default): what its invocations are billed at
    lambda_function_name: str = "process-daily-logs"
    lambda_memory_mb: int = 1024
    #: where the cost snapshot reads Lambda invocations and durations from: `records` (the local
    #: runner's lambda_invocations table) or `cloudwatch` (AWS/Lambda metrics, in AWS)
    lambda_usage_source: str = "records"
    access_key_id: str | None = None
    secret_access_key: str | None = None


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    consumer: ConsumerSettings = field(default_factory=ConsumerSettings)
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    aws_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    aws: AwsResources = field(default_factory=AwsResources)
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


def _endpoint_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("AWS_ENDPOINT_URL") or None
    if raw is None:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SettingsError(
            f"AWS_ENDPOINT_URL={raw!r} is not an http(s) URL (e.g. http://127.0.0.1:5000); "
            "unset it to use AWS itself"
        )
    return raw


def _name(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,255}", raw):
        raise SettingsError(f"{name}={raw!r} is not a valid AWS resource name (letters, digits, . _ -)")
    return raw


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of `allowed` (the first by default)."""
    raw = (env.get(name) or allowed[0]).strip().lower()
    if raw not in allowed:
        raise SettingsError(f"{name}={raw!r} is not one of {', '.join(allowed)}")
    return raw


def _aws_resources(env: Mapping[str, str]) -> AwsResources:
    return AwsResources(
        s3_bucket=_name(env, "S3_BUCKET", "loganalyzer-logs"),
        export_prefix=(env.get("S3_EXPORT_PREFIX") or "logs").strip("/"),
        dynamodb_table=_name(env, "DYNAMODB_TABLE", "anomaly_summaries"),
        lambda_queue=_name(env, "LAMBDA_QUEUE", "loganalyzer-logs-events"),
        lambda_dlq=_name(env, "LAMBDA_DLQ", "loganalyzer-logs-events-dlq"),
        lambda_max_receives=_int(env, "LAMBDA_MAX_RECEIVES", 3, minimum=1),
        lambda_visibility_timeout_seconds=_int(env, "LAMBDA_VISIBILITY_TIMEOUT_SECONDS", 60, minimum=1),
        lambda_function_name=_name(env, "LAMBDA_FUNCTION_NAME", "process-daily-logs"),
        lambda_memory_mb=_int(env, "LAMBDA_MEMORY_MB", 1024, minimum=128, maximum=10240),
        lambda_usage_source=_choice(env, "LAMBDA_USAGE_SOURCE", ("records", "cloudwatch")),
        access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
        secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
    )


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
        # bounded so that the accepted window stays inside datetime's range (years 1-9999)
        max_age=timedelta(days=_float(env, "LOG_MAX_AGE_DAYS", 30.0, minimum=0.001, maximum=36_500)),
        max_future_skew=timedelta(
            minutes=_float(env, "LOG_MAX_FUTURE_MINUTES", 120.0, maximum=MAX_FUTURE_MINUTES)
        ),
        max_metadata_depth=_int(
            env,
            "LOG_MAX_METADATA_DEPTH",
            DEFAULT_MAX_METADATA_DEPTH,
            minimum=1,
            maximum=MAX_METADATA_DEPTH_LIMIT,
        ),
    )
    metrics_raw = env.get("CONSUMER_METRICS_PORT") or ""
    try:
        metrics_port = (
            parse_port(metrics_raw, "CONSUMER_METRICS_PORT")
            if metrics_raw
            else _int(env, "CONSUMER_METRICS_FIRST_PORT", DEFAULT_METRICS_PORT, minimum=1, maximum=65535)
        )
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
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
            metrics_port=metrics_port,
            metrics_port_explicit=bool(metrics_raw),
            parse_limits=limits,
        ),
        detection=DetectionSettings(
            enabled=_bool(env, "DETECTION_ENABLED", True),
            config_file=Path(env["DETECTION_CONFIG"]) if env.get("DETECTION_CONFIG") else None,
            checkpoint_seconds=_float(env, "DETECTION_CHECKPOINT_SECONDS", 10.0, minimum=0.1),
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or None,
            model_refresh_seconds=_float(env, "MODEL_REFRESH_SECONDS", 30.0, minimum=1.0),
            warm_start_hours=_float(env, "DETECTION_WARM_START_HOURS", 2.0, minimum=0.0),
            suppression_refresh_seconds=_float(env, "SUPPRESSION_REFRESH_SECONDS", 5.0, minimum=0.0),
        ),
        aws_endpoint_url=_endpoint_url(env),
        aws_region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1",
        aws=_aws_resources(env),
        state_dir=Path(state_dir) if state_dir else project_root() / ".state",
    )


def kafka_client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """librdkafka properties shared by the producer and the consumer."""
    return {"bootstrap.servers": kafka.bootstrap_servers, **kafka.extra}

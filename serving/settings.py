"""The API server's configuration: one object, built once in `main()` from the environment.

Why pydantic-settings: every variable is typed and validated with a message naming it, and
tests build the object from keyword arguments instead of patching the environment.
"""

from __future__ import annotations

from typing import Literal

from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loganalyzer.settings import DEFAULT_DATABASE_URL

#: passwords that ship in examples and templates: refused outside the dev profile
PLACEHOLDER_SECRETS = frozenset({"changethis", "changeme", "change-me", "password", "secret", "example"})


class ServingSettings(BaseSettings):
    """Environment variables of `loganalyzer serve` (docs/API.md lists them)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    database_url: str = Field(default=DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL")
    kafka_bootstrap_servers: str | None = Field(default=None, validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_topic: str = Field(default="logs", validation_alias="KAFKA_TOPIC")
    mlflow_tracking_uri: str | None = Field(default=None, validation_alias="MLFLOW_TRACKING_URI")
    model_name: str = Field(default="log-anomaly-detector", validation_alias="MODEL_NAME")
    profile: Literal["dev", "prod"] = Field(default="dev", validation_alias="API_PROFILE")
    #: connections per worker: 4 served 32 concurrent clients best on 2 cores (16 made search p99 worse)
    pool_size: int = Field(default=4, ge=1, le=64, validation_alias="API_POOL_SIZE")
    statement_timeout_ms: int = Field(
        default=5000, ge=100, le=600_000, validation_alias="API_STATEMENT_TIMEOUT_MS"
    )
    #: a log search stops walking after this long and answers the rows found so far with a cursor
    search_budget_ms: int = Field(default=50, ge=1, le=600_000, validation_alias="API_SEARCH_BUDGET_MS")
    #: how long an estimate/forecast is reused: measured usage changes by the day, not the second
    cost_cache_seconds: float = Field(default=60.0, ge=0, validation_alias="API_COST_CACHE_SECONDS")
    #: list pages (anomalies, hourly metrics, patterns) are reused this long per caller and URL
    page_cache_seconds: float = Field(default=2.0, ge=0, validation_alias="API_PAGE_CACHE_SECONDS")
    #: an API key, once verified, is trusted this long (a revocation takes at most this long)
    key_cache_seconds: float = Field(default=10.0, ge=0, validation_alias="API_KEY_CACHE_SECONDS")
    public_url: str = Field(default="http://127.0.0.1:8000", validation_alias="API_PUBLIC_URL")

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> ServingSettings:
        if self.profile != "dev":
            password = conninfo_to_dict(self.database_url).get("password")
            if password is not None and str(password).lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    f"DATABASE_URL uses the placeholder password {password!r}: "
                    "set a real one (placeholders are accepted only with API_PROFILE=dev)"
                )
        return self

"""The API server's configuration: one object, built once in `main()` from the environment.

Why pydantic-settings: every variable is typed and validated with a message naming it, and
tests build the object from keyword arguments instead of patching the environment.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import unquote, urlsplit

from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loganalyzer.settings import DEFAULT_DATABASE_URL

#: passwords that ship in examples and templates: refused outside the dev profile
PLACEHOLDER_SECRETS = frozenset({"", "changethis", "changeme", "change-me", "password", "secret", "example"})


def _password_of(database_url: str) -> str | None:
    """The password in a connection string, "" for `user:@host` (libpq drops an empty one)."""
    if "://" in database_url:
        password = urlsplit(database_url).password
        if password is not None:
            return unquote(password)
    value = conninfo_to_dict(database_url).get("password")
    return None if value is None else str(value)


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
    #: request limits (docs/security.md): larger bodies 413, longer URLs 414, larger headers 431
    max_body_bytes: int = Field(default=1_048_576, ge=1024, validation_alias="API_MAX_BODY_BYTES")
    max_url_bytes: int = Field(default=8192, ge=256, validation_alias="API_MAX_URL_BYTES")
    max_header_bytes: int = Field(default=16384, ge=1024, validation_alias="API_MAX_HEADER_BYTES")
    #: browser origins allowed to call the API, comma-separated; none by default (no CORS headers)
    cors_origins: str = Field(default="", validation_alias="API_CORS_ORIGINS")
    #: requests per second per API key in this process (0: off) and the burst above it
    rate_limit_per_second: float = Field(default=50.0, ge=0, validation_alias="API_RATE_LIMIT_PER_SECOND")
    rate_limit_burst: float = Field(default=200.0, ge=1, validation_alias="API_RATE_LIMIT_BURST")

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> ServingSettings:
        """Outside the dev profile a password that ships in examples, or an empty one, is refused:
        a copied template must not run in production. The value itself is never echoed."""
        if self.profile != "dev":
            password = _password_of(self.database_url)
            if password is not None and password.lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    "DATABASE_URL has an empty or placeholder password: set a real one, or leave it "
                    "out and use a password file (PGPASSFILE); placeholders are accepted only with "
                    "API_PROFILE=dev"
                )
            if "*" in self.cors_origin_list:
                raise ValueError("API_CORS_ORIGINS='*' lets every web page call the API: list the origins")
        return self

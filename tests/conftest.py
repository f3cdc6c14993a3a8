"""Session-wide real services: one Tansu broker per test session; a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import PrivatePostgres, fresh_database, tansu_broker
from tests.up_support import RunningPlatform, platform_with_airflow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    with tansu_broker(ROOT / ".state" / "test-logs") as bootstrap:
        yield bootstrap


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def running_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """The whole platform from `loganalyzer up`, Airflow included, once per session: reuse it in
    any test that needs the running product rather than starting another (~2 GB, minutes)."""
    with platform_with_airflow(tmp_path_factory.mktemp("platform")) as running:
        yield running


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own, for tests that stop, slow or kill the database."""
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.cleanup()

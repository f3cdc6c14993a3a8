"""Session-wide real services: one Tansu broker per test session; a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import fresh_database, tansu_broker

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    with tansu_broker(ROOT / ".state" / "test-logs") as bootstrap:
        yield bootstrap


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url

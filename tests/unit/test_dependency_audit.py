"""`make audit` fails only on fixable advisories and never passes when nothing was audited."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dependency_audit.py"


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dependency_audit", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["dependency_audit"] = module
    spec.loader.exec_module(module)
    return module


def _dep(name: str, *vulns: tuple[str, list[str]]) -> dict[str, Any]:
    return {"name": name, "version": "1.0", "vulns": [{"id": i, "fix_versions": f} for i, f in vulns]}


def test_a_clean_report_passes(audit: ModuleType) -> None:
    code, lines = audit.verdict({"dependencies": [_dep("a"), _dep("b")], "fixes": []})
    assert code == audit.EXIT_OK
    assert lines[-1] == "2 packages audited, 0 fixable vulnerabilities"


def test_a_vulnerability_with_a_fix_fails_and_names_the_upgrade(audit: ModuleType) -> None:
    report = {"dependencies": [_dep("jinja2", ("PYSEC-2019-217", ["2.10.1"])), _dep("b")]}
    code, lines = audit.verdict(report)
    assert code == audit.EXIT_FIXABLE
    assert "FIXABLE jinja2==1.0 PYSEC-2019-217: upgrade to 2.10.1" in lines


def test_a_vulnerability_without_a_fix_is_reported_but_does_not_fail(audit: ModuleType) -> None:
    code, lines = audit.verdict({"dependencies": [_dep("x", ("GHSA-xxxx", []))]})
    assert code == audit.EXIT_OK
    assert "no fix yet x==1.0 GHSA-xxxx" in lines


def test_every_package_skipped_means_not_audited_not_clean(audit: ModuleType) -> None:
    # the shape pip-audit 2.10 prints (exit 0!) when PyPI's per-release JSON API answers 404
    report = {
        "dependencies": [
            {
                "name": "jinja2",
                "skip_reason": "Dependency not found on PyPI and could not be audited: jinja2 (2.10)",
            },
            {"name": "requests", "skip_reason": "Dependency not found on PyPI and could not be audited"},
        ],
        "fixes": [],
    }
    code, lines = audit.verdict(report)
    assert code == audit.EXIT_UNREACHABLE
    assert lines[-1] == "NOT AUDITED: the vulnerability source answered for no package"


def test_an_unreachable_source_is_named_with_the_reason(
    audit: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connection refused
    monkeypatch.setitem(audit.PROBE_URLS, "pypi", f"http://127.0.0.1:{port}/pypi/jinja2/2.10/json")
    ok, why = audit.source_reachable("pypi", timeout=2)
    assert not ok
    assert f"127.0.0.1:{port}" in why and "unreachable" in why

"""Audit the locked environment for known vulnerabilities that have a fix.

Why a wrapper around pip-audit: pip-audit fails on every finding and, when its vulnerability
source cannot be reached, reports each package as "not found" instead of saying the audit did
not happen. This script probes the source first and says plainly when nothing was audited
(exit 3), and fails (exit 1) only on a vulnerability for which a fixed version exists: one
without a fix cannot be acted on by upgrading the lock (docs/security.md).

Usage: dependency_audit.py PIP_AUDIT REQUIREMENTS_FILE  (the Makefile's `audit` target)
Stdlib only: it runs with the interpreter of the tools environment, not the project's .venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

#: a release with a published advisory: the probe checks that the per-version endpoint answers
#: with a `vulnerabilities` list, which is what pip-audit's PyPI source reads
PROBE_URLS = {
    "pypi": "https://pypi.org/pypi/jinja2/2.10/json",
    "osv": "https://api.osv.dev/v1/query",
}
EXIT_OK, EXIT_FIXABLE, EXIT_UNREACHABLE = 0, 1, 3


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    advisory: str
    fix_versions: tuple[str, ...]


def findings(report: dict[str, Any]) -> list[Finding]:
    """Every (package, advisory) pair in pip-audit's JSON report."""
    out = []
    for dep in report.get("dependencies", []):
        for vuln in dep.get("vulns", []):
            out.append(
                Finding(
                    package=str(dep.get("name")),
                    version=str(dep.get("version")),
                    advisory=str(vuln.get("id")),
                    fix_versions=tuple(str(v) for v in vuln.get("fix_versions", [])),
                )
            )
    return out


def unaudited(report: dict[str, Any]) -> list[str]:
    """Packages the source could not answer for (pip-audit's `skip_reason`)."""
    return [str(dep.get("name")) for dep in report.get("dependencies", []) if dep.get("skip_reason")]


def verdict(report: dict[str, Any]) -> tuple[int, list[str]]:
    """Exit code and lines to print: fail only on findings that an upgrade fixes."""
    all_findings = findings(report)
    fixable = [f for f in all_findings if f.fix_versions]
    lines = [
        f"FIXABLE {f.package}=={f.version} {f.advisory}: upgrade to {' or '.join(f.fix_versions)}"
        for f in fixable
    ]
    lines += [f"no fix yet {f.package}=={f.version} {f.advisory}" for f in all_findings if not f.fix_versions]
    skipped = unaudited(report)
    if skipped:
        lines.append(f"not audited (source had no record): {', '.join(sorted(skipped))}")
    dependencies = len(report.get("dependencies", []))
    if dependencies and len(skipped) == dependencies:
        lines.append("NOT AUDITED: the vulnerability source answered for no package")
        return EXIT_UNREACHABLE, lines
    lines.append(f"{dependencies} packages audited, {len(fixable)} fixable vulnerabilities")
    return (EXIT_FIXABLE if fixable else EXIT_OK), lines


def source_reachable(service: str, timeout: float = 10.0) -> tuple[bool, str]:
    """Whether the vulnerability service answers the way pip-audit needs, and why not."""
    url = PROBE_URLS[service]
    try:
        if service == "osv":
            body = json.dumps(
                {"package": {"name": "jinja2", "ecosystem": "PyPI"}, "version": "2.10"}
            ).encode()
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        else:
            request = urllib.request.Request(url)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            document = json.load(response)
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, f"{url} unreachable ({exc})"
    key = "vulns" if service == "osv" else "vulnerabilities"
    if not document.get(key):
        return False, f"{url} answered without the known advisories of jinja2 2.10"
    return True, f"{url} answers"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    pip_audit, requirements = argv[1], argv[2]
    service = None
    for candidate in ("pypi", "osv"):
        ok, why = source_reachable(candidate)
        print(f"audit: vulnerability source {candidate}: {why}")
        if ok:
            service = candidate
            break
    if service is None:
        print(
            "audit: NOT AUDITED: no vulnerability source is reachable from this machine "
            "(PyPI's per-release JSON API and OSV both fail); see docs/security.md"
        )
        return EXIT_UNREACHABLE
    run = subprocess.run(
        [
            pip_audit,
            "-r",
            requirements,
            "--no-deps",
            "--disable-pip",
            "-s",
            service,
            "-f",
            "json",
            "--progress-spinner",
            "off",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(run.stdout)
    except ValueError:
        print(f"audit: pip-audit failed (exit {run.returncode}):\n{run.stderr.strip()}")
        return EXIT_UNREACHABLE
    code, lines = verdict(report)
    for line in lines:
        print(f"audit: {line}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))

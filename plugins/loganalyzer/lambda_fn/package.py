"""Building the deployable zip of `process-daily-logs` (`make lambda-zip`).

What goes in: the entry point `lambda/process_daily_logs.py`, the few loganalyzer modules the
function imports (listed here, so that nothing else rides along), and orjson (the cost engine's
JSON, a 250 KB native wheel built for Linux x86_64 / CPython 3.11, the function's runtime).
What does not: boto3 (in every Python Lambda runtime) and pyarrow. pyarrow alone unzips to
~150 MB; it comes from AWS's managed "AWS SDK for pandas" layer (AWSSDKPandas-Python311), which
ships pyarrow for exactly this (lambda/README.md). The zip itself stays around a megabyte.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from loganalyzer.settings import project_root

#: Lambda's limits for a function's code (with its layers, unzipped).
MAX_ZIPPED = 50 * 1024 * 1024
MAX_UNZIPPED = 250 * 1024 * 1024

ENTRY_POINT = "process_daily_logs.py"
HANDLER = "process_daily_logs.handler"

#: loganalyzer modules the function imports (directly or through a module below).
MODULES = (
    "__init__.py",
    "summaries.py",
    "lambda_fn/__init__.py",
    "lambda_fn/events.py",
    "lambda_fn/handler.py",
    "lambda_fn/process.py",
    "export/__init__.py",
    "export/layout.py",
    "patterns/__init__.py",
    "patterns/align.py",
    "patterns/miner.py",
    "patterns/tokens.py",
    "costs/__init__.py",
    "costs/engine.py",
    "costs/pricebook.py",
    "costs/pricebook.json",
    "costs/usage.py",
)

#: third-party packages bundled (not in the runtime, not in the layer)
BUNDLED = ("orjson",)


@dataclass(frozen=True)
class ZipReport:
    path: Path
    zipped_bytes: int
    unzipped_bytes: int
    entries: tuple[str, ...]


def _site_package(name: str) -> Path:
    import importlib

    module = importlib.import_module(name)
    assert module.__file__ is not None
    return Path(module.__file__).parent


def build_zip(out: Path, root: Path | None = None) -> ZipReport:
    """Write the zip to `out` (deterministic: sorted entries, fixed timestamps)."""
    root = root or project_root()
    files: list[tuple[str, Path]] = [(ENTRY_POINT, root / "lambda" / ENTRY_POINT)]
    package = root / "plugins" / "loganalyzer"
    files += [(f"loganalyzer/{m}", package / m) for m in MODULES]
    for name in BUNDLED:
        base = _site_package(name)
        for p in sorted(base.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                files.append((f"{name}/{p.relative_to(base).as_posix()}", p))
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for arcname, path in sorted(files):
            info = zipfile.ZipInfo(arcname, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, path.read_bytes())
    with zipfile.ZipFile(out) as z:
        unzipped = sum(i.file_size for i in z.infolist())
        names = tuple(z.namelist())
    report = ZipReport(out, out.stat().st_size, unzipped, names)
    if report.zipped_bytes > MAX_ZIPPED or report.unzipped_bytes > MAX_UNZIPPED:
        raise RuntimeError(
            f"{out}: {report.zipped_bytes:,} bytes zipped / {report.unzipped_bytes:,} unzipped "
            f"exceeds Lambda's {MAX_ZIPPED:,} / {MAX_UNZIPPED:,}"
        )
    return report

"""Building the deployable zip of `process-daily-logs` (`make lambda-zip`).

What goes in: the entry point `lambda/process_daily_logs.py`, the few loganalyzer modules the
function imports (listed here, so that nothing else rides along), and orjson (the cost engine's
JSON, a 250 KB native wheel built for Linux x86_64 / CPython 3.11, the function's runtime).
What does not: boto3 (in every Python Lambda runtime) and pyarrow. pyarrow alone unzips to
~150 MB; it comes from AWS's managed "AWS SDK for pandas" layer (AWSSDKPandas-Python311), which
ships pyarrow for exactly this (lambda/README.md). The zip itself stays around a megabyte.

docker compose's LocalStack (its free edition) applies no layers, so it runs a second zip,
`make lambda-zip-localstack`, that bundles pyarrow as well: a wheel for the function's runtime
(python3.11, x86_64, Amazon Linux 2) that uv installs into a folder of its own, zipped beside the
code. Only that zip has pyarrow; the deployable one is unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
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

#: pyarrow for the LocalStack zip. The python3.11 runtime is Amazon Linux 2, glibc 2.26:
#: pyarrow's wheels from 21.0 on are manylinux_2_28 only (glibc 2.28), which it cannot load;
#: 20.0.0 is the last release with manylinux2014 (glibc 2.17) wheels for CPython 3.11 x86_64.
#: It needs no numpy (optional since pyarrow 16), and the runtime has none.
LOCALSTACK_PYARROW = "pyarrow==20.0.0"
#: the wheels' target: what uv calls the function's platform, and its Python
LAMBDA_PLATFORM = "x86_64-manylinux_2_17"
LAMBDA_PYTHON = "3.11"
#: what the function never loads: pyarrow's C++ headers and sources and its tests, uv's lock file
LEFT_OUT = ("pyarrow/include/", "pyarrow/src/", "pyarrow/tests/", "bin/", ".lock")


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


class WheelError(RuntimeError):
    """A dependency for the function's runtime could not be installed."""


def find_uv(root: Path | None = None) -> str:
    """The project's uv (`make setup` puts it in .tools/bin), else one on PATH."""
    local = (root or project_root()) / ".tools" / "bin" / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    if found is None:
        raise WheelError("uv not found: run 'make setup' (it installs .tools/bin/uv)")
    return found


def install_for_lambda(requirement: str, target: Path, uv: str) -> Path:
    """Install `requirement` (a pinned name, or a wheel file's path) as the function's runtime
    needs it, into `target` (emptied first): wheels only, for LAMBDA_PLATFORM and LAMBDA_PYTHON,
    without its dependencies. From uv's cache when it holds the wheel, else from the package
    index: the first build needs the network, later ones do not."""
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    base = [
        uv, "pip", "install", "--quiet", "--target", str(target), "--python", sys.executable,
        "--python-platform", LAMBDA_PLATFORM, "--python-version", LAMBDA_PYTHON,
        "--only-binary", ":all:", "--no-deps", requirement,
    ]  # fmt: skip
    cached = subprocess.run([*base, "--offline"], capture_output=True, text=True)
    if cached.returncode != 0:
        fetched = subprocess.run(base, capture_output=True, text=True)
        if fetched.returncode != 0:
            raise WheelError(
                f"could not install {requirement} for {LAMBDA_PLATFORM} / CPython {LAMBDA_PYTHON} "
                f"(from uv's cache, then the package index):\n{fetched.stderr.strip()}"
            )
    return target


def build_zip(out: Path, root: Path | None = None, extra: Path | None = None) -> ZipReport:
    """Write the zip to `out` (deterministic: sorted entries, fixed timestamps). `extra` is a
    folder of installed packages (install_for_lambda) zipped at the top level beside the code."""
    root = root or project_root()
    files: list[tuple[str, Path]] = [(ENTRY_POINT, root / "lambda" / ENTRY_POINT)]
    package = root / "plugins" / "loganalyzer"
    files += [(f"loganalyzer/{m}", package / m) for m in MODULES]
    for name in BUNDLED:
        base = _site_package(name)
        for p in sorted(base.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                files.append((f"{name}/{p.relative_to(base).as_posix()}", p))
    if extra is not None:
        for p in sorted(extra.rglob("*")):
            arcname = p.relative_to(extra).as_posix()
            if p.is_file() and "__pycache__" not in p.parts and not arcname.startswith(LEFT_OUT):
                files.append((arcname, p))
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for arcname, path in sorted(files):
            info = zipfile.ZipInfo(arcname, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if path.stat().st_mode & 0o111 else 0o644) << 16
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

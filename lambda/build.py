"""`make lambda-zip`: build .state/lambda/process-daily-logs.zip and print its sizes.

`make lambda-zip-localstack` (--localstack): the zip the Compose stack's LocalStack runs,
.state/lambda/process-daily-logs-localstack.zip, with pyarrow bundled (LocalStack's free edition
applies no layers). Its first build fetches the pyarrow wheel from the package index (uv keeps it
in its cache for the next builds); --pyarrow takes a wheel file instead.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from loganalyzer.lambda_fn.package import (  # noqa: E402
    HANDLER,
    LAMBDA_PLATFORM,
    LOCALSTACK_PYARROW,
    MAX_UNZIPPED,
    MAX_ZIPPED,
    WheelError,
    build_zip,
    find_uv,
    install_for_lambda,
)

OUT = ROOT / ".state" / "lambda"
DEPLOYABLE = OUT / "process-daily-logs.zip"
LOCALSTACK = OUT / "process-daily-logs-localstack.zip"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help=f"the zip to write (default {DEPLOYABLE.relative_to(ROOT)})")
    parser.add_argument(
        "--localstack",
        action="store_true",
        help=f"bundle pyarrow for LocalStack (default --out {LOCALSTACK.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--pyarrow",
        default=LOCALSTACK_PYARROW,
        help=f"with --localstack: the requirement or wheel file to bundle (default {LOCALSTACK_PYARROW})",
    )
    args = parser.parse_args()
    out = args.out or (LOCALSTACK if args.localstack else DEPLOYABLE)
    if out.is_dir():  # Docker makes a folder where a file it should mount is missing
        sys.exit(
            f"{out} is a folder: 'docker compose up' ran before the zip was built and Docker created it "
            "in the zip's place; remove it (rmdir, as root if Docker's) and build again"
        )
    with tempfile.TemporaryDirectory(prefix="lambda-packages-") as tmp:
        extra = None
        if args.localstack:
            try:
                extra = install_for_lambda(args.pyarrow, Path(tmp) / "packages", find_uv(ROOT))
            except WheelError as exc:
                sys.exit(str(exc))
        r = build_zip(out, ROOT, extra)
    if args.localstack:
        runs_on = (
            f"runtime python3.11 x86_64 with {args.pyarrow} ({LAMBDA_PLATFORM}) in the zip: for LocalStack"
        )
    else:
        runs_on = "runtime python3.11 x86_64 with the AWSSDKPandas-Python311 layer (pyarrow)"
    print(
        f"{r.path}: {len(r.entries)} files, {r.zipped_bytes / 1e6:.2f} MB zipped "
        f"(limit {MAX_ZIPPED / 2**20:.0f} MiB), {r.unzipped_bytes / 1e6:.2f} MB unzipped "
        f"(limit {MAX_UNZIPPED / 2**20:.0f} MiB with layers); handler {HANDLER}; {runs_on}"
    )


if __name__ == "__main__":
    main()

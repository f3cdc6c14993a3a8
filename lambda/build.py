"""`make lambda-zip`: build .state/lambda/process-daily-logs.zip and print its sizes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from loganalyzer.lambda_fn.package import HANDLER, MAX_UNZIPPED, MAX_ZIPPED, build_zip  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / ".state" / "lambda" / "process-daily-logs.zip")
    args = parser.parse_args()
    r = build_zip(args.out, ROOT)
    print(
        f"{r.path}: {len(r.entries)} files, {r.zipped_bytes / 1e6:.2f} MB zipped "
        f"(limit {MAX_ZIPPED / 2**20:.0f} MiB), {r.unzipped_bytes / 1e6:.2f} MB unzipped "
        f"(limit {MAX_UNZIPPED / 2**20:.0f} MiB with layers); handler {HANDLER}; "
        "runtime python3.11 x86_64 with the AWSSDKPandas-Python311 layer (pyarrow)"
    )


if __name__ == "__main__":
    main()

"""A newcomer's first minutes: `make up` on a fresh clone, timed until anomalies are there.

What it does: clones this repository's HEAD into a temporary folder (no `.venv`, no `.tools`,
no `.state`: what a newcomer has after `git clone`), runs `make up` there with free ports, a
throwaway product database and its own Airflow metadata database, and times from the command's
start, set-up included:
- the end of the set-up (uv and the locked environment installed, the system packages checked);
- the first anomaly row the REST API returns (with the admin key `up` writes);
- the banner (everything, Airflow included, started);
- the first model promoted to @champion.

Nothing is cached by the clone itself, but the machine's uv and pip caches are shared: a machine
that never ran uv downloads the wheels too (about 1-2 minutes more on our network), and the
system packages (`scripts/system-deps.sh`) are usually installed already. The same-run reference
is the set-up alone (`make setup`'s share of the total), so the platform's own start can be read
apart from the download and install time. Target (issue: "a newcomer's first ten minutes"):
anomalies visible within 5 minutes of `make up`.

    .venv/bin/python bench/bench_fresh_clone.py [--timeout 900]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loganalyzer.db.connection import drop_database, ensure_database  # noqa: E402
from loganalyzer.platform.processes import free_port  # noqa: E402
from tests.support import ADMIN_URL  # noqa: E402

TARGET_SECONDS = 300.0
PARTS = ("kafka", "aws", "metrics", "mlflow", "api", "airflow")


def first_anomalies(api: str, key_file: Path) -> int:
    """How many anomaly rows the API's first page holds (0 while the API or its key is not up)."""
    if not key_file.exists():
        return 0
    try:
        answer = httpx.get(
            f"{api}/api/v1/anomalies?limit=5",
            headers={"X-API-Key": key_file.read_text().strip()},
            timeout=5,
        )
    except httpx.HTTPError:
        return 0
    return len(answer.json()["data"]) if answer.status_code == 200 else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    args = ap.parse_args()

    name = f"la_bench_fresh_{uuid.uuid4().hex[:8]}"
    database_url, metadata_db = make_conninfo(ADMIN_URL, dbname=name), f"{name}_airflow"
    ensure_database(database_url)
    ports = {part: free_port() for part in PARTS}
    with tempfile.TemporaryDirectory(prefix="la-fresh-") as tmp:
        clone = Path(tmp) / "smart-log-analyzer"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        head = subprocess.run(
            ["git", "-C", str(clone), "log", "-1", "--format=%h %cs"], capture_output=True, text=True
        ).stdout.strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "AWS_ENDPOINT", "MLFLOW_"))}
        env.update(DATABASE_URL=database_url, LOGANALYZER_AIRFLOW_DB=metadata_db)
        env.pop("VIRTUAL_ENV", None)
        up_args = " ".join(f"--{part}-port {port}" for part, port in ports.items())
        out_path = Path(tmp) / "make-up.out"
        load_before = Path("/proc/loadavg").read_text().split()[:3]
        began = time.monotonic()
        marks: dict[str, float] = {}
        with out_path.open("wb") as out:
            proc = subprocess.Popen(
                ["make", "up", f"UP_ARGS={up_args}"],
                cwd=clone,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            key_file = clone / ".state" / "api-admin-key"
            api = f"http://127.0.0.1:{ports['api']}"
            while time.monotonic() - began < args.timeout and proc.poll() is None:
                elapsed = time.monotonic() - began
                text = out_path.read_text(errors="replace")
                if "setup" not in marks and "loganalyzer up" in text.split("uv sync", 1)[-1]:
                    marks["setup"] = elapsed
                if "anomaly" not in marks and first_anomalies(api, key_file) > 0:
                    marks["anomaly"] = elapsed
                if "banner" not in marks and "Smart Log Analyzer is up" in text:
                    marks["banner"] = elapsed
                if "model" not in marks and "promoted to @champion" in text:
                    marks["model"] = elapsed
                if len(marks) == 4:
                    break
                time.sleep(1.0)
            load_after = Path("/proc/loadavg").read_text().split()[:3]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            drop_database(database_url)
            drop_database(make_conninfo(ADMIN_URL, dbname=metadata_db))
        if len(marks) < 4:  # something did not come: show why
            print(out_path.read_text(errors="replace")[-4000:])

    def at(mark: str) -> str:
        return f"{marks[mark]:.0f} s" if mark in marks else f"not within {args.timeout:.0f} s"

    print(
        f"`make up` on a fresh clone of {head}, "
        f"load average {' '.join(load_before)} -> {' '.join(load_after)}"
    )
    print(f"  reference, set-up alone (uv, the locked environment, system packages): {at('setup')}")
    print(f"  first anomaly through the REST API: {at('anomaly')}")
    print(f"  banner (everything started, Airflow included): {at('banner')}")
    print(f"  first model promoted to @champion: {at('model')}")
    if "anomaly" in marks:
        verdict = "met" if marks["anomaly"] <= TARGET_SECONDS else "NOT met"
        after_setup = marks["anomaly"] - marks.get("setup", 0.0)
        print(
            f"  target: anomalies within {TARGET_SECONDS:.0f} s of `make up`: {verdict}; "
            f"{after_setup:.0f} s after set-up"
        )
    else:
        print("  target: anomalies within 300 s of `make up`: NOT met")


if __name__ == "__main__":
    main()

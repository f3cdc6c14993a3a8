"""Memory of the whole local platform: everything `loganalyzer up` starts, per process, after it settles.

What it does: starts `loganalyzer up` (free ports, a throwaway product database, its own state
folder and Airflow metadata database), waits for the banner, lets the platform run for
`--settle` seconds (generator traffic, consumer, the DAGs' first scheduled runs), then reads
each of up's children with all its descendants from /proc: RSS (resident pages, shared ones
counted in every process) and PSS (shared pages split between the processes sharing them: their
sum is what the platform really holds). Then, as the same-run reference for the Airflow part,
`airflow standalone` with the same Airflow configuration on a fresh metadata database, measured
the same way after the same settle time.

    .venv/bin/python bench/bench_platform_memory.py [--settle 120] [--no-standalone]
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

from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loganalyzer.db.connection import drop_database, ensure_database  # noqa: E402
from loganalyzer.platform.airflow import AirflowSetup, airflow_env, metadata_url_for  # noqa: E402
from loganalyzer.platform.processes import free_port, port_open  # noqa: E402
from tests.support import ADMIN_URL  # noqa: E402

MIB = 1024 * 1024


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out.extend(int(c) for c in (task / "children").read_text().split())
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children(p))
    return out


def rss_pss(pid: int) -> tuple[int, int]:
    """(RSS, PSS) bytes of one process (smaps_rollup), (0, 0) when it is gone."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    except OSError:
        return 0, 0
    return rss, pss


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


LABELS = (
    ("tansu", "Kafka broker (Tansu)"),
    ("moto", "moto (S3/SQS/DynamoDB)"),
    ("mlflow", "MLflow server"),
    ("api-server", "Airflow api-server"),
    ("api_server", "Airflow api-server"),  # its process title once started
    ("airflow scheduler", "Airflow scheduler (+ task processes)"),
    ("dag-processor", "Airflow dag-processor"),
    ("triggerer", "Airflow triggerer"),
    ("airflow standalone", "airflow standalone"),
    (" consume", "consumer"),
    ("lambda-runner", "lambda runner"),
    (" serve", "REST API"),
    (" alerts", "alerts"),
    (" generate", "generator"),
)


def label(cmd: str) -> str:
    for needle, name in LABELS:
        if needle in cmd:
            return name
    return cmd[:60]


def measure(root: int) -> list[tuple[str, int, int, int]]:
    """(label, processes, RSS, PSS) of each child tree of `root`, and of root itself."""
    rows = []
    own = rss_pss(root)
    rows.append(("the supervisor itself", 1, own[0], own[1]))
    for child in children(root):
        procs = descendants(child)
        sums = [rss_pss(p) for p in procs]
        rows.append((label(cmdline(child)), len(procs), sum(r for r, _ in sums), sum(p for _, p in sums)))
    return rows


def show(title: str, rows: list[tuple[str, int, int, int]]) -> tuple[int, int]:
    print(f"\n{title}")
    print(f"  {'process':<40} {'procs':>5} {'RSS MiB':>9} {'PSS MiB':>9}")
    merged: dict[str, list[int]] = {}
    for name, n, rss, pss in rows:
        m = merged.setdefault(name, [0, 0, 0])
        m[0] += n
        m[1] += rss
        m[2] += pss
    for name, (n, rss, pss) in sorted(merged.items(), key=lambda kv: -kv[1][1]):
        print(f"  {name:<40} {n:>5} {rss / MIB:>9.0f} {pss / MIB:>9.0f}")
    total_rss = sum(r[2] for r in rows)
    total_pss = sum(r[3] for r in rows)
    print(f"  {'total':<40} {sum(r[1] for r in rows):>5} {total_rss / MIB:>9.0f} {total_pss / MIB:>9.0f}")
    return total_rss, total_pss


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_text(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{text!r} not seen; see {path}")
        time.sleep(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settle", type=float, default=120.0, help="seconds of running before measuring")
    ap.add_argument("--no-standalone", action="store_true", help="skip the airflow standalone reference")
    ap.add_argument("--standalone-only", action="store_true", help="measure only airflow standalone")
    args = ap.parse_args()

    tag = uuid.uuid4().hex[:8]
    product = make_conninfo(ADMIN_URL, dbname=f"la_bench_mem_{tag}")
    metadata = make_conninfo(ADMIN_URL, dbname=f"la_bench_mem_airflow_{tag}")
    standalone_db = make_conninfo(ADMIN_URL, dbname=f"la_bench_mem_standalone_{tag}")
    ensure_database(product)
    tmp = Path(tempfile.mkdtemp(prefix="la-bench-mem-"))
    ports = {k: free_port() for k in ("kafka", "aws", "metrics", "mlflow", "api", "airflow")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "AWS_ENDPOINT", "MLFLOW_"))}
    env.update(
        DATABASE_URL=product,
        LOGANALYZER_STATE_DIR=str(tmp / "state"),
        LOGANALYZER_AIRFLOW_DB=str(conninfo_to_dict(metadata)["dbname"]),
    )
    out = tmp / "up.out"
    print(f"load average before: {os.getloadavg()}")
    platform = airflow = (0, 0)
    if not args.standalone_only:
        platform, airflow = measure_up(args, env, ports, out)
    if not args.no_standalone:
        measure_standalone(args, tmp, product, standalone_db, airflow)
    if platform[0]:
        print(f"\nwhole platform: RSS {platform[0] / MIB:.0f} MiB, PSS {platform[1] / MIB:.0f} MiB")
    for url in (product, metadata, standalone_db):
        drop_database(url)


def measure_up(
    args: argparse.Namespace, env: dict[str, str], ports: dict[str, int], out: Path
) -> tuple[tuple[int, int], tuple[int, int]]:
    with open(out, "wb") as sink:
        up = subprocess.Popen(
            [sys.executable, "-m", "loganalyzer", "up", *(f"--{k}-port={v}" for k, v in ports.items())],
            env=env,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        t = time.monotonic()
        wait_text(out, "is up", up, 900)
        print(f"up printed its banner after {time.monotonic() - t:.0f} s; settling {args.settle:.0f} s")
        time.sleep(args.settle)
        print(f"load average at the measurement: {os.getloadavg()}")
        platform = show(f"loganalyzer up ({time.strftime('%Y-%m-%d %H:%M')} UTC)", measure(up.pid))
        airflow_rows = [r for r in measure(up.pid) if r[0].startswith("Airflow")]
        airflow = show("of which Airflow (api-server, scheduler, dag-processor)", airflow_rows)
    finally:
        stop(up)
    return platform, airflow


def measure_standalone(
    args: argparse.Namespace, tmp: Path, product: str, standalone_db: str, airflow: tuple[int, int]
) -> None:
    setup = AirflowSetup(
        home=tmp / "standalone",
        port=free_port(),
        metadata_url=metadata_url_for(standalone_db, str(conninfo_to_dict(standalone_db)["dbname"])),
        product_env={"DATABASE_URL": product},
    )
    ensure_database(standalone_db)
    sa_out = tmp / "standalone.out"
    with open(sa_out, "wb") as sink:
        sa = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), "standalone"],
            # standalone starts its components as `airflow ...` found on PATH
            env={
                **os.environ,
                **airflow_env(setup),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            },
            cwd=setup.home,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 900
        while not port_open("127.0.0.1", setup.port):
            if sa.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"airflow standalone did not start; see {sa_out}")
            time.sleep(1)
        time.sleep(args.settle)
        print(f"\nload average at the measurement: {os.getloadavg()}")
        alone = show("same-run reference: airflow standalone (same configuration)", measure(sa.pid))
        if airflow[0]:
            print(
                f"\nAirflow as up runs it: RSS {airflow[0] / MIB:.0f} MiB, PSS {airflow[1] / MIB:.0f} MiB;"
                f" airflow standalone: RSS {alone[0] / MIB:.0f} MiB, PSS {alone[1] / MIB:.0f} MiB"
            )
    finally:
        stop(sa)


if __name__ == "__main__":
    main()

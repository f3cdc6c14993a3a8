"""`loganalyzer up` seeds history before the live traffic: anomalies to look at within minutes,
a first model promoted to @champion, and event time that runs on from history into live traffic
without a hole."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support import count, wait_for
from tests.up_support import launch_up

pytestmark = pytest.mark.integration


# ~2 minutes on a quiet machine; the timeout leaves room for a machine at load average 20
@pytest.mark.timeout(600)
def test_up_seeds_history_finds_its_incidents_and_promotes_a_first_model(
    database_url: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    began = time.monotonic()
    with launch_up(tmp_path, database_url, *("--seed-history", "2h", "--rate", "100")) as up:
        output, state, api, mlflow = up.output, up.state, up.ports["api"], up.ports["mlflow"]
        up.wait_for_banner(300)
        seeded_in = time.monotonic() - began
        key = (state / "api-admin-key").read_text().strip()

        def anomalies() -> list[dict[str, object]]:
            answer = httpx.get(
                f"http://127.0.0.1:{api}/api/v1/anomalies?limit=50", headers={"X-API-Key": key}, timeout=30
            )
            assert answer.status_code == 200, answer.text
            return list(answer.json()["data"])

        # the seeded incidents are found: anomaly rows through the API
        wait_for(lambda: len(anomalies()) > 0, 60, "an anomaly row through the API")
        rows = anomalies()
        print(f"banner after {seeded_in:.0f}s; anomalies: {[(r['type'], r['service']) for r in rows]}")
        # ... and they are the injected incidents (the seed's five, then the live generator's demo
        # incidents), not noise
        truth = [orjson.loads(line) for line in (state / "ground_truth.jsonl").read_bytes().splitlines()]
        assert len(truth) >= 5
        injected = {t["service"] for t in truth}
        assert {r["service"] for r in rows} <= injected, (rows, injected)

        # the first model: trained on the seeded history by the retraining code, and promoted
        wait_for(lambda: "first model" in output().split("is up", 1)[-1], 300, "the first model's line")
        assert "promoted to @champion" in output(), output()[-3000:]
        champion = MlflowClient(f"http://127.0.0.1:{mlflow}").get_model_version_by_alias(
            "log-anomaly-detector", "champion"
        )
        assert champion.tags.get("decision") == "promoted"

        # history and live traffic meet: every minute from the seed's start to the live generator's
        # latest event holds logs (a hole would be a minute without any)
        wait_for(lambda: "records stored:" in output(), 30, "a live status line")
        first = count(database_url, 'SELECT extract(epoch FROM min("timestamp"))::bigint FROM logs')
        last = count(database_url, 'SELECT extract(epoch FROM max("timestamp"))::bigint FROM logs')
        assert last - first > 2 * 3600 - 120, (datetime.fromtimestamp(first), datetime.fromtimestamp(last))
        empty = count(
            database_url,
            "SELECT count(*) FROM generate_series("
            f"date_trunc('minute', to_timestamp({first})), date_trunc('minute', to_timestamp({last})) "
            "- interval '1 minute', interval '1 minute') AS m(minute) WHERE NOT EXISTS (SELECT 1 FROM logs "
            'WHERE "timestamp" >= m.minute AND "timestamp" < m.minute + interval \'1 minute\')',
        )
        assert empty == 0, f"{empty} minute(s) without logs between history and live traffic"
        returncode = up.stop(timeout=60)
    text = output()
    assert returncode == 0, text[-3000:]
    assert "history: " in text and "incident(s) in it" in text

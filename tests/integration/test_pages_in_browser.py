"""The pages a newcomer opens, in a real browser (Debian's headless Chromium), from a running
`loganalyzer up`: the API's docs, Airflow's DAG list, MLflow's registered model. A page fails the
test when it never shows its content or shows an error; the screenshots are the README's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.browser import Browser, PageError, chromium_binary, headless_chromium
from tests.support import wait_for
from tests.up_support import RunningPlatform

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        chromium_binary() is None, reason="chromium missing: scripts/system-deps.sh installs it"
    ),
]
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "img"
DAGS = ("cost_snapshot", "daily_s3_export", "hourly_rollup", "maintenance", "nightly_retrain")
ANOMALY_TYPES = (
    "error_rate_spike",
    "log_volume_spike",
    "log_volume_drop",
    "new_error_pattern",
    "isolation_forest",
)
#: what a broken page says (React error boundaries, server errors, auth failures)
ERRORS = (
    r"Internal Server Error",
    r"Something went wrong",
    r"Traceback",
    r"Failed to fetch",
    r"\b(401|403|404|500|502|503)\b.{0,20}(Unauthorized|Forbidden|Not Found|Error)",
    r"RESOURCE_DOES_NOT_EXIST",
    r"Unexpected Application Error",
)
#: what Swagger UI shows when it cannot load or resolve the OpenAPI document
DOCS_ERRORS = (*ERRORS, r"Failed to load API definition", r"Fetch error", r"Resolver error")

#: Swagger UI driven through its own controls: "Authorize" with a key, then the operation's
#: "Try it out" and "Execute"; answers the live response's status, body and the curl it shows
TRY_OUT_JS = """
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const until = async (find, what) => {
    for (let i = 0; i < 300; i++) { const found = find(); if (found) return found; await sleep(100); }
    throw new Error('Swagger UI never showed ' + what);
  };
  const type = (input, value) => {  // as a keyboard would: React reads the input event
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(input, value);
    input.dispatchEvent(new Event('input', { bubbles: true }));
  };
  document.querySelector('.auth-wrapper .authorize').click();
  type(await until(() => document.querySelector('.modal-ux input'), 'the key field'), __KEY__);
  document.querySelector('.modal-ux button.authorize').click();
  const logout = '.modal-ux button[aria-label="Remove authorization"]';
  await until(() => document.querySelector(logout), 'Authorized');
  document.querySelector('.modal-ux .btn-done').click();
  const summary = [...document.querySelectorAll('.opblock-get .opblock-summary')]
    .find(s => s.querySelector('.opblock-summary-path')?.getAttribute('data-path') === __PATH__);
  summary.querySelector('.opblock-summary-control').click();
  const block = summary.closest('.opblock');
  (await until(() => block.querySelector('.try-out__btn'), 'Try it out')).click();
  (await until(() => block.querySelector('.execute'), 'Execute')).click();
  const live = '.live-responses-table tr.response';
  const status = await until(() => block.querySelector(live + ' .response-col_status'), 'a response');
  const body = block.querySelector(live + ' .response-col_description pre');
  return {
    status: status.innerText.trim(),
    body: body ? body.innerText : '',
    curl: block.querySelector('.curl-command')?.innerText || '',
  };
})()
"""


def swagger_try_out(browser: Browser, path: str, api_key: str) -> dict[str, str]:
    """Call a GET operation from the open /docs page the way a user does, with `api_key`."""
    script = TRY_OUT_JS.replace("__KEY__", json.dumps(api_key)).replace("__PATH__", json.dumps(path))
    answer = browser.call(
        "Runtime.evaluate", session=True, expression=script, returnByValue=True, awaitPromise=True
    )
    if "exceptionDetails" in answer:
        raise PageError(f"/docs: {answer['exceptionDetails'].get('exception', {}).get('description')}")
    return dict(answer["result"]["value"])


def wait_for_first_model(platform: RunningPlatform) -> None:
    """Until `up` reports the first model; fails when it says the model was not trained (the
    model page would then say the model does not exist)."""
    wait_for(lambda: "first model" in platform.output().split("is up", 1)[-1], 300, "the first model", 1.0)
    report = platform.output().split("is up", 1)[-1]
    assert "first model not trained" not in report, report[-2000:]


def airflow_token(platform: RunningPlatform) -> str:
    line = platform.banner_line("Airflow UI/API:")
    password = line.split("password ", 1)[1].split(";", 1)[0]
    answer = httpx.post(
        f"{platform.airflow_url}/auth/token", json={"username": "admin", "password": password}, timeout=30
    )
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["access_token"])


def dag_count(platform: RunningPlatform, token: str) -> int:
    """The DAGs Airflow's API lists; 0 while a busy api-server does not answer within 30 s."""
    try:
        answer = httpx.get(
            f"{platform.airflow_url}/api/v2/dags", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
    except httpx.TimeoutException:
        return 0
    return len(answer.json()["dags"])


# the first test that asks for the session's platform waits for `up` with Airflow (minutes on a
# busy 2-core machine): its setup counts against the test's own timeout
@pytest.mark.timeout(1500)
def test_api_airflow_and_mlflow_pages_render_without_errors(running_platform: RunningPlatform) -> None:
    platform = running_platform
    # the model page needs a model: the first one is trained after seeding
    wait_for_first_model(platform)
    token = airflow_token(platform)
    # the DAGs are parsed by the dag-processor a little after the api-server answers
    wait_for(lambda: dag_count(platform, token) >= len(DAGS), 240, "the DAGs in Airflow's API", 2.0)
    with headless_chromium() as browser:
        # the API as a user's browser gets it with their key: the anomalies the seed's incidents made
        browser.set_headers({"X-API-Key": platform.api_key})
        page = browser.open(
            f"{platform.api_url}/api/v1/anomalies?limit=5", ['"data"', '"type"'], [r'"detail"\s*:']
        )
        assert any(t in page.text for t in ANOMALY_TYPES), page.text[:1000]
        browser.screenshot(SHOTS / "api-anomalies.png")
        browser.set_headers({})

        # the docs as a newcomer uses them: Swagger UI renders the operations from the API's own
        # copy of its script (no CDN), "Authorize" takes the key, and "Try it out" answers with data
        browser.open(
            f"{platform.api_url}/docs",
            ["Smart Log Analyzer API", "OAS 3.1", "/api/v1/anomalies", "Authorize"],
            DOCS_ERRORS,
        )
        browser.screenshot(SHOTS / "api-docs.png")
        answer = swagger_try_out(browser, "/api/v1/anomalies", platform.api_key)
        assert answer["status"] == "200" and '"data"' in answer["body"], answer
        assert f"X-API-Key: {platform.api_key}" in answer["curl"], answer
        redoc = browser.open(
            f"{platform.api_url}/redoc", ["Smart Log Analyzer API", "/api/v1/anomalies"], ERRORS
        )
        assert "Download OpenAPI specification" in redoc.text

        browser.set_cookie(platform.airflow_url, "_token", token)
        dags = browser.open(f"{platform.airflow_url}/dags", list(DAGS), ERRORS, timeout=120)
        assert "Sign in" not in dags.text and "Log in" not in dags.text
        browser.screenshot(SHOTS / "airflow-dags.png")

        model = browser.open(
            f"{platform.mlflow_url}/#/models/log-anomaly-detector",
            ["log-anomaly-detector", "Version 1"],
            ERRORS,
        )
        assert "champion" in model.text
        browser.screenshot(SHOTS / "mlflow-model.png")
    for name in ("api-anomalies", "api-docs", "airflow-dags", "mlflow-model"):
        size = (SHOTS / f"{name}.png").stat().st_size
        assert 10_000 < size < 1_500_000, (name, size)


@pytest.mark.timeout(1500)
def test_banner_commands_answer(running_platform: RunningPlatform) -> None:
    """The banner's one command per address works as printed."""
    platform = running_platform
    for prefix, expect in (
        ("REST API docs:", '"data"'),
        ("Airflow UI/API:", "nightly_retrain"),
        ("consumer metrics:", "loganalyzer_events_written_total"),
    ):
        command = platform.try_after(prefix)
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert done.returncode == 0 and expect in done.stdout, (
            prefix,
            command,
            done.stdout[-1500:],
            done.stderr,
        )
    wait_for_first_model(platform)
    mlflow = platform.output().splitlines()
    command = platform.try_after("MLflow UI/registry:")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert '"champion"' in done.stdout, (command, done.stdout, mlflow[-5:])

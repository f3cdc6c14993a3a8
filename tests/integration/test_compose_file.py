"""docker-compose.yml is a valid Compose file for the whole platform, checked without a Docker engine.

No engine runs on our machines and the `docker compose` plugin is not packaged: Debian's
docker-compose (1.29, installed by scripts/system-deps.sh) resolves the file as `up` would
(`config`: interpolation, anchors, merge keys, its own validation), and the Compose
Specification's JSON schema that package ships checks every key and type, before and after
interpolation. What no schema knows is pinned below: every secret must be given, every service
has what it needs to start in order, and what the file mounts or builds exists in the repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
#: the Compose Specification's schema, as Debian's docker-compose package ships it
SPEC = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
SERVICES = {
    "postgres",
    "kafka",
    "localstack",
    "mlflow",
    "grafana",
    "migrate",
    "consumer",
    "api",
    "generator",
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
}
ONE_SHOT = {"migrate", "airflow-init"}
SECRETS = (
    "POSTGRES_PASSWORD",
    "CONSUMER_PG_PASSWORD",
    "API_PG_PASSWORD",
    "AIRFLOW_PG_PASSWORD",
    "ALERTS_PG_PASSWORD",
    "GRAFANA_PG_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
)


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("Debian's docker-compose is not installed (scripts/system-deps.sh installs it as root)")
    return exe


def _config(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # only PATH and HOME: a developer's own POSTGRES_PASSWORD etc. must not satisfy the file
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [_docker_compose(), "--file", str(COMPOSE), "--env-file", str(env_file), "config", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _raw() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def _spec_errors(doc: dict[str, Any]) -> list[str]:
    if not SPEC.exists():
        pytest.skip(f"no Compose Specification schema at {SPEC} (Debian's docker-compose package)")
    schema = json.loads(SPEC.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]


def _filled_env(folder: Path, leave_out: str | None = None) -> Path:
    """.env.example with every secret filled in, as a user's .env (but `leave_out`)."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        key = line.split("=", 1)[0]
        if key in SECRETS:
            assert line == f"{key}=", f".env.example must leave {key} empty, not {line!r}"
            if key == leave_out:
                continue
            line = f"{key}=test-{key.lower()}"
        lines.append(line)
    env_file = folder / ".env"
    env_file.write_text("\n".join(lines) + "\n")
    return env_file


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The file as `docker compose up` would see it with a filled-in copy of .env.example."""
    result = _config(_filled_env(tmp_path_factory.mktemp("env")))
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return dict(yaml.safe_load(result.stdout))


def test_docker_compose_accepts_the_file_once_the_secrets_are_set(tmp_path: Path) -> None:
    result = _config(_filled_env(tmp_path), "-q")
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}"


def test_an_unedited_copy_of_the_example_env_is_refused() -> None:
    result = _config(ENV_EXAMPLE, "-q")
    assert result.returncode != 0, "compose would start with empty passwords"
    assert re.search(r"set \w+ in \.env", result.stderr), result.stderr


@pytest.mark.parametrize("secret", SECRETS)
def test_a_missing_secret_stops_compose_naming_it(tmp_path: Path, secret: str) -> None:
    result = _config(_filled_env(tmp_path, leave_out=secret), "-q")
    assert result.returncode != 0, f"compose started without {secret}"
    assert f"set {secret} in .env" in result.stderr


def test_the_file_matches_the_compose_specification_schema() -> None:
    assert _spec_errors(_raw()) == []


def test_the_resolved_file_matches_the_compose_specification_schema(resolved: dict[str, Any]) -> None:
    assert _spec_errors(resolved) == []


def test_the_schema_check_catches_a_misspelled_key() -> None:
    doc = _raw()
    doc["services"]["api"]["healthcheck"]["intervall"] = "5s"
    doc["services"]["kafka"]["restart"] = ["always"]
    errors = _spec_errors(doc)
    assert any("intervall" in e for e in errors), errors
    assert any(e.startswith("services/kafka/restart") for e in errors), errors


def test_every_part_of_the_platform_is_a_service(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == SERVICES


def test_services_start_in_order_and_say_when_they_are_healthy(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, svc in services.items():
        if name not in ONE_SHOT and name != "generator":
            assert "healthcheck" in svc, f"{name} has no healthcheck"
        for dep, how in svc.get("depends_on", {}).items():
            condition = how.get("condition")
            expected = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert condition == expected, f"{name} waits for {dep} with {condition!r}, not {expected!r}"
            assert dep in services
    for name in ("consumer", "api", "airflow-scheduler"):
        assert "migrate" in services[name]["depends_on"] or "airflow-init" in services[name]["depends_on"]
    assert services["consumer"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["airflow-api-server"]["depends_on"]["airflow-init"]["condition"] == (
        "service_completed_successfully"
    )


def test_secrets_come_only_from_the_environment() -> None:
    text = COMPOSE.read_text()
    for secret in SECRETS:
        uses = re.findall(r"\$\{" + secret + r"(:?[?-])?[^}]*\}", text)
        assert uses, f"{secret} is not used"
        assert all(u == ":?" for u in uses), f"{secret} must be required (${{{secret}:?...}}) everywhere"
    for name, svc in _raw()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|FERNET", key) and not key.endswith("_FILE"):
                assert "${" in str(value), f"{name}: {key} is written in the file"


def test_images_are_pinned_and_ports_stay_on_loopback(resolved: dict[str, Any]) -> None:
    for name, svc in resolved["services"].items():
        if "build" not in svc:
            image = svc["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), (
                f"{name}: {image} is not pinned"
            )
        for port in svc.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else port.split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond this machine"


def test_the_airflow_services_run_the_local_executor_on_postgres(resolved: dict[str, Any]) -> None:
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-init"):
        env = resolved["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    commands = {n: resolved["services"][n].get("command") for n in resolved["services"]}
    assert commands["airflow-api-server"] == ["api-server"]
    assert commands["airflow-scheduler"] == ["scheduler"]
    assert commands["airflow-dag-processor"] == ["dag-processor"]
    assert "airflow db migrate" in "".join(commands["airflow-init"])


def test_what_the_file_mounts_and_builds_is_in_the_repository() -> None:
    raw = _raw()
    for name, svc in raw["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./") and "${" not in source:
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.MULTILINE))
    for name, svc in raw["services"].items():
        if "build" in svc:
            assert svc["build"]["target"] in stages, f"{name} builds target {svc['build']['target']!r}"
    for source in re.findall(r"^COPY (?:--chown=\S+ )?(\S+/) ", dockerfile, re.MULTILINE):
        assert (ROOT / source).is_dir(), f"the Dockerfile copies {source}, which does not exist"
    assert "uv sync --locked" in dockerfile, "the image must install exactly the lock"


def test_grafana_is_provisioned_from_the_repository(resolved: dict[str, Any]) -> None:
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/provider.yaml").read_text())
    datasource = yaml.safe_load((ROOT / "grafana/provisioning/datasources/postgres.yaml").read_text())
    grafana = _raw()["services"]["grafana"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert f"./grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in grafana["volumes"]
    # every GRAFANA_PG_* the data source file expands is given to the container
    wanted = set(re.findall(r"\$\{(GRAFANA_PG_\w+)\}", json.dumps(datasource)))
    assert wanted and wanted <= set(resolved["services"]["grafana"]["environment"])


def test_the_localstack_init_script_is_valid_bash_and_wires_the_real_lambda() -> None:
    script = ROOT / "deploy/localstack/init/ready.d/10-platform.sh"
    assert os.access(script, os.X_OK), "LocalStack runs only executable init scripts"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = script.read_text()
    assert "lambda create-function" in text and "put-bucket-notification-configuration" in text
    assert "s3:ObjectCreated:*" in text
    localstack = _raw()["services"]["localstack"]
    assert set(localstack["environment"]["SERVICES"].split(",")) == {"s3", "lambda", "dynamodb", "sqs"}
    # ready only when the script succeeded: LocalStack calls a stage "completed" after a failed script too
    assert '\\"state\\":\\"SUCCESSFUL\\"' in json.dumps(localstack["healthcheck"]["test"])


def test_the_localstack_function_is_configured_as_the_template_deploys_it() -> None:
    """Runtime, architecture, memory and timeout as deploy/aws/template.yaml's defaults; no layer
    (LocalStack's free edition applies none), so pyarrow must be in the zip, which the script checks."""
    from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]

    template = cfn_yaml.load(str(ROOT / "deploy/aws/template.yaml"))
    params = template["Parameters"]
    fn = template["Resources"]["ProcessDailyLogs"]["Properties"]
    text = (ROOT / "deploy/localstack/init/ready.d/10-platform.sh").read_text()
    create = re.search(r"awslocal lambda create-function (?:.*\\\n)*.*\n", text)
    assert create, "no create-function command"
    command = create.group(0)

    def option(name: str) -> str:
        found = re.findall(rf"--{name} (\S+)", command)
        assert len(found) == 1, f"--{name} given {len(found)} times"
        return found[0]

    assert option("runtime") == fn["Runtime"] == "python3.11"
    assert option("architectures") == params["Architecture"]["Default"]
    assert int(option("memory-size")) == params["MemorySize"]["Default"]
    assert int(option("timeout")) == params["Timeout"]["Default"]
    assert option("handler") == '"$HANDLER"'
    assert f"HANDLER=${{LAMBDA_HANDLER:-{params['Handler']['Default']}}}" in text
    assert "--layers" not in command
    assert "pyarrow/__init__.py" in text, "the script must refuse a zip without pyarrow"


def _lambda_build() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("lambda_build", ROOT / "lambda" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compose_mounts_the_zip_that_make_lambda_zip_localstack_writes(resolved: dict[str, Any]) -> None:
    build = _lambda_build()
    written = build.LOCALSTACK.relative_to(ROOT).as_posix()
    assert written == ".state/lambda/process-daily-logs-localstack.zip"
    assert build.DEPLOYABLE != build.LOCALSTACK
    # .env.example, the file's default, and what the resolved file mounts
    assert f"LAMBDA_ZIP=./{written}" in ENV_EXAMPLE.read_text().splitlines()
    raw_volumes = _raw()["services"]["localstack"]["volumes"]
    assert f"${{LAMBDA_ZIP:-./{written}}}:/opt/code/process-daily-logs.zip:ro" in raw_volumes
    mounted = [v for v in resolved["services"]["localstack"]["volumes"] if "/opt/code/" in str(v)]
    assert [str(v).split(":", 1)[0] for v in mounted] == [str(ROOT / written)]
    # the Makefile's target builds it, and the compose file and the init script name that target
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(
        r"^lambda-zip-localstack:.*\n\t\$\(PY\) lambda/build.py --localstack$", makefile, re.MULTILINE
    )
    assert "make lambda-zip-localstack" in COMPOSE.read_text()
    assert (
        "make lambda-zip-localstack" in (ROOT / "deploy/localstack/init/ready.d/10-platform.sh").read_text()
    )


def test_each_service_connects_to_the_platform_database_as_its_own_user(resolved: dict[str, Any]) -> None:
    """The owner (postgres) only migrates and creates the users; Airflow's own metadata database
    is Airflow's business and keeps it."""
    services = resolved["services"]

    def user_of(name: str, key: str = "DATABASE_URL") -> str | None:
        url = (services[name].get("environment") or {}).get(key)
        return re.sub(r"^\w+://([^:@]+).*$", r"\1", url) if url else None

    assert user_of("migrate") == "postgres"
    assert user_of("consumer") == "loganalyzer_consumer_user"
    assert user_of("api") == "loganalyzer_api_user"
    assert user_of("generator") is None
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
        assert user_of(name) == "loganalyzer_airflow_user"
        assert user_of(name, "AIRFLOW_CONN_LOGANALYZER_DB") == "loganalyzer_airflow_user"
    assert services["grafana"]["environment"]["GRAFANA_PG_USER"] == "loganalyzer_grafana_user"
    assert services["migrate"]["command"] == ["loganalyzer db migrate && loganalyzer db users"]
    users_env = services["migrate"]["environment"]
    assert {k for k in users_env if k.startswith("LOGANALYZER_DB_PASSWORD_")} == {
        f"LOGANALYZER_DB_PASSWORD_{p}" for p in ("CONSUMER", "API", "GRAFANA", "AIRFLOW", "ALERTS")
    }

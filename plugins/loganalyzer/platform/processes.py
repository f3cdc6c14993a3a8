"""Starting, watching and stopping child processes: a tiny supervisor for `loganalyzer up`.

Why not a process manager package: `up` must run on a fresh machine with only the project's own
dependencies, and it supervises five processes at most. Each child gets its own process group, a
log file under the state folder, a readiness check (a TCP port or a predicate), and a restart with
backoff if it dies; stop() terminates in reverse start order, SIGTERM first, SIGKILL after a grace
period, so that Ctrl-C never leaves an orphan behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    ready_port: int | None = None
    ready_check: Callable[[], bool] | None = None
    ready_timeout: float = 60.0
    #: restart when it exits unexpectedly (the generator with a --count does not want that)
    restart: bool = True
    cwd: Path | None = None


@dataclass
class Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes]
    log_path: Path
    restarts: int = 0
    next_restart_at: float = 0.0


class Supervisor:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def _spawn(self, spec: ChildSpec) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{spec.name}.log"
        out = open(log_path, "ab")  # noqa: SIM115  # owned by the child for its lifetime
        env = {**os.environ, **spec.env}
        return subprocess.Popen(
            list(spec.argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=spec.cwd,
            start_new_session=True,
        )

    def start(self, spec: ChildSpec) -> Child:
        proc = self._spawn(spec)
        child = Child(spec, proc, self.log_dir / f"{spec.name}.log")
        self.children.append(child)
        self._wait_ready(child)
        return child

    def _wait_ready(self, child: Child) -> None:
        spec = child.spec
        if spec.ready_port is None and spec.ready_check is None:
            return
        deadline = time.monotonic() + spec.ready_timeout
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise RuntimeError(
                    f"{spec.name} exited with code {child.proc.returncode} while starting; "
                    f"see {child.log_path}"
                )
            if spec.ready_port is not None and port_open("127.0.0.1", spec.ready_port):
                return
            if spec.ready_check is not None and spec.ready_check():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{spec.name} was not ready after {spec.ready_timeout:.0f}s; see {child.log_path}")

    def poll(self) -> list[str]:
        """Restart children that died (with backoff). Returns human-readable notes of what happened."""
        notes: list[str] = []
        now = time.monotonic()
        for child in self.children:
            code = child.proc.poll()
            if code is None:
                continue
            if not child.spec.restart:
                continue
            if child.next_restart_at == 0.0:
                delay = min(30.0, 2.0 ** min(child.restarts, 5))
                child.next_restart_at = now + delay
                notes.append(f"{child.spec.name} exited with code {code}; restarting in {delay:.0f}s")
            elif now >= child.next_restart_at:
                child.restarts += 1
                child.next_restart_at = 0.0
                child.proc = self._spawn(child.spec)
                notes.append(f"{child.spec.name} restarted (restart #{child.restarts})")
        return notes

    def stop(self, grace: float = 15.0) -> None:
        for child in reversed(self.children):
            self._terminate(child, grace)

    @staticmethod
    def _terminate(child: Child, grace: float) -> None:
        proc = child.proc
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs: killing it", child.spec.name, grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

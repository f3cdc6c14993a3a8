"""Debian's Chromium, headless, driven over the DevTools protocol: open a page as a user would,
wait until its text shows what it should, and take a screenshot.

Why the protocol and not `chromium --screenshot --dump-dom`: the Airflow and MLflow UIs are
single-page apps that fetch their content after the first paint, and Airflow's needs its login
cookie; the protocol sets the cookie, waits for the text itself instead of guessing a virtual-time
budget, and reads the rendered text (`document.body.innerText`). The client is `websockets`
(already in the lock, through uvicorn); Playwright's own browser download cannot be fetched here.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class PageError(AssertionError):
    """A page that did not show what it should, or showed an error."""


@dataclass
class PageText:
    url: str
    text: str


class Browser:
    """One headless Chromium and one tab, over the browser-level DevTools connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Network.enable", session=True)

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        doc: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session:
            doc["sessionId"] = self._session
        self._ws.send(json.dumps(doc))
        while True:
            answer = json.loads(self._ws.recv(timeout=60))
            if answer.get("id") == msg_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return dict(answer.get("result", {}))

    def set_cookie(self, url: str, name: str, value: str) -> None:
        self.call("Network.setCookie", session=True, url=url, name=name, value=value, path="/")

    def set_headers(self, headers: dict[str, str]) -> None:
        """Headers sent with every request from now on (an API key, as curl would send it)."""
        self.call("Network.setExtraHTTPHeaders", session=True, headers=headers)

    def evaluate(self, expression: str) -> Any:
        """A JavaScript expression's value in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True
        )
        return result.get("result", {}).get("value")

    def text(self) -> str:
        result = self.call(
            "Runtime.evaluate",
            session=True,
            expression="document.body ? document.body.innerText : ''",
            returnByValue=True,
        )
        return str(result.get("result", {}).get("value") or "")

    def open(
        self,
        url: str,
        expect: Sequence[str],
        errors: Sequence[str],
        timeout: float = 60.0,
        settle: float = 1.5,
    ) -> PageText:
        """Navigate, wait until every `expect` text shows (then `settle` seconds for the rest of the
        page), and fail when any `errors` pattern (a regular expression) shows or `expect` never does."""
        self.call("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(e in text for e in expect):
                break
            time.sleep(0.5)
        else:
            missing = [e for e in expect if e not in text]
            raise PageError(f"{url} never showed {missing} within {timeout:.0f}s; its text:\n{text[:2000]}")
        time.sleep(settle)
        text = self.text()
        for pattern in errors:
            found = re.search(pattern, text)
            if found:
                raise PageError(f"{url} shows an error ({found.group(0)!r}); its text:\n{text[:2000]}")
        return PageText(url, text)

    def screenshot(self, path: Path) -> int:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        raw = base64.b64decode(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        return len(raw)


@contextmanager
def headless_chromium(width: int = 1280, height: int = 800) -> Iterator[Browser]:
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("chromium is not installed (scripts/system-deps.sh installs it)")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    log_path = Path(profile) / "chromium.log"
    log = open(log_path, "wb")  # noqa: SIM115  # chromium's stderr for its lifetime
    proc = subprocess.Popen(
        [
            binary,
            "--headless=new",
            "--no-sandbox",  # root in a container: the sandbox cannot start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,  # read back for the DevTools address; a pipe nobody drains would block it
    )
    try:
        ws_url = None
        deadline = time.monotonic() + 60
        while ws_url is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"DevTools listening on (ws://\S+)", log_path.read_text(errors="replace"))
            ws_url = found.group(1) if found else None
            time.sleep(0.1)
        if ws_url is None:
            raise RuntimeError(f"chromium did not open its DevTools endpoint: {log_path.read_text()[-2000:]}")
        with connect(ws_url, max_size=64 * 1024 * 1024) as ws:
            yield Browser(ws)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)

"""The banner lists Grafana's address only when GRAFANA_URL answers Grafana's health check."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from loganalyzer.platform.processes import free_port
from loganalyzer.platform.up import _grafana_lines


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path == "/api/health"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"database": "ok"}' if ok else b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def grafana_like() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_an_answering_grafana_is_listed_with_a_command(grafana_like: str) -> None:
    lines = _grafana_lines(grafana_like + "/")
    assert lines[0].startswith("Grafana:") and f"{grafana_like}/d/loganalyzer-overview" in lines[0]
    assert lines[1].strip() == f"try:               curl -s {grafana_like}/api/health"


def test_a_silent_grafana_is_named_as_not_answering() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    (line,) = _grafana_lines(url)
    assert url in line and "does not answer" in line


def test_without_grafana_url_the_dashboards_folder_is_named() -> None:
    (line,) = _grafana_lines("")
    assert "grafana/" in line and "GRAFANA_URL" in line

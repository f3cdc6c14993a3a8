"""The API's docs pages work without internet access: /docs and /redoc load every script, style
and icon from the API itself, and those files are there. FastAPI's defaults load them from a CDN,
which left /docs blank on machines that cannot reach it. The app is built without its database:
these routes never touch it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from serving.main import create_app
from serving.settings import ServingSettings


@pytest.fixture(scope="module")
def client() -> TestClient:
    # no `with`: the lifespan (the database pool) is not started
    return TestClient(create_app(ServingSettings(database_url="postgresql://nobody@127.0.0.1:1/none")))


def referenced_urls(html: str) -> list[str]:
    """Every address the page loads or links: src=, href=, and JavaScript string literals."""
    attributes = re.findall(r"""\b(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""", html)
    literals = re.findall(r"""["']((?:https?:)?//[^"']+)["']""", html)
    return attributes + literals


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_reference_no_other_host(client: TestClient, page: str) -> None:
    answer = client.get(page)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    urls = referenced_urls(answer.text)
    assert any(u.endswith(".js") for u in urls), urls  # the check saw the page's script
    external = [u for u in urls if urlsplit(u).netloc]
    assert external == [], external
    assert "cdn.jsdelivr.net" not in answer.text and "fonts.googleapis.com" not in answer.text
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 0, (page, url, asset.status_code)


def test_swagger_ui_is_version_5_which_reads_openapi_3_1(client: TestClient) -> None:
    # FastAPI emits OpenAPI 3.1; Swagger UI 4 and earlier cannot render it
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    script = next(u for u in referenced_urls(client.get("/docs").text) if u.endswith(".js"))
    found = re.search(r'PACKAGE_VERSION:"(\d+)\.', client.get(script).text)
    assert found is not None and int(found.group(1)) >= 5


def test_swagger_ui_sends_nothing_to_the_validator_service(client: TestClient) -> None:
    # its default shows a badge fetched from validator.swagger.io with the schema's address
    assert '"validatorUrl": null' in client.get("/docs").text


def test_the_schema_declares_the_api_key_so_authorize_sends_it(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "X-API-Key"}.items() <= next(
        iter(schemes.values())
    ).items()
    name = next(iter(schemes))
    anomalies = schema["paths"]["/api/v1/anomalies"]["get"]
    assert {name: []} in anomalies["security"]

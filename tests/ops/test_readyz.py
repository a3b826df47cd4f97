"""/readyz: what a load balancer asks before sending traffic. No login, no secrets."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from dropyard.app import Dropyard, build
from dropyard.settings import Settings
from dropyard.web.api.app import create_app
from tests.ops.conftest import closed_port
from tests.support import RunningServer


def _readyz(app: Dropyard) -> httpx.Response:
    with TestClient(create_app(app)) as client:
        return client.get("/readyz")


def test_ready_when_database_storage_and_queue_answer(app: Dropyard) -> None:
    answer = _readyz(app)
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ready",
        "checks": {"database": "ok", "storage": "ok", "queue": "ok"},
    }


def test_ready_over_http_on_a_running_server(server: RunningServer) -> None:
    answer = httpx.get(f"http://127.0.0.1:{server.ports['web']}/readyz", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["status"] == "ready"


def test_not_ready_without_the_database_and_says_nothing_secret(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://dropyard:hunter2@127.0.0.1:{closed_port()}/nowhere"
    app = build(Settings(data_dir=tmp_path / "data", database_url=url))
    try:
        answer = _readyz(app)
    finally:
        app.close()
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"].startswith("failed: ")
    assert body["checks"]["storage"] == "ok"
    assert body["checks"]["queue"] == "ok"
    assert "hunter2" not in answer.text
    assert "127.0.0.1" not in answer.text
    assert "Traceback" not in answer.text


def test_not_ready_when_redis_does_not_answer(tmp_path: Path, database_url: str) -> None:
    redis_url = f"redis://:hunter2@127.0.0.1:{closed_port()}/0"
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, redis_url=redis_url)
    app = build(settings)
    try:
        answer = _readyz(app)
    finally:
        app.close()
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["queue"].startswith("failed: ")
    assert "hunter2" not in answer.text

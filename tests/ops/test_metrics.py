"""/metrics: Prometheus text, counted where things happen, behind a token when one is set."""

from __future__ import annotations

import socket
import time

import httpx
import paramiko
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from dropyard.app import Dropyard
from dropyard.files.models import File
from dropyard.files.processing import FINAL_INBOUND
from dropyard.web.api.app import create_app
from tests.ops.conftest import METRICS_TOKEN
from tests.support import DropBox, RunningServer, drop_box

NAMES = (
    "dropyard_logins_total",
    "dropyard_transfers_total",
    "dropyard_transfer_bytes_total",
    "dropyard_files",
    "dropyard_job_seconds_bucket",
    "dropyard_job_failures_total",
    "dropyard_queue_depth",
)
CSV = (
    b"CampaignId,ActionTrackerId,EventDate,OrderId,ClickId,CurrencyCode,Amount\n"
    b"1001,5001,2026-11-20T10:15:00Z,ORD-1,clk-1,USD,59.90\n"
)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(server: RunningServer, *, port: str = "web") -> Samples:
    answer = httpx.get(
        f"http://127.0.0.1:{server.ports[port]}/metrics",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


def upload(server: RunningServer, box: DropBox, name: str, data: bytes) -> None:
    sock = socket.create_connection(("127.0.0.1", server.ports["sftp"]))
    transport = paramiko.Transport(sock)
    try:
        transport.connect(username=box.login, password=box.password)
        client = paramiko.SFTPClient.from_transport(transport)
        assert client is not None
        with client.open(f"/{box.folder}/{name}", "wb") as handle:
            handle.write(data)
        client.close()
    finally:
        transport.close()


def wait_processed(server: RunningServer, connection_id: int, timeout: float = 30) -> File:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.app.sessions() as session:
            found = session.scalars(
                select(File).where(File.connection_id == connection_id, File.source == "sftp")
            ).first()
        if found is not None and found.state in FINAL_INBOUND:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no processed file within {timeout}s:\n{server.log()[-3000:]}")


def test_an_sftp_login_and_upload_are_counted(server: RunningServer) -> None:
    box = drop_box(server.app)
    before = scrape(server)
    upload(server, box, "conversions.csv", CSV)
    wait_processed(server, box.connection_id)
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("dropyard_logins_total", protocol="sftp", outcome="success") == 1
    ok = {"protocol": "sftp", "direction": "upload"}
    assert delta("dropyard_transfers_total", **ok, outcome="ok") == 1
    assert delta("dropyard_transfer_bytes_total", **ok) == len(CSV)
    assert delta("dropyard_job_seconds_count", task="process_file") >= 1
    assert value(after, "dropyard_files", direction="inbound", state="dead") == 0
    assert sum(v for (n, _), v in after.items() if n == "dropyard_files") >= 1
    assert ("dropyard_queue_depth", frozenset()) in after


def test_a_wrong_password_is_counted_as_a_failure(server: RunningServer) -> None:
    box = drop_box(server.app)
    before = scrape(server)
    transport = paramiko.Transport(socket.create_connection(("127.0.0.1", server.ports["sftp"])))
    try:
        transport.connect(username=box.login, password="not-the-password")
    except paramiko.AuthenticationException:
        pass
    finally:
        transport.close()
    after = scrape(server)
    labels = {"protocol": "sftp", "outcome": "failure"}
    assert value(after, "dropyard_logins_total", **labels) == (
        value(before, "dropyard_logins_total", **labels) + 1
    )


def test_every_metric_is_exposed_on_the_web_and_metrics_ports(server: RunningServer) -> None:
    for port in ("web", "metrics"):
        names = {name for name, _ in scrape(server, port=port)}
        # Labelled counters appear once used; their families are always described.
        text = httpx.get(
            f"http://127.0.0.1:{server.ports[port]}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=10,
        ).text
        for name in NAMES:
            assert f"# HELP {name.removesuffix('_bucket')} " in text, (port, name)
        assert "dropyard_files" in names
        assert "dropyard_queue_depth" in names


def test_the_metrics_token_is_required_when_set(server: RunningServer) -> None:
    for port in ("web", "metrics"):
        url = f"http://127.0.0.1:{server.ports[port]}/metrics"
        assert httpx.get(url, timeout=10).status_code == 401
        wrong = httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        assert "dropyard_" not in wrong.text
        right = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
        assert right.status_code == 200


def test_metrics_need_no_token_by_default(app: Dropyard) -> None:
    with TestClient(create_app(app)) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200
    samples = parse(answer.text)
    assert ("dropyard_queue_depth", frozenset()) in samples
    assert value(samples, "dropyard_files", direction="inbound", state="received") == 0

"""The whole loop with real clients: upload over OpenSSH `sftp`, the embedded worker
imports, the summary appears in the same folder with the exact counts."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from dropyard.files.models import File
from dropyard.ledger.models import Action
from tests.gateway.sftp_client import sftp_batch
from tests.support import OPERATOR, DropBox, RunningServer, drop_box, unique


def _brand_with_campaign(server: RunningServer) -> tuple[int, int, int]:
    app = server.app
    account = app.accounts.create_account(OPERATOR, name=unique("Brand"), kind="brand")
    campaign_id = 10_000 + account.id
    tracker_id = 50_000 + account.id
    partner_id = 20_000 + account.id
    app.ledger.create_campaign(
        OPERATOR,
        account=account.id,
        campaign_id=campaign_id,
        name="US",
        currency="USD",
        payout_rate="0.08",
        trackers=[tracker_id],
        lock_days=30,
    )
    app.ledger.create_partner(OPERATOR, partner_id=partner_id, name="Blog One")
    app.ledger.join(OPERATOR, partner_id=partner_id, campaign_id=campaign_id)
    return account.id, campaign_id, tracker_id


def _wait_for(path_check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path_check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def _fetch(server: RunningServer, box: DropBox, name: str, tmp_path: Path) -> bytes | None:
    result = sftp_batch(
        server.ports["sftp"],
        box.login,
        box.password,
        f"get /{box.folder}/{name} got.bin\n",
        cwd=tmp_path,
    )
    got = tmp_path / "got.bin"
    if result.code != 0 or not got.exists():
        return None
    data = got.read_bytes()
    got.unlink()
    return data


def test_upload_import_and_summary_then_duplicate(
    pipeline_server: RunningServer, tmp_path: Path
) -> None:
    server = pipeline_server
    account_id, campaign_id, tracker_id = _brand_with_campaign(server)
    partner_id = 20_000 + account_id
    box = drop_box(server.app, account_id=account_id)
    csv_text = (
        "CampaignId,ActionTrackerId,EventDate,OrderId,MediaPartnerId,CurrencyCode,Amount\n"
        f"{campaign_id},{tracker_id},2026-11-20T10:15:00Z,ORD-1,{partner_id},USD,59.90\n"
        f"{campaign_id},{tracker_id},2026-11-20T10:16:00Z,ORD-2,{partner_id},USD,10.00\n"
        f"{campaign_id},{tracker_id},2026-13-01,ORD-3,{partner_id},USD,10.00\n"
    )
    (tmp_path / "orders.csv").write_text(csv_text)
    put = sftp_batch(
        server.ports["sftp"],
        box.login,
        box.password,
        f"put orders.csv /{box.folder}/orders.csv\n",
        cwd=tmp_path,
    )
    assert put.code == 0, put.err

    found: dict[str, bytes] = {}

    def summary_ready() -> bool:
        data = _fetch(server, box, "result_orders.csv_summary.json", tmp_path)
        if data:
            found["summary"] = data
        return data is not None

    _wait_for(summary_ready)
    summary = json.loads(found["summary"])
    assert summary["status"] == "PARTIAL"
    assert (summary["totalRowCount"], summary["successfulRowCount"], summary["errorRowCount"]) == (
        3,
        2,
        1,
    )
    errors = _fetch(server, box, "result_orders.csv_errors.csv.gz", tmp_path)
    assert errors is not None
    import gzip

    lines = gzip.decompress(errors).decode().splitlines()
    assert lines[0].endswith("LineNumber,ErrorType,ErrorMessage")
    assert "ORD-3" in lines[1] and ",4,INVALID_DATE," in lines[1]
    with server.app.sessions() as session:
        amounts = sorted(
            session.scalars(select(Action.amount).where(Action.campaign_id == campaign_id))
        )
    assert amounts == [Decimal("10.00"), Decimal("59.90")]

    # the same bytes again: DUPLICATE, nothing imported twice
    put = sftp_batch(
        server.ports["sftp"],
        box.login,
        box.password,
        f"put orders.csv /{box.folder}/orders.csv\n",
        cwd=tmp_path,
    )
    assert put.code == 0, put.err

    def second_done() -> bool:
        with server.app.sessions() as session:
            states = list(
                session.scalars(
                    select(File.state)
                    .where(File.connection_id == box.connection_id)
                    .order_by(File.id)
                )
            )
        return len(states) == 2 and states[1] == "duplicate"

    _wait_for(second_done)
    with server.app.sessions() as session:
        count = len(
            session.scalars(select(Action.id).where(Action.campaign_id == campaign_id)).all()
        )
    assert count == 2


def test_report_waits_in_the_hosted_folder_and_its_download_is_recorded(
    pipeline_server: RunningServer, tmp_path: Path
) -> None:
    server = pipeline_server
    account_id, _, _ = _brand_with_campaign(server)
    box = drop_box(
        server.app,
        account_id=account_id,
        direction="outbound",
        data_type="reports",
        methodology="hosted",
        details={"report": "performance_by_day", "range": "yesterday"},
    )
    result = server.app.outbound.run(box.connection_id)
    assert result.file is not None
    name = result.file.name
    listing = sftp_batch(
        server.ports["sftp"],
        box.login,
        box.password,
        f"ls -1 /{box.folder}\nget /{box.folder}/{name} report.csv\n",
        cwd=tmp_path,
    )
    assert listing.code == 0, listing.err
    assert name in listing.out
    header = (tmp_path / "report.csv").read_text().splitlines()[0]
    assert header == (
        "Date,CampaignId,MediaPartnerId,Clicks,Actions,ReversedActions,"
        "SaleAmount,Payout,CurrencyCode"
    )

    def downloaded() -> bool:
        with server.app.sessions() as session:
            return (
                session.scalar(select(File.state).where(File.id == result.file.id)) == "downloaded"
            )  # type: ignore[union-attr]

    _wait_for(downloaded, timeout=10)
    # an outbound folder takes no uploads
    (tmp_path / "x.csv").write_text("a\n")
    refused = sftp_batch(
        server.ports["sftp"],
        box.login,
        box.password,
        f"put x.csv /{box.folder}/x.csv\n",
        cwd=tmp_path,
    )
    assert refused.code != 0

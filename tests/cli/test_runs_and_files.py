"""`connections run` (now and backfill) and `files list|show` from the command line."""

from __future__ import annotations

from tests.cli.conftest import Cli


def test_run_now_backfill_and_history(cli: Cli) -> None:
    cli.json("accounts", "create", "--name", "Acme", "--kind", "brand")
    made = cli.json(
        "connections",
        "create",
        "--account",
        "Acme",
        "--name",
        "Daily report",
        "--direction",
        "outbound",
        "--data-type",
        "reports",
        "--method",
        "sftp",
        "--methodology",
        "hosted",
        "--report",
        "performance_by_day",
        "--new-credential-kind",
        "password",
        "--new-credential-name",
        "report login",
    )
    cid = str(made["id"])
    now = cli.json("connections", "run", cid)
    assert now["file"]["name"].startswith("daily_report_reports_")
    backfill = cli.json("connections", "run", cid, "--from", "2026-10-01", "--to", "2026-10-03")
    assert backfill["range_start"].startswith("2026-10-01")
    assert backfill["range_end"].startswith("2026-10-04")
    listed = cli.json("files", "list", "--connection", cid)
    assert {f["id"] for f in listed} == {now["file"]["id"], backfill["file"]["id"]}
    shown = cli.json("files", "show", str(now["file"]["id"]))
    assert [e["state"] for e in shown["history"]] == ["generated", "available"]
    refused = cli.refused("connections", "run", cid, "--from", "2026-13-01", "--to", "x")
    assert "from" in refused["errors"]
    missing = cli.refused("files", "show", "999999")
    assert "not found" in missing["message"]

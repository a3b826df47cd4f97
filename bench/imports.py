"""Import benchmarks: a conversions file committed and processed end to end, on SQLite and
PostgreSQL, beside DuckDB's and pandas' loaders of the same file; and a 30-day
`performance_by_day` backfill over many actions.

Run from the repository root (needs `.venv/bin/pip install duckdb pandas`, bench-only):

    .venv/bin/python -m bench.imports                      # 1,000,000 rows
    .venv/bin/python -m bench.imports --rows 20000 --actions 50000 --no-profile

Every measurement runs in a child process of its own (`--child NAME`), which prints one
JSON line: its peak RSS (`VmHWM`) is then that of the one variant, not of the others.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import machine

OUT = Path(__file__).with_name("out")
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_NAME = "dropyard_bench_imports"
CAMPAIGN, TRACKER = 1001, 5001
PARTNERS = tuple(range(2001, 2021))
HEADER = "CampaignId,ActionTrackerId,EventDate,OrderId,MediaPartnerId,CurrencyCode,Amount\n"
CHUNK = 1024 * 1024
CHILD_TIMEOUT = 1200.0


# -- the file --------------------------------------------------------------------------


def generate(path: Path, rows: int) -> None:
    """Valid rows only: dates within the last 30 days (with Z), unique OrderIds."""
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    stamps = [
        (now - timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for s in random.Random(1).sample(range(30 * 86400), 9973)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii", newline="") as out:
        out.write(HEADER)
        batch: list[str] = []
        for n in range(rows):
            batch.append(
                f"{CAMPAIGN},{TRACKER},{stamps[n % 9973]},ORD-{n:09d},"
                f"{PARTNERS[n % 20]},USD,{(n * 37) % 50000 / 100 + 1:.2f}\n"
            )
            if len(batch) == 50_000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))


# -- children: one measurement each -----------------------------------------------------


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    return -1


@dataclass
class Provisioned:
    app: Any
    account_id: int
    inbound_id: int
    report_id: int


def _provision(database_url: str, data_dir: Path) -> Provisioned:
    from tests.support import walk_wizard

    from dropyard.accounts.actors import operator
    from dropyard.app import build
    from dropyard.settings import Settings

    actor = operator("bench")
    app = build(Settings(data_dir=data_dir, database_url=database_url))
    app.migrate()
    brand = app.accounts.create_account(actor, name="Bench Brand", kind="brand")
    app.ledger.create_campaign(
        actor,
        account=brand.id,
        campaign_id=CAMPAIGN,
        name="Bench US",
        currency="USD",
        payout_rate="0.08",
        trackers=[TRACKER],
    )
    for partner in PARTNERS:
        app.ledger.create_partner(actor, partner_id=partner, name=f"Partner {partner}")
        app.ledger.join(actor, partner_id=partner, campaign_id=CAMPAIGN)
    inbound = walk_wizard(
        app,
        actor,
        account=brand.id,
        name="Bench conversions",
        direction="inbound",
        data_type="conversions",
        method="sftp",
        methodology="push",
        credential={"new": {"kind": "hosted_password", "name": "x"}},
    )
    report = walk_wizard(
        app,
        actor,
        account=brand.id,
        name="Bench report",
        direction="outbound",
        data_type="reports",
        method="sftp",
        methodology="hosted",
        details={"report": "performance_by_day"},
        credential={"credential_id": inbound.connection.credential_id},
    )
    return Provisioned(app, brand.id, inbound.connection.id, report.connection.id)


def _import(setup: Provisioned, csv_path: Path) -> dict[str, Any]:
    from dropyard.accounts.actors import operator

    app = setup.app
    spool = app.files.open_spool()
    with open(csv_path, "rb") as source:
        while chunk := source.read(CHUNK):
            spool.write(chunk)
    view = app.files.commit(
        spool,
        connection_id=setup.inbound_id,
        name="big.csv",
        source="bench",
        actor=operator("bench"),
    )
    state = app.processor.process(view.id)
    done, _ = app.files.get(operator("bench"), view.id)
    return {"state": state, "ok_rows": done.ok_rows, "error_rows": done.error_rows}


def child_dropyard(database: str, csv_path: Path, profile: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dy-bench-", dir=OUT) as tmp:
        url = _database_url(database, Path(tmp))
        setup = _provision(url, Path(tmp) / "data")
        idle = _status("VmRSS")
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        result = _import(setup, csv_path)
        if profiler is not None:
            profiler.disable()
        result["seconds"] = time.perf_counter() - started
        result["idle_mib"] = idle
        if profiler is not None:
            result["profile"] = _top(profiler, "cumulative") + "\n" + _top(profiler, "tottime")
        setup.app.close()
        return result


def _top(profiler: cProfile.Profile, key: str) -> str:
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(key)
    stats.print_stats(10)
    lines = text.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return f"sorted by {key}:\n" + "\n".join(lines[start:]).rstrip()


def _database_url(database: str, tmp: Path) -> str:
    if database == "postgres":
        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{PG_NAME}"
    return f"sqlite:///{tmp / 'dropyard.db'}"


def child_duckdb(csv_path: Path) -> dict[str, Any]:
    import duckdb

    with tempfile.TemporaryDirectory(prefix="duck-bench-", dir=OUT) as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        idle = _status("VmRSS")
        started = time.perf_counter()
        con.execute("CREATE TABLE conversions AS SELECT * FROM read_csv(?)", [str(csv_path)])
        con.execute("CHECKPOINT")
        seconds = time.perf_counter() - started
        (rows,) = con.execute("SELECT count(*) FROM conversions").fetchone() or (0,)
        con.close()
    return {"seconds": seconds, "ok_rows": rows, "idle_mib": idle}


def child_pandas(csv_path: Path) -> dict[str, Any]:
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="pd-bench-", dir=OUT) as tmp:
        con = sqlite3.connect(Path(tmp) / "bench.db")
        idle = _status("VmRSS")
        started = time.perf_counter()
        for frame in pd.read_csv(csv_path, chunksize=50_000):
            frame.to_sql("conversions", con, if_exists="append", index=False)  # method=None
        con.commit()
        seconds = time.perf_counter() - started
        (rows,) = con.execute("SELECT count(*) FROM conversions").fetchone()
        con.close()
    return {"seconds": seconds, "ok_rows": rows, "idle_mib": idle}


def child_report(database: str, actions: int) -> dict[str, Any]:
    from sqlalchemy import insert

    from dropyard.ledger.models import Action

    with tempfile.TemporaryDirectory(prefix="dy-bench-", dir=OUT) as tmp:
        setup = _provision(_database_url(database, Path(tmp)), Path(tmp) / "data")
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        span = 30 * 86400
        started = time.perf_counter()
        batch: list[dict[str, Any]] = []
        with setup.app.engine.begin() as con:
            for n in range(actions):
                at = today - timedelta(seconds=1 + (n * 7919) % span)
                amount = Decimal((n * 37) % 50000 + 100) / 100
                batch.append(
                    {
                        "account_id": setup.account_id,
                        "campaign_id": CAMPAIGN,
                        "tracker_id": TRACKER,
                        "partner_id": PARTNERS[n % 20],
                        "order_id": f"B-{n:09d}",
                        "event_date": at,
                        "currency": "USD",
                        "amount": amount,
                        "original_amount": amount,
                        "payout": (amount * Decimal("0.08")).quantize(Decimal("0.01")),
                        "status": "REVERSED" if n % 50 == 0 else "PENDING",
                        "locks_at": at + timedelta(days=30),
                        "created_at": at,
                        "modified_at": at,
                    }
                )
                if len(batch) == 50_000:
                    con.execute(insert(Action), batch)
                    batch.clear()
            if batch:
                con.execute(insert(Action), batch)
        if database == "postgres":
            with setup.app.engine.connect() as con:
                con.exec_driver_sql("ANALYZE actions")
        else:
            with setup.app.engine.begin() as con:
                con.exec_driver_sql("ANALYZE")
        insert_seconds = time.perf_counter() - started
        idle = _status("VmRSS")
        started = time.perf_counter()
        made = setup.app.outbound.run(
            setup.report_id,
            range_from=(today - timedelta(days=30)).date(),
            range_to=today.date(),
        )
        seconds = time.perf_counter() - started
        setup.app.close()
    return {
        "seconds": seconds,
        "insert_seconds": insert_seconds,
        "report_rows": made.rows,
        "reason": made.reason,
        "idle_mib": idle,
    }


# -- the parent ------------------------------------------------------------------------


def _pg(action: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        con.execute(text(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)'))
        if action == "create":
            con.execute(text(f'CREATE DATABASE "{PG_NAME}"'))
    engine.dispose()


def _pg_version() -> str:
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as con:
            version = str(con.execute(text("SHOW server_version")).scalar())
        engine.dispose()
        return version.split()[0]
    except Exception:  # only a label in the report
        return "unreachable"


def run_child(args: list[str], *, postgres: bool = False) -> dict[str, Any]:
    """One measurement in its own process; its last stdout line is the JSON result."""
    if postgres:
        _pg("create")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.imports", "--child", *args],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT:.0f} s"}
    finally:
        if postgres:
            _pg("drop")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _rate(rows: int, result: dict[str, Any]) -> str:
    return f"{rows / result['seconds']:,.0f}" if "seconds" in result else "-"


def _row(label: str, rows: int, result: dict[str, Any]) -> list[str]:
    if "error" in result:
        return [label, "failed", "-", "-", "-", result["error"][:120]]
    return [
        label,
        f"{result['seconds']:.1f}",
        _rate(rows, result),
        str(result["peak_mib"]),
        str(result["idle_mib"]),
        f"ok {result.get('ok_rows')}, errors {result.get('error_rows', 0)}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.imports")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--actions", type=int, default=1_000_000)
    parser.add_argument("--profile-rows", type=int, default=100_000)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return

    load_before = os.getloadavg()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    csv_path = OUT / f"conversions_{args.rows}.csv"
    started = time.perf_counter()
    generate(csv_path, args.rows)
    size_mb = csv_path.stat().st_size / 1e6
    print(
        f"generated {args.rows:,} rows, {size_mb:.1f} MB in {time.perf_counter() - started:.1f} s"
    )
    pg = not args.no_postgres and _pg_version() != "unreachable"

    imports: list[tuple[str, dict[str, Any]]] = []
    plan: list[tuple[str, list[str], bool]] = [
        ("Dropyard, SQLite", ["dropyard", "sqlite", str(csv_path)], False),
        ("Dropyard, PostgreSQL", ["dropyard", "postgres", str(csv_path)], True),
        ("DuckDB `read_csv` into a table", ["duckdb", str(csv_path)], False),
        ("pandas `read_csv` + `to_sql`, SQLite", ["pandas", str(csv_path)], False),
    ]
    for label, child, on_pg in plan:
        if on_pg and not pg:
            imports.append((label, {"error": "PostgreSQL not reachable or --no-postgres"}))
            continue
        result = run_child(child, postgres=on_pg)
        print(label, json.dumps(result))
        imports.append((label, result))

    reports: list[tuple[str, dict[str, Any]]] = []
    for database in ("sqlite", "postgres"):
        if database == "postgres" and not pg:
            continue
        result = run_child(["report", database, str(args.actions)], postgres=database == "postgres")
        print("report", database, json.dumps(result))
        reports.append((database, result))

    profile = ""
    if not args.no_profile:
        small = OUT / f"conversions_{args.profile_rows}.csv"
        generate(small, args.profile_rows)
        result = run_child(["dropyard", "sqlite", str(small), "profile"])
        profile = result.get("profile", result.get("error", ""))
        small.unlink(missing_ok=True)
    csv_path.unlink(missing_ok=True)
    load_after = os.getloadavg()

    body = _section(args, stamp, size_mb, pg, imports, reports, profile, (load_before, load_after))
    print(body)
    machine.update_readme("imports", body)


def _child(argv: list[str]) -> None:
    kind, rest = argv[0], argv[1:]
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "dropyard": lambda: child_dropyard(rest[0], Path(rest[1]), rest[2:] == ["profile"]),
        "duckdb": lambda: child_duckdb(Path(rest[0])),
        "pandas": lambda: child_pandas(Path(rest[0])),
        "report": lambda: child_report(rest[0], int(rest[1])),
    }
    result = runners[kind]()
    result["peak_mib"] = _status("VmHWM")
    print(json.dumps(result, default=str))


def _versions(pg: bool) -> str:
    import sqlalchemy

    names = {
        "Python": platform.python_version(),
        "SQLAlchemy": sqlalchemy.__version__,
        "SQLite": sqlite3.sqlite_version,
        "psycopg": metadata.version("psycopg"),
        "PostgreSQL": _pg_version() if pg else "not used",
        "duckdb": metadata.version("duckdb"),
        "pandas": metadata.version("pandas"),
    }
    return ", ".join(f"{k} {v}" for k, v in names.items())


def _section(
    args: argparse.Namespace,
    stamp: str,
    size_mb: float,
    pg: bool,
    imports: list[tuple[str, dict[str, Any]]],
    reports: list[tuple[str, dict[str, Any]]],
    profile: str,
    loads: tuple[tuple[float, ...], tuple[float, ...]],
) -> str:
    rows = args.rows
    before, after = (" ".join(f"{x:.2f}" for x in load) for load in loads)
    table = machine.markdown_table(
        ["import", "s", "rows/s", "peak RSS MiB", "RSS before MiB", "result"],
        [_row(label, rows, result) for label, result in imports],
    )
    found = dict(imports)
    dy = found["Dropyard, SQLite"]
    ratios = []
    for peer in ("DuckDB `read_csv` into a table", "pandas `read_csv` + `to_sql`, SQLite"):
        other = found[peer]
        if "seconds" in dy and "seconds" in other:
            ratios.append(
                f"Dropyard (SQLite)/{peer.split()[0]}: {other['seconds'] / dy['seconds']:.3f}x"
            )
    report_rows = []
    for database, result in reports:
        if "error" in result:
            report_rows.append([database, "failed", "-", "-", "-", result["error"][:120]])
            continue
        report_rows.append(
            [
                database,
                f"{result['insert_seconds']:.1f}",
                f"{result['seconds']:.2f}",
                f"{args.actions / result['seconds']:,.0f}",
                str(result["peak_mib"]),
                str(result["report_rows"]),
            ]
        )
    report_table = machine.markdown_table(
        ["database", "bulk insert s", "backfill s", "actions/s", "peak RSS MiB", "report rows"],
        report_rows,
    )
    target = "-"
    if "seconds" in dy:
        rate = rows / dy["seconds"]
        target = (
            f"SQLite with full validation: {rate:,.0f} rows/s against the 500,000 rows/s "
            f"target ({rate / 500_000:.1%} of it); peak RSS {dy['peak_mib']} MiB against "
            f"300 MB ({'within' if dy['peak_mib'] * 1.048576 <= 300 else 'over'})."
        )
    parts = [
        "## Imports: conversions files end to end, and a 30-day report backfill",
        "",
        f"Measured {stamp} · `nproc` {os.cpu_count()} · `free -g` {machine.memory_gib()} · "
        f"CPU {machine.cpu_model()} · {_versions(pg)} · load average before/after "
        f"{before} / {after}",
        "",
        "    .venv/bin/pip install duckdb pandas      # bench-only, not in pyproject",
        f"    .venv/bin/python -m bench.imports --rows {rows} --actions {args.actions}",
        "",
        f"A conversions file of {rows:,} valid rows ({size_mb:.1f} MB; CampaignId, "
        "ActionTrackerId, EventDate with Z within the last 30 days, unique OrderId, "
        "MediaPartnerId, CurrencyCode, Amount), generated into `bench/out/`. Dropyard: a "
        "fresh data dir and database, migrated and provisioned through the services and "
        "the wizard; the time covers the commit (spool written in 1 MiB chunks, "
        "`files.commit`) and `processor.process` up to the written summary. DuckDB: "
        "`CREATE TABLE AS SELECT * FROM read_csv(...)` (no validation; uses both cores). "
        "pandas: `read_csv(chunksize=50000)` + `to_sql` into a sqlite3 file, default "
        "`method` (executemany; no validation). Each line ran in a child process of its "
        "own; peak RSS is its `VmHWM`, the RSS before the timed part beside it. One run "
        "each on a shared machine (another CI run in parallel): expect 2x swings.",
        "",
        table,
        "",
        "; ".join(ratios) + ("." if ratios else ""),
        "",
        f"Against the target: {target}",
        "",
        f"`performance_by_day`, 30-day backfill (`outbound.run(range_from, range_to)`) "
        f"over {args.actions:,} actions inserted directly (SQLAlchemy Core, 50,000 a "
        "batch; 30 days, 20 partners, 2% reversed). The issue asks 10,000,000 actions; "
        f"this run used {args.actions:,}.",
        "",
        report_table,
    ]
    if profile:
        parts += [
            "",
            f"Where the time goes: cProfile of a {args.profile_rows:,}-row import on SQLite "
            "(commit + process), top 10.",
            "",
            "```",
            profile,
            "```",
        ]
    return "\n".join(parts)


if __name__ == "__main__":
    main()

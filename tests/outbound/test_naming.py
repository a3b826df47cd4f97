"""File names from the connection's template."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dropyard.connections.details import NAME_PLACEHOLDERS
from dropyard.errors import Invalid
from dropyard.outbound.naming import placeholders, render_name, slug

AT = datetime(2026, 3, 9, 23, 30, 5, tzinfo=UTC)  # 00:30:05 on the 10th in Paris


def _values(**overrides: str) -> dict[str, str]:
    values = placeholders(
        connection="Daily Perf (EU)",
        data_type="reports",
        account="Café Acme",
        run_id="run-1",
        at=AT,
        tz=ZoneInfo("Europe/Paris"),
        fmt="csv",
        compression="gzip",
    )
    values.update(overrides)
    return values


def test_default_template_uses_local_time_and_extension() -> None:
    assert render_name(None, _values()) == "daily_perf_eu_reports_20260310003005.csv.gz"


def test_every_placeholder() -> None:
    assert set(_values()) == set(NAME_PLACEHOLDERS)  # what the details validator allows
    template = (
        "{account}-{connection}-{data_type}-{yyyy}.{mm}.{dd}-{HH}{MM}{SS}-{yyyymmdd}-"
        "{yyyymmddHHMMSS}-{run_id}.{ext}"
    )
    assert render_name(template, _values()) == (
        "cafe_acme-daily_perf_eu-reports-2026.03.10-003005-20260310-20260310003005-run-1.csv.gz"
    )


def test_extensions_by_format() -> None:
    for fmt, ext in (("csv", "csv"), ("tsv", "tsv"), ("pipe", "txt"), ("xlsx", "xlsx")):
        values = placeholders(
            connection="c",
            data_type="conversions",
            account="a",
            run_id="r",
            at=AT,
            tz=ZoneInfo("UTC"),
            fmt=fmt,
        )
        assert render_name("x.{ext}", values) == f"x.{ext}"


def test_reserved_prefixes_are_allowed_but_bad_names_are_not() -> None:
    assert render_name("result_{yyyymmdd}.{ext}", _values()) == "result_20260310.csv.gz"
    with pytest.raises(Invalid, match="255 bytes"):
        render_name("{connection}" + "x" * 250 + ".{ext}", _values())
    with pytest.raises(Invalid, match="start with"):
        render_name("{run_id}.{ext}", _values(run_id=".hidden"))


def test_slugs() -> None:
    assert slug("Ünïcode  Name / 2") == "unicode_name_2"
    assert slug("***") == "file"

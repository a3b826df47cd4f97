"""Details of each combination: required fields, defaults, normalization, and what every
bad value gets back."""

from __future__ import annotations

from typing import Any

import pytest

from dropyard.connections.details import (
    PRESETS,
    cron_for,
    detail_fields,
    validate_details,
)
from dropyard.errors import Invalid

SFTP_FP = "SHA256:" + "nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8"
HEX_FP = "ab" * 32

# (direction, methodology, method) -> (required fields, defaults of the optional ones).
INBOUND = {"allow_extra_columns": False}
PULL_COMMON = {
    "delete_after_pull": False,
    "schedule": "hourly",
    "timezone": "UTC",
    **INBOUND,
}
OUTBOUND = {
    "schedule": "daily",
    "timezone": "UTC",
    "range": "yesterday",
    "format": "csv",
    "compression": "none",
    "name_template": "{connection}_{data_type}_{yyyymmddHHMMSS}.{ext}",
    "send_empty": True,
}
TABLE: dict[tuple[str, str, str], tuple[set[str], dict[str, Any]]] = {
    ("inbound", "push", "sftp"): (set(), {"file_pattern": "*", **INBOUND}),
    ("inbound", "push", "ftp"): (set(), {"file_pattern": "*", "plain_ftp": False, **INBOUND}),
    ("inbound", "push", "email"): (
        {"file_pattern"},
        {"return_email": None, "allowed_senders": [], **INBOUND},
    ),
    ("inbound", "pull", "sftp"): (
        {"host", "folder", "file_pattern"},
        {
            "port": 22,
            "result_folder": None,
            "host_key_fingerprint": None,
            "stable_seconds": 30,
            **PULL_COMMON,
        },
    ),
    ("inbound", "pull", "ftp"): (
        {"host", "folder", "file_pattern"},
        {
            "port": 21,
            "result_folder": None,
            "plain_ftp": False,
            "certificate_fingerprint": None,
            "stable_seconds": 30,
            **PULL_COMMON,
        },
    ),
    ("inbound", "pull", "email"): (
        {"host", "file_pattern"},
        {
            "port": 993,
            "folder": "INBOX",
            "plain_imap": False,
            "certificate_fingerprint": None,
            **PULL_COMMON,
        },
    ),
    ("outbound", "hosted", "sftp"): (set(), {"retention_days": 30, **OUTBOUND}),
    ("outbound", "hosted", "ftp"): (
        set(),
        {"retention_days": 30, "plain_ftp": False, **OUTBOUND},
    ),
    ("outbound", "deliver", "sftp"): (
        {"host", "folder"},
        {"port": 22, "host_key_fingerprint": None, **OUTBOUND},
    ),
    ("outbound", "deliver", "ftp"): (
        {"host", "folder"},
        {"port": 21, "plain_ftp": False, "certificate_fingerprint": None, **OUTBOUND},
    ),
    ("outbound", "deliver", "email"): ({"recipients"}, {"max_attachment_mb": 10, **OUTBOUND}),
}
GOOD = {
    "host": "sftp.partner.example",
    "folder": "/outgoing",
    "file_pattern": "*.csv",
    "recipients": ["ops@partner.example"],
}
COMBINATIONS = [
    (direction, methodology, method, data_type)
    for (direction, methodology, method) in TABLE
    for data_type in (
        ("conversions", "action_modifications", "clicks", "product_catalogs")
        if direction == "inbound"
        else ("reports", "performance_bonus_detail", "conversions")
    )
]


def _required(combo: tuple[str, str, str]) -> dict[str, Any]:
    required, _ = TABLE[combo]
    values = {name: GOOD[name] for name in required}
    if combo == ("inbound", "pull", "email"):
        values["host"] = "imap.partner.example"
    return values


def _errors(*args: Any) -> dict[str, str]:
    with pytest.raises(Invalid) as caught:
        validate_details(*args)
    return caught.value.errors


@pytest.mark.parametrize(("direction", "methodology", "method", "data_type"), COMBINATIONS)
def test_required_fields_and_defaults(
    direction: str, methodology: str, method: str, data_type: str
) -> None:
    combo = (direction, methodology, method)
    required, defaults = TABLE[combo]
    if required:
        errors = _errors(direction, methodology, method, data_type, {})
        assert errors == {name: f"{name} is required" for name in required}
    given = _required(combo)
    result = validate_details(direction, methodology, method, data_type, given)
    expected = {**defaults, **given}
    if data_type == "reports":
        expected["report"] = "performance_by_day"
    assert result == expected
    # the normalized document validates to itself (what the service stores and re-reads)
    assert validate_details(direction, methodology, method, data_type, result) == result
    specs = detail_fields(direction, methodology, method, data_type)
    assert {s.name for s in specs} == set(expected)
    assert {s.name for s in specs if s.required} == required
    for spec in specs:
        if not spec.required:
            assert spec.default == expected[spec.name]
        assert spec.label
        assert spec.help


@pytest.mark.parametrize(("direction", "methodology", "method", "data_type"), COMBINATIONS)
def test_unknown_field_is_refused_by_name(
    direction: str, methodology: str, method: str, data_type: str
) -> None:
    given = {**_required((direction, methodology, method)), "colour": "blue"}
    errors = _errors(direction, methodology, method, data_type, given)
    assert errors == {
        "colour": f"'colour' is not a setting of an {method} {methodology} connection"
    }


def test_unknown_field_message_example() -> None:
    errors = _errors("inbound", "push", "sftp", "clicks", {"host": "x.example"})
    assert errors == {"host": "'host' is not a setting of an sftp push connection"}


def test_refused_combination() -> None:
    errors = _errors("outbound", "hosted", "email", "reports", {})
    assert set(errors) == {"methodology"}
    errors = _errors("inbound", "push", "sftp", "reports", {})
    assert set(errors) == {"data_type"}


def test_details_must_be_a_mapping() -> None:
    errors = _errors("inbound", "push", "sftp", "clicks", ["x"])
    assert set(errors) == {"details"}


def pull_sftp(**changes: Any) -> dict[str, Any]:
    return validate_details(
        "inbound", "pull", "sftp", "clicks", {**_required(("inbound", "pull", "sftp")), **changes}
    )


def pull_sftp_errors(**changes: Any) -> dict[str, str]:
    given = {**_required(("inbound", "pull", "sftp")), **changes}
    return _errors("inbound", "pull", "sftp", "clicks", given)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("folder", "data", "folder 'data' must be an absolute path"),
        ("folder", "/data/../etc", "folder '/data/../etc' must not contain '..'"),
        ("folder", "/data\x00", "must not contain control characters"),
        ("result_folder", "results", "result_folder 'results' must be an absolute path"),
        ("port", 0, "port 0 is not between 1 and 65535"),
        ("port", 70000, "port 70000 is not between 1 and 65535"),
        ("port", "abc", "port 'abc' is not a whole number"),
        ("port", True, "port True is not a whole number"),
        ("port", 22.5, "port 22.5 is not a whole number"),
        ("file_pattern", "in/*.csv", "file_pattern 'in/*.csv' must not contain '/'"),
        ("file_pattern", "[ab]*.csv", "file_pattern '[ab]*.csv' must not contain '['"),
        ("file_pattern", "..", "file_pattern '..' is not a file name pattern"),
        ("host", "sftp://x.example", "must not include a scheme"),
        ("host", "x.example/data", "must not include a path"),
        ("host", "x.example:2222", "must not include a port"),
        ("host", "bad host", "host 'bad host' is not a host name or an IP address"),
        ("host", "-x.example", "is not a host name or an IP address"),
        ("host", "300.1.1.1", "is not a host name or an IP address"),
        ("host", "a" * 254, "is longer than 253 characters"),
        ("host_key_fingerprint", "MD5:aa:bb", "must look like SHA256:"),
        ("host_key_fingerprint", "SHA256:short", "must look like SHA256:"),
        ("schedule", "61 * * * *", "schedule '61 * * * *' is not a preset or a valid cron"),
        ("schedule", "0 0 * * * *", "is not a preset or a valid cron expression"),
        ("schedule", "@daily", "is not a preset or a valid cron expression"),
        ("schedule", "0 0 31 2 *", "is not a preset or a valid cron expression"),
        ("schedule", "sometimes", "is not a preset or a valid cron expression"),
        ("timezone", "Mars/Olympus_Mons", "timezone 'Mars/Olympus_Mons' is not a known time"),
        ("timezone", "../../etc/passwd", "is not a known time zone"),
        ("stable_seconds", -1, "stable_seconds -1 is not between 0 and 3600"),
        ("stable_seconds", 3601, "stable_seconds 3601 is not between 0 and 3600"),
        ("delete_after_pull", "maybe", "delete_after_pull 'maybe' is not yes or no"),
        ("host", 12, "host 12 is not text"),
    ],
)
def test_bad_values_are_named(field: str, value: Any, message: str) -> None:
    errors = pull_sftp_errors(**{field: value})
    assert set(errors) == {field}
    assert message in errors[field]


def test_all_errors_at_once() -> None:
    errors = pull_sftp_errors(folder="data", port=0, schedule="61 * * * *", extra=1)
    assert set(errors) == {"folder", "port", "schedule", "extra"}


def test_pull_values_are_normalized() -> None:
    result = pull_sftp(
        host=" SFTP.Partner.Example. ",
        folder="//outgoing//./daily/",
        port="2222",
        host_key_fingerprint=SFTP_FP + "=",
        schedule=" 0  */3 * * * ",
        timezone="Europe/Paris",
        delete_after_pull="yes",
        result_folder="",
    )
    assert result["host"] == "sftp.partner.example"
    assert result["folder"] == "/outgoing/daily"
    assert result["port"] == 2222
    assert result["host_key_fingerprint"] == SFTP_FP
    assert result["schedule"] == "0 */3 * * *"
    assert result["timezone"] == "Europe/Paris"
    assert result["delete_after_pull"] is True
    assert result["result_folder"] is None  # blank means not given


def test_hosts_may_be_ip_literals_or_international() -> None:
    assert pull_sftp(host="192.0.2.10")["host"] == "192.0.2.10"
    assert pull_sftp(host="[2001:DB8::1]")["host"] == "2001:db8::1"
    assert pull_sftp(host="bücher.example")["host"] == "xn--bcher-kva.example"


def test_presets_are_accepted_by_name() -> None:
    for preset in PRESETS:
        assert pull_sftp(schedule=preset)["schedule"] == preset
    assert pull_sftp(schedule="Daily")["schedule"] == "daily"


def test_presets_and_cron_for() -> None:
    assert PRESETS == {
        "hourly": "0 * * * *",
        "every_2_hours": "0 */2 * * *",
        "every_4_hours": "0 */4 * * *",
        "every_8_hours": "0 */8 * * *",
        "twice_daily": "0 6,18 * * *",
        "daily": "0 2 * * *",
        "weekly": "0 2 * * 1",
        "monthly": "0 3 1 * *",
    }
    assert cron_for("twice_daily") == "0 6,18 * * *"
    assert cron_for("*/15  * * * *") == "*/15 * * * *"
    with pytest.raises(Invalid) as caught:
        cron_for("61 * * * *")
    assert caught.value.errors == {
        "schedule": "schedule '61 * * * *' is not a preset or a valid cron expression"
    }


def test_ftp_certificate_fingerprint_is_normalized() -> None:
    given = {**_required(("inbound", "pull", "ftp")), "certificate_fingerprint": HEX_FP}
    result = validate_details("inbound", "pull", "ftp", "clicks", given)
    assert result["certificate_fingerprint"] == ":".join(["AB"] * 32)
    given["certificate_fingerprint"] = ":".join(["ab"] * 32)
    result = validate_details("inbound", "pull", "ftp", "clicks", given)
    assert result["certificate_fingerprint"] == ":".join(["AB"] * 32)
    for bad in ("ab" * 31, "zz" * 32, "ab:" * 31 + "abc"):
        given["certificate_fingerprint"] = bad
        errors = _errors("inbound", "pull", "ftp", "clicks", given)
        assert "must be a SHA-256 fingerprint" in errors["certificate_fingerprint"]
    given = {**_required(("inbound", "pull", "ftp")), "host_key_fingerprint": SFTP_FP}
    assert "host_key_fingerprint" in _errors("inbound", "pull", "ftp", "clicks", given)


def test_imap_mailbox_and_ports() -> None:
    base = _required(("inbound", "pull", "email"))
    result = validate_details("inbound", "pull", "email", "clicks", {**base})
    assert (result["port"], result["folder"]) == (993, "INBOX")
    result = validate_details(
        "inbound", "pull", "email", "clicks", {**base, "plain_imap": True, "folder": "Reports"}
    )
    assert (result["port"], result["folder"]) == (143, "Reports")
    result = validate_details(
        "inbound", "pull", "email", "clicks", {**base, "plain_imap": "yes", "port": 1143}
    )
    assert result["port"] == 1143
    # a mailbox is a name, not a path: no leading slash needed
    errors = _errors("inbound", "pull", "email", "clicks", {**base, "folder": "IN\x00BOX"})
    assert set(errors) == {"folder"}


def test_email_push_addresses() -> None:
    result = validate_details(
        "inbound",
        "push",
        "email",
        "conversions",
        {
            "file_pattern": "orders_*.csv",
            "return_email": " Ops@Partner.EXAMPLE ",
            "allowed_senders": "a@partner.example, @Partner.Example,, A@partner.example",
        },
    )
    assert result["return_email"] == "Ops@partner.example"
    assert result["allowed_senders"] == ["a@partner.example", "@partner.example"]
    result = validate_details(
        "inbound",
        "push",
        "email",
        "conversions",
        {"file_pattern": "*", "allowed_senders": ["x@y.example"]},
    )
    assert result["allowed_senders"] == ["x@y.example"]


@pytest.mark.parametrize(
    ("field", "value", "bad"),
    [
        ("return_email", "ops@", "'ops@'"),
        ("return_email", "ops.partner.example", "'ops.partner.example'"),
        ("return_email", "ops@localhost", "'ops@localhost'"),
        ("return_email", "a..b@x.example", "'a..b@x.example'"),
        ("allowed_senders", "good@x.example, @nodot", "'@nodot'"),
        ("allowed_senders", ["x@y.example", "not an address"], "'not an address'"),
    ],
)
def test_bad_email_addresses(field: str, value: Any, bad: str) -> None:
    errors = _errors("inbound", "push", "email", "clicks", {"file_pattern": "*", field: value})
    assert set(errors) == {field}
    assert bad in errors[field]


def test_email_deliver_recipients() -> None:
    def deliver(recipients: Any, **more: Any) -> dict[str, Any]:
        return validate_details(
            "outbound", "deliver", "email", "reports", {"recipients": recipients, **more}
        )

    assert deliver("a@x.example, b@x.example")["recipients"] == ["a@x.example", "b@x.example"]
    assert deliver(["a@x.example", "A@X.example"])["recipients"] == ["a@x.example"]
    twenty = [f"r{i}@x.example" for i in range(20)]
    assert deliver(twenty)["recipients"] == twenty

    def errors(recipients: Any, **more: Any) -> dict[str, str]:
        given = {"recipients": recipients, **more}
        return _errors("outbound", "deliver", "email", "reports", given)

    assert errors([]) == {"recipients": "recipients: at least one address is required"}
    assert errors(" , ") == {"recipients": "recipients: at least one address is required"}
    assert errors("") == {"recipients": "recipients is required"}
    assert errors([*twenty, "r20@x.example"]) == {
        "recipients": "recipients has 21 addresses; at most 20"
    }
    assert "'nobody'" in errors("a@x.example, nobody")["recipients"]
    assert errors("a@x.example", max_attachment_mb=0) == {
        "max_attachment_mb": "max_attachment_mb 0 is not between 1 and 25"
    }
    assert errors("a@x.example", max_attachment_mb=26) == {
        "max_attachment_mb": "max_attachment_mb 26 is not between 1 and 25"
    }


def hosted(data_type: str = "conversions", **given: Any) -> dict[str, Any]:
    return validate_details("outbound", "hosted", "sftp", data_type, given)


def hosted_errors(data_type: str = "conversions", **given: Any) -> dict[str, str]:
    return _errors("outbound", "hosted", "sftp", data_type, given)


def test_outbound_options() -> None:
    result = hosted(
        range="since_last_run",
        format="xlsx",
        compression="none",
        name_template="{account}-{yyyymmdd}-{run_id}.{ext}",
        send_empty=False,
        retention_days=365,
        timezone="America/New_York",
        schedule="weekly",
    )
    assert result["range"] == "since_last_run"
    assert result["format"] == "xlsx"
    assert result["name_template"] == "{account}-{yyyymmdd}-{run_id}.{ext}"
    assert result["send_empty"] is False
    assert result["retention_days"] == 365
    assert hosted(format="tsv", compression="gzip")["compression"] == "gzip"


def test_every_placeholder_is_known() -> None:
    template = (
        "{connection}{data_type}{account}{yyyy}{mm}{dd}{HH}{MM}{SS}"
        "{yyyymmdd}{yyyymmddHHMMSS}{run_id}.{ext}"
    )
    assert hosted(name_template=template)["name_template"] == template


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        ({"format": "xlsx", "compression": "gzip"}, "compression", "cannot be used with format"),
        ({"name_template": "{date}.{ext}"}, "name_template", "unknown placeholder {date}"),
        ({"name_template": "{connection.x}"}, "name_template", "unknown placeholder"),
        ({"name_template": "out/{ext}"}, "name_template", "must not contain '/'"),
        ({"name_template": ".hidden_{ext}"}, "name_template", "must not start with '.'"),
        ({"name_template": "{yyyy:>4}"}, "name_template", "takes no format"),
        ({"name_template": "file_{ext"}, "name_template", "unmatched"),
        ({"range": "forever"}, "range", "range 'forever' is not one of yesterday"),
        ({"format": "docx"}, "format", "format 'docx' is not one of csv, tsv, pipe, xlsx"),
        ({"compression": "zip"}, "compression", "compression 'zip' is not one of none, gzip"),
        ({"retention_days": 0}, "retention_days", "retention_days 0 is not between 1 and 365"),
        ({"retention_days": 366}, "retention_days", "not between 1 and 365"),
        ({"report": "performance_by_day"}, "report", "'report' is not a setting"),
        ({"plain_ftp": True}, "plain_ftp", "'plain_ftp' is not a setting of an sftp hosted"),
    ],
)
def test_bad_outbound_values(given: dict[str, Any], field: str, message: str) -> None:
    errors = hosted_errors(**given)
    assert set(errors) == {field}
    assert message in errors[field]


def test_report_choice_only_for_reports() -> None:
    assert hosted("reports", report="action_listing")["report"] == "action_listing"
    errors = hosted_errors("reports", report="top_secret")
    assert errors == {
        "report": "report 'top_secret' is not one of performance_by_day, action_listing"
    }
    assert "report" not in hosted("performance_bonus_detail")


def test_deliver_remote_fields() -> None:
    given = {"host": "ftp.partner.example", "folder": "/incoming", "plain_ftp": "true"}
    result = validate_details("outbound", "deliver", "ftp", "conversions", given)
    assert (result["port"], result["plain_ftp"]) == (21, True)
    errors = _errors(
        "outbound", "deliver", "sftp", "conversions", {"host": "h.example", "folder": "in"}
    )
    assert errors == {"folder": "folder 'in' must be an absolute path"}


def test_blank_values_take_the_default() -> None:
    assert hosted(schedule="", timezone="  ", name_template="")["schedule"] == "daily"
    errors = _errors("inbound", "push", "email", "clicks", {"file_pattern": "  "})
    assert errors == {"file_pattern": "file_pattern is required"}


def test_detail_fields_for_a_form() -> None:
    specs = {s.name: s for s in detail_fields("outbound", "deliver", "sftp", "reports")}
    assert specs["host"].kind == "text"
    assert specs["host"].required
    assert specs["port"].kind == "int"
    assert specs["port"].default == 22
    assert specs["format"].kind == "choice"
    assert specs["format"].choices == ("csv", "tsv", "pipe", "xlsx")
    assert specs["report"].choices == ("performance_by_day", "action_listing")
    assert specs["send_empty"].kind == "bool"
    assert specs["schedule"].kind == "text"
    assert specs["schedule"].choices == tuple(PRESETS)
    order = [s.name for s in detail_fields("outbound", "deliver", "sftp", "reports")]
    assert order[:3] == ["host", "port", "folder"]  # where files go, before what they hold
    email = {s.name: s for s in detail_fields("inbound", "push", "email", "clicks")}
    assert email["allowed_senders"].kind == "list"
    assert email["allowed_senders"].default == []
    assert email["file_pattern"].required
    imap = {s.name: s for s in detail_fields("inbound", "pull", "email", "clicks")}
    assert imap["folder"].label == "Mailbox"
    assert imap["folder"].default == "INBOX"
    with pytest.raises(Invalid):
        detail_fields("outbound", "hosted", "email", "reports")

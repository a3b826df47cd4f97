"""Method-specific details of a connection: one pydantic model per combination.

`validate_details` turns what a user typed (web form, API body, CLI flags) into the
normalized JSON document stored on the connection, or raises one `Invalid` that names
every field at fault and its value. `detail_fields` describes the same fields for a UI or
CLI to render. Blank strings and None count as "not given", so a default applies.
"""

from __future__ import annotations

import ipaddress
import re
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dropyard.connections.rules import (
    DataType,
    Direction,
    Method,
    Methodology,
    as_data_type,
    as_method,
    as_methodology,
    check_combination,
)
from dropyard.errors import Invalid

FieldKind = Literal["text", "int", "bool", "choice", "list"]
Range = Literal["yesterday", "last_7_days", "month_to_date", "previous_month", "since_last_run"]
FileFormat = Literal["csv", "tsv", "pipe", "xlsx"]
Compression = Literal["none", "gzip"]
ReportName = Literal["performance_by_day", "action_listing"]

PRESETS: dict[str, str] = {
    "hourly": "0 * * * *",
    "every_2_hours": "0 */2 * * *",
    "every_4_hours": "0 */4 * * *",
    "every_8_hours": "0 */8 * * *",
    "twice_daily": "0 6,18 * * *",
    "daily": "0 2 * * *",
    "weekly": "0 2 * * 1",
    "monthly": "0 3 1 * *",
}
DEFAULT_NAME_TEMPLATE = "{connection}_{data_type}_{yyyymmddHHMMSS}.{ext}"
# fmt: off
NAME_PLACEHOLDERS: tuple[str, ...] = (
    "connection", "data_type", "account",
    "yyyy", "mm", "dd", "HH", "MM", "SS", "yyyymmdd", "yyyymmddHHMMSS",
    "run_id", "ext",
)
# fmt: on
MAX_RECIPIENTS = 20
MAX_SENDERS = 100


@dataclass(frozen=True)
class FieldSpec:
    """One detail field as a form or a prompt shows it. For kind "choice", `choices` is
    exhaustive; for kind "text" it lists suggestions (the schedule presets)."""

    name: str
    label: str
    kind: FieldKind
    required: bool
    default: Any
    choices: tuple[str, ...]
    help: str


# -- values -----------------------------------------------------------------------------


def _show(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"'{text}'" if isinstance(value, str) else text


def _name(info: ValidationInfo) -> str:
    return info.field_name or "value"


def _has_control(value: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in value)


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _is_hostname(value: str) -> bool:
    labels = value.split(".")
    return (
        len(value) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def _host(value: str, info: ValidationInfo) -> str:
    name, shown = _name(info), _show(value)
    if "://" in value:
        raise ValueError(f"{name} {shown} must not include a scheme; write only the host name")
    if "/" in value:
        raise ValueError(f"{name} {shown} must not include a path; put the path in folder")
    literal = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return str(ipaddress.ip_address(literal))
    except ValueError:
        pass
    if ":" in value and value.rsplit(":", 1)[1].isdigit():
        raise ValueError(f"{name} {shown} must not include a port; put it in port")
    if len(value) > 253:
        raise ValueError(f"{name} {shown} is longer than 253 characters")
    host = value.lower().removesuffix(".")
    if not host.isascii():
        try:  # an internationalized name, as its ASCII (punycode) form
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{name} {shown} is not a host name or an IP address") from None
    if not _is_hostname(host):
        raise ValueError(f"{name} {shown} is not a host name or an IP address")
    return host


def _absolute_path(value: str, info: ValidationInfo) -> str:
    name, shown = _name(info), _show(value)
    if _has_control(value):
        raise ValueError(f"{name} {shown} must not contain control characters")
    if not value.startswith("/"):
        raise ValueError(f"{name} {shown} must be an absolute path")
    segments = [s for s in value.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise ValueError(f"{name} {shown} must not contain '..'")
    if len(value) > 1024:
        raise ValueError(f"{name} {shown} is longer than 1024 characters")
    return "/" + "/".join(segments)


def _mailbox(value: str, info: ValidationInfo) -> str:
    if _has_control(value) or len(value) > 255:
        raise ValueError(f"{_name(info)} {_show(value)} is not an IMAP mailbox name")
    return value


_PATTERN_CHAR = re.compile(r"[\w .\-+@#,=~()&%!$'*?]")


def _file_pattern(value: str, info: ValidationInfo) -> str:
    name, shown = _name(info), _show(value)
    if "/" in value:
        raise ValueError(f"{name} {shown} must not contain '/': it matches names in the folder")
    for char in value:
        if not _PATTERN_CHAR.fullmatch(char):
            raise ValueError(
                f"{name} {shown} must not contain {char!r}; use the wildcards * and ? "
                "with ordinary file name characters"
            )
    if len(value) > 255:
        raise ValueError(f"{name} {shown} is longer than 255 characters")
    if set(value) == {"."}:
        raise ValueError(f"{name} {shown} is not a file name pattern")
    return value


_SSH_FINGERPRINT = re.compile(r"[A-Za-z0-9+/]{43}")


def _ssh_fingerprint(value: str, info: ValidationInfo) -> str:
    prefix, colon, body = value.partition(":")
    body = body.rstrip("=")
    if not colon or prefix.upper() != "SHA256" or not _SSH_FINGERPRINT.fullmatch(body):
        raise ValueError(
            f"{_name(info)} {_show(value)} must look like SHA256:<43 base64 characters>, "
            "as ssh-keygen -lf prints it"
        )
    return "SHA256:" + body


_HEX_COLONS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}")
_HEX_PLAIN = re.compile(r"[0-9A-Fa-f]{64}")


def _certificate_fingerprint(value: str, info: ValidationInfo) -> str:
    if not (_HEX_COLONS.fullmatch(value) or _HEX_PLAIN.fullmatch(value)):
        raise ValueError(
            f"{_name(info)} {_show(value)} must be a SHA-256 fingerprint: 64 hex digits, "
            "with or without colons"
        )
    digits = value.replace(":", "").upper()
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def normalize_address(value: str) -> str | None:
    """An email address with its domain lowercased, or None if it is not one."""
    local, at, domain = value.strip().rpartition("@")
    domain = domain.lower()
    if (
        not at
        or len(local) > 64
        or len(value.strip()) > 254
        or not _LOCAL_PART.fullmatch(local)
        or "." not in domain
        or not _is_hostname(domain)
    ):
        return None
    return f"{local}@{domain}"


def _address(value: str, info: ValidationInfo) -> str:
    address = normalize_address(value)
    if address is None:
        raise ValueError(f"{_name(info)} {_show(value)} is not an email address")
    return address


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return [v.strip() if isinstance(v, str) else v for v in value]
    return value


def _unique(values: list[str]) -> list[str]:
    seen: set[str] = set()
    kept: list[str] = []
    for value in values:
        if value.lower() not in seen:
            seen.add(value.lower())
            kept.append(value)
    return kept


def _recipients(values: list[str], info: ValidationInfo) -> list[str]:
    name = _name(info)
    bad = [v for v in values if normalize_address(v) is None]
    if bad:
        raise ValueError(f"{name}: {', '.join(map(_show, bad))} is not an email address")
    kept = _unique([a for a in map(normalize_address, values) if a is not None])
    if not kept:
        raise ValueError(f"{name}: at least one address is required")
    if len(kept) > MAX_RECIPIENTS:
        raise ValueError(f"{name} has {len(kept)} addresses; at most {MAX_RECIPIENTS}")
    return kept


def _senders(values: list[str], info: ValidationInfo) -> list[str]:
    name = _name(info)
    kept: list[str] = []
    bad: list[str] = []
    for value in values:
        if value.startswith("@"):
            domain = value[1:].lower().removesuffix(".")
            if "." in domain and _is_hostname(domain):
                kept.append("@" + domain)
                continue
        elif (address := normalize_address(value)) is not None:
            kept.append(address)
            continue
        bad.append(value)
    if bad:
        raise ValueError(
            f"{name}: {', '.join(map(_show, bad))} is not an email address or an @domain"
        )
    kept = _unique(kept)
    if len(kept) > MAX_SENDERS:
        raise ValueError(f"{name} has {len(kept)} entries; at most {MAX_SENDERS}")
    return kept


def _no_bool(value: object, info: ValidationInfo) -> object:
    if isinstance(value, bool):
        raise ValueError(f"{_name(info)} {value!r} is not a whole number")
    return value


def _between(low: int, high: int) -> AfterValidator:
    def check(value: int, info: ValidationInfo) -> int:
        if not low <= value <= high:
            raise ValueError(f"{_name(info)} {value} is not between {low} and {high}")
        return value

    return AfterValidator(check)


def _valid_cron(expression: str) -> bool:
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        return False
    try:  # a valid expression may still never fire (30 February)
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except Exception:
        return False
    return True


def cron_for(schedule: str) -> str:
    """The cron expression of a schedule: a preset's, or the expression itself."""
    text = " ".join(schedule.split())
    if text.lower() in PRESETS:
        return PRESETS[text.lower()]
    if _valid_cron(text):
        return text
    raise Invalid(
        f"schedule {_show(schedule)} is not a preset or a valid cron expression",
        field="schedule",
    )


def _schedule(value: str, info: ValidationInfo) -> str:
    text = " ".join(value.split())
    if text.lower() in PRESETS:
        return text.lower()
    if _valid_cron(text):
        return text
    raise ValueError(f"{_name(info)} {_show(value)} is not a preset or a valid cron expression")


def _timezone(value: str, info: ValidationInfo) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{_name(info)} {_show(value)} is not a known time zone (e.g. Europe/Paris)"
        ) from None
    return value


def _name_template(value: str, info: ValidationInfo) -> str:
    name, shown = _name(info), _show(value)
    if _has_control(value) or len(value) > 200:
        raise ValueError(f"{name} {shown} must be at most 200 printable characters")
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError:
        raise ValueError(f"{name} {shown} has an unmatched {{ or }}") from None
    for literal, field, spec, conversion in parts:
        if "/" in literal or "\\" in literal:
            raise ValueError(f"{name} {shown} must not contain '/' or '\\'")
        if field is None:
            continue
        if field not in NAME_PLACEHOLDERS:
            raise ValueError(
                f"{name} {shown} uses unknown placeholder {{{field}}}; "
                f"known: {', '.join(NAME_PLACEHOLDERS)}"
            )
        if spec or conversion:
            raise ValueError(f"{name} {shown}: placeholder {{{field}}} takes no format")
    if value.startswith("."):
        raise ValueError(f"{name} {shown} must not start with '.'")
    return value


def _after(check: Callable[[str, ValidationInfo], str]) -> AfterValidator:
    return AfterValidator(check)


Host = Annotated[str, _after(_host)]
AbsolutePath = Annotated[str, _after(_absolute_path)]
Mailbox = Annotated[str, _after(_mailbox)]
FilePattern = Annotated[str, _after(_file_pattern)]
SshFingerprint = Annotated[str, _after(_ssh_fingerprint)]
CertificateFingerprint = Annotated[str, _after(_certificate_fingerprint)]
Address = Annotated[str, _after(_address)]
Recipients = Annotated[list[str], BeforeValidator(_split_list), AfterValidator(_recipients)]
Senders = Annotated[list[str], BeforeValidator(_split_list), AfterValidator(_senders)]
Schedule = Annotated[str, _after(_schedule)]
TimeZone = Annotated[str, _after(_timezone)]
NameTemplate = Annotated[str, _after(_name_template)]
Port = Annotated[int, BeforeValidator(_no_bool), _between(1, 65535)]
StableSeconds = Annotated[int, BeforeValidator(_no_bool), _between(0, 3600)]
RetentionDays = Annotated[int, BeforeValidator(_no_bool), _between(1, 365)]
AttachmentMb = Annotated[int, BeforeValidator(_no_bool), _between(1, 25)]


# -- fields -----------------------------------------------------------------------------
# One label and help text per field, whatever model it appears in.

_TEXTS: dict[str, tuple[str, str]] = {
    "allow_extra_columns": (
        "Allow extra columns",
        "Ignore columns the data type does not know instead of refusing the file.",
    ),
    "file_pattern": (
        "File pattern",
        "Which file names to take: * matches any characters, ? matches one.",
    ),
    "plain_ftp": ("Plain FTP", "Allow FTP without TLS; by default FTPS is required."),
    "plain_imap": ("Plain IMAP", "Connect without TLS; by default IMAPS is required."),
    "return_email": ("Return address", "Receives receipts and results."),
    "allowed_senders": (
        "Allowed senders",
        "Addresses or @domain entries allowed to send, separated by commas; empty: anyone.",
    ),
    "host": ("Host", "Host name or IP address of the server, without scheme or path."),
    "port": ("Port", "The server's port."),
    "imap_port": ("Port", "993 (IMAPS) by default, 143 with plain IMAP."),
    "folder": ("Folder", "Absolute path on the server, e.g. /outgoing."),
    "mailbox": ("Mailbox", "The IMAP mailbox to read, e.g. INBOX."),
    "delete_after_pull": (
        "Delete after pull",
        "Delete each file once taken; otherwise taken files are remembered.",
    ),
    "result_folder": (
        "Result folder",
        "Absolute path where receipts and results are written back; empty: not written.",
    ),
    "host_key_fingerprint": (
        "Host key fingerprint",
        "The server's SSH host key fingerprint, SHA256:..., to pin it.",
    ),
    "certificate_fingerprint": (
        "Certificate fingerprint",
        "SHA-256 fingerprint of the server's TLS certificate, to pin it.",
    ),
    "schedule": (
        "Schedule",
        "A preset (" + ", ".join(PRESETS) + ") or a cron expression of 5 fields.",
    ),
    "timezone": ("Time zone", "The zone the schedule runs in, e.g. Europe/Paris."),
    "stable_seconds": (
        "Stable for (seconds)",
        "A file is taken once its size has not changed for this long (0 to 3600).",
    ),
    "range": ("Range", "Which rows each file covers."),
    "format": ("Format", "csv, tsv, pipe (|-separated) or xlsx."),
    "compression": ("Compression", "none or gzip; gzip cannot wrap xlsx."),
    "name_template": (
        "File name template",
        "Placeholders: " + ", ".join("{" + p + "}" for p in NAME_PLACEHOLDERS) + ".",
    ),
    "send_empty": ("Send empty files", "Write a header-only file when the range has no rows."),
    "report": ("Report", "performance_by_day or action_listing."),
    "retention_days": ("Retention (days)", "How long files stay in the folder (1 to 365)."),
    "recipients": ("Recipients", f"1 to {MAX_RECIPIENTS} addresses, separated by commas."),
    "max_attachment_mb": (
        "Largest attachment (MB)",
        "Bigger files are sent as an expiring link (1 to 25).",
    ),
}


def _f(text: str, default: Any = ...) -> Any:
    """A model field labelled from `_TEXTS`; without a default, it is required."""
    title, help_text = _TEXTS[text]
    if isinstance(default, list):
        return Field(default_factory=list, title=title, description=help_text)
    return Field(default, title=title, description=help_text)


# -- models -----------------------------------------------------------------------------


class _Details(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SftpPushDetails(_Details):
    """Inbound, a partner uploads to Dropyard's SFTP server."""

    file_pattern: FilePattern = _f("file_pattern", "*")
    allow_extra_columns: bool = _f("allow_extra_columns", False)


class FtpPushDetails(_Details):
    """Inbound, a partner uploads to Dropyard's FTP(S) server."""

    file_pattern: FilePattern = _f("file_pattern", "*")
    plain_ftp: bool = _f("plain_ftp", False)
    allow_extra_columns: bool = _f("allow_extra_columns", False)


class EmailPushDetails(_Details):
    """Inbound, a partner mails attachments to a generated address."""

    file_pattern: FilePattern = _f("file_pattern")
    return_email: Address | None = _f("return_email", None)
    allowed_senders: Senders = _f("allowed_senders", [])
    allow_extra_columns: bool = _f("allow_extra_columns", False)


class SftpPullDetails(_Details):
    """Inbound, Dropyard takes files from the partner's SFTP server."""

    host: Host = _f("host")
    port: Port = _f("port", 22)
    folder: AbsolutePath = _f("folder")
    file_pattern: FilePattern = _f("file_pattern")
    delete_after_pull: bool = _f("delete_after_pull", False)
    result_folder: AbsolutePath | None = _f("result_folder", None)
    host_key_fingerprint: SshFingerprint | None = _f("host_key_fingerprint", None)
    schedule: Schedule = _f("schedule", "hourly")
    timezone: TimeZone = _f("timezone", "UTC")
    stable_seconds: StableSeconds = _f("stable_seconds", 30)
    allow_extra_columns: bool = _f("allow_extra_columns", False)


class FtpPullDetails(_Details):
    """Inbound, Dropyard takes files from the partner's FTP(S) server."""

    host: Host = _f("host")
    port: Port = _f("port", 21)
    folder: AbsolutePath = _f("folder")
    file_pattern: FilePattern = _f("file_pattern")
    delete_after_pull: bool = _f("delete_after_pull", False)
    result_folder: AbsolutePath | None = _f("result_folder", None)
    plain_ftp: bool = _f("plain_ftp", False)
    certificate_fingerprint: CertificateFingerprint | None = _f("certificate_fingerprint", None)
    schedule: Schedule = _f("schedule", "hourly")
    timezone: TimeZone = _f("timezone", "UTC")
    stable_seconds: StableSeconds = _f("stable_seconds", 30)
    allow_extra_columns: bool = _f("allow_extra_columns", False)


class ImapPullDetails(_Details):
    """Inbound, Dropyard reads attachments from the partner's IMAP mailbox."""

    host: Host = _f("host")
    port: Port = _f("imap_port", 993)
    folder: Mailbox = _f("mailbox", "INBOX")
    file_pattern: FilePattern = _f("file_pattern")
    delete_after_pull: bool = _f("delete_after_pull", False)
    plain_imap: bool = _f("plain_imap", False)
    # IMAPS is pinned like FTPS: a password must not reach a server in the middle.
    certificate_fingerprint: CertificateFingerprint | None = _f("certificate_fingerprint", None)
    schedule: Schedule = _f("schedule", "hourly")
    timezone: TimeZone = _f("timezone", "UTC")
    allow_extra_columns: bool = _f("allow_extra_columns", False)

    @model_validator(mode="before")
    @classmethod
    def _plain_port(cls, data: Any) -> Any:
        """Without TLS the usual port is 143, unless one is given."""
        if isinstance(data, Mapping) and "port" not in data and _truthy(data.get("plain_imap")):
            return {**data, "port": 143}
        return data


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on", "y", "t"}
    return value is True or value == 1


class _OutboundDetails(_Details):
    """The options every outbound connection has (formats/outbound.md)."""

    schedule: Schedule = _f("schedule", "daily")
    timezone: TimeZone = _f("timezone", "UTC")
    range: Range = _f("range", "yesterday")
    format: FileFormat = _f("format", "csv")
    compression: Compression = _f("compression", "none")
    name_template: NameTemplate = _f("name_template", DEFAULT_NAME_TEMPLATE)
    send_empty: bool = _f("send_empty", True)

    @field_validator("compression")
    @classmethod
    def _not_gzip_xlsx(cls, value: str, info: ValidationInfo) -> str:
        if value == "gzip" and info.data.get("format") == "xlsx":
            raise ValueError(
                "compression 'gzip' cannot be used with format 'xlsx' (xlsx is already compressed)"
            )
        return value


class SftpHostedDetails(_OutboundDetails):
    """Outbound, the partner downloads from Dropyard's SFTP server."""

    retention_days: RetentionDays = _f("retention_days", 30)


class FtpHostedDetails(_OutboundDetails):
    """Outbound, the partner downloads from Dropyard's FTP(S) server."""

    retention_days: RetentionDays = _f("retention_days", 30)
    plain_ftp: bool = _f("plain_ftp", False)


class SftpDeliverDetails(_OutboundDetails):
    """Outbound, Dropyard uploads to the partner's SFTP server."""

    host: Host = _f("host")
    port: Port = _f("port", 22)
    folder: AbsolutePath = _f("folder")
    host_key_fingerprint: SshFingerprint | None = _f("host_key_fingerprint", None)


class FtpDeliverDetails(_OutboundDetails):
    """Outbound, Dropyard uploads to the partner's FTP(S) server."""

    host: Host = _f("host")
    port: Port = _f("port", 21)
    folder: AbsolutePath = _f("folder")
    plain_ftp: bool = _f("plain_ftp", False)
    certificate_fingerprint: CertificateFingerprint | None = _f("certificate_fingerprint", None)


class EmailDeliverDetails(_OutboundDetails):
    """Outbound, Dropyard mails each file through its own relay."""

    recipients: Recipients = _f("recipients")
    max_attachment_mb: AttachmentMb = _f("max_attachment_mb", 10)


class SftpHostedReportDetails(SftpHostedDetails):
    """SftpHostedDetails for reports, which name the report to run."""

    report: ReportName = _f("report", "performance_by_day")


class FtpHostedReportDetails(FtpHostedDetails):
    """FtpHostedDetails for reports, which name the report to run."""

    report: ReportName = _f("report", "performance_by_day")


class SftpDeliverReportDetails(SftpDeliverDetails):
    """SftpDeliverDetails for reports, which name the report to run."""

    report: ReportName = _f("report", "performance_by_day")


class FtpDeliverReportDetails(FtpDeliverDetails):
    """FtpDeliverDetails for reports, which name the report to run."""

    report: ReportName = _f("report", "performance_by_day")


class EmailDeliverReportDetails(EmailDeliverDetails):
    """EmailDeliverDetails for reports, which name the report to run."""

    report: ReportName = _f("report", "performance_by_day")


_MODELS: dict[tuple[Methodology, Method], type[_Details]] = {
    ("push", "sftp"): SftpPushDetails,
    ("push", "ftp"): FtpPushDetails,
    ("push", "email"): EmailPushDetails,
    ("pull", "sftp"): SftpPullDetails,
    ("pull", "ftp"): FtpPullDetails,
    ("pull", "email"): ImapPullDetails,
    ("hosted", "sftp"): SftpHostedDetails,
    ("hosted", "ftp"): FtpHostedDetails,
    ("deliver", "sftp"): SftpDeliverDetails,
    ("deliver", "ftp"): FtpDeliverDetails,
    ("deliver", "email"): EmailDeliverDetails,
}
_REPORT_MODELS: dict[type[_Details], type[_Details]] = {
    SftpHostedDetails: SftpHostedReportDetails,
    FtpHostedDetails: FtpHostedReportDetails,
    SftpDeliverDetails: SftpDeliverReportDetails,
    FtpDeliverDetails: FtpDeliverReportDetails,
    EmailDeliverDetails: EmailDeliverReportDetails,
}
# Outbound forms show where files go before what they contain.
_OUTBOUND_FIRST = (
    "host",
    "port",
    "folder",
    "plain_ftp",
    "host_key_fingerprint",
    "certificate_fingerprint",
    "recipients",
    "max_attachment_mb",
    "report",
)


def model_for(
    direction: Direction, methodology: Methodology, method: Method, data_type: DataType
) -> type[_Details]:
    """The details model of a combination; Invalid if the rules table refuses it."""
    return _resolve(direction, methodology, method, data_type)


def _resolve(direction: str, methodology: str, method: str, data_type: str) -> type[_Details]:
    check_combination(direction, data_type, method, methodology)
    model = _MODELS[(as_methodology(methodology), as_method(method))]
    if as_data_type(data_type) == "reports":
        model = _REPORT_MODELS.get(model, model)
    return model


def _describe(methodology: str, method: str) -> str:
    return f"an {method} {methodology} connection"


def _choices(annotation: Any) -> tuple[str, ...]:
    if get_origin(annotation) is Literal:
        return tuple(str(a) for a in get_args(annotation))
    return ()


def _message(error: Mapping[str, Any], model: type[_Details], describe: str) -> tuple[str, str]:
    loc = error.get("loc") or ()
    field = str(loc[0]) if loc else "details"
    kind = str(error.get("type", ""))
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return field, f"{field} is required"
    if kind == "extra_forbidden":
        if field == "report":
            return field, f"'report' is not a setting of {describe} (only reports have one)"
        return field, f"'{field}' is not a setting of {describe}"
    if kind == "value_error" and "error" in ctx:
        return field, str(ctx["error"])
    if kind.startswith("int_"):
        return field, f"{field} {_show(value)} is not a whole number"
    if kind.startswith("bool_"):
        return field, f"{field} {_show(value)} is not yes or no"
    if kind == "literal_error":
        info = model.model_fields.get(field)
        choices = _choices(info.annotation) if info else ()
        return field, f"{field} {_show(value)} is not one of {', '.join(choices)}"
    if kind in {"string_type", "list_type"}:
        wanted = "text" if kind == "string_type" else "a list"
        return field, f"{field} {_show(value)} is not {wanted}"
    return field, f"{field} {_show(value)}: {error.get('msg', 'is not valid')}"


def _given(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What the user actually gave: blank strings and None mean "use the default"."""
    given: dict[str, Any] = {}
    bad_keys = [k for k in raw if not isinstance(k, str)]
    if bad_keys:
        raise Invalid(f"details has a key that is not text: {bad_keys[0]!r}", field="details")
    for key, value in raw.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        given[key] = value
    return given


def validate_details(
    direction: str, methodology: str, method: str, data_type: str, raw: Mapping[str, Any]
) -> dict[str, Any]:
    """The normalized details (defaults filled in, JSON-able) of a combination, or one
    Invalid keyed by detail field name that names every bad value."""
    model = _resolve(direction, methodology, method, data_type)
    if not isinstance(raw, Mapping):
        raise Invalid(f"details must be an object, not {type(raw).__name__}", field="details")
    try:
        validated = model.model_validate(_given(raw))
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            field, text = _message(error, model, _describe(methodology, method))
            errors.setdefault(field, text)
        raise Invalid.of(errors) from None
    return validated.model_dump(mode="json")


def _kind(annotation: Any) -> tuple[FieldKind, tuple[str, ...]]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _kind(get_args(annotation)[0])
    if origin in (Union, UnionType):
        inner = [a for a in get_args(annotation) if a is not NoneType]
        return _kind(inner[0])
    if origin is Literal:
        return "choice", _choices(annotation)
    if origin is list:
        return "list", ()
    if annotation is bool:
        return "bool", ()
    if annotation is int:
        return "int", ()
    return "text", ()


def detail_fields(direction: str, methodology: str, method: str, data_type: str) -> list[FieldSpec]:
    """The detail fields of a combination, in the order a form shows them."""
    model = _resolve(direction, methodology, method, data_type)
    specs: list[FieldSpec] = []
    for name, info in model.model_fields.items():
        kind, choices = _kind(info.annotation)
        required = info.is_required()
        specs.append(
            FieldSpec(
                name=name,
                label=info.title or name,
                kind=kind,
                required=required,
                default=None if required else info.get_default(call_default_factory=True),
                choices=tuple(PRESETS) if name == "schedule" else choices,
                help=info.description or "",
            )
        )
    if direction == "outbound":
        first = [s for n in _OUTBOUND_FIRST for s in specs if s.name == n]
        specs = first + [s for s in specs if s.name not in _OUTBOUND_FIRST]
    return specs

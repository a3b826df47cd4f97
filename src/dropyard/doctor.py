"""`dropyard doctor`: checks an installation from its settings and says how to fix it.

Every check only looks: nothing is created, migrated or chmod-ed here (that is what
`dropyard migrate` and `serve` do), and no secret is printed. A check returns one
`Finding`: ok, warn (works, but worth a look) or fail (Dropyard will not work as set).
"""

from __future__ import annotations

import json
import socket
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError
from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from dropyard.credentials.secrets import load_or_create_master_key
from dropyard.db.migrate import alembic_config
from dropyard.errors import DropyardError
from dropyard.settings import Settings, load_settings

Status = Literal["ok", "warn", "fail"]
CONNECT_TIMEOUT = 3.0
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Where each role listens: the setting that moves it.
ROLE_PORTS = {"web": "web_port", "sftp": "sftp_port", "ftp": "ftp_port", "smtp": "smtp_port"}


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str = ""


def _env(name: str) -> str:
    return f"DROPYARD_{name.upper()}"


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__


# -- settings -----------------------------------------------------------------------------


def load(*, config_file: Path | None, overrides: dict[str, Any]) -> tuple[Settings | None, Finding]:
    """The settings, or why they cannot be loaded (then nothing else can be checked)."""
    source = f"config file {config_file} and environment" if config_file else "environment"
    try:
        settings = load_settings(config_file=config_file, overrides=overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            problems.append(f"{name}: {error['msg']}")
        first = str(exc.errors()[0]["loc"][0]) if exc.errors() and exc.errors()[0]["loc"] else ""
        fix = f"correct {_env(first)} (or `{first}` in the config file)" if first else ""
        return None, Finding("settings", "fail", "; ".join(problems), fix)
    except OSError as exc:
        return None, Finding(
            "settings",
            "fail",
            f"cannot read config file {config_file}: {exc.strerror or exc}",
            "give --config a readable TOML file, or leave it out",
        )
    except ValueError as exc:  # tomllib.TOMLDecodeError
        return None, Finding(
            "settings", "fail", f"config file {config_file} is not valid TOML: {exc}", ""
        )
    return settings, Finding("settings", "ok", f"valid (from {source})")


# -- the checks ---------------------------------------------------------------------------


def data_dir(settings: Settings) -> Finding:
    path = settings.data_dir.absolute()
    if not path.exists():
        return Finding(
            "data dir",
            "fail",
            f"{path} does not exist",
            "run `dropyard migrate` (creates it, mode 0700), or point --data-dir at the "
            "installation's data directory",
        )
    if not path.is_dir():
        return Finding(
            "data dir",
            "fail",
            f"{path} is not a directory",
            "point --data-dir (DROPYARD_DATA_DIR) at a directory",
        )
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return Finding(
            "data dir",
            "fail",
            f"{path} is not writable: {exc.strerror or exc}",
            f"give {path} to the user Dropyard runs as (chown), then chmod 700 {path}",
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode != 0o700:
        return Finding(
            "data dir",
            "fail",
            f"{path} has mode {mode:04o}; it holds keys and partners' files",
            f"chmod 700 {path}",
        )
    return Finding("data dir", "ok", f"{path} is writable, mode 0700")


def master_key(settings: Settings) -> Finding:
    path = settings.keys_dir / "master.key"
    if settings.master_key is not None:
        try:
            load_or_create_master_key(path, settings.master_key)
        except DropyardError as exc:
            return Finding(
                "master key",
                "fail",
                exc.message,
                "set DROPYARD_MASTER_KEY to this installation's key (32 bytes, base64)",
            )
        return Finding("master key", "ok", "from DROPYARD_MASTER_KEY")
    if not path.exists():
        return Finding(
            "master key",
            "fail",
            f"no master key at {path}",
            "restore this installation's key file (stored secrets cannot be read without "
            "it); on a new installation `dropyard migrate` creates one",
        )
    try:
        load_or_create_master_key(path, None)
    except DropyardError as exc:
        mode = stat.S_IMODE(path.stat().st_mode)
        fix = f"chmod 600 {path}" if mode & 0o077 else "restore the key file from a backup"
        return Finding("master key", "fail", exc.message, fix)
    return Finding("master key", "ok", f"{path} is readable, mode 0600")


def database(settings: Settings) -> Finding:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    url = make_url(settings.resolved_database_url)
    shown = url.render_as_string(hide_password=True)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:" and not Path(url.database).exists():
            return Finding(
                "database",
                "fail",
                f"no database at {url.database}",
                "run `dropyard migrate` (creates it)",
            )
    elif url.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = int(CONNECT_TIMEOUT)
    engine = create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError as exc:
        return Finding(
            "database",
            "fail",
            f"cannot use {shown}: {_first_line(exc)}",
            "check DROPYARD_DATABASE_URL, that the database server runs and that this "
            "user may connect to that database",
        )
    finally:
        engine.dispose()
    scripts = ScriptDirectory.from_config(alembic_config())
    head = set(scripts.get_heads())
    if current == head:
        return Finding("database", "ok", f"{shown} is at the latest schema ({', '.join(head)})")
    if not current:
        return Finding("database", "fail", f"{shown} has no schema", "run `dropyard migrate`")
    known = {s.revision for s in scripts.walk_revisions()}
    if not current <= known:
        return Finding(
            "database",
            "fail",
            f"{shown} is at {', '.join(sorted(current))}, newer than this Dropyard knows",
            "run the Dropyard version that migrated it (or newer)",
        )
    return Finding(
        "database",
        "fail",
        f"{shown} is at {', '.join(sorted(current))}; this version needs {', '.join(head)}",
        "run `dropyard migrate`",
    )


def storage(settings: Settings, make: Callable[[Settings], object] | None = None) -> Finding:
    """The storage `build` would use, written to and read back by its own `check()`."""
    if not settings.data_dir.is_dir():
        return Finding("storage", "fail", "not checked: the data dir is missing", "see data dir")
    try:
        if make is None:
            from dropyard.storage.factory import make_storage

            make = make_storage
        store = make(settings)
        check = getattr(store, "check", None)
        if callable(check):
            check()
    except DropyardError as exc:
        return Finding("storage", "fail", exc.message, _storage_fix(settings))
    except Exception as exc:
        return Finding("storage", "fail", f"{type(exc).__name__}: {exc}", _storage_fix(settings))
    return Finding("storage", "ok", f"{type(store).__name__} answers and takes writes")


def _storage_fix(settings: Settings) -> str:
    if getattr(settings, "storage_backend", "local") == "local":
        return f"make {settings.files_dir} writable by the user Dropyard runs as"
    return "check the DROPYARD_S3_* settings, the endpoint and the bucket's permissions"


def redis(settings: Settings) -> Finding | None:
    if not settings.redis_url:
        return None
    import redis as redis_client

    shown = _without_password(settings.redis_url)
    try:
        client = redis_client.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=CONNECT_TIMEOUT,
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return Finding(
            "redis",
            "fail",
            f"{shown} does not answer: {_first_line(exc)}",
            "start Redis or correct DROPYARD_REDIS_URL (unset it to queue jobs in SQLite)",
        )
    return Finding("redis", "ok", f"{shown} answers")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def ports(settings: Settings, roles: Sequence[str]) -> list[Finding]:
    wanted = [(role, ROLE_PORTS[role]) for role in roles if role in ROLE_PORTS]
    if settings.metrics_port is not None:
        wanted.append(("metrics", "metrics_port"))
    running = _running_ports(settings)
    found = []
    for role, setting in wanted:
        port = int(getattr(settings, setting))
        found.append(_port(settings.bind_host, role, port, setting, running))
    return found


def _running_ports(settings: Settings) -> dict[str, int]:
    """What a running `dropyard serve` of this data dir says it listens on."""
    try:
        found = json.loads((settings.run_dir / "ports.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, int)}


def _port(host: str, role: str, port: int, setting: str, running: dict[str, int]) -> Finding:
    name = f"{role} port"
    if port == 0:
        return Finding(name, "ok", "0: any free port is taken at start")
    where = f"{host}:{port}"
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if running.get(role) == port:
                return Finding(name, "ok", f"{where} is in use by this installation's server")
            if exc.errno == 13:  # EACCES
                fix = f"choose a port above 1023 ({_env(setting)}) or grant the bind privilege"
                return Finding(name, "fail", f"{where} needs privileges to bind", fix)
            if exc.errno == 99:  # EADDRNOTAVAIL
                return Finding(
                    name,
                    "fail",
                    f"{host} is not an address of this machine",
                    "set DROPYARD_BIND_HOST to an address of this machine (or 0.0.0.0)",
                )
            return Finding(
                name,
                "fail",
                f"{where} is in use by another program",
                f"stop that program or choose another port with {_env(setting)}",
            )
    return Finding(name, "ok", f"{where} is free")


def tls(settings: Settings) -> Finding:
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None and key is None:
        return Finding("tls", "ok", "not set: a self-signed certificate is made under keys/")
    if cert is None or key is None:
        return Finding(
            "tls",
            "fail",
            "only one of tls_cert_file and tls_key_file is set",
            "set both DROPYARD_TLS_CERT_FILE and DROPYARD_TLS_KEY_FILE, or neither",
        )
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_private_key,
    )

    try:
        certificate = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    except (OSError, ValueError, IndexError) as exc:
        return Finding(
            "tls", "fail", f"cannot read the certificate {cert}: {_os_or(exc)}", _tls_fix(cert)
        )
    try:
        private = load_pem_private_key(key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        return Finding(
            "tls",
            "fail",
            f"cannot read the key {key}: {_os_or(exc)}",
            f"{_tls_fix(key)}; the key must be PEM without a passphrase",
        )

    def public(obj: Any) -> bytes:
        data: bytes = obj.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return data

    if public(certificate.public_key()) != public(private.public_key()):
        return Finding(
            "tls",
            "fail",
            f"the key {key} does not belong to the certificate {cert}",
            "give the key the certificate was issued for",
        )
    expires = certificate.not_valid_after_utc
    now = datetime.now(UTC)
    if expires <= now:
        return Finding("tls", "fail", f"the certificate expired on {expires:%Y-%m-%d}", "renew it")
    if expires - now < timedelta(days=14):
        return Finding("tls", "warn", f"the certificate expires on {expires:%Y-%m-%d}", "renew it")
    return Finding("tls", "ok", f"{cert} and its key match; valid until {expires:%Y-%m-%d}")


def _os_or(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc).splitlines()[0]


def _tls_fix(path: Path) -> str:
    return f"make {path} a readable PEM file for the user Dropyard runs as"


def relay(settings: Settings) -> Finding | None:
    if not settings.smtp_relay_host:
        return None
    where = f"{settings.smtp_relay_host}:{settings.smtp_relay_port}"
    try:
        with socket.create_connection(
            (settings.smtp_relay_host, settings.smtp_relay_port), timeout=CONNECT_TIMEOUT
        ):
            pass
    except OSError as exc:
        return Finding(
            "smtp relay",
            "fail",
            f"cannot connect to {where}: {exc.strerror or exc}",
            "check DROPYARD_SMTP_RELAY_HOST and DROPYARD_SMTP_RELAY_PORT and that this "
            "machine may reach it",
        )
    return Finding("smtp relay", "ok", f"{where} accepts connections")


def networks(settings: Settings) -> Finding:
    for name in ("allow_networks", "defender_allow"):
        for item in getattr(settings, name):
            try:
                ip_network(item, strict=False)
            except ValueError as exc:
                return Finding(
                    "networks", "fail", f"{name}: {exc}", f"correct {_env(name)} (CIDR, a,b,c)"
                )
    allowed = settings.allow_networks
    detail = f"{len(allowed)} allowed network(s)" if allowed else "any address may connect"
    return Finding("networks", "ok", detail)


def https(settings: Settings) -> Finding:
    if settings.web_https or settings.public_host.lower() in _LOCAL_HOSTS:
        return Finding("https", "ok", "web_https is set" if settings.web_https else "local only")
    return Finding(
        "https",
        "warn",
        f"web_https is false but the console is public at {settings.public_host}: "
        "session cookies may travel in clear text",
        "serve the console over https (directly or through a TLS proxy) and set "
        "DROPYARD_WEB_HTTPS=true",
    )


def diagnose(settings: Settings, *, roles: Sequence[str]) -> list[Finding]:
    """Every check, in the order a person fixes things."""
    checks: list[Callable[[], Finding | list[Finding] | None]] = [
        lambda: data_dir(settings),
        lambda: master_key(settings),
        lambda: database(settings),
        lambda: storage(settings),
        lambda: redis(settings),
        lambda: ports(settings, roles),
        lambda: tls(settings),
        lambda: relay(settings),
        lambda: networks(settings),
    ]
    if "web" in roles:
        checks.append(lambda: https(settings))
    found: list[Finding] = []
    for check in checks:
        try:
            result = check()
        except Exception as exc:  # a check that breaks is a finding, not a crash
            result = Finding("doctor", "fail", f"a check failed: {type(exc).__name__}: {exc}")
        if isinstance(result, list):
            found.extend(result)
        elif result is not None:
            found.append(result)
    return found

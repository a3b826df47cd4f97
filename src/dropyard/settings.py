"""Typed settings: environment variables `DROPYARD_*`, an optional TOML file, defaults.

Nothing here runs at import time: call `load_settings()` where a process starts.
"""

from __future__ import annotations

import tomllib
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# What one `dropyard serve` process can run; `--roles` picks some.
ROLES = ("web", "sftp", "ftp", "smtp", "worker")


class Settings(BaseSettings):
    """Every knob of a Dropyard installation. Paths default to places under `data_dir`."""

    model_config = SettingsConfigDict(env_prefix="DROPYARD_", extra="ignore")

    data_dir: Path = Path("./var")
    database_url: str | None = None
    redis_url: str | None = None
    # One installation, one queue: installations sharing a Redis need different names.
    queue_name: str = "dropyard"
    master_key: str | None = Field(default=None, repr=False)

    public_host: str = "localhost"
    mail_domain: str = "dropyard.localhost"
    bind_host: str = "127.0.0.1"
    web_port: int = 8080
    sftp_port: int = 2222
    ftp_port: int = 2121
    smtp_port: int = 2525

    # The console is reached over https (directly or through a TLS proxy): Secure cookies.
    web_https: bool = False
    credential_overlap_hours: int = 24
    log_level: str = "INFO"

    max_file_bytes: int = 2 * 1024**3
    max_email_bytes: int = 25 * 1024**2
    max_expanded_bytes: int = 5 * 1024**3
    max_expansion_ratio: int = 20
    max_attempts: int = 5
    lease_seconds: float = 600.0
    sweep_seconds: float = 30.0
    workers: int = 2

    # Where Dropyard's own mail goes out (notices to return addresses). No relay: logged only.
    smtp_relay_host: str | None = None
    smtp_relay_port: int = 587
    smtp_relay_starttls: bool = True
    smtp_relay_username: str | None = None
    smtp_relay_password: str | None = Field(default=None, repr=False)
    mail_from: str | None = None

    allow_networks: list[str] = Field(default_factory=list)

    ban_after_failures: int = 5
    ban_window_seconds: float = 600.0
    ban_seconds: float = 1800.0
    defender_allow: list[str] = Field(default_factory=list)
    sftp_max_sessions_per_address: int = 64
    sftp_max_sessions_per_login: int = 32
    # FTP(S): passive data ports as "30000-30100" (empty: any free port), the address
    # announced in PASV replies behind NAT, and connection caps (a thread per client).
    ftp_passive_ports: str = ""
    ftp_masquerade_address: str | None = None
    ftp_max_connections: int = 256
    ftp_max_connections_per_address: int = 16
    # The certificate FTPS presents; generated self-signed under keys_dir when unset.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    shutdown_grace_seconds: float = 10.0

    @field_validator("allow_networks", "defender_allow")
    @classmethod
    def _networks_parse(cls, value: list[str]) -> list[str]:
        for item in value:
            ip_network(item, strict=False)
        return value

    @property
    def allowed_networks(self) -> list[IPv4Network | IPv6Network]:
        return [ip_network(item, strict=False) for item in self.allow_networks]

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'dropyard.db').resolve()}"

    @property
    def resolved_mail_from(self) -> str:
        return self.mail_from or f"dropyard@{self.mail_domain}"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"


def load_settings(
    *, config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Defaults < TOML file < environment < explicit overrides (e.g. CLI flags)."""
    from_file: dict[str, Any] = {}
    if config_file is not None:
        with config_file.open("rb") as handle:
            from_file = tomllib.load(handle)
    env_values = Settings().model_dump(exclude_unset=True)
    merged = {**from_file, **env_values, **(overrides or {})}
    return Settings.model_validate(merged)

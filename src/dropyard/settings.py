"""Typed settings: environment variables `DROPYARD_*`, an optional TOML file, defaults.

Nothing here runs at import time: call `load_settings()` where a process starts.
"""

from __future__ import annotations

import tomllib
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# What one `dropyard serve` process can run; `--roles` picks some. "scheduler": take part
# in the election of the one node that runs the periodic work (scheduled runs, the sweep).
ROLES = ("web", "sftp", "ftp", "smtp", "worker", "scheduler")


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
    # "json": one object a line (time, level, logger, message, trace_id) for log shippers.
    log_format: Literal["text", "json"] = "text"
    # /metrics asks for `Authorization: Bearer <metrics_token>` when set. metrics_port, when
    # set, serves /metrics on a port of its own too: for nodes without the web role
    # (`serve --roles sftp`, `worker`); 0 takes any free port.
    metrics_token: str | None = Field(default=None, repr=False)
    metrics_port: int | None = None

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

    # Sessions with partners' servers (pulls, deliveries, connection tests): timeouts, the
    # largest file and listing taken, a whole run's time limit, and whether a pull waits
    # for a file's size to hold still before taking it.
    remote_connect_timeout: float = Field(default=15.0, gt=0)
    remote_idle_timeout: float = Field(default=60.0, gt=0)
    remote_max_file_bytes: int = Field(default=2 * 1024**3, gt=0)
    remote_max_listing: int = Field(default=200_000, gt=0)
    remote_max_run_seconds: float = Field(default=3600.0, gt=0)
    remote_stable_check: bool = True
    # The most files one pull run takes; the rest wait for the next run.
    remote_max_files_per_run: int = Field(default=500, gt=0)

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
    # The SSH host keys SFTP presents (OpenSSH or PEM private keys, Ed25519 or RSA >= 2048,
    # unencrypted); unset: made once per installation and shared by every node.
    ssh_host_key_files: list[Path] = Field(default_factory=list)
    # The scheduler leader holds its lease this long and renews it every loop: a dead
    # leader is replaced within lease + loop seconds.
    scheduler_lease_seconds: float = Field(default=45.0, gt=0)
    scheduler_loop_seconds: float = Field(default=10.0, gt=0)
    shutdown_grace_seconds: float = 10.0

    # Behind a TCP load balancer (docs/deploy.md): the SFTP, FTP and SMTP listeners expect a
    # PROXY protocol header (v1 or v2) on every connection and take the client's address
    # from it (bans, session caps, audit). Only peers in proxy_trusted (the balancer's
    # networks) may connect at all then; a header must arrive within proxy_timeout_seconds.
    proxy_protocol: bool = False
    proxy_trusted: list[str] = Field(default_factory=list)
    proxy_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    # Where stored files live: "local" (files_dir) or an S3-compatible bucket. Without the
    # keys, boto3's usual credential chain applies (environment, profile, instance role).
    # A bucket lifecycle rule that aborts incomplete multipart uploads is recommended.
    # "s3" needs s3_bucket (checked where storage is made: the bucket may come from a
    # file while the backend comes from the environment).
    storage_backend: Literal["local", "s3"] = "local"
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = Field(default=None, repr=False)
    s3_secret_access_key: str | None = Field(default=None, repr=False)
    s3_sse: Literal["AES256", "aws:kms"] | None = None
    s3_sse_kms_key_id: str | None = None
    s3_part_mb: int = Field(default=16, ge=5, le=5120)  # S3 parts are 5 MiB to 5 GiB
    s3_timeout_seconds: float = Field(default=10.0, gt=0)
    s3_max_attempts: int = Field(default=3, ge=1)

    @field_validator("allow_networks", "defender_allow", "proxy_trusted")
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

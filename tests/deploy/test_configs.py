"""The files under deploy/ as an operator installs them: HAProxy accepts the config for one
node and for three, and says what is missing; systemd accepts the units, whose commands
are real `dropyard` invocations; the settings example is valid settings."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from dropyard.gateway.proxy_protocol import ProxyPolicy
from dropyard.settings import ROLES, Settings
from tests.deploy.conftest import DEPLOY, certificate_pem, haproxy_env, need

UNITS = DEPLOY / "systemd"
INSTALLED = "/opt/dropyard/bin/dropyard"
DROPYARD = str(Path(sys.executable).parent / "dropyard")
# Variables the units themselves read from the environment file (not settings).
UNIT_VARIABLES = {"DROPYARD_ROLES", "DROPYARD_WORKER_THREADS"}


# -- HAProxy ----------------------------------------------------------------------------


def _haproxy_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # -dW: a warning fails the check too.
        [need("haproxy"), "-dW", "-c", "-f", str(DEPLOY / "haproxy.cfg")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("count", [1, 3])
def test_haproxy_accepts_the_config_for_the_nodes_it_is_given(count: int, tmp_path: Path) -> None:
    nodes = [f"10.0.1.{11 + n}" for n in range(count)]
    passive = [f"{30000 + 100 * n}-{30099 + 100 * n}" for n in range(count)]
    done = _haproxy_check(haproxy_env(nodes=nodes, passive=passive, cert=certificate_pem(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Configuration file is valid" in done.stdout


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("DROPYARD_NODE1", "set DROPYARD_NODE1"),
        ("DROPYARD_NODE1_PASSIVE", "set DROPYARD_NODE1_PASSIVE"),
        ("DROPYARD_LB_CERT", "set DROPYARD_LB_CERT"),
    ],
)
def test_haproxy_config_says_which_setting_is_missing(
    missing: str, named: str, tmp_path: Path
) -> None:
    env = haproxy_env(nodes=["10.0.1.11"], passive=["30000-30099"], cert=certificate_pem(tmp_path))
    del env[missing]
    done = _haproxy_check(env)
    assert done.returncode != 0
    assert named in done.stderr


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("."):
            continue
        if not line.startswith((" ", "\t")):
            current = line.strip()
            sections[current] = []
        else:
            sections[current].append(line.strip())
    return sections


def test_every_tcp_backend_sends_a_proxy_header_and_http_does_not() -> None:
    sections = _sections((DEPLOY / "haproxy.cfg").read_text())
    backends = {name: lines for name, lines in sections.items() if name.startswith("backend ")}
    assert {"backend sftp_nodes", "backend ftp_nodes", "backend smtp_nodes"} <= set(backends)
    assert "backend web_nodes" in backends
    for name, lines in backends.items():
        servers = [line for line in lines if line.startswith("server ")]
        assert servers, name
        if "mode http" in lines:
            assert not any("send-proxy" in s for s in servers), name
        else:
            assert all(re.search(r"\ssend-proxy(-v2)?(\s|$)", s) for s in servers), name
    # SMTP shows v1 (what mail tools know); the others v2.
    assert all(
        s.endswith(" send-proxy") for s in backends["backend smtp_nodes"] if s.startswith("server ")
    )


# -- systemd ----------------------------------------------------------------------------


def _installed_here(tmp_path: Path) -> Path:
    """The units as installed, with this checkout's `dropyard` where /opt/dropyard's is."""
    target = tmp_path / "units"
    target.mkdir()
    for unit in UNITS.iterdir():
        (target / unit.name).write_text(unit.read_text().replace(INSTALLED, DROPYARD))
    return target


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    units = _installed_here(tmp_path)
    done = subprocess.run(
        [
            analyze,
            "verify",
            str(units / "dropyard.service"),
            str(units / "dropyard-worker@1.service"),
            str(units / "dropyard-migrate.service"),
            str(units / "dropyard.target"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=units,
    )
    # verify warns about unknown keys and bad values without failing: no output at all.
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def _unit(path: Path) -> tuple[dict[str, str], str]:
    """A service's default environment (Environment=) and its ExecStart."""
    env: dict[str, str] = {}
    command = ""
    for line in path.read_text().splitlines():
        if line.startswith("Environment="):
            name, _, value = line[len("Environment=") :].partition("=")
            env[name] = value
        elif line.startswith("ExecStart="):
            command = line[len("ExecStart=") :]
    assert command, f"{path.name} has no ExecStart"
    return env, command


@pytest.mark.parametrize(
    "unit", ["dropyard.service", "dropyard-worker@.service", "dropyard-migrate.service"]
)
def test_unit_commands_are_dropyard_commands(unit: str, tmp_path: Path) -> None:
    env, command = _unit(UNITS / unit)
    assert command.startswith(INSTALLED + " ")
    expanded = command.replace("%S", str(tmp_path)).replace("%i", "1")
    expanded = re.sub(r"\$\{(\w+)\}", lambda m: env[m[1]], expanded)
    args = shlex.split(expanded)[1:]
    roles = args[args.index("--roles") + 1].split(",") if "--roles" in args else []
    assert set(roles) <= set(ROLES), roles
    done = subprocess.run(
        [DROPYARD, *args, "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Usage: dropyard" in done.stdout


def test_units_are_hardened() -> None:
    for unit in ("dropyard.service", "dropyard-worker@.service", "dropyard-migrate.service"):
        text = (UNITS / unit).read_text()
        for line in (
            "User=dropyard",
            "EnvironmentFile=/etc/dropyard/dropyard.env",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=",
        ):
            assert f"\n{line}\n" in text, (unit, line)
        assert "\nReadWritePaths=%S/dropyard" in text, unit
    for unit in ("dropyard.service", "dropyard-worker@.service"):
        assert "\nRestart=on-failure\n" in (UNITS / unit).read_text()


# -- the settings example ---------------------------------------------------------------


def _environment_file(path: Path) -> dict[str, str]:
    """KEY=value lines as systemd's EnvironmentFile= reads them (quotes removed)."""
    found: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[name] = value
    return found


def test_the_settings_example_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    values = _environment_file(DEPLOY / "dropyard.env.example")
    unknown = {
        name
        for name in values
        if name not in UNIT_VARIABLES
        and name[len("DROPYARD_") :].lower() not in Settings.model_fields
    }
    assert not unknown, f"not settings: {unknown}"
    assert "DROPYARD_DATA_DIR" not in values  # the units set it
    for name in list(os.environ):
        if name.startswith("DROPYARD_"):
            monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.proxy_protocol
    assert settings.proxy_trusted == ["10.0.0.5/32", "10.0.0.6/32"]
    assert ProxyPolicy.from_settings(settings) is not None
    assert settings.storage_backend == "s3"
    assert set(values["DROPYARD_ROLES"].split(",")) <= set(ROLES)

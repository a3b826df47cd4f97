"""`dropyard connections create | test | approve | show` against a real SFTP server: the
review shows the host key ssh-keygen sees, creating pins only a key the user accepted,
and a test says, check by check, what works."""

from __future__ import annotations

from typing import Any

from tests.remote_surfaces.conftest import FarSide, closed_port
from tests.support import OPERATOR, unique

PULL = ("--direction", "inbound", "--data-type", "conversions",
        "--method", "sftp", "--methodology", "pull")  # fmt: skip


def _create_args(far_side: FarSide, *extra: str) -> list[str]:
    return [
        "connections", "create", "--account", str(far_side.account_id),
        "--name", unique("Cli pull"), *PULL,
        "--host", "127.0.0.1", "--port", str(far_side.port),
        "--folder", f"/{far_side.box.folder}", "--file-pattern", "*.csv",
        "--new-credential-kind", "password", "--username", far_side.box.login,
        "--password-stdin", *extra,
    ]  # fmt: skip


def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines()]


def test_review_shows_the_host_key_and_create_needs_it_accepted(far_side: FarSide) -> None:
    cli = far_side.cli()
    password = far_side.box.password
    before = len(far_side.app.connections.list_connections(OPERATOR, account=far_side.account_id))

    refused = cli.run(*_create_args(far_side), stdin=password, code=2)
    assert f"Host key: {far_side.fingerprint} (will be pinned)" in refused.stdout
    assert any(line.startswith("ok reachable:") for line in _lines(refused.stdout))
    assert far_side.sample in refused.stdout
    assert f"--accept-host-key {far_side.fingerprint}" in refused.stderr
    after = far_side.app.connections.list_connections(OPERATOR, account=far_side.account_id)
    assert len(after) == before  # nothing was written

    wrong = cli.run(
        *_create_args(far_side, "--accept-host-key", far_side.other_fingerprint),
        stdin=password,
        code=2,
    )
    assert f"is not it. To trust it, add --accept-host-key {far_side.fingerprint}" in wrong.stderr

    made = cli.json(
        *_create_args(far_side, "--accept-host-key", far_side.fingerprint), stdin=password
    )
    assert made["details"]["host_key_fingerprint"] == far_side.fingerprint
    assert made["trust"] is None


def test_unreachable_at_review_creates_unpinned_and_says_how_to_trust(far_side: FarSide) -> None:
    cli = far_side.cli()
    args = _create_args(far_side)
    args[args.index("--port") + 1] = str(closed_port())
    result = cli.run(*args, stdin=far_side.box.password)
    assert "Host key: not seen: the server could not be reached" in result.stdout
    assert any(line.startswith("FAIL reachable") for line in _lines(result.stdout))
    connection_id = int(result.stdout.split("Connection #", 1)[1].split(" ", 1)[0])
    shown = cli.run("connections", "show", str(connection_id))
    assert (
        f"host key not pinned yet: run `dropyard connections test {connection_id}` and approve"
        in shown.stdout
    )


def _on_terminal(far_side: FarSide, name: str) -> list[tuple[str, str | None]]:
    """The prompts of `connections create` on a terminal when the flags leave out the name
    and the password: the name, then the credential step again for the password."""
    password = far_side.box.password
    return [
        ("Connection name", name),
        ("Direction [", ""),
        ("Credential [", "new"),
        ("Kind [", "remote_password"),
        ("Credential name", ""),
        ("Login on the partner's server", ""),
        ("Password:", password),
        ("Repeat it:", password),
    ]


def _interactive_args(far_side: FarSide) -> list[str]:
    args = _create_args(far_side)
    del args[args.index("--name") : args.index("--name") + 2]
    args.remove("--password-stdin")
    return args


def test_the_terminal_asks_to_trust_the_host_key(far_side: FarSide) -> None:
    name = unique("Asked pull")
    code, seen = far_side.cli().dialog(
        _interactive_args(far_side),
        [
            *_on_terminal(far_side, name),
            (f"Host key: {far_side.fingerprint} (will be pinned)", None),
            ("Create this connection?", "yes"),
            ("Trust this host key?", "y"),
            ("created.", None),
        ],
    )
    assert code == 0, seen
    assert f"host_key_fingerprint: {far_side.fingerprint}" in seen


def test_a_host_key_not_trusted_on_the_terminal_creates_nothing(far_side: FarSide) -> None:
    before = len(far_side.app.connections.list_connections(OPERATOR, account=far_side.account_id))
    code, seen = far_side.cli().dialog(
        _interactive_args(far_side),
        [
            *_on_terminal(far_side, unique("Refused pull")),
            ("Create this connection?", "yes"),
            ("Trust this host key?", "n"),
        ],
    )
    assert code == 1, seen
    assert "The host key is not trusted; nothing was created." in seen
    after = far_side.app.connections.list_connections(OPERATOR, account=far_side.account_id)
    assert len(after) == before


def _test(far_side: FarSide, connection_id: int, *, allowed: bool = True, code: int) -> Any:
    """`connections test ID --json`: its verdicts by check, and the whole document."""
    cli = far_side.cli(allowed=allowed)
    document = cli.run("connections", "test", str(connection_id), "--json", code=code).json()
    return {v["check"]: v for v in document["verdicts"]}, document


def _human(far_side: FarSide, connection_id: int, *, code: int) -> list[str]:
    """`connections test ID` as a person reads it, whitespace squeezed."""
    return _lines(far_side.cli().run("connections", "test", str(connection_id), code=code).stdout)


def test_a_good_connection_passes_every_check(far_side: FarSide) -> None:
    connection_id = far_side.pull(details={"host_key_fingerprint": far_side.fingerprint})
    verdicts, document = _test(far_side, connection_id, code=0)
    lines = _human(far_side, connection_id, code=0)
    assert document["ok"] is True
    assert document["fingerprint"] == far_side.fingerprint
    assert far_side.sample in document["sample"]
    for check in ("reachable", "trusted", "login", "folder readable"):
        assert verdicts[check]["ok"], verdicts[check]
        assert any(line.startswith(f"ok {check}:") for line in lines), lines
    assert f"fingerprint: {far_side.fingerprint}" in lines


def test_a_wrong_password_fails_login_but_reaches_the_server(far_side: FarSide) -> None:
    connection_id = far_side.pull(
        details={"host_key_fingerprint": far_side.fingerprint}, password="not-the-password"
    )
    lines = _human(far_side, connection_id, code=1)
    assert any(line.startswith("ok reachable:") for line in lines), lines
    assert any(line.startswith("FAIL login:") for line in lines), lines
    assert "not-the-password" not in "\n".join(lines)


def test_a_refused_port_is_not_reachable(far_side: FarSide) -> None:
    connection_id = far_side.pull(details={"port": closed_port()})
    verdicts, document = _test(far_side, connection_id, code=1)
    assert not verdicts["reachable"]["ok"]
    assert "refused" in verdicts["reachable"]["detail"]
    assert document["fingerprint"] is None


def test_loopback_without_the_allow_list_is_refused_by_the_guard(far_side: FarSide) -> None:
    connection_id = far_side.pull(details={"host_key_fingerprint": far_side.fingerprint})
    verdicts, _ = _test(far_side, connection_id, allowed=False, code=1)
    assert not verdicts["reachable"]["ok"]
    assert "loopback" in verdicts["reachable"]["detail"]
    assert "DROPYARD_ALLOW_NETWORKS" in verdicts["reachable"]["detail"]


def test_an_unknown_folder_fails_the_folder_check(far_side: FarSide) -> None:
    connection_id = far_side.pull(
        details={"host_key_fingerprint": far_side.fingerprint, "folder": "/no_such_folder"}
    )
    verdicts, _ = _test(far_side, connection_id, code=1)
    assert verdicts["login"]["ok"]
    assert not verdicts["folder readable"]["ok"]
    assert "/no_such_folder" in verdicts["folder readable"]["detail"]


def test_a_pattern_that_matches_nothing_is_said(far_side: FarSide) -> None:
    connection_id = far_side.pull(
        details={"host_key_fingerprint": far_side.fingerprint, "file_pattern": "*.xlsx"}
    )
    verdicts, _ = _test(far_side, connection_id, code=1)
    assert verdicts["folder readable"]["ok"]
    assert not verdicts["pattern matches"]["ok"]
    assert "*.xlsx" in verdicts["pattern matches"]["detail"]


def test_an_unpinned_connection_is_tested_then_approved(far_side: FarSide) -> None:
    cli = far_side.cli()
    connection_id = far_side.pull()  # created without a pin
    lines = _human(far_side, connection_id, code=1)
    assert f"fingerprint: {far_side.fingerprint}" in lines
    approve = f"dropyard connections approve {connection_id} --fingerprint {far_side.fingerprint}"
    assert any(approve in line for line in lines), lines

    refused = cli.refused(
        "connections", "approve", str(connection_id), "--fingerprint", far_side.other_fingerprint
    )
    assert refused["error"] == "invalid"
    view = far_side.app.connections.get(OPERATOR, connection_id)
    assert view.details.get("host_key_fingerprint") is None

    done = cli.run(
        "connections", "approve", str(connection_id), "--fingerprint", far_side.fingerprint
    )
    assert f"host key {far_side.fingerprint} pinned." in done.stdout
    assert far_side.app.remote.test(OPERATOR, connection_id).ok


def test_a_changed_host_key_is_shown_and_re_approved(far_side: FarSide) -> None:
    cli = far_side.cli()
    # Pinned to the server's other key: to this connection, the server's key "changed".
    connection_id = far_side.pull(details={"host_key_fingerprint": far_side.other_fingerprint})
    far_side.app.remote.pull(connection_id)
    view = far_side.app.connections.get(OPERATOR, connection_id)
    assert view.presented_fingerprint == far_side.fingerprint
    assert view.remote_error

    shown = cli.run("connections", "show", str(connection_id))
    assert f"presented fingerprint: {far_side.fingerprint}" in shown.stdout
    assert "remote error:" in shown.stdout
    approve = f"dropyard connections approve {connection_id} --fingerprint {far_side.fingerprint}"
    assert approve in shown.stdout

    refused = cli.refused(
        "connections", "approve", str(connection_id), "--fingerprint", far_side.other_fingerprint
    )
    assert refused["error"] == "invalid"
    done = cli.json(
        "connections", "approve", str(connection_id), "--fingerprint", far_side.fingerprint
    )
    assert done["details"]["host_key_fingerprint"] == far_side.fingerprint
    assert done["remote_error"] is None
    assert done["presented_fingerprint"] is None
    assert done["trust"] is None

"""Connection tests: each stage a readable verdict, later stages "not checked" after a
failed one, and no login sent to a server that is not the pinned one."""

from __future__ import annotations

import socket
from typing import Any

from dropyard.remote.base import ProbeReport
from dropyard.remote.guard import NetworkGuard
from dropyard.remote.service import RemoteLogin
from tests.ftpserver import PASSWORD, FtpServer
from tests.remote.sshd import Sshd
from tests.remote_flow.conftest import Flow, fresh, put
from tests.support import OPERATOR


def verdicts(report: ProbeReport) -> list[tuple[str, bool]]:
    return [(v.check, v.ok) for v in report.verdicts]


def detail(report: ProbeReport, check: str) -> str:
    return next(v.detail for v in report.verdicts if v.check == check)


def sftp_details(sshd: Sshd, folder: str, **more: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": sshd.port,
        "folder": folder,
        "file_pattern": "*.csv",
        **more,
    }


def probe(
    flow: Flow, method: str, methodology: str, details: dict[str, Any], login: Any
) -> ProbeReport:
    return flow.app.remote.probe(
        OPERATOR,
        account=flow.account_id,
        method=method,
        methodology=methodology,
        details=details,
        credential=login,
    )


def test_a_wizard_review_sees_the_fingerprint_and_every_stage_pass(flow: Flow, sshd: Sshd) -> None:
    folder, local = fresh(sshd)
    results, _ = fresh(sshd, "results")
    for name in ("b.csv", "a.csv", "notes.txt"):
        put(local, name, b"x", owner=sshd)
    login = RemoteLogin(username=sshd.user.name, password=sshd.user.password)

    report = probe(flow, "sftp", "pull", sftp_details(sshd, folder, result_folder=results), login)

    assert report.ok, report.verdicts
    assert report.fingerprint == sshd.fingerprint
    assert verdicts(report) == [
        ("reachable", True),
        ("trusted", True),
        ("login", True),
        ("folder readable", True),
        ("folder writable", True),
        ("pattern matches", True),
    ]
    assert detail(report, "pattern matches") == "2 of 3 files match '*.csv'"
    assert sorted(report.sample[:2]) == ["a.csv", "b.csv"]  # matching names first
    assert "pinned when the connection is created" in detail(report, "trusted")


def test_a_wrong_password_is_a_login_verdict_and_the_rest_is_not_checked(
    flow: Flow, sshd: Sshd
) -> None:
    folder, _ = fresh(sshd)
    login = RemoteLogin(username=sshd.user.name, password="wrong")

    report = probe(flow, "sftp", "pull", sftp_details(sshd, folder), login)

    assert verdicts(report) == [
        ("reachable", True),
        ("trusted", True),
        ("login", False),
        ("folder readable", False),
        ("pattern matches", False),
    ]
    assert "refused the login" in detail(report, "login")
    assert detail(report, "folder readable") == "not checked: login failed"
    assert report.fingerprint == sshd.fingerprint  # seen before any login


def test_a_key_pair_not_made_yet_cannot_log_in_and_says_so(flow: Flow, sshd: Sshd) -> None:
    report = probe(
        flow, "sftp", "pull", sftp_details(sshd, "/upload"), RemoteLogin(username="dysftp")
    )

    assert verdicts(report)[:3] == [("reachable", True), ("trusted", True), ("login", False)]
    assert "install its public key" in detail(report, "login")
    assert report.fingerprint == sshd.fingerprint  # the review shows it all the same


def test_a_server_other_than_the_pinned_one_gets_no_login(flow: Flow, sshd: Sshd) -> None:
    folder, _ = fresh(sshd)
    pinned = "SHA256:" + "Q" * 43
    logged = len(sshd.log())
    login = RemoteLogin(username=sshd.user.name, password=sshd.user.password)

    report = probe(
        flow, "sftp", "pull", sftp_details(sshd, folder, host_key_fingerprint=pinned), login
    )

    assert verdicts(report)[:3] == [("reachable", True), ("trusted", False), ("login", False)]
    assert f"presents the host key {sshd.fingerprint}, but {pinned} is pinned" in detail(
        report, "trusted"
    )
    assert detail(report, "login") == "not checked: trusted failed"
    assert "password for" not in sshd.log()[logged:]


def test_a_folder_that_does_not_exist(flow: Flow, sshd: Sshd) -> None:
    login = RemoteLogin(username=sshd.user.name, password=sshd.user.password)

    report = probe(flow, "sftp", "pull", sftp_details(sshd, "/upload/missing-folder"), login)

    assert verdicts(report)[:4] == [
        ("reachable", True),
        ("trusted", True),
        ("login", True),
        ("folder readable", False),
    ]


def test_an_unreachable_or_refused_host_is_the_reachable_verdict(flow: Flow, sshd: Sshd) -> None:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        closed = probe_socket.getsockname()[1]
    login = RemoteLogin(username="x", password="y")

    refused = probe(flow, "sftp", "pull", {**sftp_details(sshd, "/"), "port": closed}, login)
    guarded = flow.service(guard=NetworkGuard(())).probe(
        OPERATOR,
        account=flow.account_id,
        method="sftp",
        methodology="pull",
        details=sftp_details(sshd, "/"),
        credential=login,
    )

    assert verdicts(refused)[0] == ("reachable", False)
    assert "connection refused" in detail(refused, "reachable")
    assert detail(refused, "login") == "not checked: reachable failed"
    assert "a loopback address" in detail(guarded, "reachable")


def test_a_delivery_target_is_checked_for_writing(flow: Flow, sshd: Sshd) -> None:
    folder, _ = fresh(sshd, "locked", mode=0o555)
    login = RemoteLogin(username=sshd.user.name, password=sshd.user.password)

    report = probe(flow, "sftp", "deliver", sftp_details(sshd, folder), login)

    assert verdicts(report) == [
        ("reachable", True),
        ("trusted", True),
        ("login", True),
        ("folder readable", True),
        ("folder writable", False),
    ]


def test_an_existing_connection_is_tested_with_its_pin_and_credential(
    flow: Flow, sshd: Sshd, ftp_server: FtpServer
) -> None:
    folder, _ = fresh(sshd)
    connection_id = flow.sftp_pull(sshd, folder)

    report = flow.app.remote.test(OPERATOR, connection_id)

    assert report.ok, report.verdicts
    assert detail(report, "trusted") == f"the host key {sshd.fingerprint} is the pinned one"
    plain = flow.connection(
        method="ftp",
        methodology="pull",
        details={
            "host": "127.0.0.1",
            "port": ftp_server.ports["plain_only"],
            "folder": "/",
            "file_pattern": "*.csv",
            "plain_ftp": True,
        },
        username="alice",
        password=PASSWORD,
    )
    plain_report = flow.app.remote.test(OPERATOR, plain)
    assert plain_report.ok, plain_report.verdicts
    assert plain_report.fingerprint is None
    assert detail(plain_report, "trusted").startswith("plain FTP")


def test_email_delivery_is_checked_for_a_relay(flow: Flow) -> None:
    report = probe(flow, "email", "deliver", {"recipients": ["a@b.example"]}, None)

    assert verdicts(report) == [("mail relay", True)]

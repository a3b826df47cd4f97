"""The SFTP client against a real OpenSSH sshd: what a pull or a delivery relies on."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path

import pytest

from dropyard.files.spool import Spool
from dropyard.remote.base import (
    Limits,
    NotTrusted,
    RemoteError,
    RemoteRefused,
)
from dropyard.remote.guard import NetworkGuard
from dropyard.remote.sftp import open_sftp
from tests.remote.sshd import BASE, Sshd, fingerprint, mounted_tmpfs, new_key
from tests.remote.test_guard import FakeDns

Box = tuple[str, Path]


def leftovers(local: Path) -> list[str]:
    return sorted(p.name for p in local.iterdir() if "dropyard" in p.name)


# -- the everyday work -------------------------------------------------------------------


def test_list_fetch_upload_delete_roundtrip(
    sshd: Sshd, box: Box, limits: Limits, spool: Spool
) -> None:
    remote, local = box
    content = secrets.token_bytes(300_000)  # several pipelined blocks, the last one short
    (local / "conversions.csv").write_bytes(content)
    (local / "empty.csv").write_bytes(b"")
    (local / "a folder").mkdir()
    (local / "link.csv").symlink_to(local / "conversions.csv")
    os.mkfifo(local / "pipe")
    os.utime(local / "conversions.csv", (1_700_000_000, 1_700_000_000))

    with open_sftp(sshd.endpoint(remote), limits) as folder:
        assert folder.presented == sshd.fingerprint
        listed = {entry.name: entry for entry in folder.list()}
        assert sorted(listed) == ["conversions.csv", "empty.csv"]  # no folder, link, fifo
        assert listed["conversions.csv"].size == 300_000
        assert listed["conversions.csv"].mtime == 1_700_000_000

        folder.fetch("conversions.csv", spool)
        assert spool.finish() == (300_000, hashlib.sha256(content).hexdigest())
        empty = Spool(spool.path.parent, limit=10)
        folder.fetch("empty.csv", empty)
        assert empty.finish()[0] == 0

        report = b"date,clicks\n2026-01-01,3\n" * 20_000
        folder.upload("report.csv", io.BytesIO(report), len(report))
        assert (local / "report.csv").read_bytes() == report
        folder.upload("report.csv", io.BytesIO(b"newer\n"), 6)  # replaces
        assert (local / "report.csv").read_bytes() == b"newer\n"

        folder.delete("conversions.csv")
        folder.delete("conversions.csv")  # already gone: nothing to do
        assert sorted(e.name for e in folder.list()) == ["empty.csv", "report.csv"]
        assert folder.probe_writable() is True
    assert leftovers(local) == []


def test_the_presented_fingerprint_is_what_ssh_keygen_prints(sshd: Sshd, box: Box) -> None:
    public = sshd.host_key.with_name(sshd.host_key.name + ".pub")
    shown = fingerprint(public)
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", shown)
    with open_sftp(sshd.endpoint(box[0], pin=None), Limits()) as folder:
        assert folder.presented == shown  # no pin: accepted, and reported for review
    with open_sftp(sshd.endpoint(box[0], pin=shown + "="), Limits()) as folder:
        assert folder.presented == shown  # a pin written with base64 padding still matches


def test_names_are_listed_verbatim(sshd: Sshd, box: Box, limits: Limits) -> None:
    remote, local = box
    names = ["with space.csv", "ünïcødé.csv", "-dash.csv", ".hidden", "semi;colon'quote.csv"]
    for name in names:
        (local / name).write_bytes(b"x")
    (local / b"latin1-\xe9.csv".decode("utf-8", "surrogateescape")).write_bytes(b"x")
    with open_sftp(sshd.endpoint(remote), limits) as folder:
        listed = sorted(e.name for e in folder.list())
    assert listed == sorted(names)  # a name that is not UTF-8 is skipped, not mangled


def test_names_that_leave_the_folder_are_refused(
    sshd: Sshd, box: Box, limits: Limits, spool: Spool
) -> None:
    with open_sftp(sshd.endpoint(box[0]), limits) as folder:
        for name in ("../../app.py", "sub/file.csv", "..", ""):
            with pytest.raises(RemoteRefused, match="is not a plain file name"):
                folder.fetch(name, spool)
            with pytest.raises(RemoteRefused, match="is not a plain file name"):
                folder.upload(name, io.BytesIO(b"x"), 1)
            with pytest.raises(RemoteRefused, match="is not a plain file name"):
                folder.delete(name)


# -- logging in ----------------------------------------------------------------------------


def test_key_login(sshd: Sshd, box: Box, limits: Limits, tmp_path: Path) -> None:
    key = new_key(tmp_path / "id_ed25519")
    sshd.authorize(key.with_name("id_ed25519.pub").read_text())
    (box[1] / "by-key.csv").write_bytes(b"k")
    endpoint = sshd.endpoint(box[0], password=None, private_key=key.read_text())
    with open_sftp(endpoint, limits) as folder:
        assert [e.name for e in folder.list()] == ["by-key.csv"]


def test_a_key_the_server_does_not_know_is_refused(
    sshd: Sshd, box: Box, limits: Limits, tmp_path: Path
) -> None:
    key = new_key(tmp_path / "stranger")
    endpoint = sshd.endpoint(box[0], password=None, private_key=key.read_text())
    with pytest.raises(RemoteRefused) as refused:
        open_sftp(endpoint, limits)
    assert refused.value.stage == "login"
    assert refused.value.message == "the server refused the login for user 'dysftp'"


def test_a_private_key_that_is_not_a_key_is_refused(sshd: Sshd, box: Box, limits: Limits) -> None:
    endpoint = sshd.endpoint(box[0], password=None, private_key="-----BEGIN nonsense-----")
    with pytest.raises(RemoteRefused, match="private key of this connection could not be read"):
        open_sftp(endpoint, limits)


def test_wrong_password(sshd: Sshd, box: Box, limits: Limits) -> None:
    with pytest.raises(RemoteRefused) as refused:
        open_sftp(sshd.endpoint(box[0], password="not-the-password"), limits)
    assert refused.value.stage == "login"
    assert refused.value.message == "the server refused the login for user 'dysftp'"
    assert "not-the-password" not in str(refused.value)


def test_unknown_user(sshd: Sshd, box: Box, limits: Limits) -> None:
    with pytest.raises(RemoteRefused, match="refused the login for user 'nobody-here'") as refused:
        open_sftp(sshd.endpoint(box[0], username="nobody-here"), limits)
    assert refused.value.stage == "login"


# -- reaching the server -------------------------------------------------------------------


def test_a_refused_port_is_a_reach_error(sshd: Sshd, box: Box, limits: Limits) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(RemoteError) as failed:
        open_sftp(sshd.endpoint(box[0], port=port), limits)
    assert not isinstance(failed.value, RemoteRefused)  # worth retrying later
    assert failed.value.stage == "reach"
    assert failed.value.message == f"could not connect to 127.0.0.1 port {port}: connection refused"


def test_a_server_that_never_answers_times_out(sshd: Sshd, box: Box) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(RemoteError) as failed:
            open_sftp(sshd.endpoint(box[0], port=port), Limits(connect_timeout=1.0))
        assert time.monotonic() - started < 4
    assert failed.value.stage == "reach"
    assert failed.value.message == f"no answer from 127.0.0.1 port {port} within 1 s"


def test_an_unknown_host_name_never_gets_to_connect() -> None:
    with pytest.raises(RemoteError) as failed:
        NetworkGuard([]).check("no-such-host.invalid", 22)
    assert failed.value.stage == "reach"
    assert failed.value.message == "host 'no-such-host.invalid' could not be resolved"


def test_the_guard_refuses_this_machine_unless_allowed(sshd: Sshd, box: Box) -> None:
    with pytest.raises(RemoteRefused, match=r"127\.0\.0\.1, a loopback address"):
        NetworkGuard([]).check("127.0.0.1", sshd.port)
    address = NetworkGuard([ip_network("127.0.0.0/8")]).check("localhost", sshd.port)
    assert address == "127.0.0.1"
    with open_sftp(sshd.endpoint(box[0], host="localhost", address=address), Limits()) as folder:
        assert list(folder.list()) == []


def test_a_name_that_re_resolves_cannot_redirect_the_connection(sshd: Sshd, box: Box) -> None:
    """The name first answers an acceptable address, then a private one: the guard's one
    lookup decides, and the client connects to that address without asking DNS again."""
    dns = FakeDns(["127.0.0.1"], ["10.0.0.1"])
    guard = NetworkGuard([ip_network("127.0.0.0/8")], resolver=dns)
    address = guard.check("rebind.partner.example", sshd.port)
    assert address == "127.0.0.1"
    (box[1] / "here.csv").write_bytes(b"x")
    endpoint = sshd.endpoint(box[0], host="rebind.partner.example", address=address)
    with open_sftp(endpoint, Limits()) as folder:
        assert [e.name for e in folder.list()] == ["here.csv"]  # the sshd at 127.0.0.1
    assert len(dns.asked) == 1  # the client never resolved the name itself
    with pytest.raises(RemoteRefused, match=r"resolves to 10\.0\.0\.1, a private address"):
        guard.check("rebind.partner.example", sshd.port)  # what a second lookup would say


# -- trusting the server -------------------------------------------------------------------


@pytest.fixture
def own_sshd(sshd: Sshd) -> Iterator[Sshd]:
    """A second server that this test may restart with another host key."""
    server = Sshd(BASE / f"{os.getpid()}-{secrets.token_hex(4)}", sshd.user)
    try:
        server.start()
        yield server
    finally:
        server.remove()


def _new_log(server: Sshd, since: int, *, until: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = server.log()[since:]
        if until in text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_a_changed_host_key_stops_before_the_password_is_sent(own_sshd: Sshd) -> None:
    remote, local = own_sshd.folder("mitm")
    (local / "secret.csv").write_bytes(b"x")
    pinned = own_sshd.fingerprint
    with open_sftp(own_sshd.endpoint(remote), Limits()) as folder:  # the partner, as pinned
        assert folder.presented == pinned
    assert "Accepted password for dysftp" in own_sshd.log()

    presented = own_sshd.restart(new_host_key=True)  # same address and port, another key
    assert presented != pinned
    since = len(own_sshd.log())
    with pytest.raises(NotTrusted) as refused:
        open_sftp(own_sshd.endpoint(remote, pin=pinned), Limits())
    assert refused.value.stage == "trust"
    assert refused.value.presented == presented
    assert presented in refused.value.message and pinned in refused.value.message
    attempt = _new_log(own_sshd, since, until="Disconnected from")
    assert "Disconnected from 127.0.0.1" in attempt, attempt
    # The client hung up inside the key exchange: sshd never received its NEWKEYS, so no
    # encrypted channel, no authentication request ("userauth-request ... method password",
    # which sshd logs at this level) and no password ever left the client.
    assert "Host key is not trusted" in attempt, attempt
    assert "SSH2_MSG_NEWKEYS received" not in attempt, attempt
    assert "userauth-request" not in attempt, attempt
    assert "password" not in attempt.lower(), attempt

    # The same server, with the same password, would have let the client in: so it was the
    # pin alone that kept the password from a server able to use it.
    since = len(own_sshd.log())
    with open_sftp(own_sshd.endpoint(remote, pin=presented), Limits()) as folder:
        assert [e.name for e in folder.list()] == ["secret.csv"]
    accepted = _new_log(own_sshd, since, until="Accepted password for dysftp")
    assert "userauth-request for user dysftp service ssh-connection method password" in accepted


# -- the folder ----------------------------------------------------------------------------


def test_a_missing_folder_is_refused(sshd: Sshd, limits: Limits) -> None:
    with pytest.raises(RemoteRefused) as refused:
        open_sftp(sshd.endpoint("/upload/no-such-folder"), limits)
    assert refused.value.stage == "folder"
    assert (
        refused.value.message == "the folder '/upload/no-such-folder' does not exist on the server"
    )


def test_a_file_is_not_a_folder(sshd: Sshd, box: Box, limits: Limits) -> None:
    (box[1] / "plain.csv").write_bytes(b"x")
    with pytest.raises(RemoteRefused) as refused:
        open_sftp(sshd.endpoint(f"{box[0]}/plain.csv"), limits)
    assert refused.value.stage == "folder"
    assert refused.value.message == f"'{box[0]}/plain.csv' on the server is not a folder"


def test_fetching_a_missing_file(sshd: Sshd, box: Box, limits: Limits, spool: Spool) -> None:
    with open_sftp(sshd.endpoint(box[0]), limits) as folder:
        with pytest.raises(RemoteRefused) as refused:
            folder.fetch("gone.csv", spool)
        assert refused.value.stage == "transfer"
        assert refused.value.message == "'gone.csv' is not on the server (any more)"
        assert not spool.path.exists()
        assert folder.probe_writable()  # the session goes on


@pytest.fixture
def many_files(sshd: Sshd) -> Iterator[tuple[str, int]]:
    remote, local = sshd.folder("many")
    count = 100_000
    with mounted_tmpfs(local, size="64m", uid=sshd.user.uid, gid=sshd.user.gid):
        for i in range(count):
            os.close(os.open(local / f"f{i:06d}.csv", os.O_CREAT | os.O_WRONLY, 0o644))
        yield remote, count


@pytest.mark.slow
def test_a_listing_of_100000_files_streams(sshd: Sshd, many_files: tuple[str, int]) -> None:
    remote, count = many_files
    cut = 1_000
    with open_sftp(sshd.endpoint(remote), Limits(max_listing=cut)) as folder:
        # Lazy: ten entries come out of a folder far over the limit without an error, so
        # the client cannot have read (let alone kept) the listing before yielding them.
        first = list(itertools.islice(folder.list(), 10))
        assert len(first) == 10
        with pytest.raises(RemoteRefused) as refused:
            for _ in folder.list():
                pass
        assert refused.value.stage == "folder"
        assert refused.value.message == (
            f"the folder '{remote}' holds more than {cut} entries, the most one listing "
            "reads (DROPYARD_REMOTE_MAX_LISTING)"
        )
        assert folder.probe_writable()  # the session survives both
    with open_sftp(sshd.endpoint(remote), Limits()) as folder:
        assert sum(1 for _ in folder.list()) == count


# -- limits --------------------------------------------------------------------------------


class FreezingSpool(Spool):
    """Freezes the server's session processes when the first bytes arrive."""

    def __init__(self, directory: Path, server: Sshd) -> None:
        super().__init__(directory, limit=1024**3)
        self.server = server
        self.frozen: list[int] | None = None

    def write(self, data: bytes | memoryview, offset: int | None = None) -> None:
        if self.frozen is None:
            self.frozen = self.server.freeze_sessions()
        super().write(data, offset)


@pytest.fixture
def big_file(box: Box) -> str:
    with (box[1] / "big.csv").open("wb") as out:
        out.truncate(48 * 1024**2)  # more than sockets and SSH windows hold in flight
    return "big.csv"


@pytest.mark.parametrize(
    ("idle", "run_for", "message"),
    [
        (1.0, 600.0, "the server sent nothing for 1 s"),
        (600.0, 1.5, "the transfer exceeded its time limit"),
    ],
)
def test_a_server_that_stalls_mid_transfer_is_cut_off(
    sshd: Sshd, box: Box, big_file: str, tmp_path: Path, idle: float, run_for: float, message: str
) -> None:
    sink = FreezingSpool(tmp_path / "spool", sshd)
    limits = Limits(idle_timeout=idle, deadline=time.monotonic() + run_for)
    folder = open_sftp(sshd.endpoint(box[0]), limits)
    try:
        started = time.monotonic()
        with pytest.raises(RemoteError) as failed:
            folder.fetch(big_file, sink)
        took = time.monotonic() - started
        assert failed.value.stage == "transfer"
        assert failed.value.message == message
        assert took < min(idle, run_for) + 3, took
        assert sink.frozen  # the first bytes came, then the server froze
        assert not sink.path.exists()  # what came so far is thrown away
        with pytest.raises(RemoteError, match="broke off earlier"):
            folder.list().__next__()
        started = time.monotonic()
        folder.close()
        assert time.monotonic() - started < 4  # closing does not wait on the frozen server
    finally:
        sshd.end_sessions(sink.frozen or [])


def test_a_file_over_the_limit_is_refused_and_the_spool_discarded(
    sshd: Sshd, box: Box, spool: Spool
) -> None:
    (box[1] / "huge.csv").write_bytes(b"x" * 300_000)
    with open_sftp(sshd.endpoint(box[0]), Limits(max_file_bytes=100_000)) as folder:
        with pytest.raises(RemoteRefused) as refused:
            folder.fetch("huge.csv", spool)
        assert refused.value.stage == "transfer"
        assert refused.value.message == (
            "'huge.csv' is larger than the limit of 100000 bytes (300000 bytes)"
        )
        assert not spool.path.exists()


def test_a_deadline_already_passed_refuses_to_start(sshd: Sshd, box: Box) -> None:
    with pytest.raises(RemoteError) as failed:
        open_sftp(sshd.endpoint(box[0]), Limits(deadline=time.monotonic() - 1))
    assert failed.value.message == "the run's time limit was reached before connecting"
    with socket.socket() as silent:  # the run ends while the server keeps quiet
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(RemoteError) as failed:
            open_sftp(sshd.endpoint(box[0], port=port), Limits(deadline=time.monotonic() + 0.5))
    assert failed.value.message == "the run's time limit was reached while connecting"


# -- writing -------------------------------------------------------------------------------


def test_uploading_to_a_read_only_folder(sshd: Sshd, limits: Limits) -> None:
    remote, local = sshd.folder("read-only", mode=0o555)
    with open_sftp(sshd.endpoint(remote), limits) as folder:
        assert folder.probe_writable() is False
        with pytest.raises(RemoteRefused) as refused:
            folder.upload("report.csv", io.BytesIO(b"a,b\n"), 4)
    assert refused.value.stage == "transfer"
    assert refused.value.message == "the server refused the write: permission denied"
    assert list(local.iterdir()) == []


def test_deleting_without_permission(sshd: Sshd, limits: Limits) -> None:
    remote, local = sshd.folder("keep", mode=0o755)
    (local / "keep.csv").write_bytes(b"x")
    local.chmod(0o555)
    with (
        open_sftp(sshd.endpoint(remote), limits) as folder,
        pytest.raises(RemoteRefused) as refused,
    ):
        folder.delete("keep.csv")
    assert refused.value.message == "the server refused the delete of 'keep.csv': permission denied"
    assert (local / "keep.csv").exists()


def test_uploading_to_a_full_disk(sshd: Sshd, limits: Limits) -> None:
    remote, local = sshd.folder("full")
    with mounted_tmpfs(local, size="64k", uid=sshd.user.uid, gid=sshd.user.gid):
        (local / "report.csv").write_bytes(b"yesterday's report\n")
        big = secrets.token_bytes(256 * 1024)
        with open_sftp(sshd.endpoint(remote), limits) as folder:
            with pytest.raises(RemoteRefused) as refused:
                folder.upload("report.csv", io.BytesIO(big), len(big))
            assert refused.value.stage == "transfer"
            assert refused.value.message == "no space left on the server"
            small = b"fits\n"
            folder.upload("small.csv", io.BytesIO(small), len(small))  # space came back
        assert (local / "report.csv").read_bytes() == b"yesterday's report\n"
        assert sorted(p.name for p in local.iterdir()) == ["report.csv", "small.csv"]


def test_an_upload_shorter_than_announced_is_not_renamed(
    sshd: Sshd, box: Box, limits: Limits
) -> None:
    remote, local = box
    with (
        open_sftp(sshd.endpoint(remote), limits) as folder,
        pytest.raises(RemoteError, match="stored 3 bytes of 3 sent, 10 expected"),
    ):
        folder.upload("short.csv", io.BytesIO(b"abc"), 10)
    assert list(local.iterdir()) == []

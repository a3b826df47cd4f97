"""Bounds on an FTP session: huge listings stream and are capped, trickling or stalled
servers are cut, big files refused."""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import islice

import pytest

from dropyard.files.spool import Spool
from dropyard.remote.base import Limits, RemoteError, RemoteRefused
from dropyard.remote.ftp import open_ftp
from tests.ftpserver import THROTTLE_BYTES_PER_SECOND, FtpServer

BIG = 256 * 1024  # minutes at the throttled server's pace


def test_a_huge_listing_streams(
    ftp_server: FtpServer, many_names: int, spool: Callable[[], Spool]
) -> None:
    # The throttled server sends the listing of 100,000 names at about 1 KB/s: an hour and
    # more for all of it. The first names arrive at once because nothing waits for the rest.
    endpoint = ftp_server.endpoint("throttled", user="lister")
    with open_ftp(endpoint, Limits(idle_timeout=10)) as session:
        started = time.monotonic()
        first = list(islice(session.list(), 10))
        assert time.monotonic() - started < 5
        assert len({e.name for e in first}) == 10
        assert all(e.name.startswith("f") and e.size == 0 for e in first)
        # Abandoning the listing leaves the session usable.
        session.fetch(first[0].name, spool())
    assert many_names * 60 / THROTTLE_BYTES_PER_SECOND > 3600


def test_a_listing_past_max_listing_is_refused(ftp_server: FtpServer, many_names: int) -> None:
    seen: list[str] = []
    with open_ftp(ftp_server.endpoint("ftps", user="lister"), Limits(max_listing=1000)) as session:
        with pytest.raises(RemoteRefused) as refused:
            seen.extend(entry.name for entry in session.list())
        assert len(seen) == 1000
        assert refused.value.message.startswith("the folder holds more than 1000 entries")
        assert session.probe_writable() is False  # the session goes on (read-only login)


def test_a_stalled_transfer_is_cut_by_the_idle_timeout(
    ftp_server: FtpServer, spool: Callable[[], Spool]
) -> None:
    folder, remote = ftp_server.new_folder()
    (folder / "slow.csv").write_bytes(b"x" * BIG)
    limits = Limits(idle_timeout=0.4)
    with open_ftp(ftp_server.endpoint("throttled", folder=remote), limits) as session:
        sink = spool()
        started = time.monotonic()
        with pytest.raises(RemoteError) as failed:
            session.fetch("slow.csv", sink)
        assert time.monotonic() - started < 3
    assert not isinstance(failed.value, RemoteRefused)  # worth retrying later
    assert failed.value.stage == "transfer"
    assert failed.value.message.endswith("the server sent nothing for 0.4 seconds")
    assert 0 < sink.size < BIG


def test_a_trickling_transfer_is_cut_at_the_deadline(
    ftp_server: FtpServer, spool: Callable[[], Spool]
) -> None:
    folder, remote = ftp_server.new_folder()
    (folder / "slow.csv").write_bytes(b"x" * BIG)
    limits = Limits(idle_timeout=30, deadline=time.monotonic() + 2.5)
    with open_ftp(ftp_server.endpoint("throttled", folder=remote), limits) as session:
        started = time.monotonic()
        with pytest.raises(RemoteError) as failed:
            session.fetch("slow.csv", spool())
        assert time.monotonic() - started < 5
        assert failed.value.stage == "transfer"
        assert failed.value.message.endswith("the session ran past its time limit and was cut")
        with pytest.raises(RemoteError, match="time limit"):
            list(session.list())


def test_a_file_over_max_file_bytes_is_refused(
    ftp_server: FtpServer, spool: Callable[[], Spool]
) -> None:
    folder, remote = ftp_server.new_folder()
    (folder / "big.csv").write_bytes(b"x" * 5000)
    (folder / "small.csv").write_bytes(b"x" * 100)
    with open_ftp(
        ftp_server.endpoint("ftps", folder=remote), Limits(max_file_bytes=1000)
    ) as session:
        sink = spool()
        with pytest.raises(RemoteRefused) as refused:
            session.fetch("big.csv", sink)
        assert refused.value.message == "'big.csv' is 5000 bytes, more than the limit of 1000 bytes"
        assert sink.size == 0
        session.fetch("small.csv", sink)  # the session goes on
        assert sink.size == 100


def test_a_session_past_its_deadline_does_not_start(ftp_server: FtpServer) -> None:
    with pytest.raises(RemoteError, match="time limit"):
        open_ftp(ftp_server.endpoint(), Limits(deadline=time.monotonic() - 1))

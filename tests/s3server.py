"""An S3 endpoint on loopback for tests: moto's standalone server, one per test session
(per xdist worker), a fresh bucket per test, and a proxy that breaks chosen requests.

Other test packages use it by importing the fixtures into their conftest:

    from tests.s3server import s3_bucket, s3_server  # noqa: F401
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from dropyard.storage.s3 import make_client

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

ACCESS_KEY = "dropyard-test"
SECRET_KEY = "dropyard-test-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def client(self, *, endpoint_url: str | None = None, max_attempts: int = 2) -> S3Client:
        return _client(endpoint_url or self.endpoint_url, max_attempts)

    def new_bucket(self) -> str:
        name = f"dropyard-test-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings(self, bucket: str, **more: Any) -> dict[str, Any]:
        """Settings fields for a Dropyard that stores its files in `bucket`."""
        return {
            "storage_backend": "s3",
            "s3_bucket": bucket,
            "s3_endpoint_url": self.endpoint_url,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
            "s3_max_attempts": 2,
            **more,
        }


@functools.cache
def _client(endpoint_url: str, max_attempts: int) -> S3Client:
    # Clients are thread-safe, and making one costs a good part of a second: share them.
    return make_client(
        region="us-east-1",
        endpoint_url=endpoint_url,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        timeout_seconds=5,
        max_attempts=max_attempts,
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer: the server is up
    except OSError:
        return False


@contextlib.contextmanager
def running_s3_server(log_path: Path) -> Iterator[S3Server]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield S3Server(url)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3_server(tmp_path_factory.mktemp("s3") / "moto.log") as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket()


# -- a proxy that fails chosen requests, as a store under load would -----------------------

Rule = Callable[[str, str], bool]  # (method, path with query) -> fail this request?


class FaultyProxy:
    """Forwards HTTP to `target` and answers 500 InternalError to requests `fails` picks."""

    def __init__(self, target: str, fails: Rule) -> None:
        self.failed = 0
        self._fails = fails
        host, port = target.removeprefix("http://").split(":")
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy._fails(self.command, self.path):
                    proxy.failed += 1
                    error = (
                        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError"
                        b"</Code><Message>injected</Message></Error>"
                    )
                    self.send_response(500)
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                upstream = http.client.HTTPConnection(host, int(port), timeout=10)
                try:
                    upstream.request(self.command, self.path, body, dict(self.headers.items()))
                    answer = upstream.getresponse()
                    data = answer.read()
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in ("content-length", "transfer-encoding"):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            def do_GET(self) -> None:
                self._relay()

            def do_PUT(self) -> None:
                self._relay()

            def do_POST(self) -> None:
                self._relay()

            def do_DELETE(self) -> None:
                self._relay()

            def do_HEAD(self) -> None:
                self._relay()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

"""Storage tests: a moto S3 server for the session, a fresh bucket for each test."""

from __future__ import annotations

import pytest

from dropyard.storage.s3 import S3Storage
from tests.s3server import S3Server, s3_bucket, s3_server

__all__ = ["s3_bucket", "s3_server"]

PART = 5 * 1024 * 1024  # the smallest part S3 takes


@pytest.fixture
def storage(s3_server: S3Server, s3_bucket: str) -> S3Storage:
    return S3Storage(
        s3_server.client(), bucket=s3_bucket, prefix="install-a", part_bytes=PART, page_size=7
    )

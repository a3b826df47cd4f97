"""The scaled-out cluster, started once per test module: private PostgreSQL, Redis and
S3 (moto), nodes A and B (`serve --roles web,sftp,ftp,smtp,scheduler`), two workers.

Needs PostgreSQL's server binaries and redis-server: skipped locally when absent, failed
under CI=true (a green CI must have run these tests)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.scaleout.cluster import Cluster, running_cluster
from tests.scaleout.infra import Missing


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("scaleout")
    try:
        with running_cluster(base) as running:
            yield running
    except Missing as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}; CI must run these tests")
        pytest.skip(str(exc))

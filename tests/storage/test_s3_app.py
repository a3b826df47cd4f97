"""A whole Dropyard on S3: an upload is committed (the end every protocol shares), the
pipeline reads it back from the bucket, and the results land in the same bucket."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dropyard.app import Dropyard, build
from dropyard.errors import Invalid
from dropyard.files import names
from dropyard.settings import Settings
from dropyard.storage.factory import make_storage
from dropyard.storage.local import LocalStorage
from dropyard.storage.s3 import S3Storage
from tests.datatypes.test_import_world import (
    OP,
    conversion,
    conversions_file,
    days_ago,
    iso,
    make_world,
)
from tests.s3server import S3Server


@pytest.fixture
def s3_app(
    tmp_path: Path, database_url: str, s3_server: S3Server, s3_bucket: str
) -> Iterator[Dropyard]:
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "public_host": "127.0.0.1",
            **s3_server.settings(s3_bucket, s3_prefix="prod", s3_part_mb=5, s3_sse="AES256"),
        }
    )
    app = build(settings)
    yield app
    app.close()


def _bucket_keys(server: S3Server, bucket: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_a_committed_file_is_processed_from_the_bucket(
    s3_app: Dropyard, s3_server: S3Server, s3_bucket: str
) -> None:
    assert isinstance(s3_app.storage, S3Storage)
    world = make_world(s3_app)
    data = conversions_file(
        [conversion("ORD-1"), conversion("ORD-2"), conversion("ORD-3", EventDate="2026-13-01")]
    )

    outcome = world.run("conversions", data, name="orders.csv")

    assert outcome.state == "partial"
    assert (outcome.summary["totalRowCount"], outcome.summary["successfulRowCount"]) == (3, 2)
    assert outcome.codes() == [(4, "INVALID_DATE")]  # the error file, read from the bucket
    assert [a.order_id for a in world.actions()] == ["ORD-1", "ORD-2"]
    view, _ = s3_app.files.get(OP, outcome.file_id)
    folder = f"prod/folders/{view.connection_id}"
    assert _bucket_keys(s3_server, s3_bucket) == sorted(
        [
            f"prod/inbox/{view.connection_id}/{view.trace_id}",
            f"{folder}/{names.receipt_name('orders.csv')}",
            f"{folder}/{names.summary_name('orders.csv')}",
            f"{folder}/{names.errors_name('orders.csv')}",
        ]
    )
    with s3_app.files.open_stored(outcome.file_id) as stored:
        assert stored.read() == data
    with s3_app.files.open_folder_file(view.connection_id, names.summary_name("orders.csv")) as f:
        assert json.load(f)["status"] == "PARTIAL"
    head = s3_server.client().head_object(
        Bucket=s3_bucket, Key=f"prod/inbox/{view.connection_id}/{view.trace_id}"
    )
    assert head["ServerSideEncryption"] == "AES256"
    files_dir = s3_app.settings.files_dir
    assert not files_dir.exists() or not any(files_dir.iterdir())
    spool = s3_app.settings.spool_dir
    assert not spool.exists() or not any(p.is_file() for p in spool.rglob("*"))


def test_a_zip_is_read_through_ranged_reads(s3_app: Dropyard) -> None:
    world = make_world(s3_app)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("monday.csv", conversions_file([conversion("ORD-1"), conversion("B")]))
        archive.writestr(
            "tuesday.csv", conversions_file([conversion("ORD-3", EventDate=iso(days_ago(2)))])
        )

    outcome = world.run("conversions", buffer.getvalue(), name="week.zip")

    assert outcome.state == "processed"
    assert outcome.summary["totalRowCount"] == 3
    assert sorted(a.order_id for a in world.actions()) == ["B", "ORD-1", "ORD-3"]


def test_the_backend_is_chosen_by_settings(tmp_path: Path, s3_server: S3Server) -> None:
    local = make_storage(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalStorage)
    local.check()
    with pytest.raises(Invalid, match="needs s3_bucket"):
        make_storage(Settings(data_dir=tmp_path, storage_backend="s3"))
    shown = repr(Settings(**s3_server.settings("b")))
    assert "dropyard-test-secret" not in shown

"""S3Storage against a real S3 endpoint (moto's server on loopback): multipart uploads,
ranged reads, listings, deletes, encryption, and what a broken store gives a caller."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dropyard.errors import Invalid, NotFound, Transient
from dropyard.storage.s3 import UNAVAILABLE, S3Storage
from tests.s3server import FaultyProxy, S3Server, free_port
from tests.storage.conftest import PART


def _file(tmp_path: Path, size: int, name: str = "upload.bin") -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


def test_a_large_file_goes_up_in_parts_and_reads_back(
    storage: S3Storage, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    source, data = _file(tmp_path, 2 * PART + 12345)

    storage.put_file("inbox/1/trace", source)

    assert not source.exists()  # moved, as LocalStorage moves
    head = s3_server.client().head_object(Bucket=s3_bucket, Key="install-a/inbox/1/trace")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: a multipart upload
    info = storage.stat("inbox/1/trace")
    assert info is not None
    assert (info.key, info.size) == ("inbox/1/trace", len(data))
    assert abs(info.modified_at - datetime.now(UTC)) < timedelta(minutes=5)
    with storage.open("inbox/1/trace") as whole:
        assert hashlib.sha256(whole.read()).digest() == hashlib.sha256(data).digest()
    # odd-sized sequential reads, as a CSV reader makes them
    got = bytearray()
    with storage.open("inbox/1/trace") as reader:
        while chunk := reader.read(300_001):
            got += chunk
    assert bytes(got) == data


def test_a_small_file_is_one_put(storage: S3Storage, tmp_path: Path) -> None:
    source, data = _file(tmp_path, 1000)
    storage.put_file("folders/1/small.csv", source)
    with storage.open("folders/1/small.csv") as reader:
        assert reader.read() == data
    assert not source.exists()


def test_reads_seek_like_a_file_and_zip_reads_from_the_end(
    storage: S3Storage, tmp_path: Path
) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("first.csv", b"a,b\n1,2\n")
        archive.writestr("big.bin", payload)
        archive.writestr("last.csv", b"c,d\n3,4\n")
    storage.put_bytes("folders/2/week.zip", buffer.getvalue())

    with storage.open("folders/2/week.zip") as stored, zipfile.ZipFile(stored) as archive:
        assert archive.namelist() == ["first.csv", "big.bin", "last.csv"]
        assert archive.read("last.csv") == b"c,d\n3,4\n"
        assert archive.read("big.bin") == payload
        assert archive.read("first.csv") == b"a,b\n1,2\n"

    whole = buffer.getvalue()
    with storage.open("folders/2/week.zip") as reader:
        assert reader.seekable()
        assert reader.seek(-10, os.SEEK_END) == len(whole) - 10
        assert reader.read() == whole[-10:]
        assert reader.read(5) == b""
        reader.seek(1_000_000)
        assert reader.read(4) == whole[1_000_000:1_000_004]
        reader.seek(-2, os.SEEK_CUR)
        assert reader.tell() == 1_000_002
        assert reader.read(3) == whole[1_000_002:1_000_005]
        reader.seek(len(whole) + 50)
        assert reader.read(1) == b""


def test_an_empty_object_reads_as_empty(storage: S3Storage) -> None:
    storage.put_bytes("folders/3/empty.csv", b"")
    with storage.open("folders/3/empty.csv") as reader:
        assert reader.read() == b""
    info = storage.stat("folders/3/empty.csv")
    assert info is not None and info.size == 0


def test_listing_pages_through_the_folder_and_only_it(
    storage: S3Storage, s3_server: S3Server, s3_bucket: str
) -> None:
    names = [f"file-{n:03}.csv" for n in range(23)]  # page_size is 7: four pages
    for name in names:
        storage.put_bytes(f"folders/4/{name}", name.encode())
    storage.put_bytes("folders/4/sub/nested.csv", b"x")
    storage.put_bytes("folders/4/.hidden", b"x")
    storage.put_bytes("folders/40/other.csv", b"x")
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="install-a/folders/4/", Body=b"")  # a "folder"
    client.put_object(Bucket=s3_bucket, Key="install-b/folders/4/theirs.csv", Body=b"x")

    listed = list(storage.list("folders/4"))

    assert [o.key for o in listed] == [f"folders/4/{n}" for n in names]
    assert listed[0].size == len(names[0])
    assert list(storage.list("folders/5")) == []
    assert [o.key for o in storage.list("folders/4/sub")] == ["folders/4/sub/nested.csv"]


def test_delete_says_whether_there_was_something(storage: S3Storage) -> None:
    storage.put_bytes("folders/6/a.csv", b"a")
    assert storage.delete("folders/6/a.csv") is True
    assert storage.delete("folders/6/a.csv") is False
    assert storage.stat("folders/6/a.csv") is None
    with pytest.raises(NotFound, match=r"'folders/6/a.csv' does not exist"):
        storage.open("folders/6/a.csv")


def test_keys_that_could_escape_are_refused(storage: S3Storage, tmp_path: Path) -> None:
    source, _ = _file(tmp_path, 10)
    for key in ("../install-b/x", "folders/../../x", "folders//x", "folders/./x", "/x", "a\\b"):
        with pytest.raises(Invalid, match="is not allowed"):
            storage.put_bytes(key, b"x")
        with pytest.raises(Invalid):
            storage.put_file(key, source)
        with pytest.raises(Invalid):
            storage.open(key)
        with pytest.raises(Invalid):
            list(storage.list(key))
    assert source.exists()


def test_the_installation_prefix_keeps_installations_apart(
    storage: S3Storage, s3_server: S3Server, s3_bucket: str
) -> None:
    other = S3Storage(s3_server.client(), bucket=s3_bucket, prefix="install-b/")
    storage.put_bytes("folders/7/a.csv", b"ours")
    other.put_bytes("folders/7/a.csv", b"theirs")
    with storage.open("folders/7/a.csv") as ours, other.open("folders/7/a.csv") as theirs:
        assert (ours.read(), theirs.read()) == (b"ours", b"theirs")
    bare = S3Storage(s3_server.client(), bucket=s3_bucket)
    assert [o.key for o in bare.list("install-b/folders/7")] == ["install-b/folders/7/a.csv"]


def test_server_side_encryption_applies_to_every_write(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    client = s3_server.client()
    storage = S3Storage(client, bucket=s3_bucket, part_bytes=PART, sse="AES256")
    source, _ = _file(tmp_path, PART + 10)
    storage.put_file("inbox/8/big", source)
    storage.put_bytes("folders/8/receipt.txt", b"ok")
    for key in ("inbox/8/big", "folders/8/receipt.txt"):
        assert client.head_object(Bucket=s3_bucket, Key=key)["ServerSideEncryption"] == "AES256"

    kms = S3Storage(client, bucket=s3_bucket, sse="aws:kms", sse_kms_key_id="alias/dropyard")
    kms.put_bytes("folders/8/kms.txt", b"ok")
    head = client.head_object(Bucket=s3_bucket, Key="folders/8/kms.txt")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/dropyard")


def test_an_upload_that_fails_half_way_leaves_nothing(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    def second_part(method: str, path: str) -> bool:
        return method == "PUT" and "partNumber=2" in path

    with FaultyProxy(s3_server.endpoint_url, second_part) as proxy:
        client = s3_server.client(endpoint_url=proxy.endpoint_url, max_attempts=2)
        storage = S3Storage(client, bucket=s3_bucket, part_bytes=PART)
        source, _ = _file(tmp_path, 3 * PART)
        with pytest.raises(Transient) as failed:
            storage.put_file("inbox/9/trace", source)
    assert failed.value.message == UNAVAILABLE
    assert proxy.failed == 2  # the part was tried again once, then the upload given up
    assert source.exists()  # still the caller's to discard
    direct = s3_server.client()
    assert direct.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    assert direct.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_a_store_that_does_not_answer_is_transient(s3_bucket: str, tmp_path: Path) -> None:
    closed = S3Server(f"http://127.0.0.1:{free_port()}").client(max_attempts=1)
    storage = S3Storage(closed, bucket=s3_bucket, part_bytes=PART)
    source, _ = _file(tmp_path, 10)
    calls = [
        lambda: storage.put_file("inbox/10/a", source),
        lambda: storage.put_bytes("folders/10/a", b"x"),
        lambda: storage.open("folders/10/a"),
        lambda: storage.stat("folders/10/a"),
        lambda: list(storage.list("folders/10")),
        lambda: storage.delete("folders/10/a"),
        storage.check,
    ]
    for call in calls:
        with pytest.raises(Transient) as failed:
            call()
        assert failed.value.message == UNAVAILABLE
    assert source.exists()


def test_an_object_replaced_while_read_is_not_mixed(storage: S3Storage) -> None:
    first = os.urandom(3 * 1024 * 1024)
    storage.put_bytes("folders/11/data.bin", first)
    with storage.open("folders/11/data.bin") as reader:
        assert reader.read(10) == first[:10]
        storage.put_bytes("folders/11/data.bin", os.urandom(len(first)))
        reader.seek(2 * 1024 * 1024)
        with pytest.raises(Transient, match="changed while it was read"):
            reader.read(10)


def test_check_reaches_the_bucket(storage: S3Storage, s3_server: S3Server) -> None:
    storage.check()
    missing = S3Storage(s3_server.client(), bucket="dropyard-test-no-such-bucket")
    with pytest.raises(Transient, match="no bucket 'dropyard-test-no-such-bucket'"):
        missing.check()

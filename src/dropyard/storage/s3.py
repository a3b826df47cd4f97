"""Storage in an S3-compatible object store: one bucket, under an installation prefix.

An object appears only when complete (a single PUT, or a multipart upload that is
completed last and aborted on failure), so `put_file` keeps the atomic promise of the
protocol. Reads are ranged GETs behind a seekable reader, so a zip's central directory is
read without fetching the whole object. Every failure of the store is a `Transient` with a
message fit for a user; a missing object is `NotFound`.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import boto3.session
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from dropyard.errors import NotFound, Transient
from dropyard.storage.base import ObjectInfo, check_key

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client
    from types_boto3_s3.type_defs import GetObjectOutputTypeDef

log = logging.getLogger(__name__)

UNAVAILABLE = "the object store is unavailable; try again"
_MIB = 1024 * 1024
_MISSING = frozenset({"NoSuchKey", "NotFound", "404"})
# Sequential reads open ever longer ranges, up to this: few requests for a whole file,
# little wasted transfer when a reader (zip) jumps about.
_MAX_WINDOW = 64 * _MIB

Encryption = Literal["AES256", "aws:kms"]


def make_client(
    *,
    region: str,
    endpoint_url: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    timeout_seconds: float = 10.0,
    max_attempts: int = 3,
) -> S3Client:
    """A client with short timeouts and few retries: a request to a store that is down
    fails in seconds, not minutes. Without keys, boto3's usual credential chain applies."""
    config = Config(
        region_name=region,
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        # Most S3-compatible stores (MinIO, Ceph) are reached by path, not by bucket host.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )


class S3Storage:
    """The Storage protocol over one bucket; keys live under `prefix/` when it is set."""

    def __init__(
        self,
        client: S3Client,
        *,
        bucket: str,
        prefix: str = "",
        part_bytes: int = 16 * _MIB,
        sse: Encryption | None = None,
        sse_kms_key_id: str | None = None,
        page_size: int = 1000,
        read_buffer: int = _MIB,
    ) -> None:
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._page_size = page_size
        self._read_buffer = read_buffer
        self._write_args: dict[str, Any] = {}
        if sse is not None:
            self._write_args["ServerSideEncryption"] = sse
            if sse == "aws:kms" and sse_kms_key_id:
                self._write_args["SSEKMSKeyId"] = sse_kms_key_id
        # Parts are read from the file as they are sent: memory stays near
        # max_concurrency x part size whatever the file's size.
        self._transfer = TransferConfig(
            multipart_threshold=part_bytes,
            multipart_chunksize=part_bytes,
            max_concurrency=4,
            preferred_transfer_client="classic",
        )

    @property
    def bucket(self) -> str:
        return self._bucket

    def object_key(self, key: str) -> str:
        """The bucket key of a storage key; Invalid for a key that could escape."""
        check_key(key)
        return f"{self._prefix}/{key}" if self._prefix else key

    def put_file(self, key: str, source: Path) -> None:
        name = self.object_key(key)
        with self._errors("upload", key):
            self._client.upload_file(
                str(source),
                self._bucket,
                name,
                ExtraArgs=dict(self._write_args),
                Config=self._transfer,
            )
        source.unlink()

    def put_bytes(self, key: str, data: bytes, *, durable: bool = True) -> None:
        # An object store has no cheaper, less durable write: `durable` changes nothing.
        name = self.object_key(key)
        with self._errors("write", key):
            self._client.put_object(Bucket=self._bucket, Key=name, Body=data, **self._write_args)

    def open(self, key: str) -> BinaryIO:
        name = self.object_key(key)
        with self._errors("read", key):
            head = self._client.head_object(Bucket=self._bucket, Key=name)
        raw = _RangedReader(self, key, name, size=head["ContentLength"], etag=head["ETag"])
        return io.BufferedReader(raw, buffer_size=self._read_buffer)

    def stat(self, key: str) -> ObjectInfo | None:
        name = self.object_key(key)
        try:
            with self._errors("look up", key):
                head = self._client.head_object(Bucket=self._bucket, Key=name)
        except NotFound:
            return None
        return ObjectInfo(key, head["ContentLength"], head["LastModified"].astimezone(UTC))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        folder = self.object_key(prefix) + "/"
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket,
            Prefix=folder,
            Delimiter="/",
            PaginationConfig={"PageSize": self._page_size},
        )
        with self._errors("list", prefix):
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(folder) :]
                    if not _listable(name):
                        continue
                    modified = item["LastModified"].astimezone(UTC)
                    yield ObjectInfo(f"{prefix}/{name}", item["Size"], modified)

    def delete(self, key: str) -> bool:
        # DeleteObject answers the same whether or not the object was there: ask first.
        if self.stat(key) is None:
            return False
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self._bucket, Key=self.object_key(key))
        return True

    def check(self) -> None:
        try:
            with self._errors("reach the bucket", self._bucket):
                self._client.head_bucket(Bucket=self._bucket)
        except NotFound:
            raise Transient(f"the object store has no bucket '{self._bucket}'") from None

    # -- the reader's ranged GETs, and what every failure becomes --------------------------

    def get_range(self, key: str, name: str, start: int, end: int, etag: str) -> Any:
        """The body of bytes start..end (inclusive) of the object read since `etag`."""
        with self._errors("read", key):
            answer: GetObjectOutputTypeDef = self._client.get_object(
                Bucket=self._bucket, Key=name, Range=f"bytes={start}-{end}", IfMatch=etag
            )
        return answer["Body"]

    @contextlib.contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _MISSING:
                raise NotFound(f"'{key[:100]}' does not exist") from None
            if code in ("PreconditionFailed", "412"):
                # The object was replaced while it was read: never mix two versions.
                log.warning("object store: '%s' changed while it was read", key[:100])
                raise Transient(f"'{key[:100]}' changed while it was read; try again") from exc
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            log.warning(
                "object store: could not %s '%s' in bucket '%s': %s (HTTP %s)",
                action,
                key[:100],
                self._bucket,
                code or "error",
                status,
            )
            raise Transient(UNAVAILABLE) from exc
        except (BotoCoreError, Boto3Error) as exc:
            log.warning(
                "object store: could not %s '%s' in bucket '%s': %s",
                action,
                key[:100],
                self._bucket,
                type(exc).__name__,
            )
            raise Transient(UNAVAILABLE) from exc


def _listable(name: str) -> bool:
    """Objects Dropyard could have written: direct children, no hidden names."""
    if not name or name.startswith(".") or "/" in name:
        return False
    try:
        check_key(name)
    except Exception:
        return False
    return True


class _RangedReader(io.RawIOBase):
    """A seekable raw stream over one object version (its ETag).

    Reading goes on from one open ranged GET while the reads are sequential; a seek
    elsewhere starts a new range. A connection lost mid-body is opened again once at the
    same offset before the read fails.
    """

    def __init__(self, storage: S3Storage, key: str, name: str, *, size: int, etag: str) -> None:
        super().__init__()
        self.name = key
        self._storage = storage
        self._key = key
        self._object = name
        self._size = size
        self._etag = etag
        self._pos = 0
        self._body: Any = None
        self._body_pos = 0  # where the open body's next byte is in the object
        self._body_end = 0  # one past the open body's last byte
        self._window = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._pos + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._pos = position
        return position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), self._size - self._pos)
        if wanted <= 0:
            return 0
        for attempt in (1, 2):
            if self._body is None or self._body_pos != self._pos:
                self._open(wanted)
            try:
                chunk: bytes = self._body.read(min(wanted, self._body_end - self._body_pos))
            except (BotoCoreError, OSError) as exc:
                self._drop()
                if attempt == 2:
                    log.warning("object store: reading '%s' failed: %s", self._key[:100], exc)
                    raise Transient(UNAVAILABLE) from exc
                continue
            if not chunk:  # the body ended early: the connection went away
                self._drop()
                if attempt == 2:
                    raise Transient(UNAVAILABLE)
                continue
            view[: len(chunk)] = chunk
            self._pos += len(chunk)
            self._body_pos += len(chunk)
            if self._body_pos >= self._body_end:
                self._drop(keep_window=True)
            return len(chunk)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._drop()
        super().close()

    def _open(self, wanted: int) -> None:
        # Right where the last range ended: the reader goes through the object, read more.
        sequential = self._body is None and self._window and self._body_end == self._pos
        window = min(self._window * 2, _MAX_WINDOW) if sequential else max(wanted, _MIB)
        self._drop()
        self._window = window
        end = min(self._pos + max(self._window, wanted), self._size)
        self._body = self._storage.get_range(
            self._key, self._object, self._pos, end - 1, self._etag
        )
        self._body_pos, self._body_end = self._pos, end

    def _drop(self, *, keep_window: bool = False) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None
        if not keep_window:
            self._window = 0

"""Which storage an installation uses, from its settings."""

from __future__ import annotations

from dropyard.errors import Invalid
from dropyard.settings import Settings
from dropyard.storage.base import Storage
from dropyard.storage.local import LocalStorage


def make_storage(settings: Settings) -> Storage:
    if settings.storage_backend == "local":
        return LocalStorage(settings.files_dir)
    if not settings.s3_bucket:
        raise Invalid("storage_backend 's3' needs s3_bucket to be set", field="s3_bucket")
    # Imported here: boto3 takes time to load, and local installations never need it.
    from dropyard.storage.s3 import S3Storage, make_client

    client = make_client(
        region=settings.s3_region,
        endpoint_url=settings.s3_endpoint_url,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
        timeout_seconds=settings.s3_timeout_seconds,
        max_attempts=settings.s3_max_attempts,
    )
    return S3Storage(
        client,
        bucket=settings.s3_bucket,
        prefix=settings.s3_prefix,
        part_bytes=settings.s3_part_mb * 1024 * 1024,
        sse=settings.s3_sse,
        sse_kms_key_id=settings.s3_sse_kms_key_id,
    )

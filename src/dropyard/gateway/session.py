"""The session core every hosted protocol shares.

A login is a hosted credential. Its virtual root holds one folder per active connection
that uses the credential; a folder holds files and nothing else (no sub-folders). Every
path a client sends is normalised here, virtually, against that tree: `..` stops at the
root, and anything that is not `/`, `/<folder>` or `/<folder>/<file>` does not exist.
Storage keys are then built from the connection id and a checked name, and the storage
backend resolves them against the real filesystem once more.

Inbound (`push`) folders take uploads and let the partner read and delete receipts and
results; outbound (`hosted`) folders are read-only except that the partner may delete a
file it has taken. Nothing else (mkdir, chmod, links, renames across folders) is allowed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import BinaryIO, Literal

from dropyard.accounts.actors import Actor
from dropyard.accounts.audit import AuditLog
from dropyard.connections.service import ConnectionService, ConnectionView
from dropyard.credentials.service import HostedLogin
from dropyard.errors import DropyardError, Forbidden, Invalid, NotFound
from dropyard.files import names
from dropyard.files.service import FileService, FileView
from dropyard.files.spool import Spool
from dropyard.metrics import Metrics, TransferOutcome

log = logging.getLogger(__name__)

Protocol = Literal["sftp", "ftp", "email"]
# Clients that upload under a temporary name and rename when done (WinSCP's .filepart).
STAGING_SUFFIXES = (".filepart", ".part", ".partial")
_FOLDER_TTL = 5.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Folder:
    name: str
    connection_id: int
    account_id: int
    inbound: bool
    plain_ftp: bool
    file_pattern: str

    @classmethod
    def of(cls, connection: ConnectionView) -> Folder:
        return cls(
            name=connection.folder,
            connection_id=connection.id,
            account_id=connection.account_id,
            inbound=connection.direction == "inbound",
            plain_ftp=bool(connection.details.get("plain_ftp", False)),
            file_pattern=str(connection.details.get("file_pattern") or "*"),
        )


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int
    modified_at: datetime
    writable: bool


@dataclass(frozen=True)
class Target:
    """A resolved path: the root, a folder, or a file name within a folder."""

    folder: Folder | None = None
    name: str | None = None

    @property
    def is_root(self) -> bool:
        return self.folder is None

    @property
    def path(self) -> str:
        if self.folder is None:
            return "/"
        return f"/{self.folder.name}" + (f"/{self.name}" if self.name else "")


@dataclass
class Upload:
    """An upload in flight. Nothing sees it until `GatewaySession.finish` commits it."""

    folder: Folder
    name: str
    spool: Spool
    started_at: float = field(default_factory=time.monotonic)
    # A write failed (limit, disk): whatever the client does next, this upload is not kept.
    failed: DropyardError | None = None
    counted: bool = False  # in the transfer metrics already

    def write(self, data: bytes | memoryview, offset: int | None = None) -> None:
        if self.failed is not None:
            raise self.failed
        try:
            self.spool.write(data, offset)
        except DropyardError as exc:
            self.failed = exc
            self.spool.discard()
            raise


def normalise(path: str | bytes, cwd: str = "/") -> list[str]:
    """The segments of a client path, virtually resolved; `..` never climbs above `/`."""
    if isinstance(path, bytes):
        try:
            path = path.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("the path is not valid UTF-8") from None
    if any(c in path for c in "\x00\r\n"):
        raise Invalid("the path contains a NUL, CR or LF character")
    if len(path.encode()) > 4096:
        raise Invalid("the path is too long")
    joined = path if path.startswith("/") else f"{cwd.rstrip('/')}/{path}"
    segments: list[str] = []
    for segment in joined.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return segments


class GatewaySession:
    """One logged-in client of one protocol: its folders and every operation on them."""

    def __init__(
        self,
        *,
        login: HostedLogin,
        protocol: Protocol,
        address: str,
        connections: ConnectionService,
        files: FileService,
        on_download: Callable[[int, str], object] | None = None,
        on_delete: Callable[[int, str], object] | None = None,
        audit: AuditLog | None = None,
        secure: bool = True,
        metrics: Metrics | None = None,
    ) -> None:
        self.login = login
        self.protocol = protocol
        self.address = address
        self.secure = secure
        self._connections = connections
        self._files = files
        self._on_download = on_download
        self._on_delete = on_delete
        self._audit_log = audit
        self._metrics = metrics
        self._folders: dict[str, Folder] = {}
        self._folders_at = -_FOLDER_TTL
        self._staged: dict[tuple[int, str], Upload] = {}
        self._open_uploads: set[int] = set()
        self.actor = Actor(
            kind="user",
            name=f"{protocol}:{login.login}",
            account_id=login.account_id,
            role="member",
            source=address,
        )

    @property
    def busy(self) -> bool:
        """An upload is in flight."""
        return bool(self._open_uploads)

    # -- folders ------------------------------------------------------------------------

    def folders(self) -> dict[str, Folder]:
        now = time.monotonic()
        if now - self._folders_at >= _FOLDER_TTL:
            found = {}
            for connection in self._connections.for_credential(self.login.credential_id):
                folder = Folder.of(connection)
                # Plain FTP reaches only the folders whose connection allows it.
                if self.protocol == "ftp" and not self.secure and not folder.plain_ftp:
                    continue
                found[folder.name] = folder
            self._folders = found
            self._folders_at = now
        return self._folders

    def resolve(self, path: str | bytes, cwd: str = "/") -> Target:
        segments = normalise(path, cwd)
        if not segments:
            return Target()
        folder = self.folders().get(segments[0])
        if folder is None or len(segments) > 2:
            raise NotFound("no such file or folder")
        if len(segments) == 1:
            return Target(folder=folder)
        return Target(folder=folder, name=segments[1])

    # -- reading ------------------------------------------------------------------------

    def list(self, path: str | bytes, cwd: str = "/") -> list[Entry]:
        target = self.resolve(path, cwd)
        if target.is_root:
            return [
                self._folder_entry(f) for f in sorted(self.folders().values(), key=lambda f: f.name)
            ]
        if target.name is not None:
            return [self.stat(path, cwd)]
        assert target.folder is not None
        entries = [
            Entry(
                info.key.rsplit("/", 1)[-1],
                False,
                info.size,
                info.modified_at,
                self._deletable(target.folder, info.key.rsplit("/", 1)[-1]),
            )
            for info in self._files.list_folder(target.folder.connection_id)
        ]
        entries.extend(
            Entry(u.name, False, u.spool.size, datetime.now(UTC), True)
            for (cid, _), u in self._staged.items()
            if cid == target.folder.connection_id
        )
        return sorted(entries, key=lambda e: e.name)

    def stat(self, path: str | bytes, cwd: str = "/") -> Entry:
        target = self.resolve(path, cwd)
        if target.folder is None:
            return Entry("/", True, 0, _EPOCH, False)
        if target.name is None:
            return self._folder_entry(target.folder)
        staged = self._staged.get((target.folder.connection_id, target.name))
        if staged is not None:
            return Entry(target.name, False, staged.spool.size, datetime.now(UTC), True)
        info = self._files.stat_folder_file(target.folder.connection_id, target.name)
        if info is None:
            raise NotFound("no such file")
        return Entry(
            target.name,
            False,
            info.size,
            info.modified_at,
            self._deletable(target.folder, target.name),
        )

    def open_read(self, path: str | bytes, cwd: str = "/") -> tuple[Target, BinaryIO]:
        target = self._file_target(path, cwd)
        assert target.folder is not None
        assert target.name is not None
        handle = self._files.open_folder_file(target.folder.connection_id, target.name)
        return target, handle

    def finished_read(self, target: Target, *, size: int = 0) -> None:
        """A client read a whole file (`size` bytes): audited, counted, and for outbound
        files `downloaded`."""
        folder, name = target.folder, target.name
        if self._metrics is not None:
            self._metrics.transfer(self.protocol, "download", "ok", size)
        if folder is not None and name is not None:
            self._audit("file.download", folder, name)
        if folder is not None and name is not None and not folder.inbound and self._on_download:
            self._on_download(folder.connection_id, name)

    # -- writing ------------------------------------------------------------------------

    def open_upload(self, path: str | bytes, cwd: str = "/", *, resume: bool = False) -> Upload:
        """A new upload; with `resume`, a staged upload of that name continues instead."""
        target = self.resolve(path, cwd)
        if target.folder is None or target.name is None:
            raise Forbidden("uploads go into a connection's folder")
        folder, name = target.folder, target.name
        if not folder.inbound:
            raise Forbidden(f"folder '{folder.name}' is read-only: it holds files for you")
        if name.lower().endswith(STAGING_SUFFIXES):
            # A staging name may be hidden (".x.csv.part"): it is renamed before it counts,
            # and the name it is renamed to is checked then.
            names.check_upload_name(name.lstrip("."))
        else:
            names.check_upload_name(name)
        key = (folder.connection_id, name)
        staged = self._staged.pop(key, None)
        if staged is not None and resume:
            self._open_uploads.add(id(staged))
            return staged
        if staged is not None:
            staged.spool.discard()
        upload = Upload(folder=folder, name=name, spool=self._files.open_spool())
        self._open_uploads.add(id(upload))
        return upload

    def finish(self, upload: Upload) -> FileView | None:
        """A completed upload: committed, or staged when its name says it will be renamed."""
        self._open_uploads.discard(id(upload))
        if upload.failed is not None:
            upload.spool.discard()
            self._count_upload(upload, "failed")
            raise upload.failed
        if upload.name.lower().endswith(STAGING_SUFFIXES):
            self._staged[(upload.folder.connection_id, upload.name)] = upload
            return None
        return self._commit(upload, upload.name)

    def abort(self, upload: Upload) -> None:
        """A transfer that ended badly leaves nothing behind."""
        self._open_uploads.discard(id(upload))
        upload.spool.discard()
        self._count_upload(upload, "failed")

    def _commit(self, upload: Upload, name: str) -> FileView:
        try:
            if not fnmatchcase(name, upload.folder.file_pattern):
                raise Forbidden(
                    f"file name '{name[:100]}' does not match this folder's pattern "
                    f"'{upload.folder.file_pattern}'"
                )
            if upload.folder.name not in self.folders():
                raise Forbidden(f"folder '{upload.folder.name}' no longer takes uploads")
        except BaseException:
            upload.spool.discard()
            self._count_upload(upload, "failed")
            raise
        size = upload.spool.size
        try:
            view = self._files.commit(
                upload.spool,
                connection_id=upload.folder.connection_id,
                name=name,
                source=self.protocol,
                actor=self.actor,
                address=self.address,
            )
        except BaseException:
            self._count_upload(upload, "failed")
            raise
        self._count_upload(upload, "ok", size)
        return view

    def rename(self, old: str | bytes, new: str | bytes, cwd: str = "/") -> FileView | None:
        source = self.resolve(old, cwd)
        target = self.resolve(new, cwd)
        if (
            source.folder is None
            or source.name is None
            or target.folder is None
            or target.name is None
        ):
            raise Forbidden("only files can be renamed")
        if source.folder.connection_id != target.folder.connection_id:
            raise Forbidden("files cannot move between folders")
        staged = self._staged.pop((source.folder.connection_id, source.name), None)
        if staged is None:
            if self._files.stat_folder_file(source.folder.connection_id, source.name):
                raise Forbidden("Dropyard's files cannot be renamed")
            raise NotFound("no such file")
        try:
            names.check_upload_name(target.name)
        except Invalid:
            staged.spool.discard()
            self._count_upload(staged, "failed")
            raise
        return self._commit(staged, target.name)

    def delete(self, path: str | bytes, cwd: str = "/") -> None:
        target = self.resolve(path, cwd)
        if target.folder is None or target.name is None:
            raise Forbidden("folders cannot be removed")
        staged = self._staged.pop((target.folder.connection_id, target.name), None)
        if staged is not None:
            staged.spool.discard()
            return
        if self._files.stat_folder_file(target.folder.connection_id, target.name) is None:
            raise NotFound("no such file")
        if not self._deletable(target.folder, target.name):
            raise Forbidden("this file cannot be deleted")
        self._files.delete_folder_file(target.folder.connection_id, target.name)
        self._audit("file.delete", target.folder, target.name)
        if not target.folder.inbound and self._on_delete is not None:
            self._on_delete(target.folder.connection_id, target.name)

    def refuse(self, what: str) -> None:
        """mkdir, rmdir, chmod, chown, links: never allowed."""
        raise Forbidden(f"{what} is not allowed here")

    def close(self) -> None:
        """The client is gone: staged uploads that were never renamed are dropped."""
        for upload in self._staged.values():
            upload.spool.discard()
            self._count_upload(upload, "failed")
        self._staged.clear()

    # -- helpers ------------------------------------------------------------------------

    def _count_upload(self, upload: Upload, outcome: TransferOutcome, size: int = 0) -> None:
        # Once per upload, however many of abort/finish/close see it end.
        if not upload.counted and self._metrics is not None:
            upload.counted = True
            self._metrics.transfer(self.protocol, "upload", outcome, size)

    def _audit(self, action: str, folder: Folder, name: str) -> None:
        if self._audit_log is not None:
            self._audit_log.write(
                actor=self.actor,
                action=action,
                target=f"connection:{folder.connection_id}",
                account_id=folder.account_id,
                detail={"name": name, "protocol": self.protocol, "address": self.address},
            )

    def _file_target(self, path: str | bytes, cwd: str) -> Target:
        target = self.resolve(path, cwd)
        if target.folder is None or target.name is None:
            raise Invalid("that is a folder, not a file")
        return target

    @staticmethod
    def _deletable(folder: Folder, name: str) -> bool:
        return not folder.inbound or names.is_reserved(name)

    @staticmethod
    def _folder_entry(folder: Folder) -> Entry:
        return Entry(folder.name, True, 0, _EPOCH, folder.inbound)

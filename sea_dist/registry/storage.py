"""A thin storage layer over fsspec, so a local folder and an object store share the registry code.

Every path is built from validated segments below one root, so no name, alias or reference can
address anything outside the registry. The few operations that need different code per backend
(exclusive create, atomic replace, move) are here and nowhere else:

- local folders: exclusive create by temp file + ``fsync`` + ``os.link`` (complete content or
  nothing, never an empty file), temp file + ``fsync`` + ``os.replace``, ``os.replace`` moves;
- S3 (s3fs): a conditional put (``If-None-Match: *``) for exclusive create; a single put is
  already atomic (readers see the old or the new object, never a mix); moves are copy + delete;
- other fsspec filesystems: fsspec's generic ``mode="create"`` (check-then-write, *not* atomic
  against concurrent publishers; the registry documents that only local and S3 are race-free).
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import IO, Any

import fsspec
import fsspec.core
from fsspec.implementations.local import LocalFileSystem

from sea_dist.errors import RegistryError, expected_found

SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")


def check_segment(segment: str) -> str:
    """Return ``segment`` if it is a safe single path component, else raise RegistryError."""
    # The first character cannot be "." so "." and ".." never match; "/" and "\\" never do.
    if not isinstance(segment, str) or not SEGMENT_RE.fullmatch(segment):
        raise RegistryError(
            expected_found(
                "registry path segment",
                "letters, digits, '.', '_' or '-' (no '/', no '..')",
                segment,
            )
        )
    return segment


class Storage:
    """Files below one root of an fsspec filesystem, addressed by validated path segments.

    Args:
        url: local folder or fsspec URL (``s3://bucket/prefix``); the root need not exist yet.
        storage_options: passed to fsspec (e.g. ``{"client_kwargs": {"endpoint_url": ...}}``).
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        if not str(url).strip():
            raise RegistryError(expected_found("registry", "a folder or fsspec URL", url))
        self.url = str(url)
        try:
            fs, root = fsspec.core.url_to_fs(self.url, **dict(storage_options or {}))
        except (ValueError, ImportError) as error:
            raise RegistryError(
                expected_found(
                    "registry",
                    "a folder or a supported fsspec URL",
                    self.url,
                    f"fsspec said: {error}",
                )
            ) from None
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = str(root).rstrip("/") or "/"
        self.local = isinstance(fs, LocalFileSystem)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.protocol: str = protocol
        self.atomic_create = self.local or protocol in ("s3", "s3a")

    # -- paths -------------------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        """Absolute filesystem path of ``root/part0/part1/...``; each part is validated."""
        for part in parts:
            check_segment(part)
        return "/".join((self.root.rstrip("/"), *parts)) if parts else self.root

    def display(self, *parts: str) -> str:
        """A readable location for messages (the URL the user gave plus the parts)."""
        return "/".join((self.url.rstrip("/"), *parts))

    # -- reads -------------------------------------------------------------------------------

    def read_bytes(self, *parts: str) -> bytes:
        """Whole content of a file. Raises FileNotFoundError when it does not exist."""
        path = self.path(*parts)
        if self.local:
            with open(path, "rb") as handle:
                return handle.read()
        return bytes(self.fs.cat_file(path))

    def read_many(self, paths: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], bytes | None]:
        """Read several files (concurrently on object stores); None for a missing file."""
        if self.local or not paths:
            result: dict[tuple[str, ...], bytes | None] = {}
            for parts in paths:
                try:
                    result[parts] = self.read_bytes(*parts)
                except FileNotFoundError:
                    result[parts] = None
            return result
        full = {self.path(*parts): parts for parts in paths}
        contents = self.fs.cat(list(full), on_error="return")
        return {
            parts: bytes(contents[path])
            if isinstance(contents.get(path), bytes | bytearray)
            else None
            for path, parts in full.items()
        }

    def open_read(self, *parts: str) -> IO[bytes]:
        """A binary file object for streaming reads (caller closes it)."""
        path = self.path(*parts)
        if self.local:
            return open(path, "rb")
        return self.fs.open(path, "rb")

    def exists(self, *parts: str) -> bool:
        path = self.path(*parts)
        if self.local:
            return os.path.exists(path)
        return bool(self.fs.exists(path))

    def size(self, *parts: str) -> int:
        path = self.path(*parts)
        if self.local:
            return os.path.getsize(path)
        return int(self.fs.size(path))

    def list_dir(self, *parts: str) -> list[str]:
        """Base names directly under a folder (files and folders); [] when it does not exist."""
        path = self.path(*parts)
        if self.local:
            try:
                return sorted(os.listdir(path))
            except (FileNotFoundError, NotADirectoryError):
                return []
        # Object-store listings are cached by fsspec; other processes publish, so never trust it.
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        prefix = path.rstrip("/") + "/"
        names = {str(e).rstrip("/").removeprefix(prefix) for e in entries}
        return sorted(n for n in names if n and "/" not in n)

    def list_files(self, *parts: str) -> set[str]:
        """Relative paths (``a/b``) of every file below a folder, in one walk or one listing
        request on object stores; an empty set when the folder is missing."""
        path = self.path(*parts)
        prefix = path.rstrip("/") + "/"
        if self.local:
            found: set[str] = set()
            for folder, _, files in os.walk(path):
                base = folder.rstrip("/") + "/"
                found.update((base + f).removeprefix(prefix) for f in files)
            return found
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.find(path)
        except FileNotFoundError:
            return set()
        return {str(e).removeprefix(prefix) for e in entries if str(e).startswith(prefix)}

    def list_signatures(self, *parts: str) -> dict[str, tuple[Any, ...]]:
        """Base names of the files directly under a folder, each with a replacement signature.

        The signature changes when a file is replaced by another one (the inode locally, read
        from the directory listing without a ``stat`` per file; size, ETag and time on object
        stores, from the same listing request), so a caller can keep what it derived from an
        immutable file until the file is replaced. An in-place rewrite of a local file keeps
        its inode, so use this only for files that are never rewritten. {} when the folder is
        missing.
        """
        path = self.path(*parts)
        if self.local:
            try:
                with os.scandir(path) as entries:
                    return {entry.name: (entry.inode(),) for entry in entries}
            except (FileNotFoundError, NotADirectoryError):
                return {}
        self.fs.invalidate_cache(path)
        try:
            details = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return {}
        prefix = path.rstrip("/") + "/"
        signed = {}
        for info in details:
            name = str(info.get("name", "")).rstrip("/").removeprefix(prefix)
            if name and "/" not in name and info.get("type") != "directory":
                stamp = info.get("ETag") or info.get("etag") or info.get("LastModified")
                signed[name] = (info.get("size"), str(stamp), str(info.get("mtime", "")))
        return signed

    def modified(self, *parts: str) -> dt.datetime | None:
        """Modification time (UTC) of a file, or None when the backend does not say."""
        try:
            value = self.fs.modified(self.path(*parts))
        except (NotImplementedError, FileNotFoundError, OSError):
            return None
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    # -- writes ------------------------------------------------------------------------------

    def write_bytes(self, data: bytes, *parts: str) -> None:
        """Write a file so that readers see the old content or the new one, never a mix."""
        path = self.path(*parts)
        if self.local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            temp = f"{path}.tmp-{uuid.uuid4().hex}"
            try:
                with open(temp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, path)
            finally:
                if os.path.exists(temp):
                    os.unlink(temp)
            return
        self.fs.pipe_file(path, data)

    def create_exclusive(self, data: bytes, *parts: str) -> bool:
        """Create a file with ``data`` only if it does not exist yet; False when it already does.

        Atomic on local folders and S3: of many concurrent callers exactly one gets True, and
        the file appears with its whole content or not at all (never empty or half-written,
        even when the disk fills while writing it).

        - local: the content goes to a temp file in the same folder, is fsynced, then
          ``os.link``-ed to the target name (a hard link fails with EEXIST when the name
          exists, so publishing is exclusive and complete at once); the temp name is removed;
        - S3: a conditional put (``If-None-Match: *``), a single atomic object write.
        """
        path = self.path(*parts)
        if self.local:
            return _link_exclusive(data, path)
        try:
            self.fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        self.fs.invalidate_cache(path)
        return True

    def move(self, source: tuple[str, ...], target: tuple[str, ...]) -> None:
        """Move one file (rename locally; copy + delete on object stores)."""
        src, dst = self.path(*source), self.path(*target)
        if self.local:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.replace(src, dst)
            return
        self.fs.copy(src, dst)
        self.fs.rm_file(src)

    def remove(self, *parts: str, recursive: bool = False) -> None:
        """Delete a file (or a folder with ``recursive``); missing paths are not an error."""
        path = self.path(*parts)
        try:
            if recursive:
                self.fs.rm(path, recursive=True)
            else:
                self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        if not self.local:
            self.fs.invalidate_cache(path)


# Filesystems without hard links answer these; there the O_EXCL fallback is used.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV, errno.EMLINK}


def _link_exclusive(data: bytes, path: str) -> bool:
    """Create ``path`` holding ``data``, exclusively and whole (see Storage.create_exclusive)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temp = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in _NO_LINKS:
                raise
            return _create_exclusive_unlinked(data, path)
        return True
    finally:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass


def _create_exclusive_unlinked(data: bytes, path: str) -> bool:
    """``O_EXCL`` create then write; on a failed write the file is removed, never left partial."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(path)
        raise
    return True

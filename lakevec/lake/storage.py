"""One place for every byte lakevec reads or writes, over any fsspec filesystem.

Local paths get real durability (fsync of file and directory) and an atomic
create-if-absent through ``os.link``; ``memory://`` gets the same through a process lock;
other filesystems use ``pipe_file(mode="create")`` where the backend implements it.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import fsspec
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from lakevec.errors import StorageError

_MEMORY_LOCK = threading.Lock()
WRITE_CHUNK = 8 << 20


class Storage:
    """A root URL resolved once into ``(fs, root)``; paths below it are ``/``-joined."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.local = isinstance(self.fs, LocalFileSystem)
        self.memory = isinstance(self.fs, MemoryFileSystem)
        self.root = os.path.abspath(root) if self.local else root.rstrip("/")
        if self.local:
            os.makedirs(self.root, exist_ok=True)

    def join(self, *parts: str) -> str:
        return "/".join([self.root, *[p.strip("/") for p in parts if p]])

    # -- reads ---------------------------------------------------------------------------
    def read_bytes(self, path: str) -> bytes:
        if self.local:
            with open(path, "rb") as f:
                return f.read()
        return self.fs.cat_file(path)

    def open(self, path: str):
        """A seekable binary file object (for Parquet readers that fetch only some columns)."""
        if self.local:
            return open(path, "rb")
        return self.fs.open(path, "rb")

    def exists(self, path: str) -> bool:
        if self.local:
            return os.path.exists(path)
        return self.fs.exists(path)

    def listdir(self, path: str) -> list[str]:
        """Base names below ``path``; empty if it does not exist."""
        if self.local:
            try:
                return os.listdir(path)
            except FileNotFoundError:
                return []
        try:
            return [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(path, detail=False)]
        except FileNotFoundError:
            return []

    # -- writes --------------------------------------------------------------------------
    def write_new(self, path: str, data: bytes | memoryview) -> None:
        """Write an immutable file under a unique name, durably (fsync where it means anything)."""
        if self.local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            view = memoryview(data)
            with open(path, "wb") as f:
                # one 64 MiB write() measured 5-10x slower than 8 MiB pieces on this VM's kernel
                for start in range(0, len(view), WRITE_CHUNK):
                    f.write(view[start : start + WRITE_CHUNK])
                f.flush()
                os.fsync(f.fileno())
            return
        self.fs.pipe_file(path, bytes(data))

    @contextmanager
    def create(self, path: str) -> Iterator[pa.NativeFile]:
        """A sink for a new immutable file, streamed straight to disk where the root is local
        (no whole-file buffer), durable when the block exits; elsewhere buffered, then written."""
        if not self.local:
            sink = pa.BufferOutputStream()
            yield sink
            self.fs.pipe_file(path, sink.getvalue().to_pybytes())
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            with pa.OSFile(path, "wb") as sink:
                yield sink
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(path)
            raise

    def sync_dir(self, path: str) -> None:
        """Make the names created in a local directory durable (no-op elsewhere)."""
        if not self.local:
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def put_if_absent(self, path: str, data: bytes) -> bool:
        """Create ``path`` with ``data`` only if nothing is there; True if we created it.

        This is the commit point of every version: exactly one writer can win.
        """
        if self.local:
            directory = os.path.dirname(path)
            os.makedirs(directory, exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # atomic, fails if the name exists
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
            self.sync_dir(directory)
            return True
        if self.memory:
            with _MEMORY_LOCK:
                if self.fs.exists(path):
                    return False
                self.fs.pipe_file(path, data)
                return True
        try:
            self.fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        except (NotImplementedError, TypeError, ValueError) as exc:
            raise StorageError(
                f"{type(self.fs).__name__} cannot create a file only if it is absent, "
                "which lakevec needs for safe commits"
            ) from exc
        return True

    def overwrite(self, path: str, data: bytes) -> None:
        """Replace a small advisory file (a hint); not used for anything that must be atomic."""
        if self.local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
            return
        self.fs.pipe_file(path, data)

    def delete(self, path: str) -> None:
        try:
            if self.local:
                os.unlink(path)
            else:
                self.fs.rm_file(path)
        except FileNotFoundError:
            pass

    def delete_tree(self, path: str) -> None:
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass

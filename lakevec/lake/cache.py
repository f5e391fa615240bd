"""A bounded on-disk cache of immutable remote files (fragments, indexes, deletion files).

Files under a collection never change once written (they get unique names), so a copy is valid
forever: no revalidation, no ETags. Many processes may share one cache directory:

* a copy appears by ``os.replace`` of a fully written temporary file, so readers never see a
  partial one (two processes fetching the same file both rename; the content is the same);
* eviction unlinks the least recently used copies; a process that has one open or memory-mapped
  keeps reading it (POSIX keeps unlinked inodes alive), so eviction never breaks a reader.

Configure with ``cache_dir=`` / ``cache_bytes=`` on the client, or ``LAKEVEC_FILE_CACHE_DIR``
(default: ``files/`` under ``LAKEVEC_CACHE_DIR`` or ``~/.cache/lakevec``) and ``LAKEVEC_CACHE_BYTES``.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

DEFAULT_BYTES = 20 << 30


def default_directory() -> Path:
    if os.environ.get("LAKEVEC_FILE_CACHE_DIR"):
        return Path(os.environ["LAKEVEC_FILE_CACHE_DIR"])
    base = os.environ.get("LAKEVEC_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "lakevec")
    return Path(base) / "files"


class FileCache:
    def __init__(self, directory: str | os.PathLike | None = None, max_bytes: int | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()
        if max_bytes is None:
            max_bytes = int(os.environ.get("LAKEVEC_CACHE_BYTES", DEFAULT_BYTES))
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._inflight: dict[Path, threading.Event] = {}  # copies this process is fetching
        self.hits = 0
        self.misses = 0

    def key(self, url: str) -> Path:
        """Where the copy of ``url`` lives: a hash of the full URL, keeping the file suffix."""
        digest = hashlib.sha256(url.encode()).hexdigest()[:40]
        suffix = os.path.splitext(url)[1][:16]
        return self.directory / digest[:2] / f"{digest}{suffix}"

    def peek(self, url: str) -> str | None:
        """The path of ``url``'s copy if it is complete now, else None (never fetches)."""
        path = self.key(url)
        return str(path) if path.exists() else None

    def fetching(self, url: str) -> bool:
        """Whether this process is downloading ``url`` right now."""
        with self._lock:
            return self.key(url) in self._inflight

    def get(self, url: str, fetch: Callable[[str], None]) -> str:
        """The local path of ``url``'s copy; ``fetch(tmp_path)`` downloads it on a miss (once
        per process: a thread asking for a file another thread is fetching waits for it)."""
        path = self.key(url)
        mine = None
        with self._lock:
            running = self._inflight.get(path)
            if running is None and not path.exists():
                mine = self._inflight[path] = threading.Event()
        if running is not None:
            running.wait()
            return self.get(url, fetch)
        try:
            return self._get(url, path, fetch)
        finally:
            if mine is not None:
                with self._lock:
                    del self._inflight[path]
                mine.set()

    def _get(self, url: str, path: Path, fetch: Callable[[str], None]) -> str:
        if path.exists():
            self.hits += 1
            try:
                os.utime(path)  # recency for eviction
            except FileNotFoundError:  # evicted by another process just now
                return self.get(url, fetch)
            return str(path)
        self.misses += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            fetch(str(tmp))
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        self._evict(keep=path)
        return str(path)

    def put(self, url: str, data: bytes | memoryview) -> None:
        """Keep a copy of a file this process just wrote (so it is not downloaded back)."""
        path = self.key(url)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        self._evict(keep=path)

    def size(self) -> int:
        return sum(entry.stat().st_size for entry in self.directory.rglob("*") if entry.is_file())

    def _evict(self, keep: Path) -> None:
        """Unlink least recently used copies until the cache fits its budget (never ``keep``,
        the copy just made: a caller is about to open it)."""
        with self._lock:
            entries = []
            total = 0
            for entry in self.directory.rglob("*"):
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue
                total += stat.st_size
                if entry != keep:
                    entries.append((stat.st_mtime, stat.st_size, entry))
            if total <= self.max_bytes:
                return
            for _, size, entry in sorted(entries, key=lambda e: e[0]):
                if total <= self.max_bytes:
                    break
                try:
                    entry.unlink()
                except FileNotFoundError:
                    pass
                total -= size

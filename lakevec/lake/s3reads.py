"""Reads of an ``s3://`` root through Arrow's C++ S3 client.

A cold remote query is a few batches of small ranged GETs (footers, index blocks, candidate
rows, result rows). Through s3fs each batch pays aiobotocore's Python cost per request, and
the first one pays its import and client setup (0.35-0.45 s on the 2-core VM). pyarrow is
already loaded, its client starts in ~30 ms, and a ranged read releases the GIL. s3fs stays
for everything else (writes, conditional creates, listings, deletes), imported when first
needed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

log = logging.getLogger(__name__)

#: storage options (s3fs's names) this reader understands; any other option means s3fs reads
_OPTIONS = {"key", "secret", "token", "anon", "endpoint_url", "client_kwargs"}
#: s3fs options that only shape s3fs's own caching: they do not keep Arrow from reading
_CACHING = {"skip_instance_cache", "use_listings_cache", "listings_expiry_time", "default_block_size"}
_CLIENT_OPTIONS = {"endpoint_url", "region_name"}
READERS = 32  # ranged GETs of one batch in flight
HANDLES = 4096  # opened immutable files kept (each holds only its key and size)
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(READERS, thread_name_prefix="lakevec-s3")
        return _POOL


def arrow_s3(options: dict[str, Any]) -> pafs.S3FileSystem | None:
    """Arrow's S3 filesystem for s3fs-style ``options``; None where it cannot stand in for s3fs
    (an option it has no counterpart for, or ``LAKEVEC_ARROW_S3=0``)."""
    if os.environ.get("LAKEVEC_ARROW_S3", "1") == "0":
        return None
    client = options.get("client_kwargs") or {}
    if set(options) - _OPTIONS - _CACHING or set(client) - _CLIENT_OPTIONS:
        return None
    # botocore reads the endpoint from the environment; Arrow does not
    endpoint = (
        options.get("endpoint_url")
        or client.get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    region = client.get("region_name") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    kwargs: dict[str, Any] = {
        "access_key": options.get("key"),
        "secret_key": options.get("secret"),
        "session_token": options.get("token"),
        "anonymous": bool(options.get("anon", False)),
        "region": region,
        "endpoint_override": endpoint,
    }
    try:
        return pafs.S3FileSystem(**{k: v for k, v in kwargs.items() if v is not None})
    except (pa.ArrowException, ValueError) as exc:
        log.debug("Arrow's S3 client is unavailable (%s); reading through s3fs", exc)
        return None


class ArrowReads:
    """Whole-file reads and batches of ranged reads of one S3 store.

    ``read_ranges`` is for immutable files only: a file's size is looked up once (a HEAD
    request, as Arrow opens a file) and its handle kept for later ranges.
    """

    def __init__(self, fs: pafs.S3FileSystem) -> None:
        self.fs = fs
        self._handles: OrderedDict[str, pa.NativeFile] = OrderedDict()
        self._lock = threading.Lock()

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_file(path) as f:
            return f.read()

    def handle(self, path: str) -> pa.NativeFile:
        with self._lock:
            found = self._handles.get(path)
            if found is not None:
                self._handles.move_to_end(path)
                return found
        opened = self.fs.open_input_file(path)
        with self._lock:
            self._handles[path] = opened
            while len(self._handles) > HANDLES:
                self._handles.popitem(last=False)
        return opened

    def size(self, path: str) -> int:
        return self.handle(path).size()

    def read_ranges(self, paths: list[str], starts: list[int], ends: list[int]) -> list[bytes]:
        def read(i: int) -> bytes:
            return self.handle(paths[i]).read_at(ends[i] - starts[i], starts[i])

        if len(paths) == 1:
            return [read(0)]
        # open each file once (side by side) before its ranges run side by side: ranges that
        # opened their file themselves would each send a HEAD (62 ranges of one index: 22)
        unique = list(dict.fromkeys(paths))
        if len(unique) == 1:
            self.handle(unique[0])
        else:
            list(_pool().map(self.handle, unique))
        return list(_pool().map(read, range(len(paths))))

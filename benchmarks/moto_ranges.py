"""moto's S3 server, answering a ranged GET from the requested bytes alone, as S3 does.

moto 5.2 builds a ranged GET's answer by reading the whole object into memory and slicing it
(``FakeKey.value``): a 1 KB range of a 128 MB object took 69 ms, of a 532 MB one ~0.5 s. Real
S3 serves a range at its per-request cost, whatever the object's size. A client that reads
files by range (lakevec's cold remote queries, LanceDB) would be measured against moto's
copying rather than its own requests, so the benchmarks run moto through this module, which
reads a single range from the object's stored bytes. Everything else is moto as it ships.
With ``MOTO_REQUEST_LOG=<file>`` it also logs every request it answers, so a benchmark counts
requests and bytes at the server, whichever client made them.

    python -m benchmarks.moto_ranges -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
from typing import Any

from moto.s3 import models, responses

from benchmarks.common import REQUEST_LOG

_RANGED = contextvars.ContextVar("ranged", default=False)
_VALUE = models.FakeKey.value


class _Bytes:
    """An object's bytes, read when sliced (moto's range handler only takes len() and a slice)."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def __len__(self) -> int:
        return self.key.size

    def __bool__(self) -> bool:
        return self.key.size > 0

    def __getitem__(self, part: slice) -> bytes:
        start, stop, _ = part.indices(self.key.size)
        with self.key.lock:
            self.key._value_buffer.seek(start)
            return self.key._value_buffer.read(max(0, stop - start))


def _value(key: Any) -> Any:
    return _Bytes(key) if _RANGED.get() else _VALUE.fget(key)


_KEY_RESPONSE = responses.S3Response.key_response


def _key_response(self: Any, request: Any, full_url: str, headers: Any) -> Any:
    wanted = request.headers.get("range", "")
    ranged = request.method == "GET" and wanted.startswith("bytes=") and "," not in wanted
    token = _RANGED.set(ranged)
    try:
        status, out_headers, body = _KEY_RESPONSE(self, request, full_url, headers)
    finally:
        _RANGED.reset(token)
    if isinstance(body, _Bytes):  # a range moto answered as the whole object (past the end...)
        body = body[:]
    return status, out_headers, body


_LOG_LOCK = threading.Lock()


def _logged(handler: Any, out: Any) -> Any:
    """``handler`` (moto's answer to one request), writing a line per request to ``out``:
    method, path, Range header and the body's length (a HEAD's body is empty)."""

    def answer(self: Any, request: Any, full_url: str, headers: Any) -> Any:
        status, out_headers, body = handler(self, request, full_url, headers)
        size = len(body) if request.method != "HEAD" and body is not None else 0
        line = f"{request.method} {full_url.split('/', 3)[-1]} {request.headers.get('range')} {size}\n"
        with _LOG_LOCK:
            out.write(line)
            out.flush()
        return status, out_headers, body

    return answer


def install() -> None:
    models.FakeKey.value = property(_value, _VALUE.fset)
    responses.S3Response.key_response = _key_response
    log = os.environ.get(REQUEST_LOG)
    if log:  # every request the clients make, counted by the server (whatever the client)
        out = open(log, "a", buffering=1)  # noqa: SIM115 - open for the server's life
        responses.S3Response.key_response = _logged(responses.S3Response.key_response, out)
        responses.S3Response.bucket_response = _logged(responses.S3Response.bucket_response, out)


if __name__ == "__main__":
    from moto.server import main

    install()
    sys.exit(main())

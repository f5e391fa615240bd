"""Documents -> vectors through the collection's embedding function, in chunks, with progress.

Large inputs are embedded a chunk at a time so a progress bar can move (only when a terminal is
attached) and memory holds one chunk of model activations; the default embedder spreads each
chunk's batches over the cores itself.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from lakevec.errors import InvalidArgumentError

CHUNK = 1024
PROGRESS_MIN = 4096


def progress_bar(total: int, desc: str, unit: str) -> Any:
    """A tqdm bar on an interactive stderr for large totals, else ``None``."""
    if total < PROGRESS_MIN or os.environ.get("LAKEVEC_PROGRESS", "1") == "0" or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)


def _as_matrix(result: Any, n: int, op: str) -> np.ndarray:
    try:
        matrix = np.asarray(result, dtype=np.float32)
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError(
            f"The embedding function returned something that is not vectors in {op}: {e}"
        ) from None
    if matrix.ndim != 2 or matrix.shape[0] != n:
        raise InvalidArgumentError(
            f"The embedding function returned {matrix.shape} for {n} documents in {op}; expected {n} vectors."
        )
    return matrix


def embed_documents(ef: Any, documents: list[str], op: str, *, query: bool = False) -> np.ndarray:
    """An ``(n, dim)`` float32 matrix for ``documents``."""
    call = getattr(ef, "embed_query", ef) if query else ef
    if not callable(call):
        call = ef
    if not documents:
        return np.zeros((0, 0), dtype=np.float32)
    bar = progress_bar(len(documents), f"embedding ({op})", "doc")
    parts = []
    try:
        for start in range(0, len(documents), CHUNK):
            chunk = documents[start : start + CHUNK]
            parts.append(_as_matrix(call(chunk), len(chunk), op))
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return np.concatenate(parts)

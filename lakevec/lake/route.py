"""An index's route file: which byte ranges of a usearch index file hold the rows near a query.

A remote index must be copied whole before usearch can search it (532 MB at 1M x 384 int8).
Its rows, though, sit in one block of the file in the order of the graph's slots, and lakevec
adds rows to a graph cluster by cluster (``write/index.py``, ``insertion_order``), so the rows
of one cluster lie close together in that block. The route file, written beside the index,
holds the mean row of each block of ROUTE_BLOCK slots and each slot's key: a process that has
not copied the index yet reads the blocks whose means lie nearest a query by range and ranks
their rows itself (``read/routed.py``), while the copy arrives.

The usearch file layout read here (usearch 2.x ``index_dense_gt::save_to_stream``): the rows
(a count and a row size, then the rows back to back), a 64-byte header, then the graph (a
40-byte header, every node's level, then every node: its key first).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from lakevec.lake.npz import load_npz

_MAGIC = b"usearch"
_GRAPH_HEAD = 40  # size, connectivity, connectivity_base, max_level, entry_slot: 5 x u64
_KEY_U64, _SLOT_U32 = 14, 15  # usearch's scalar kinds of the key and the compressed slot
#: slots per unit of a ranged read (64 x 384 int8 rows: 24 KB); adjacent units are read as one
ROUTE_BLOCK = 64


@dataclass(frozen=True)
class Route:
    """Blocks of ROUTE_BLOCK slots of one index file: each block's mean row, each slot's key."""

    means: np.ndarray  # (blocks, dim): the mean of each block's rows, in the index's own values
    keys: np.ndarray  # (slots,) each slot's key (uint32 where every key fits)
    offset: int  # byte offset of slot 0's row in the index file
    row_bytes: int  # bytes of one row there
    block: int = ROUTE_BLOCK  # slots per block

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        layout = np.array([self.offset, self.row_bytes, self.block], dtype=np.int64)
        np.savez(out, means=self.means, keys=self.keys, layout=layout)
        return out.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> Route:
        f = load_npz(data)
        offset, row_bytes, block = (int(v) for v in f["layout"])
        return Route(f["means"], f["keys"], offset, row_bytes, block)


@dataclass(frozen=True)
class Layout:
    """Where a saved index keeps its rows, and each slot's key."""

    offset: int
    rows: int
    row_bytes: int
    keys: np.ndarray  # uint64, slot order


def index_layout(data: bytes | memoryview) -> Layout:
    """Parse a usearch file saved by this process's usearch; ValueError if it is laid out
    otherwise (another usearch version, 64-bit row counts, 40-bit slots)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    rows, row_bytes = (int(v) for v in buf[:8].view(np.uint32))
    head = 8 + rows * row_bytes
    if bytes(buf[head : head + 7]) != _MAGIC:
        raise ValueError("not a usearch file with 32-bit row counts")
    key_kind, slot_kind = int(buf[head + 15]), int(buf[head + 16])
    if (key_kind, slot_kind) != (_KEY_U64, _SLOT_U32):
        raise ValueError(f"usearch key/slot kinds {key_kind}/{slot_kind}")
    at = head + 64
    size, connectivity, base, _, _ = (int(v) for v in buf[at : at + _GRAPH_HEAD].view(np.uint64))
    if size != rows:
        raise ValueError("graph and rows disagree")
    at += _GRAPH_HEAD
    levels = buf[at : at + 2 * size].view(np.int16).astype(np.int64)
    at += 2 * size
    # a node: key (8) and level (2), its base layer's count and slots, then each upper layer's
    node_bytes = 10 + (4 + 4 * base) + levels * (4 + 4 * connectivity)
    starts = at + np.concatenate(([0], np.cumsum(node_bytes)[:-1])) if size else np.zeros(0, np.int64)
    if size and starts[-1] + node_bytes[-1] != len(buf):
        raise ValueError("graph size disagrees with the file")
    keys = buf[starts[:, None] + np.arange(8)].reshape(-1).view(np.uint64) if size else np.zeros(0, np.uint64)
    return Layout(8, rows, row_bytes, keys)


def route_path(index_path: str) -> str:
    """The route file of an index file (beside it)."""
    return index_path.rsplit(".", 1)[0] + ".route.npz"

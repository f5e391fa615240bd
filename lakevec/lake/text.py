"""Full-text postings of one fragment's documents, for BM25.

Terms are the lowercased runs of two or more word characters (bm25s's and scikit-learn's
default token pattern), without stopwords or stemming. A fragment's postings
hold its distinct terms, each term's rows and counts, and each row's length in terms: only
counts, no collection statistics, so fragments compose. BM25's document frequencies and
average length are summed over a snapshot's live rows at query time (:mod:`lakevec.read.bm25`)
and a delete or a new fragment never rewrites a postings file.

Tokenizing and counting run in Polars, not per document in Python.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from lakevec.lake.npz import load_npz

if TYPE_CHECKING:  # imported where used: a process that only queries vectors never needs it
    import polars as pl

# bm25s's and scikit-learn's default token pattern; Rust's regex engine (Polars') is Unicode-aware
_TERM = r"\w\w+"
_QUERY_TERM = re.compile(_TERM)


def tokens(texts: pa.Array | pa.ChunkedArray) -> pl.DataFrame:
    """``row`` and ``term`` of every term of ``texts``, in row order (null texts have none)."""
    import polars as pl

    series = pl.Series(texts) if len(texts) else pl.Series([], dtype=pl.String)
    terms = series.cast(pl.String).str.to_lowercase().str.extract_all(_TERM)
    frame = pl.DataFrame({"term": terms}).with_row_index("row")
    return frame.explode("term").drop_nulls("term")


def query_terms(text: str) -> list[str]:
    """The distinct terms of a query, in their first order (Python's regex for one short text:
    Polars compiles its pattern per call, 2 ms)."""
    return list(dict.fromkeys(_QUERY_TERM.findall(text.lower())))


def term_hashes(terms: list[str] | pl.Series) -> np.ndarray:
    """64-bit hashes of terms, stable within a process (never stored)."""
    import polars as pl

    return pl.Series(terms, dtype=pl.String).hash(seed=0).to_numpy()


@dataclass(frozen=True)
class Postings:
    terms: pa.Array  # distinct terms (string), in no particular order: found by hash
    offsets: np.ndarray  # int64, len(terms) + 1: term t's postings are [offsets[t], offsets[t+1])
    rows: np.ndarray  # int32 row of each posting, ascending within a term
    counts: np.ndarray  # int32 occurrences of the term in that row
    lengths: np.ndarray  # int32 terms per row (0 for a row without a document)

    @staticmethod
    def build(texts: pa.Array | pa.ChunkedArray) -> Postings:
        import polars as pl

        n = len(texts)
        frame = tokens(texts)
        # per term, its distinct rows (ascending: the frame is in row order) and their counts
        per_term = frame.group_by("term").agg(
            pl.col("row").unique(maintain_order=True).alias("rows"),
            pl.col("row").unique_counts().alias("counts"),
        )
        sizes = per_term["rows"].list.len().to_numpy()
        rows = frame["row"].to_numpy()
        return Postings(
            per_term["term"].to_arrow().cast(pa.string()),
            np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            per_term["rows"].explode().to_numpy().astype(np.int32),
            per_term["counts"].explode().to_numpy().astype(np.int32),
            np.bincount(rows, minlength=n).astype(np.int32),
        )

    @cached_property
    def _hashes(self) -> tuple[np.ndarray, np.ndarray]:
        """The terms' hashes sorted, and the term of each: built once per process (Polars'
        hash is stable within one), so a lookup is a binary search, not a hash table of
        every term per query (pyarrow's index_in: 2 ms for 20k terms)."""
        import polars as pl

        hashes = term_hashes(pl.Series(self.terms)) if len(self.terms) else np.zeros(0, np.uint64)
        order = np.argsort(hashes, kind="stable")
        return hashes[order], order

    def find(self, terms: list[str], wanted: np.ndarray | None = None) -> np.ndarray:
        """Index of each term in this fragment's terms, -1 where it has none (``wanted``: the
        terms' :func:`term_hashes`, computed once for every fragment)."""
        hashes, order = self._hashes
        out = np.full(len(terms), -1, np.int64)
        if not len(hashes) or not terms:
            return out
        if wanted is None:
            wanted = term_hashes(terms)
        at = np.minimum(np.searchsorted(hashes, wanted), len(hashes) - 1)
        for i in np.flatnonzero(hashes[at] == wanted):  # a few query terms: check the text
            j = at[i]
            while j < len(hashes) and hashes[j] == wanted[i]:
                if self.terms[int(order[j])].as_py() == terms[i]:
                    out[i] = order[j]
                    break
                j += 1
        return out

    def to_bytes(self) -> bytes:
        """An ``.npz`` of plain arrays: the terms as UTF-8 bytes and their offsets."""
        terms = self.terms.cast(pa.large_string())
        bounds = np.frombuffer(terms.buffers()[1], np.int64)[terms.offset : terms.offset + len(terms) + 1]
        data = np.frombuffer(terms.buffers()[2] or b"", np.uint8)[bounds[0] : bounds[-1]]
        out = io.BytesIO()
        np.savez(
            out,
            term_offsets=bounds - bounds[0],
            term_bytes=data,
            offsets=self.offsets,
            rows=self.rows,
            counts=self.counts,
            lengths=self.lengths,
        )
        return out.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> Postings:
        z = load_npz(data)
        term_offsets, term_bytes = z["term_offsets"], z["term_bytes"]
        terms = pa.LargeStringArray.from_buffers(
            len(term_offsets) - 1,
            pa.py_buffer(term_offsets.tobytes()),
            pa.py_buffer(term_bytes.tobytes()),
        ).cast(pa.string())
        return Postings(terms, z["offsets"], z["rows"], z["counts"], z["lengths"])

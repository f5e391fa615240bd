"""BM25 over a snapshot's documents: exact scores from every fragment's postings.

The statistics are the snapshot's, over its live rows: ``N`` live rows with a document, a
term's document frequency among them, their average length. So a score is the one a BM25
index built over exactly the live documents gives (bm25s's ``lucene`` variant: idf
``ln(1 + (N - df + 0.5) / (df + 0.5))``, term weight ``tf / (tf + k1 (1 - b + b dl / avgdl))``),
whatever the fragments, deletes and compactions behind it.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from lakevec.lake.snapshot import Snapshot
from lakevec.lake.text import Postings, query_terms, term_hashes

K1, B = 1.5, 0.75
_TOTALS: weakref.WeakKeyDictionary[Snapshot, tuple[int, int]] = weakref.WeakKeyDictionary()
_TOTALS_LOCK = threading.Lock()


def _length_totals(snap: Snapshot) -> tuple[int, int]:
    """(live rows with a document, their total length): once per snapshot."""
    with _TOTALS_LOCK:
        cached = _TOTALS.get(snap)
    if cached is None:
        docs = total = 0
        for i, frag in enumerate(snap.fragments):
            lengths = frag.postings.lengths[snap.live[snap.offsets[i] : snap.offsets[i + 1]]]
            docs += int(np.count_nonzero(lengths))
            total += int(lengths.sum())
        cached = (docs, total)
        with _TOTALS_LOCK:
            _TOTALS[snap] = cached
    return cached


def _matches(postings: Postings, found: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, ...]:
    """(query term, row, count) of the live postings of the found terms, in one gather."""
    terms = np.flatnonzero(found >= 0)
    starts, ends = postings.offsets[found[terms]], postings.offsets[found[terms] + 1]
    sizes = ends - starts
    at = np.repeat(starts - np.cumsum(sizes) + sizes, sizes) + np.arange(int(sizes.sum()))
    rows, counts, term = postings.rows[at], postings.counts[at], np.repeat(terms, sizes)
    keep = alive[rows]
    return term[keep], rows[keep], counts[keep]


def bm25_scores(
    snap: Snapshot, text: str, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the rows that hold a term of ``text`` (and pass ``allowed``, a mask over
    positions), with their BM25 scores, in position order."""
    terms = query_terms(text)
    empty = np.zeros(0, np.int64), np.zeros(0, np.float64)
    if not terms or not snap.fragments:
        return empty
    docs, total_length = _length_totals(snap)
    if docs == 0:
        return empty
    wanted = term_hashes(terms)
    # pass 1: each fragment's live postings of the query's terms, and their document counts
    df = np.zeros(len(terms), np.int64)
    hits = []
    for i, frag in enumerate(snap.fragments):
        found = frag.postings.find(terms, wanted)
        if not (found >= 0).any():
            continue
        term, rows, counts = _matches(frag.postings, found, snap.live[snap.offsets[i] : snap.offsets[i + 1]])
        df += np.bincount(term, minlength=len(terms))
        hits.append((i, term, rows, counts))
    idf = np.log1p((docs - df + 0.5) / (df + 0.5))
    average = total_length / docs
    # pass 2: each matching row's score
    positions, scores = [], []
    for i, term, rows, counts in hits:
        lengths = snap.fragments[i].postings.lengths
        tf = counts.astype(np.float64)
        contribution = idf[term] * tf / (tf + K1 * (1 - B + B * lengths[rows] / average))
        if len(rows) * 16 > len(lengths):  # dense: one pass over the fragment's rows
            total = np.bincount(rows, weights=contribution, minlength=len(lengths))
            unique = np.flatnonzero(total)
            score = total[unique]
        else:
            unique, inverse = np.unique(rows, return_inverse=True)
            score = np.bincount(inverse, weights=contribution, minlength=len(unique))
        positions.append(snap.offsets[i] + unique.astype(np.int64))
        scores.append(score)
    if not positions:
        return empty
    positions_all, scores_all = np.concatenate(positions), np.concatenate(scores)
    if allowed is not None:
        keep = allowed[positions_all]
        positions_all, scores_all = positions_all[keep], scores_all[keep]
    return positions_all, scores_all


def bm25_top(
    snap: Snapshot, text: str, limit: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``limit`` best rows for ``text``, best first, scored ``-BM25`` (lower is better, as
    every Search API score)."""
    positions, scores = bm25_scores(snap, text, allowed)
    if len(positions) > limit:
        best = np.argpartition(-scores, limit - 1)[:limit]
        positions, scores = positions[best], scores[best]
    order = np.lexsort((positions, -scores))
    return positions[order], (-scores[order]).astype(np.float32)

"""BM25 over a snapshot's documents: exact scores from every fragment's postings.

The statistics are the snapshot's, over its live rows: ``N`` live rows with a document, a
term's document frequency among them, their average length. So a score is the one a BM25
index built over exactly the live documents gives (bm25s's ``lucene`` variant: idf
``ln(1 + (N - df + 0.5) / (df + 0.5))``, term weight ``tf / (tf + k1 (1 - b + b dl / avgdl))``),
whatever the fragments, deletes and compactions behind it.
"""

from __future__ import annotations

import numpy as np

from lakevec.lake.snapshot import Snapshot
from lakevec.lake.text import query_terms

K1, B = 1.5, 0.75


def bm25_scores(
    snap: Snapshot, text: str, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the rows that hold a term of ``text`` (and pass ``allowed``, a mask over
    positions), with their BM25 scores, in position order."""
    terms = query_terms(text)
    empty = np.zeros(0, np.int64), np.zeros(0, np.float64)
    if not terms or not snap.fragments:
        return empty
    live = snap.live
    # pass 1: collection statistics over live rows, and each fragment's matching postings
    df = np.zeros(len(terms), np.int64)
    docs, total_length = 0, 0
    hits = []
    for i, frag in enumerate(snap.fragments):
        postings = frag.postings
        alive = live[snap.offsets[i] : snap.offsets[i + 1]]
        lengths = postings.lengths
        docs += int(np.count_nonzero(lengths[alive]))
        total_length += int(lengths[alive].sum())
        found = postings.find(terms)
        parts = []
        for t in np.flatnonzero(found >= 0):
            lo, hi = postings.offsets[found[t]], postings.offsets[found[t] + 1]
            rows, counts = postings.rows[lo:hi], postings.counts[lo:hi]
            keep = alive[rows]
            rows, counts = rows[keep], counts[keep]
            df[t] += len(rows)
            parts.append((t, rows, counts))
        hits.append(parts)
    if docs == 0:
        return empty
    idf = np.log1p((docs - df + 0.5) / (df + 0.5))
    average = total_length / docs
    # pass 2: each matching row's score
    positions, scores = [], []
    for i, parts in enumerate(hits):
        if not parts:
            continue
        lengths = snap.fragments[i].postings.lengths
        rows = np.concatenate([rows for _, rows, _ in parts])
        counts = np.concatenate([counts for _, _, counts in parts]).astype(np.float64)
        weights = np.concatenate([np.full(len(r), idf[t]) for t, r, _ in parts])
        norm = K1 * (1 - B + B * lengths[rows] / average)
        unique, inverse = np.unique(rows, return_inverse=True)
        score = np.bincount(inverse, weights=weights * counts / (counts + norm), minlength=len(unique))
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

"""How vectors enter an int8 index: the index's scale, and the vectors scaled and rounded to it.

Vectors (rows to add, and the queries searching them) are mapped into [-1, 1] and entered as
int8 ``round(127 x)``, rounded here. usearch's own float-to-int8 cast divides each vector by its
length first, which turns l2 into an angle: at norms spread over 1-3x that cost l2 queries
recall 0.98 -> 0.83 (100k x 384), and it leaves a unit vector's values in a few of the 255
levels. The scale is chosen once per index, from its first rows, and kept in the manifest
(``index_scale``); ``index_codec`` "i8" marks the indexes entered this way (those without it
were entered as floats through usearch's cast, and their queries still are).

An index may also hold its rows *projected* (codec "i8p"): centred (cosine rows normalized
first) and multiplied by the leading principal axes of a sample of the collection's rows, then
rounded as above, compared by l2. Real 384-d text embeddings keep 97 % of their variance in
256 axes: the index's rows take two thirds of the bytes and its graph builds faster, at the
same recall@10 once candidates are re-ranked with the stored float32 rows
(50k MiniLM rows: 0.991 at 384 axes, 0.992 at 256; ``python -m benchmarks codes --dataset
text-50000 --codes i8,i8p``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from lakevec.lake.npz import load_npz

INT8 = "i8"  # index_codec: int8 values rounded here
PROJECTED = "i8p"  # index_codec: rows projected (:class:`Projection`), then as INT8
#: a projection keeps the fewest axes, a multiple of AXES_STEP from half the dimension up to
#: three quarters of it, that hold CHOOSE_VARIANCE of a sample's variance (none where even three
#: quarters hold less); an index keeps using it while it holds REUSE_VARIANCE of its new rows'
AXES_STEP = 32
CHOOSE_VARIANCE = 0.96
REUSE_VARIANCE = 0.95
SAMPLE_ROWS = 16_384  # rows whose covariance chooses the axes (0.1 s at 384-d)
CLIP_QUANTILE = 0.9999  # |values| above this quantile of a new index's first rows saturate


def index_scale(space: str, vectors: np.ndarray) -> float:
    """The factor that maps a new index's vectors into int8's [-1, 1] (entered as round(127 x)).
    Cosine scales each vector on its own (a direction does not change), so it needs none: 1.0."""
    if space == "cosine" or not len(vectors):
        return 1.0
    sample = np.abs(vectors[:: max(1, len(vectors) // 4096)])
    top = float(np.quantile(sample, CLIP_QUANTILE))
    return 1.0 / top if top > 0 else 1.0


@dataclass(frozen=True)
class Projection:
    """Principal axes that an index's rows (and its queries) are projected on: ``mean`` (dim,)
    and ``axes`` (dim, d), float32; ``unit``: rows are normalized first (a cosine space)."""

    mean: np.ndarray
    axes: np.ndarray
    unit: bool

    @property
    def dims(self) -> int:
        return int(self.axes.shape[1])

    def centred(self, vectors: np.ndarray) -> np.ndarray:
        out = np.asarray(vectors, dtype=np.float32)
        return (_unit(out) if self.unit else out) - self.mean

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """``vectors`` on the axes (float32): l2 distances between them approximate the
        original ones (cosine: those between the normalized rows, which rank as cosine does)."""
        return self.centred(vectors) @ self.axes

    def retained(self, vectors: np.ndarray) -> float:
        """The share of ``vectors``' variance (about this projection's mean) the axes keep."""
        centred = self.centred(vectors)
        total = float(np.einsum("ij,ij->", centred, centred))
        kept = centred @ self.axes
        return float(np.einsum("ij,ij->", kept, kept)) / total if total > 0 else 1.0

    def keeps(self, vectors: np.ndarray) -> bool:
        """Whether rows like ``vectors`` may join an index of these axes."""
        return self.retained(vectors) >= REUSE_VARIANCE

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        np.savez(out, mean=self.mean, axes=self.axes, unit=np.array(self.unit))
        return out.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> Projection:
        doc = load_npz(data)
        mean = doc["mean"].astype(np.float32)
        axes = np.ascontiguousarray(doc["axes"], dtype=np.float32)
        if mean.ndim != 1 or axes.ndim != 2 or axes.shape[0] != len(mean):
            raise ValueError(f"projection of shapes {mean.shape} and {axes.shape}")
        return Projection(mean, axes, bool(doc["unit"]))


def choose_projection(space: str, vectors: np.ndarray) -> Projection | None:
    """Axes for a new index from a sample of its rows, or None where projecting would lose
    too much (few rows, inner product, or variance spread over most axes)."""
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    low, high = -(-dim // 2 // AXES_STEP) * AXES_STEP, dim * 3 // 4
    if space == "ip" or low > high or len(vectors) < 2 * high:
        return None
    sample = np.asarray(vectors[:: max(1, len(vectors) // SAMPLE_ROWS)], dtype=np.float32)
    if space == "cosine":
        sample = _unit(sample)
    mean = sample.mean(axis=0)
    centred = sample - mean
    values, vectors_ = np.linalg.eigh(centred.T.astype(np.float64) @ centred)
    values, vectors_ = values[::-1].clip(min=0), vectors_[:, ::-1]
    total = float(values.sum())
    if total <= 0:
        return None
    kept = np.cumsum(values) / total
    for dims in range(low, high + 1, AXES_STEP):
        if kept[dims - 1] >= CHOOSE_VARIANCE:
            axes = np.ascontiguousarray(vectors_[:, :dims], dtype=np.float32)
            return Projection(mean.astype(np.float32), axes, space == "cosine")
    return None


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), np.float32(1e-30))


def quantized(
    space: str,
    vectors: np.ndarray,
    scale: float | None,
    codec: str | None,
    projection: Projection | None = None,
) -> np.ndarray:
    """Vectors (rows to add, or queries) as an int8 index of ``scale`` and ``codec`` takes them;
    scale ``None``: an unquantized (float16) index, which takes them as they are. Uniform
    scaling keeps the order of l2 distances; cosine rows are scaled to a largest |value| of 1.
    A projected index (``projection``) takes them on its axes, scaled as l2 rows."""
    if scale is None:
        return vectors
    if codec == PROJECTED:
        if projection is None:
            raise ValueError("a projected index needs its projection")
        vectors, space, codec = projection.apply(vectors), "l2", INT8
    if space == "cosine":
        top = np.abs(vectors).max(axis=-1, keepdims=True)
        unit = np.ascontiguousarray(vectors / np.maximum(top, 1e-30), dtype=np.float32)
    else:
        unit = np.clip(vectors * np.float32(scale), -1.0, 1.0).astype(np.float32, copy=False)
    if codec != INT8:
        return unit  # an index entered through usearch's cast
    return np.rint(unit * np.float32(127)).astype(np.int8)

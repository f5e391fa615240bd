"""How vectors enter an int8 index: the index's scale, and the vectors scaled and rounded to it.

Vectors (rows to add, and the queries searching them) are mapped into [-1, 1] and entered as
int8 ``round(127 x)``, rounded here. usearch's own float-to-int8 cast divides each vector by its
length first, which turns l2 into an angle: at norms spread over 1-3x that cost l2 queries
recall 0.98 -> 0.83 (100k x 384), and it leaves a unit vector's values in a few of the 255
levels. The scale is chosen once per index, from its first rows, and kept in the manifest
(``index_scale``); ``index_codec`` "i8" marks the indexes entered this way (those without it
were entered as floats through usearch's cast, and their queries still are).
"""

from __future__ import annotations

import numpy as np

INT8 = "i8"  # index_codec: int8 values rounded here
CLIP_QUANTILE = 0.9999  # |values| above this quantile of a new index's first rows saturate


def index_scale(space: str, vectors: np.ndarray) -> float:
    """The factor that maps a new index's vectors into int8's [-1, 1] (entered as round(127 x)).
    Cosine scales each vector on its own (a direction does not change), so it needs none: 1.0."""
    if space == "cosine" or not len(vectors):
        return 1.0
    sample = np.abs(vectors[:: max(1, len(vectors) // 4096)])
    top = float(np.quantile(sample, CLIP_QUANTILE))
    return 1.0 / top if top > 0 else 1.0


def quantized(space: str, vectors: np.ndarray, scale: float | None, codec: str | None) -> np.ndarray:
    """Vectors (rows to add, or queries) as an int8 index of ``scale`` and ``codec`` takes them;
    scale ``None``: an unquantized (float16) index, which takes them as they are. Uniform
    scaling keeps the order of l2 distances; cosine rows are scaled to a largest |value| of 1."""
    if scale is None:
        return vectors
    if space == "cosine":
        top = np.abs(vectors).max(axis=-1, keepdims=True)
        unit = np.ascontiguousarray(vectors / np.maximum(top, 1e-30), dtype=np.float32)
    else:
        unit = np.clip(vectors * np.float32(scale), -1.0, 1.0).astype(np.float32, copy=False)
    if codec != INT8:
        return unit  # an index entered through usearch's cast
    return np.rint(unit * np.float32(127)).astype(np.int8)

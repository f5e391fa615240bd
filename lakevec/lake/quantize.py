"""How vectors enter an int8 index: the index's scale, and the vectors scaled to it.

usearch stores a float as ``round(127 * x)`` clipped to [-127, 127], so the vectors of an int8
index (and the queries searching it) are first mapped into [-1, 1]. The scale is chosen once per
index, from its first rows, and kept in the manifest (``index_scale``).
"""

from __future__ import annotations

import numpy as np

CLIP_QUANTILE = 0.9999  # |values| above this quantile of a new index's first rows saturate


def index_scale(space: str, vectors: np.ndarray) -> float:
    """The factor that maps a new index's vectors into int8's [-1, 1] (usearch stores round(127 x)).
    Cosine scales each vector on its own (a direction does not change), so it needs none: 1.0."""
    if space == "cosine" or not len(vectors):
        return 1.0
    sample = np.abs(vectors[:: max(1, len(vectors) // 4096)])
    top = float(np.quantile(sample, CLIP_QUANTILE))
    return 1.0 / top if top > 0 else 1.0


def quantized(space: str, vectors: np.ndarray, scale: float | None) -> np.ndarray:
    """Vectors (rows to add, or queries) as an int8 index of ``scale`` takes them; ``None``:
    an unquantized (float16) index, which takes them as they are. Uniform scaling keeps the
    order of l2 and ip distances; cosine rows are scaled to a largest |value| of 1."""
    if scale is None:
        return vectors
    if space == "cosine":
        top = np.abs(vectors).max(axis=-1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(top, 1e-30), dtype=np.float32)
    return np.clip(vectors * np.float32(scale), -1.0, 1.0).astype(np.float32, copy=False)

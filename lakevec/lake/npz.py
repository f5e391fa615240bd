"""NumPy ``.npz`` files that lakevec writes beside its indexes (routes, projections, postings)."""

from __future__ import annotations

import io
import zipfile

import numpy as np


def load_npz(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file's bytes (never pickles). A file that is not one, or is cut
    short, raises ValueError: numpy raises zipfile's and EOF errors for those, which its
    readers would not take for a corrupt file."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            return {name: f[name] for name in f.files}
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"not an .npz file: {exc}") from None

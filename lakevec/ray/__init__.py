"""lakevec on a Ray cluster (``pip install "lakevec[ray]"``): past one machine's cores.

- :class:`CollectionSink` / :func:`write`: a Ray Data sink whose tasks write fragments side by
  side and whose driver commits them once (all rows or none);
- :func:`embed`: a ``map_batches`` stage of embedding actors (the default model, or any
  Chroma-protocol embedding function; ``num_gpus`` passed through);
- :func:`build_indexes`: index tiers built as Ray tasks, committed together;
- :func:`read`: a collection version as a ``ray.data.Dataset`` of its live rows;
- :func:`query_batch`: a batch query fanned out over a collection's indexes.

The collection's root must be storage every node reaches (an object store, or a shared
mount). Ray itself writes outside the project: ``ray.init()`` starts a local cluster whose
logs and spill files go to ``/tmp/ray``, and Ray 2.5x saves an authentication token to
``~/.ray/auth_token`` (``RAY_AUTH_MODE=disabled`` opts out).
"""

from __future__ import annotations

from lakevec.extras import require

require("ray", "lakevec.ray")

from lakevec.ray.embed import Embedder, embed  # noqa: E402
from lakevec.ray.index import build_indexes  # noqa: E402
from lakevec.ray.query import query_batch  # noqa: E402
from lakevec.ray.read import read  # noqa: E402
from lakevec.ray.sink import CollectionSink, write  # noqa: E402
from lakevec.ray.target import Target  # noqa: E402

__all__ = ["CollectionSink", "Embedder", "Target", "build_indexes", "embed", "query_batch", "read", "write"]

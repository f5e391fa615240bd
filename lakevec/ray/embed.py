"""Embedding as a Ray Data stage: each actor loads the model once and embeds batch after batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from lakevec.errors import InvalidArgumentError


class Embedder:
    """A stateful ``map_batches`` callable: ``function`` (any Chroma-protocol embedding
    function; the default model when None) built once per actor."""

    def __init__(self, function: Any, column: str, output: str) -> None:
        if function is None:
            from lakevec.utils.embedding_functions import DefaultEmbeddingFunction

            function = DefaultEmbeddingFunction()
        self.function, self.column, self.output = function, column, output

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.column not in batch.column_names:
            raise InvalidArgumentError(f"the dataset has no column {self.column!r} to embed")
        texts = batch.column(self.column).to_pylist()
        if any(t is None for t in texts):
            raise InvalidArgumentError(
                f"column {self.column!r} has missing values: every row needs a text to embed"
            )
        vectors = np.asarray(self.function(texts), dtype=np.float32)
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        column = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
        if self.output in batch.column_names:
            return batch.set_column(batch.column_names.index(self.output), self.output, column)
        return batch.append_column(self.output, column)


def embed(
    ds: Any,
    *,
    column: str = "document",
    output: str = "embedding",
    function: Any = None,
    batch_size: int = 256,
    concurrency: int = 1,
    num_gpus: float | None = None,
    num_cpus: float | None = None,
) -> Any:
    """``ds`` with an ``output`` column of ``function``'s vectors of ``column``, computed by
    ``concurrency`` actors (``num_gpus`` each where the cluster has GPUs)."""
    options: dict[str, Any] = {}
    if num_gpus:
        options["num_gpus"] = num_gpus
    if num_cpus:
        options["num_cpus"] = num_cpus
    return ds.map_batches(
        Embedder,
        fn_constructor_kwargs={"function": function, "column": column, "output": output},
        batch_format="pyarrow",
        batch_size=batch_size,
        concurrency=concurrency,
        **options,
    )

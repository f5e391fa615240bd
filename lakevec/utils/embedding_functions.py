"""Embedding functions with chromadb 1.x's protocol.

The offline default (all-MiniLM-L6-v2 through onnxruntime) is tracked in its own issue; until
it lands, :class:`DefaultEmbeddingFunction` says so clearly instead of downloading anything.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

Documents = list[str]


@runtime_checkable
class EmbeddingFunction(Protocol):
    def __call__(self, input: Documents) -> Any: ...


class DefaultEmbeddingFunction:
    """Placeholder for the offline all-MiniLM-L6-v2 default."""

    def __call__(self, input: Documents) -> Any:
        raise ValueError(
            "lakevec's default embedding function is not available in this version; pass "
            "embeddings=... or create the collection with embedding_function=<your function>"
        )

    @staticmethod
    def name() -> str:
        return "default"

    def get_config(self) -> dict[str, Any]:
        return {}

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine", "l2", "ip"]


ONNXMiniLM_L6_V2 = DefaultEmbeddingFunction

"""Defaults of chromadb 1.x's embedding-function protocol, shared by our functions."""

from __future__ import annotations

from typing import Any


class EmbeddingFunctionBase:
    """Subclasses define ``__call__``, ``name()``, ``get_config()`` and ``build_from_config()``."""

    def __call__(self, input: list[str]) -> Any:  # pragma: no cover - always overridden
        raise NotImplementedError

    def embed_query(self, input: list[str]) -> Any:
        return self(input)

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine", "l2", "ip"]

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        return None

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        return None

    def is_legacy(self) -> bool:
        return False

"""Embedding functions with chromadb 1.x's protocol and names.

``DefaultEmbeddingFunction`` is Chroma's default (all-MiniLM-L6-v2) run offline. A collection
records its function's name and config; reopening it rebuilds a registered function from that
record, and a function this process does not know has to be passed again.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lakevec.utils.embedding_functions.base import EmbeddingFunctionBase
from lakevec.utils.embedding_functions.onnx_mini_lm_l6_v2 import ModelNotFoundError, ONNXMiniLM_L6_V2
from lakevec.utils.embedding_functions.openai_embedding_function import OpenAIEmbeddingFunction
from lakevec.utils.embedding_functions.sentence_transformer_embedding_function import (
    SentenceTransformerEmbeddingFunction,
)

Documents = list[str]
Embeddings = list[np.ndarray]


@runtime_checkable
class EmbeddingFunction(Protocol):
    """What ``embedding_function=`` accepts; only ``__call__`` is required."""

    def __call__(self, input: Documents) -> Embeddings: ...


known_embedding_functions: dict[str, Any] = {}


def register_embedding_function(cls: Any) -> Any:
    """Make a class rebuildable from a stored ``{"name", "config"}`` record (a decorator)."""
    known_embedding_functions[cls.name()] = cls
    return cls


class DefaultEmbeddingFunction(EmbeddingFunctionBase):
    """Chroma's default: all-MiniLM-L6-v2 through :class:`ONNXMiniLM_L6_V2` (whose loaded model
    is shared by every instance in the process)."""

    def __init__(self) -> None:
        self._runner = ONNXMiniLM_L6_V2()

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embed(input))

    def embed(self, input: Documents) -> np.ndarray:
        return self._runner.embed(input)

    @staticmethod
    def name() -> str:
        return "default"

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> DefaultEmbeddingFunction:
        return DefaultEmbeddingFunction()

    def max_tokens(self) -> int:
        return 256


for _cls in (
    DefaultEmbeddingFunction,
    ONNXMiniLM_L6_V2,
    OpenAIEmbeddingFunction,
    SentenceTransformerEmbeddingFunction,
):
    register_embedding_function(_cls)


def function_name(ef: Any) -> str | None:
    """``ef.name()`` for protocol objects, ``None`` for plain callables."""
    name = getattr(ef, "name", None)
    if not callable(name):
        return None
    try:
        value = name()
    except TypeError:  # an instance method named ``name`` or one that wants arguments
        return None
    return value if isinstance(value, str) else None


def describe_embedding_function(ef: Any) -> dict[str, Any] | None:
    """The record stored with a collection: Chroma's ``{"name", "type": "known", "config"}``.

    A callable without ``name()``/``get_config()`` is stored as ``{"type": "legacy", "name"}``
    (the name only says what to pass again).
    """
    if ef is None:
        return None
    name = function_name(ef)
    config = None
    if name is not None and callable(getattr(ef, "get_config", None)):
        try:
            config = ef.get_config()
            json.dumps(config)
        except Exception:
            config = None
    if name is None or not isinstance(config, dict):
        label = name or getattr(ef, "__name__", None) or type(ef).__name__
        return {"type": "legacy", "name": label}
    if name not in known_embedding_functions and callable(getattr(type(ef), "build_from_config", None)):
        register_embedding_function(type(ef))  # rebuildable in this process, as Chroma does
    return {"name": name, "type": "known", "config": config}


class MissingEmbeddingFunction:
    """Stands in for a recorded function this process cannot rebuild; says what to do."""

    def __init__(self, collection: str, record: dict[str, Any], reason: str = "") -> None:
        self.collection = collection
        self.record = record
        self.reason = reason

    def __call__(self, input: Documents) -> Embeddings:
        from lakevec.errors import InvalidArgumentError

        detail = f" ({self.reason})" if self.reason else ""
        raise InvalidArgumentError(
            f"Collection {self.collection!r} was created with the embedding function "
            f"{self.record.get('name')!r}, which this process cannot rebuild{detail}. Pass it again: "
            f"client.get_collection({self.collection!r}, embedding_function=...), or pass embeddings."
        )

    embed_query = __call__

    def name(self) -> str:
        return str(self.record.get("name"))

    def get_config(self) -> dict[str, Any]:
        return dict(self.record.get("config") or {})


def resolve_embedding_function(
    collection: str, stored: dict[str, Any] | None, given: Any, default: Any
) -> Any:
    """The function a collection handle uses: the one given, else the one its record names.

    ``default`` is the client's "not passed" sentinel. Passing a function whose name differs
    from the stored one is an error, as in chromadb 1.x; Chroma's ``DefaultEmbeddingFunction``
    never conflicts and defers to the stored function.
    """
    from lakevec.errors import InvalidArgumentError

    given_name = function_name(given) if given is not None else None
    stored_name = stored.get("name") if stored else None
    if (
        stored is not None
        and stored.get("type") == "known"
        and given_name not in (None, "default")
        and stored_name != given_name
    ):
        raise InvalidArgumentError(
            "An embedding function already exists in the collection configuration, and a new one is "
            "provided. If this is intentional, please embed documents separately. Embedding function "
            f"conflict: new: {given_name} vs persisted: {stored_name}"
        )
    if given is not default and given is not None and given_name != "default":
        return given
    if given is None:
        return None
    if stored is None:
        return None if given is default else given
    if stored.get("type") != "known":
        return MissingEmbeddingFunction(collection, stored, "it is a plain callable")
    cls = known_embedding_functions.get(stored_name)
    if cls is None:
        return MissingEmbeddingFunction(collection, stored, "it is not registered in this process")
    try:
        return cls.build_from_config(stored.get("config") or {})
    except Exception as e:  # e.g. an API key variable that is not set here
        return MissingEmbeddingFunction(collection, stored, f"rebuilding it failed: {e}")


__all__ = [
    "DefaultEmbeddingFunction",
    "Documents",
    "EmbeddingFunction",
    "Embeddings",
    "MissingEmbeddingFunction",
    "ModelNotFoundError",
    "ONNXMiniLM_L6_V2",
    "OpenAIEmbeddingFunction",
    "SentenceTransformerEmbeddingFunction",
    "describe_embedding_function",
    "known_embedding_functions",
    "register_embedding_function",
    "resolve_embedding_function",
]

"""sentence-transformers models (optional extra ``lakevec[sentence-transformers]``), imported lazily."""

from __future__ import annotations

from typing import Any

import numpy as np

from lakevec.utils.embedding_functions.base import EmbeddingFunctionBase


class SentenceTransformerEmbeddingFunction(EmbeddingFunctionBase):
    _models: dict[tuple, Any] = {}

    def __init__(
        self,
        model_name: str = "all-MiniLM-L6-v2",
        device: str = "cpu",
        normalize_embeddings: bool = False,
        **kwargs: Any,
    ) -> None:
        self.model_name = model_name
        self.device = device
        self.normalize_embeddings = normalize_embeddings
        self.kwargs = kwargs

    def _model(self) -> Any:
        key = (self.model_name, self.device, tuple(sorted(self.kwargs.items())))
        if key not in self._models:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ValueError(
                    "The sentence_transformers python package is not installed. Please install it "
                    "with `pip install 'lakevec[sentence-transformers]'`"
                ) from None
            self._models[key] = SentenceTransformer(self.model_name, device=self.device, **self.kwargs)
        return self._models[key]

    def __call__(self, input: list[str]) -> list[np.ndarray]:
        vectors = self._model().encode(
            list(input), convert_to_numpy=True, normalize_embeddings=self.normalize_embeddings
        )
        return list(np.asarray(vectors, dtype=np.float32))

    @staticmethod
    def name() -> str:
        return "sentence_transformer"

    def get_config(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "device": self.device,
            "normalize_embeddings": self.normalize_embeddings,
            "kwargs": self.kwargs,
        }

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> SentenceTransformerEmbeddingFunction:
        return SentenceTransformerEmbeddingFunction(
            model_name=config.get("model_name", "all-MiniLM-L6-v2"),
            device=config.get("device", "cpu"),
            normalize_embeddings=config.get("normalize_embeddings", False),
            **(config.get("kwargs") or {}),
        )

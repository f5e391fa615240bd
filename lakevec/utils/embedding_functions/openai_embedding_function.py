"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint, with the standard library.

Same constructor and config as chromadb's ``OpenAIEmbeddingFunction``, without the ``openai``
package: one JSON POST per batch, retried with backoff on 429, 5xx and connection errors. The
key is read from an environment variable and never stored in the collection's config.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
import warnings
from typing import Any

import numpy as np

from lakevec.utils.embedding_functions.base import EmbeddingFunctionBase

DEFAULT_API_BASE = "https://api.openai.com/v1"


class EmbeddingRequestError(RuntimeError):
    """The embedding endpoint failed or answered with something that is not embeddings."""


class OpenAIEmbeddingFunction(EmbeddingFunctionBase):
    def __init__(
        self,
        api_key: str | None = None,
        model_name: str = "text-embedding-ada-002",
        organization_id: str | None = None,
        api_base: str | None = None,
        api_type: str | None = None,
        api_version: str | None = None,
        deployment_id: str | None = None,
        default_headers: dict[str, str] | None = None,
        dimensions: int | None = None,
        api_key_env_var: str = "CHROMA_OPENAI_API_KEY",
        batch_size: int = 512,
        max_retries: int = 3,
        timeout: float = 60.0,
    ) -> None:
        if api_key is not None:
            warnings.warn(
                "Direct api_key configuration will not be persisted. "
                "Please use environment variables via api_key_env_var for persistent storage.",
                DeprecationWarning,
                stacklevel=2,
            )
        self.api_key_env_var = (
            "OPENAI_API_KEY" if os.getenv("OPENAI_API_KEY") is not None else api_key_env_var
        )
        self._api_key = api_key or os.getenv(self.api_key_env_var)
        if not self._api_key:
            raise ValueError(f"The {self.api_key_env_var} environment variable is not set.")
        if api_type == "azure" and (api_version is None or deployment_id is None or api_base is None):
            raise ValueError("api_version, deployment_id and api_base must be specified for Azure OpenAI")
        self.model_name = model_name
        self.organization_id = organization_id
        self.api_base = api_base
        self.api_type = api_type
        self.api_version = api_version
        self.deployment_id = deployment_id
        self.default_headers = default_headers
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.timeout = timeout

    # -- Chroma's protocol ---------------------------------------------------------------
    @staticmethod
    def name() -> str:
        return "openai"

    def get_config(self) -> dict[str, Any]:
        return {
            "api_key_env_var": self.api_key_env_var,
            "model_name": self.model_name,
            "organization_id": self.organization_id,
            "api_base": self.api_base,
            "api_type": self.api_type,
            "api_version": self.api_version,
            "deployment_id": self.deployment_id,
            "default_headers": self.default_headers,
            "dimensions": self.dimensions,
        }

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> OpenAIEmbeddingFunction:
        return OpenAIEmbeddingFunction(**{k: v for k, v in config.items() if v is not None})

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        if "model_name" in new_config and new_config["model_name"] != old_config.get("model_name"):
            raise ValueError(
                "The model name cannot be changed after the embedding function has been initialized."
            )

    # -- requests ------------------------------------------------------------------------
    def _url(self) -> str:
        base = (self.api_base or DEFAULT_API_BASE).rstrip("/")
        if self.api_type == "azure":
            return f"{base}/openai/deployments/{self.deployment_id}/embeddings?api-version={self.api_version}"
        return f"{base}/embeddings"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **(self.default_headers or {})}
        if self.api_type == "azure":
            headers["api-key"] = self._api_key
        else:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if self.organization_id:
            headers["OpenAI-Organization"] = self.organization_id
        return headers

    def _post(self, texts: list[str]) -> np.ndarray:
        body: dict[str, Any] = {"model": self.model_name, "input": texts}
        if self.dimensions is not None and "text-embedding-3" in self.model_name:
            body["dimensions"] = self.dimensions
        data = json.dumps(body).encode()
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(8.0, 0.25 * 2**attempt) * (0.5 + random.random()))
            request = urllib.request.Request(self._url(), data=data, headers=self._headers(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = json.loads(response.read())
                break
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read()[:300].decode(errors='replace')}"
                if e.code != 429 and e.code < 500:
                    raise EmbeddingRequestError(f"{self._url()} refused the request ({last})") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = str(getattr(e, "reason", e))
        else:
            raise EmbeddingRequestError(
                f"{self._url()} failed after {self.max_retries + 1} attempts (last error: {last})"
            )
        try:
            rows = sorted(payload["data"], key=lambda d: d["index"])
            out = np.asarray([d["embedding"] for d in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as e:
            raise EmbeddingRequestError(f"{self._url()} answered without embeddings: {e!r}") from None
        if len(out) != len(texts):
            raise EmbeddingRequestError(
                f"{self._url()} returned {len(out)} embeddings for {len(texts)} inputs"
            )
        return out

    def __call__(self, input: list[str]) -> list[np.ndarray]:
        if not input:
            return []
        parts = [self._post(input[i : i + self.batch_size]) for i in range(0, len(input), self.batch_size)]
        return list(np.concatenate(parts))

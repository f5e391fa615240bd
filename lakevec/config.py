"""Client settings and collection configuration, in both forms Chroma accepts."""

from __future__ import annotations

import os
from typing import Any

from lakevec.errors import InvalidArgumentError
from lakevec.utils.embedding_functions import describe_embedding_function

HNSW_DEFAULTS: dict[str, Any] = {
    "space": "l2",
    "ef_construction": 100,
    "ef_search": 100,
    "max_neighbors": 16,
    "resize_factor": 1.2,
    "sync_threshold": 1000,
}
#: legacy ``metadata={"hnsw:...": ...}`` keys -> 1.x configuration keys
LEGACY_KEYS = {
    "hnsw:space": "space",
    "hnsw:construction_ef": "ef_construction",
    "hnsw:search_ef": "ef_search",
    "hnsw:M": "max_neighbors",
    "hnsw:resize_factor": "resize_factor",
    "hnsw:sync_threshold": "sync_threshold",
}
SPACES = ("l2", "cosine", "ip")
#: may change after creation (``modify``); the others shape the stored index
MUTABLE_HNSW = ("ef_search", "resize_factor", "sync_threshold")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class Settings:
    """Chroma's ``Settings``: the fields lakevec uses, and any other keyword kept and ignored."""

    def __init__(
        self,
        allow_reset: bool | None = None,
        is_persistent: bool = False,
        persist_directory: str = "./chroma",
        anonymized_telemetry: bool = False,
        **other: Any,
    ) -> None:
        self.allow_reset = _env_flag("ALLOW_RESET") if allow_reset is None else bool(allow_reset)
        self.is_persistent = is_persistent
        self.persist_directory = persist_directory
        self.anonymized_telemetry = anonymized_telemetry
        self.other = other

    def __repr__(self) -> str:
        return f"Settings(allow_reset={self.allow_reset}, is_persistent={self.is_persistent})"


def _check_hnsw(hnsw: dict[str, Any]) -> dict[str, Any]:
    for key, value in hnsw.items():
        if key not in HNSW_DEFAULTS:
            raise InvalidArgumentError(f"Unknown hnsw configuration key {key!r}")
        if key == "space":
            if value not in SPACES:
                raise InvalidArgumentError(f"Invalid space {value!r}; expected one of {SPACES}")
        elif key == "resize_factor":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InvalidArgumentError(f"hnsw {key} must be a positive number, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidArgumentError(f"hnsw {key} must be a positive int, got {value!r}")
    return hnsw


def collection_configuration(
    configuration: dict[str, Any] | None,
    metadata: dict[str, Any] | None,
    embedding_function: Any,
) -> dict[str, Any]:
    """The stored configuration: 1.x ``configuration["hnsw"]`` wins over legacy metadata keys."""
    hnsw = dict(HNSW_DEFAULTS)
    legacy = {LEGACY_KEYS[k]: v for k, v in (metadata or {}).items() if k in LEGACY_KEYS}
    hnsw.update(_check_hnsw(legacy))
    configuration = configuration or {}
    if not isinstance(configuration, dict):
        raise InvalidArgumentError(f"Expected configuration to be a dict, got {configuration!r}")
    given = configuration.get("hnsw") or {}
    if not isinstance(given, dict):
        raise InvalidArgumentError(f"Expected configuration['hnsw'] to be a dict, got {given!r}")
    hnsw.update(_check_hnsw(dict(given)))
    return {
        "hnsw": hnsw,
        "spann": None,
        "embedding_function": describe_embedding_function(embedding_function),
    }


def modified_configuration(current: dict[str, Any], configuration: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(configuration, dict):
        raise InvalidArgumentError(f"Expected configuration to be a dict, got {configuration!r}")
    hnsw = _check_hnsw(dict(configuration.get("hnsw") or {}))
    fixed = [k for k in hnsw if k not in MUTABLE_HNSW and hnsw[k] != current["hnsw"][k]]
    if fixed:
        raise InvalidArgumentError(
            f"hnsw {', '.join(fixed)} cannot be changed after the collection is created"
        )
    return {**current, "hnsw": {**current["hnsw"], **hnsw}}

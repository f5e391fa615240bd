"""Client settings and collection configuration, in both forms Chroma accepts."""

from __future__ import annotations

import copy
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


def only_defaults(hnsw: dict[str, Any]) -> bool:
    """Whether an hnsw block sets nothing but default values (or None): Chroma then treats it
    as no configuration."""
    return all(v is None or HNSW_DEFAULTS.get(k, object()) == v for k, v in hnsw.items())


def collection_configuration(
    configuration: dict[str, Any] | None,
    metadata: dict[str, Any] | None,
    embedding_function: Any,
    schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored configuration, with Chroma 1.5's precedence: ``configuration["hnsw"]``, then the
    legacy ``hnsw:*`` metadata keys (only while every configured value is a default; a metadata
    space beats a default one), then the vector index of ``schema``."""
    configuration = configuration or {}
    if not isinstance(configuration, dict):
        raise InvalidArgumentError(f"Expected configuration to be a dict, got {configuration!r}")
    given = configuration.get("hnsw") or {}
    if not isinstance(given, dict):
        raise InvalidArgumentError(f"Expected configuration['hnsw'] to be a dict, got {given!r}")
    given = _check_hnsw({k: v for k, v in given.items() if v is not None})
    legacy = _check_hnsw({LEGACY_KEYS[k]: v for k, v in (metadata or {}).items() if k in LEGACY_KEYS})
    configured = configuration.get("hnsw") is not None or configuration.get("spann") is not None
    # Chroma refuses a schema beside any hnsw/spann configuration, or beside legacy keys that
    # change a default
    if schema is not None and (configured or any(v != HNSW_DEFAULTS[k] for k, v in legacy.items())):
        raise InvalidArgumentError(
            "Failed to reconcile schema: Cannot set both collection config and schema simultaneously"
        )
    hnsw = {**HNSW_DEFAULTS, **given}
    spann = configuration.get("spann")
    spann_space = spann.get("space") if isinstance(spann, dict) else None
    if spann_space is not None and "space" not in given:  # HNSW serves: a SPANN block gives its space
        hnsw["space"] = spann_space
    elif only_defaults(given):
        hnsw.update({k: v for k, v in legacy.items() if k == "space" or k not in given})
    vector = schema_vector_config(schema)
    if vector.get("space") is not None:
        hnsw["space"] = vector["space"]
    hnsw.update({k: v for k, v in (vector.get("hnsw") or {}).items() if k in HNSW_DEFAULTS})
    _check_hnsw(hnsw)  # the spann and schema values, checked with the rest
    record = describe_embedding_function(embedding_function)
    if record is None:  # a function's record as the wire carries it, in the configuration or schema
        for given_ef in (configuration.get("embedding_function"), vector.get("embedding_function")):
            if isinstance(given_ef, dict) and given_ef.get("type") == "known":
                record = given_ef
                break
    return {"hnsw": hnsw, "spann": None, "embedding_function": record}


# -- Chroma 1.5's collection schema ------------------------------------------------------
#: the schema Chroma's server reports for a collection created without one, less the vector
#: index (filled from the configuration)
_DEFAULT_SCHEMA: dict[str, Any] = {
    "defaults": {
        "string": {
            "fts_index": {"enabled": False, "config": {}},
            "string_inverted_index": {"enabled": True, "config": {}},
        },
        "sparse_vector": {
            "sparse_vector_index": {
                "enabled": False,
                "config": {"embedding_function": {"type": "unknown"}, "bm25": False},
            }
        },
        "int": {"int_inverted_index": {"enabled": True, "config": {}}},
        "float": {"float_inverted_index": {"enabled": True, "config": {}}},
        "bool": {"bool_inverted_index": {"enabled": True, "config": {}}},
    },
    "keys": {
        "#document": {
            "string": {
                "fts_index": {"enabled": True, "config": {}},
                "string_inverted_index": {"enabled": False, "config": {}},
            }
        },
    },
}


_DEFAULT_FUNCTION = {"name": "default", "type": "known", "config": {}}


def _client_default_schema() -> dict[str, Any]:
    """What chromadb's ``Schema()`` serializes to (built once, as _CLIENT_DEFAULT_SCHEMA)."""
    vector = {"embedding_function": _DEFAULT_FUNCTION, "space": "l2"}
    schema = copy.deepcopy(_DEFAULT_SCHEMA)
    del schema["defaults"]["sparse_vector"]["sparse_vector_index"]["config"]["bm25"]
    schema["defaults"]["float_list"] = {"vector_index": {"enabled": False, "config": dict(vector)}}
    embedding = {**vector, "source_key": "#document"}
    schema["keys"]["#embedding"] = {"float_list": {"vector_index": {"enabled": True, "config": embedding}}}
    return schema


_CLIENT_DEFAULT_SCHEMA = _client_default_schema()


def schema_json(schema: Any) -> dict[str, Any] | None:
    """A schema as its JSON document (chromadb's ``Schema`` object, or the document itself); None
    for none, or for one equal to ``Schema()``, which Chroma treats as none."""
    if schema is None:
        return None
    if hasattr(schema, "serialize_to_json"):
        schema = schema.serialize_to_json()
    if not isinstance(schema, dict) or not isinstance(schema.get("defaults", {}), dict):
        raise InvalidArgumentError(f"Expected schema to be a chromadb Schema or its JSON, got {schema!r}")
    if not isinstance(schema.get("keys", {}), dict):
        raise InvalidArgumentError("Expected schema['keys'] to be a dict")
    return None if _says_nothing(schema) else copy.deepcopy(schema)


def _says_nothing(schema: dict[str, Any]) -> bool:
    """Whether ``schema`` is ``Schema()``, up to hnsw values equal to their defaults (Chroma
    treats such a schema as none: it may then stand beside a configuration)."""
    plain = copy.deepcopy(schema)
    for place in (plain.get("defaults", {}), plain.get("keys", {}).get("#embedding", {})):
        config = _vector_index_config(place)
        if isinstance(config, dict) and isinstance(config.get("hnsw"), dict):
            left = {k: v for k, v in config["hnsw"].items() if HNSW_DEFAULTS.get(k, object()) != v}
            if left:
                config["hnsw"] = left
            else:
                del config["hnsw"]
    return plain == _CLIENT_DEFAULT_SCHEMA


def _vector_index_config(place: dict[str, Any] | None) -> Any:
    """``place["float_list"]["vector_index"]["config"]`` of a schema's defaults or key, if any."""
    return ((place or {}).get("float_list") or {}).get("vector_index", {}).get("config")


def schema_vector_config(schema: dict[str, Any] | None) -> dict[str, Any]:
    """The vector index configuration a schema sets (``#embedding``'s, else the default's)."""
    if not schema:
        return {}
    for place in (schema.get("keys", {}).get("#embedding", {}), schema.get("defaults", {})):
        config = _vector_index_config(place)
        if config:
            return config
    return {}


def collection_schema(stored: dict[str, Any] | None, configuration: dict[str, Any]) -> dict[str, Any]:
    """The schema a collection reports, as Chroma's server does: the stored one (or Chroma's
    default), its vector index always stating the collection's current configuration."""
    schema = copy.deepcopy(stored) if stored else copy.deepcopy(_DEFAULT_SCHEMA)
    hnsw = configuration.get("hnsw") or HNSW_DEFAULTS
    given = schema_vector_config(stored)
    function = (
        configuration.get("embedding_function")
        or given.get("embedding_function")
        or {"type": "legacy"}  # none stored: what Chroma's server reports for it
    )
    vector: dict[str, Any] = {
        "space": hnsw["space"],
        "embedding_function": function,
        "hnsw": {
            "ef_construction": hnsw["ef_construction"],
            "max_neighbors": hnsw["max_neighbors"],
            "ef_search": hnsw["ef_search"],
            "num_threads": os.cpu_count() or 1,
            "batch_size": 100,
            "sync_threshold": hnsw["sync_threshold"],
            "resize_factor": hnsw["resize_factor"],
        },
    }
    defaults = schema.setdefault("defaults", {})
    for place in (defaults, *schema.get("keys", {}).values()):
        sparse = ((place or {}).get("sparse_vector") or {}).get("sparse_vector_index")
        if isinstance(sparse, dict) and isinstance(sparse.get("config"), dict):
            sparse["config"].setdefault("bm25", False)
    defaults["float_list"] = {"vector_index": {"enabled": False, "config": vector}}
    keys = schema.setdefault("keys", {})
    embedding = dict(vector, source_key=given.get("source_key") or "#document")
    keys["#embedding"] = {"float_list": {"vector_index": {"enabled": True, "config": embedding}}}
    return schema


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

"""Optional extras: a feature whose packages are missing says, in one line, which extra to install."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: the extra of ``pyproject.toml`` that installs each optional module
EXTRA_OF = {
    "fastapi": "server",
    "uvicorn": "server",
    "s3fs": "s3",
    "gcsfs": "gcs",
    "adlfs": "azure",
    "httpx": "http",
    "chromadb": "chroma",
    "pandas": "pandas",
    "sentence_transformers": "sentence-transformers",
    "ray": "ray",
}
#: fsspec protocols whose filesystem lives in an extra
PROTOCOL_MODULE = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}


class MissingExtraError(ImportError):
    """An optional feature was used without the extra that installs its packages."""


def missing(module: str, feature: str) -> MissingExtraError:
    extra = EXTRA_OF[module]
    return MissingExtraError(
        f"{feature} needs the '{extra}' extra ({module} is not installed): pip install \"lakevec[{extra}]\""
    )


def require(module: str, feature: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming its extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing(module, feature) from exc


def check_installed(module: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` if ``module`` is not installed, without importing it."""
    try:
        found = importlib.util.find_spec(module)
    except ImportError:
        found = None
    if found is None:
        raise missing(module, feature)

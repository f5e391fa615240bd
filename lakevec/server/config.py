"""What ``lakevec run`` serves and its limits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

TOKEN_VARIABLES = ("LAKEVEC_AUTH_TOKEN", "CHROMA_SERVER_AUTHN_CREDENTIALS")


@dataclass
class ServerConfig:
    """What ``lakevec run`` serves and its limits (every one of them configurable)."""

    root: str
    token: str | None = None
    allow_reset: bool = False
    storage_options: dict[str, Any] | None = None
    max_body_bytes: int = 256 << 20
    max_batch_size: int = 50_000
    max_n_results: int = 100_000


def token_from_environment() -> str | None:
    for name in TOKEN_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return None

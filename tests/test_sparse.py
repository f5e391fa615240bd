"""Chroma's sparse vectors: ``SparseVector`` metadata values, ``Knn`` over a sparse key checked
against a brute-force ``1 - query . row`` oracle (idf-weighted for a ``bm25`` key), and Chroma's
BM25 sparse embedding function through a schema, in process and over HTTP."""

from __future__ import annotations

import numpy as np
import pytest
from chromadb import K as ChromaK
from chromadb import Schema, SparseVectorIndexConfig
from chromadb.base_types import SparseVector as ChromaSparseVector
from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction

import lakevec
from lakevec import K, Knn, Search, SparseVector
from lakevec.errors import InvalidArgumentError
from tests.conftest import storage_state

DOCS = [
    "the cat sat on the mat",
    "dogs chase cats around the garden",
    "a bird in the hand is worth two in the bush",
    "cats and dogs and birds living together",
    "interest rates rise as central banks act",
    "the central bank held rates",
    "a garden full of birds",
    "",
]


def _random_sparse(rng: np.random.Generator, vocabulary: int = 40) -> SparseVector:
    size = int(rng.integers(0, 6))
    indices = sorted(rng.choice(vocabulary, size=size, replace=False).tolist())
    return SparseVector(indices, [round(float(x), 3) for x in rng.random(size)])


def _scores(rows: dict[str, SparseVector], query: SparseVector, idf: bool, n: int) -> dict[str, float]:
    """Every row's ``1 - query . row`` (rows in insertion order; values stored as float32)."""
    weights = dict(zip(query.indices, query.values))
    if idf:
        for t in weights:
            n_t = sum(t in v.indices for v in rows.values())
            weights[t] *= float(np.log1p((n - n_t + 0.5) / (n_t + 0.5)))
    return {
        rid: 1.0 - sum(weights.get(i, 0.0) * x for i, x in zip(v.indices, np.float32(v.values).tolist()))
        for rid, v in rows.items()
    }


def _oracle(rows: dict[str, SparseVector], query: SparseVector, limit: int, idf: bool, n: int):
    scores = _scores(rows, query, idf, n)
    order = sorted(range(len(scores)), key=lambda r: (list(scores.values())[r], r))
    return [(list(scores.values())[r], list(scores)[r]) for r in order][:limit]


def _check(got: dict, scores: dict[str, float], limit: int) -> None:
    """The best ``limit`` scores, each row with its own score (ties may fall either way)."""
    best = sorted(scores.values())[:limit]
    np.testing.assert_allclose(got["scores"][0], best, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["scores"][0], [scores[r] for r in got["ids"][0]], rtol=1e-5, atol=1e-5)


def test_sparse_values_round_trip(client):
    col = client.create_collection("sparse-values", embedding_function=None)
    vectors = [
        SparseVector([1, 5], [0.5, 2.0]),
        ChromaSparseVector(indices=[3], values=[1.0], labels=["cat"]),
        {"#type": "sparse_vector", "indices": [0, 2**32 - 1], "values": [1, 2.5]},
    ]
    col.add(
        ids=["a", "b", "c", "d"],
        embeddings=np.eye(4).tolist(),
        metadatas=[{"sp": vectors[0], "g": 1}, {"sp": vectors[1]}, {"sp": vectors[2]}, {"g": 2}],
    )
    expected = [
        {"sp": SparseVector([1, 5], [0.5, 2.0]), "g": 1},
        {"sp": SparseVector([3], [1.0], ["cat"])},
        {"sp": SparseVector([0, 2**32 - 1], [1.0, 2.5])},
        {"g": 2},
    ]
    assert col.get(include=["metadatas"])["metadatas"] == expected
    col.update(ids=["d"], metadatas=[{"sp": SparseVector([9], [0.25])}])
    col.upsert(ids=["a"], embeddings=[[1.0, 0, 0, 0]], metadatas=[{"sp": None}])
    again = lakevec.PersistentClient(client._storage.url).get_collection(
        "sparse-values", embedding_function=None
    )
    got = again.get(ids=["a", "d"], include=["metadatas"])["metadatas"]
    assert got == [{"g": 1}, {"g": 2, "sp": SparseVector([9], [0.25])}]
    assert col.get(where={"sp": {"$exists": True}})["ids"] == ["b", "c", "d"]
    table = col.to_arrow()
    assert table.column("sp").type.field("indices").type.value_type.bit_width == 32


@pytest.mark.parametrize(
    "bad",
    [
        SparseVector([3, 1], [1.0, 1.0]),
        SparseVector([1], [1.0, 2.0]),
        SparseVector([-1], [1.0]),
        SparseVector([2**32], [1.0]),
        SparseVector([1], [float("nan")]),
        SparseVector([1, 2], [1.0, 1.0], ["one"]),
        {"#type": "sparse_vector", "indices": "12", "values": [1.0]},
    ],
)
def test_bad_sparse_values_are_refused_and_write_nothing(collection, bad):
    collection.add(ids=["x"], embeddings=[[1.0, 2.0]])
    before = storage_state(collection)
    with pytest.raises(InvalidArgumentError):
        collection.add(ids=["y"], embeddings=[[1.0, 2.0]], metadatas=[{"sp": bad}])
    assert storage_state(collection) == before


@pytest.mark.parametrize("idf", [False, True])
def test_knn_over_a_sparse_key_matches_the_oracle(idf):
    rng = np.random.default_rng(7)
    schema = Schema().create_index(SparseVectorIndexConfig(bm25=idf), key="sp")
    col = lakevec.EphemeralClient().create_collection("sparse-oracle", schema=schema, embedding_function=None)
    rows: dict[str, SparseVector] = {}
    for batch in range(4):  # several fragments
        ids = [f"r{batch}-{i}" for i in range(60)]
        values = [_random_sparse(rng) for _ in ids]
        metadatas = [{"sp": v, "half": i % 2} if i % 7 else {"half": i % 2} for i, v in enumerate(values)]
        col.add(ids=ids, embeddings=rng.random((60, 3)), metadatas=metadatas)
        rows.update({rid: v for rid, v, m in zip(ids, values, metadatas) if "sp" in m})
    dead = [f"r1-{i}" for i in range(20)] + ["r2-5"]
    col.delete(ids=dead)
    for rid in dead:
        rows.pop(rid, None)
    n = col.count()
    odd = set(col.get(where={"half": 1})["ids"])
    for _ in range(12):
        query = _random_sparse(rng)
        limit = int(rng.integers(1, 30))
        scores = _scores(rows, query, idf, n)
        got = col.search(Search().rank(Knn(query=query, key="sp", limit=limit)).select(K.SCORE))
        _check(got, scores, limit)
        # a filter narrows the rows, not the idf statistics
        got = col.search(
            Search(where={"half": 1}).rank(Knn(query=query, key="sp", limit=limit)).select(K.SCORE)
        )
        _check(got, {r: x for r, x in scores.items() if r in odd}, limit)


def _bm25_schema() -> Schema:
    config = SparseVectorIndexConfig(
        source_key=ChromaK.DOCUMENT, embedding_function=ChromaBm25EmbeddingFunction(), bm25=True
    )
    return Schema().create_index(config, key="bm25")


def _expected_bm25(text: str, limit: int):
    bm25 = ChromaBm25EmbeddingFunction()
    rows = {f"d{i}": SparseVector(v.indices, v.values) for i, v in enumerate(bm25(DOCS))}
    query = bm25.embed_query([text])[0]
    return _oracle(rows, SparseVector(query.indices, query.values), limit, True, len(DOCS))


def test_chromas_bm25_embedding_function_through_a_schema():
    col = lakevec.EphemeralClient().create_collection(
        "bm25-schema", schema=_bm25_schema(), embedding_function=None
    )
    col.add(ids=[f"d{i}" for i in range(len(DOCS))], embeddings=np.eye(len(DOCS)).tolist(), documents=DOCS)
    stored = col.get(ids=["d0"], include=["metadatas"])["metadatas"][0]["bm25"]
    assert stored.indices == ChromaBm25EmbeddingFunction()([DOCS[0]])[0].indices
    expected = _expected_bm25("cats and birds", 5)
    got = col.search(Search().rank(Knn(query="cats and birds", key="bm25", limit=5)).select(K.SCORE))
    assert got["ids"][0] == [rid for _, rid in expected]
    np.testing.assert_allclose(got["scores"][0], [s for s, _ in expected], rtol=1e-5)


@pytest.mark.parametrize("kind", ["chromadb", "lakevec"])
def test_sparse_search_over_http(served, kind):
    import chromadb

    make = chromadb.HttpClient if kind == "chromadb" else lakevec.HttpClient
    client = make(host="127.0.0.1", port=served)
    col = client.create_collection(f"bm25-{kind}", schema=_bm25_schema(), embedding_function=None)
    col.add(ids=[f"d{i}" for i in range(len(DOCS))], embeddings=np.eye(len(DOCS)).tolist(), documents=DOCS)
    expected = _expected_bm25("central bank rates", 4)
    m = chromadb if kind == "chromadb" else lakevec
    searches = m.Search().rank(m.Knn(query="central bank rates", key="bm25", limit=4)).select(m.K.SCORE)
    got = col.search(searches)
    assert got["ids"][0] == [rid for _, rid in expected]
    np.testing.assert_allclose(got["scores"][0], [s for s, _ in expected], rtol=1e-5)
    stored = col.get(ids=["d4"], include=["metadatas"])["metadatas"][0]["bm25"]
    assert list(stored.indices) == ChromaBm25EmbeddingFunction()([DOCS[4]])[0].indices
    vector = (
        ChromaSparseVector(indices=[1, 2], values=[1.0, 1.0])
        if kind == "chromadb"
        else SparseVector([1, 2], [1.0, 1.0])
    )
    col.add(ids=["plain"], embeddings=[[0.0] * len(DOCS)], metadatas=[{"bm25": vector}])
    assert col.get(ids=["plain"], include=["metadatas"])["metadatas"][0]["bm25"].indices == [1, 2]


def test_knn_over_a_sparse_key_needs_a_sparse_query(collection):
    collection.add(ids=["x"], embeddings=[[1.0, 2.0]], metadatas=[{"sp": SparseVector([1], [1.0])}])
    with pytest.raises(InvalidArgumentError):
        collection.search(Search().rank(Knn(query=[1.0, 2.0], key="sp")))
    with pytest.raises(InvalidArgumentError):
        collection.search(Search().rank(Knn(query=SparseVector([1], [1.0]))))
    with pytest.raises(InvalidArgumentError):
        collection.search(Search().rank(Knn(query=SparseVector([1], [1.0]), key="#score")))

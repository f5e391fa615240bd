"""Collection semantics, checked against what chromadb 1.5.9 does (see shared/CHROMA_NOTES.md)."""

from __future__ import annotations

import numpy as np
import pytest

import lakevec


def _seed(col):
    col.add(
        ids=["a", "b", "c"],
        embeddings=[[1, 2], [3, 4], [5, 6]],
        metadatas=[{"x": 1}, {"x": 2.5}, None],
        documents=["hello", "world", None],
    )


def test_add_get_roundtrip(collection):
    _seed(collection)
    got = collection.get(include=["embeddings", "documents", "metadatas", "uris"])
    assert got["ids"] == ["a", "b", "c"]
    assert got["documents"] == ["hello", "world", None]
    assert got["metadatas"] == [{"x": 1}, {"x": 2.5}, None]
    assert got["uris"] == [None, None, None]
    assert isinstance(got["embeddings"], np.ndarray)
    np.testing.assert_array_equal(got["embeddings"], [[1, 2], [3, 4], [5, 6]])
    assert set(got) == {"ids", "embeddings", "documents", "uris", "data", "metadatas", "included"}
    assert collection.count() == 3


def test_get_defaults_and_include_empty(collection):
    _seed(collection)
    got = collection.get()
    assert got["included"] == ["metadatas", "documents"]
    assert got["embeddings"] is None and got["uris"] is None and got["data"] is None
    bare = collection.get(include=[])
    assert bare["ids"] == ["a", "b", "c"] and bare["documents"] is None and bare["metadatas"] is None


def test_add_existing_id_is_ignored(collection):
    _seed(collection)
    collection.add(ids=["a", "d"], embeddings=[[9, 9], [7, 7]], documents=["new", "dd"])
    got = collection.get(ids=["a", "d"], include=["documents", "embeddings"])
    assert got["documents"] == ["hello", "dd"]
    np.testing.assert_array_equal(got["embeddings"][0], [1, 2])
    assert collection.count() == 4


def test_update_merges_metadata_and_ignores_missing(collection):
    _seed(collection)
    collection.update(ids=["a", "zz"], metadatas=[{"y": "z"}, {"y": "q"}])
    assert collection.get(ids=["a"])["metadatas"] == [{"x": 1, "y": "z"}]
    assert collection.count() == 3
    collection.update(ids=["a"], metadatas=[{"x": None}])
    assert collection.get(ids=["a"])["metadatas"] == [{"y": "z"}]
    collection.update(ids=["b"], documents=["changed"], embeddings=[[0, 0]])
    got = collection.get(ids=["b"], include=["documents", "embeddings", "metadatas"])
    assert got["documents"] == ["changed"] and got["metadatas"] == [{"x": 2.5}]
    np.testing.assert_array_equal(got["embeddings"], [[0, 0]])


def test_upsert_inserts_and_updates_keeping_order(collection):
    _seed(collection)
    collection.upsert(
        ids=["d", "b"], embeddings=[[0, 0], [1, 1]], metadatas=[{"x": 9}, {"x": None, "w": True}]
    )
    got = collection.get(include=["metadatas", "documents", "embeddings"])
    assert got["ids"] == ["a", "b", "c", "d"]  # b keeps its place, as in Chroma
    assert got["metadatas"] == [{"x": 1}, {"w": True}, None, {"x": 9}]
    assert got["documents"] == ["hello", "world", None, None]
    np.testing.assert_array_equal(got["embeddings"][1], [1, 1])


def test_delete_by_ids_and_filters(collection):
    _seed(collection)
    assert collection.delete(ids=["a", "nope"]) == {"deleted": 1}
    assert collection.get()["ids"] == ["b", "c"]
    assert collection.delete(where={"x": 2.5}) == {"deleted": 1}
    assert collection.count() == 1
    collection.add(ids=["a"], embeddings=[[1, 1]], documents=["back"])
    assert collection.get(ids=["a"])["documents"] == ["back"]
    assert collection.delete(where_document={"$contains": "back"}) == {"deleted": 1}
    assert collection.get()["ids"] == ["c"]


def test_delete_with_a_limit_deletes_the_first_matches(collection):
    """Chroma 1.5's ``delete(where=..., limit=N)``: at most N rows, here in insertion order."""
    collection.add(
        ids=[f"id{i}" for i in range(6)],
        embeddings=np.arange(12).reshape(6, 2),
        metadatas=[{"k": "a" if i % 2 else "b"} for i in range(6)],
    )
    assert collection.delete(where={"k": "a"}, limit=2) == {"deleted": 2}
    assert collection.get(include=[])["ids"] == ["id0", "id2", "id4", "id5"]
    assert collection.delete(where={"k": "b"}, limit=0) == {"deleted": 0}
    assert collection.delete(where={"k": "a"}, limit=5) == {"deleted": 1}
    with pytest.raises(ValueError, match="limit can only be specified"):
        collection.delete(ids=["id0"], limit=1)
    with pytest.raises(ValueError):
        collection.delete(where={"k": "b"}, limit=-1)
    assert collection.count() == 3


def test_limit_offset_peek(collection):
    collection.add(ids=[f"id{i}" for i in range(20)], embeddings=np.arange(40).reshape(20, 2))
    assert collection.get(limit=3, offset=2, include=[])["ids"] == ["id2", "id3", "id4"]
    assert collection.get(limit=0, include=[])["ids"] == []
    assert collection.get(where={"$or": [{"k": 1}, {"k": {"$ne": 1}}]}, limit=2, offset=5, include=[])[
        "ids"
    ] == [
        "id5",
        "id6",
    ]
    peek = collection.peek(4)
    assert peek["ids"] == ["id0", "id1", "id2", "id3"] and peek["embeddings"].shape == (4, 2)


def test_get_by_ids_returns_stored_order(collection):
    _seed(collection)
    assert collection.get(ids=["c", "a", "missing"], include=[])["ids"] == ["a", "c"]


def test_single_values_are_cast_to_lists(collection):
    collection.add(ids="one", embeddings=[1.0, 2.0], metadatas={"k": "v"}, documents="doc")
    got = collection.get("one")
    assert got["ids"] == ["one"] and got["documents"] == ["doc"] and got["metadatas"] == [{"k": "v"}]


def test_metadata_types_roundtrip(collection):
    metas = [
        {"s": "x", "i": 3, "f": 1.5, "b": True, "ls": ["a", "b"], "li": [1, 2], "lf": [0.5], "lb": [False]},
        {"i": "now a string", "f": 7},  # a key seen with a second type is stored exactly
    ]
    collection.add(ids=["p", "q"], embeddings=[[0, 1], [1, 0]], metadatas=metas)
    got = collection.get(include=["metadatas"])["metadatas"]
    assert got == metas
    assert type(got[1]["f"]) is int and type(got[0]["f"]) is float
    assert collection.get(where={"i": "now a string"}, include=[])["ids"] == ["q"]
    assert collection.get(where={"f": {"$gte": 1.5}}, include=[])["ids"] == ["p", "q"]


def test_ints_and_floats_compare_numerically(collection):
    collection.add(
        ids=["a", "b", "c"],
        embeddings=[[0, 0]] * 3,
        metadatas=[{"x": 1}, {"x": 1.0}, {"x": True}],
    )
    assert collection.get(where={"x": 1}, include=[])["ids"] == ["a", "b"]
    assert collection.get(where={"x": True}, include=[])["ids"] == ["c"]
    assert collection.get(where={"x": {"$in": [1.0]}}, include=[])["ids"] == ["a", "b"]
    big = 2**53 + 1  # Chroma truncates through f64 (#7491); we compare exactly
    collection.add(ids=["big"], embeddings=[[0, 0]], metadatas=[{"n": big}])
    assert collection.get(where={"n": big}, include=[])["ids"] == ["big"]
    assert collection.get(where={"n": big - 1}, include=[])["ids"] == []


def test_uris_roundtrip(collection):
    collection.add(ids=["u"], embeddings=[[1, 1]], uris=["s3://b/k.png"])
    assert collection.get(include=["uris"])["uris"] == ["s3://b/k.png"]


def test_documents_need_an_embedding_function(collection):
    with pytest.raises(ValueError):
        collection.add(ids=["a"], documents=["text"])
    assert collection.count() == 0


def test_embedding_function_is_used(client):
    calls = []

    def embed(input):
        calls.append(list(input))
        return [[float(len(t)), 1.0] for t in input]

    col = client.create_collection("with-ef", embedding_function=embed)
    col.add(ids=["a", "b"], documents=["xx", "yyyy"])
    col.update(ids=["a"], documents=["zzzzzz"])
    got = col.get(include=["embeddings", "documents"])
    np.testing.assert_array_equal(got["embeddings"], [[6, 1], [4, 1]])
    assert calls == [["xx", "yyyy"], ["zzzzzz"]]


def test_reopen_from_storage(root):
    client = lakevec.PersistentClient(root)
    col = client.create_collection("persist", embedding_function=None, metadata={"owner": "me"})
    _seed(col)
    col.upsert(ids=["b"], embeddings=[[0, 0]], metadatas=[{"x": 3}])
    col.delete(ids=["c"])
    before = col.get(include=["embeddings", "documents", "metadatas"])

    again = lakevec.PersistentClient(root).get_collection("persist", embedding_function=None)
    after = again.get(include=["embeddings", "documents", "metadatas"])
    assert after["ids"] == before["ids"] and after["metadatas"] == before["metadatas"]
    np.testing.assert_array_equal(after["embeddings"], before["embeddings"])
    assert again.metadata == {"owner": "me"} and again.count() == 2


def test_second_client_sees_writes_of_first(root):
    one = lakevec.PersistentClient(root).create_collection("shared", embedding_function=None)
    two = lakevec.PersistentClient(root).get_collection("shared", embedding_function=None)
    one.add(ids=["a"], embeddings=[[1, 2]])
    assert two.count() == 1
    two.add(ids=["b"], embeddings=[[3, 4]])
    one.delete(ids=["a"])
    assert two.get(include=[])["ids"] == ["b"] and one.get(include=[])["ids"] == ["b"]


def test_every_write_is_a_new_version(collection):
    engine = collection._engine
    v0 = engine.log.latest()
    _seed(collection)
    collection.add(ids=["a"], embeddings=[[0, 0]])  # nothing new: no version
    assert engine.log.latest() == v0 + 1
    collection.delete(ids=["a"])
    manifest = engine.snapshot().manifest
    assert manifest.version == v0 + 2 and manifest.operation == "delete"
    assert manifest.live_rows == 2

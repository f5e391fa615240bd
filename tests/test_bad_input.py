"""Bad input: a specific error (Chroma's class), raised before anything is written."""

from __future__ import annotations

import pytest

from lakevec.errors import DuplicateIDError, InvalidArgumentError, NotFoundError
from tests.conftest import storage_state

NAN = float("nan")

# (call, expected class): the class chromadb 1.5.9 raises, or ValueError where it raises that
# (ours is InvalidArgumentError, a ValueError subclass, so both catch it).
CASES = {
    "duplicate ids": (lambda c: c.add(ids=["q", "q"], embeddings=[[1, 2], [1, 2]]), DuplicateIDError),
    "wrong dimension": (lambda c: c.add(ids=["q"], embeddings=[[1, 2, 3]]), InvalidArgumentError),
    "wrong dimension upsert": (lambda c: c.upsert(ids=["a"], embeddings=[[1, 2, 3]]), InvalidArgumentError),
    "wrong dimension update": (lambda c: c.update(ids=["a"], embeddings=[[1]]), InvalidArgumentError),
    "nan embedding": (lambda c: c.add(ids=["q"], embeddings=[[NAN, 2]]), InvalidArgumentError),
    "inf embedding": (lambda c: c.upsert(ids=["a"], embeddings=[[float("inf"), 2]]), InvalidArgumentError),
    "empty embedding": (lambda c: c.add(ids=["q"], embeddings=[[]]), ValueError),
    "ragged embeddings": (lambda c: c.add(ids=["q", "r"], embeddings=[[1, 2], [1]]), ValueError),
    "string embedding": (lambda c: c.add(ids=["q"], embeddings=[["a", "b"]]), ValueError),
    "id not a string": (lambda c: c.add(ids=[1], embeddings=[[1, 2]]), ValueError),
    "empty id": (lambda c: c.add(ids=[""], embeddings=[[1, 2]]), InvalidArgumentError),
    "no ids": (lambda c: c.add(ids=[], embeddings=[]), ValueError),
    "lengths disagree": (lambda c: c.add(ids=["q"], embeddings=[[1, 2], [3, 4]]), ValueError),
    "metadata lengths disagree": (
        lambda c: c.add(ids=["q"], embeddings=[[1, 2]], metadatas=[{"a": 1}, {"a": 2}]),
        ValueError,
    ),
    "documents lengths disagree": (
        lambda c: c.add(ids=["q", "r"], embeddings=[[1, 2], [1, 2]], documents=["x"]),
        ValueError,
    ),
    "empty metadata": (lambda c: c.add(ids=["q"], embeddings=[[1, 2]], metadatas=[{}]), ValueError),
    "nested metadata": (
        lambda c: c.add(ids=["q"], embeddings=[[1, 2]], metadatas=[{"a": {"b": 1}}]),
        ValueError,
    ),
    "None metadata value in add": (
        lambda c: c.add(ids=["q"], embeddings=[[1, 2]], metadatas=[{"a": None}]),
        ValueError,
    ),
    "empty list metadata": (
        lambda c: c.add(ids=["q"], embeddings=[[1, 2]], metadatas=[{"a": []}]),
        ValueError,
    ),
    "mixed list metadata": (
        lambda c: c.add(ids=["q"], embeddings=[[1, 2]], metadatas=[{"a": [1, "x"]}]),
        ValueError,
    ),
    "huge int metadata": (
        lambda c: c.add(ids=["q"], embeddings=[[1, 2]], metadatas=[{"a": 2**70}]),
        InvalidArgumentError,
    ),
    "nan metadata": (lambda c: c.add(ids=["q"], embeddings=[[1, 2]], metadatas=[{"a": NAN}]), ValueError),
    "reserved metadata key": (
        lambda c: c.add(ids=["q"], embeddings=[[1, 2]], metadatas=[{"#a": 1}]),
        InvalidArgumentError,
    ),
    "document not a string": (lambda c: c.add(ids=["q"], embeddings=[[1, 2]], documents=[3]), ValueError),
    "neither embeddings nor documents": (lambda c: c.add(ids=["q"]), ValueError),
    "unknown where operator": (lambda c: c.delete(where={"x": {"$foo": 1}}), ValueError),
    "and with one clause": (lambda c: c.delete(where={"$and": [{"x": 1}]}), ValueError),
    "gt with a string": (lambda c: c.delete(where={"x": {"$gt": "a"}}), ValueError),
    "gt with a bool": (lambda c: c.delete(where={"x": {"$gt": True}}), InvalidArgumentError),
    "eq with a list": (lambda c: c.delete(where={"x": {"$eq": [1]}}), InvalidArgumentError),
    "in empty list": (lambda c: c.delete(where={"x": {"$in": []}}), ValueError),
    "in mixed list": (lambda c: c.delete(where={"x": {"$in": [1, "a"]}}), ValueError),
    "in not a list": (lambda c: c.delete(where={"x": {"$in": 1}}), ValueError),
    "two keys in where": (lambda c: c.delete(where={"a": 1, "b": 2}), ValueError),
    "empty where": (lambda c: c.delete(where={}), ValueError),
    "where not a dict": (lambda c: c.delete(where=[1]), ValueError),
    "where None value": (lambda c: c.delete(where={"x": None}), ValueError),
    "two operators": (lambda c: c.delete(where={"x": {"$eq": 1, "$ne": 2}}), ValueError),
    "unknown document operator": (lambda c: c.delete(where_document={"$foo": "a"}), ValueError),
    "empty document operand": (lambda c: c.delete(where_document={"$contains": ""}), ValueError),
    "document operand not str": (lambda c: c.delete(where_document={"$contains": 1}), ValueError),
    "bad regex": (lambda c: c.delete(where_document={"$regex": "("}), InvalidArgumentError),
    "delete without arguments": (lambda c: c.delete(), ValueError),
    "delete empty ids": (lambda c: c.delete(ids=[]), ValueError),
    "get unknown include": (lambda c: c.get(include=["foo"]), ValueError),
    "get distances": (lambda c: c.get(include=["distances"]), ValueError),
    "get data without loader": (lambda c: c.get(include=["data"]), ValueError),
    "negative limit": (lambda c: c.get(limit=-1), ValueError),
    "negative offset": (lambda c: c.get(offset=-1), ValueError),
    "get duplicate ids": (lambda c: c.get(ids=["a", "a"]), DuplicateIDError),
    "update metadata nested": (lambda c: c.update(ids=["a"], metadatas=[{"x": {"y": 1}}]), ValueError),
    "upsert duplicate ids": (
        lambda c: c.upsert(ids=["a", "a"], embeddings=[[1, 2], [1, 2]]),
        DuplicateIDError,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_changes_nothing(collection, case):
    collection.add(
        ids=["a", "b"],
        embeddings=[[1, 2], [3, 4]],
        metadatas=[{"x": 1}, {"x": "s"}],
        documents=["alpha", "beta"],
    )
    before = storage_state(collection)
    call, expected = CASES[case]
    with pytest.raises(expected):
        call(collection)
    assert storage_state(collection) == before
    assert collection.get(include=[])["ids"] == ["a", "b"]


def test_bad_collection_names(client):
    for name in ["a", "ab", "../../etc", "-abc", "abc-", "a b c", "x" * 513, 3]:
        with pytest.raises(InvalidArgumentError):
            client.create_collection(name)
    assert client.count_collections() == 0


def test_missing_collection(client):
    with pytest.raises(NotFoundError):
        client.get_collection("nope")
    with pytest.raises(NotFoundError):
        client.delete_collection("nope")


def test_writes_to_a_deleted_collection_fail(client):
    col = client.create_collection("gone", embedding_function=None)
    client.delete_collection("gone")
    with pytest.raises(NotFoundError):
        col.add(ids=["a"], embeddings=[[1, 2]])

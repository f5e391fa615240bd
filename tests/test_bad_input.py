"""Bad input: a specific error (Chroma's class), raised before anything is written."""

from __future__ import annotations

import pytest

from lakevec import Knn, Search, SparseVector
from lakevec.errors import DuplicateIDError, InternalError, InvalidArgumentError, NotFoundError
from tests.conftest import storage_state

NAN = float("nan")
# a schema that sets a vector index (chromadb's Schema serializes to this JSON)
_VECTOR_SCHEMA = {"keys": {"#embedding": {"float_list": {"vector_index": {"config": {"space": "ip"}}}}}}

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
    "delete limit without a filter": (lambda c: c.delete(ids=["a"], limit=1), ValueError),
    "delete negative limit": (lambda c: c.delete(where={"x": 1}, limit=-1), ValueError),
    "delete limit not an int": (lambda c: c.delete(where={"x": 1}, limit="2"), ValueError),
    "schema beside a configuration": (
        lambda c: c._client.create_collection(
            "other", schema=_VECTOR_SCHEMA, configuration={"hnsw": {"ef_search": 5}}, embedding_function=None
        ),
        InvalidArgumentError,
    ),
    "schema not a schema": (lambda c: c._client.create_collection("other", schema=[1]), InvalidArgumentError),
    "get unknown include": (lambda c: c.get(include=["foo"]), ValueError),
    "get distances": (lambda c: c.get(include=["distances"]), ValueError),
    "get data without loader": (lambda c: c.get(include=["data"]), ValueError),
    "negative limit": (lambda c: c.get(limit=-1), ValueError),
    "negative offset": (lambda c: c.get(offset=-1), ValueError),
    "get duplicate ids": (lambda c: c.get(ids=["a", "a"]), DuplicateIDError),
    "update metadata nested": (lambda c: c.update(ids=["a"], metadatas=[{"x": {"y": 1}}]), ValueError),
    "query n_results zero": (lambda c: c.query(query_embeddings=[[1, 2]], n_results=0), ValueError),
    "query n_results negative": (lambda c: c.query(query_embeddings=[[1, 2]], n_results=-3), ValueError),
    "query wrong dimension": (lambda c: c.query(query_embeddings=[[1, 2, 3]]), InvalidArgumentError),
    "query nan": (lambda c: c.query(query_embeddings=[[NAN, 2]]), InvalidArgumentError),
    "where_sql second statement": (
        lambda c: c.delete(where_sql="1=1; DROP TABLE docs"),
        InvalidArgumentError,
    ),
    "where_sql reads a file": (
        lambda c: c.get(where_sql="id IN (SELECT * FROM read_csv('/etc/passwd'))"),
        InvalidArgumentError,
    ),
    "where_sql table function": (lambda c: c.get(where_sql="EXISTS (FROM range(3))"), InvalidArgumentError),
    "where_sql not boolean syntax": (lambda c: c.get(where_sql="year >"), InvalidArgumentError),
    "where_sql unknown column": (lambda c: c.delete(where_sql="nosuch = 1"), InvalidArgumentError),
    "upsert duplicate ids": (
        lambda c: c.upsert(ids=["a", "a"], embeddings=[[1, 2], [1, 2]]),
        DuplicateIDError,
    ),
    "sparse vector indices not ascending": (
        lambda c: c.add(ids=["q"], embeddings=[[1, 2]], metadatas=[{"sp": SparseVector([2, 1], [1.0, 1.0])}]),
        InvalidArgumentError,
    ),
    "sparse vector value not a number": (
        lambda c: c.update(
            ids=["a"], metadatas=[{"sp": {"#type": "sparse_vector", "indices": [1], "values": ["x"]}}]
        ),
        InvalidArgumentError,
    ),
    "Knn vector over a sparse key": (
        lambda c: c.search(Search().rank(Knn(query=[1.0, 2.0], key="x"))),
        InvalidArgumentError,
    ),
    "fork to an invalid name": (lambda c: c.fork("x"), InvalidArgumentError),
    "fork to an existing name": (lambda c: c.fork("test"), InternalError),
    "tag with an invalid name": (lambda c: c.tag("../t"), InvalidArgumentError),
    "tag of a missing version": (lambda c: c.tag("t", version=99), InvalidArgumentError),
    "open a missing tag": (lambda c: c.at(tag="nope"), NotFoundError),
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
    assert [c.name for c in collection._client.list_collections()] == ["test"]  # none created


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


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
@pytest.mark.parametrize("target", ["manifest", "fragment", "deletion file", "index"])
def test_damaged_files_give_a_clear_error_naming_the_file(tmp_path, target, damage):
    """A file damaged on disk is reported by name (CorruptFileError); nothing is guessed."""
    import numpy as np

    import lakevec
    from lakevec.errors import CorruptFileError

    root = tmp_path / "root"
    col = lakevec.PersistentClient(str(root)).create_collection("damage", embedding_function=None)
    col.add(ids=[f"i{k}" for k in range(300)], embeddings=np.random.default_rng(0).random((300, 4)))
    col.wait_for_index()
    col.delete(ids=["i1", "i2"])
    manifest = col._engine.snapshot().manifest
    base = root / "collections" / str(col.id)
    path = {
        "manifest": base / "versions" / f"v{manifest.version:020d}.json",
        "fragment": base / manifest.fragments[0].path,
        "deletion file": base / manifest.fragments[0].deletes,
        "index": base / manifest.fragments[0].index,
    }[target]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00garbage" * 50)
    with pytest.raises(CorruptFileError) as info:
        fresh = lakevec.PersistentClient(str(root)).get_collection("damage", embedding_function=None)
        fresh.query(query_embeddings=[[0.5] * 4], n_results=3)
    assert path.name in str(info.value)


SERVER_CASES = [
    ("malformed JSON body", "400 InvalidArgumentError"),
    ("body not a JSON object", "400 InvalidArgumentError"),
    ("ids not a list / ids not strings", "400 InvalidArgumentError"),
    ("embeddings of strings / invalid base64", "400 InvalidArgumentError"),
    ("n_results negative, not an int, over the limit", "400 InvalidArgumentError"),
    ("malformed $and / where_sql with a second statement or a file read", "400 InvalidArgumentError"),
    ("limit not an int", "400 InvalidArgumentError"),
    ("delete with nothing to select", "400 InvalidArgumentError"),
    ("batch over max_batch_size", "400 InvalidArgumentError"),
    ("body over the size limit", "413 InvalidArgumentError"),
    ("no token / wrong token", "401 AuthError / 403 AuthorizationError"),
    ("tenant or database name with '/' or '..'", "400 InvalidArgumentError"),
]


def catalogue() -> str:
    """docs/bad_inputs.md, generated from the cases above (test_catalogue_is_current keeps it so)."""
    lines = [
        "# Bad inputs and the errors they get",
        "",
        "Generated from `tests/test_bad_input.py` (every row is a test; the collection is checked",
        "unchanged after each call). Classes are lakevec's, named as chromadb 1.5.9's; `ValueError`",
        "rows raise `InvalidArgumentError`, a `ValueError` subclass.",
        "",
        "| input | error |",
        "|---|---|",
    ]
    lines += [f"| {name} | `{cls.__name__}` |" for name, (_, cls) in sorted(CASES.items())]
    lines += [
        "| collection name too short, with '/', '..' or spaces | `InvalidArgumentError` |",
        "| missing collection | `NotFoundError` |",
        "| write to a deleted collection | `NotFoundError` |",
        "| manifest, fragment, deletion file or index truncated or garbage | `CorruptFileError` naming the file |",
        "",
        "## Through the server (`tests/test_server.py`), server stays up",
        "",
        "| request | status and error |",
        "|---|---|",
    ]
    lines += [f"| {name} | {error} |" for name, error in SERVER_CASES]
    return "\n".join(lines) + "\n"


def test_catalogue_is_current():
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "docs" / "bad_inputs.md"
    assert path.read_text() == catalogue(), (
        "regenerate: python -c 'from tests.test_bad_input import catalogue; print(catalogue(), end=\"\")' > docs/bad_inputs.md"
    )

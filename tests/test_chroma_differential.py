"""The same operation sequences on chromadb 1.5.9 (the reference) and on lakevec: same ids,
same metadata and documents, same exception classes."""

from __future__ import annotations

import uuid

import chromadb
import chromadb.errors
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import lakevec
from tests import strategies as s

IDS = [f"id{i}" for i in range(12)]

ids_st = st.lists(st.sampled_from(IDS), min_size=1, max_size=5, unique=True)


def _records(ids, metadata=s.metadata):
    n = len(ids)
    return st.fixed_dictionaries(
        {
            "ids": st.just(ids),
            "embeddings": st.lists(
                st.lists(st.integers(-3, 3), min_size=2, max_size=2), min_size=n, max_size=n
            ),
            "metadatas": st.lists(metadata, min_size=n, max_size=n),
            "documents": st.lists(s.document, min_size=n, max_size=n),
        }
    )


update_metadata = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(s.KEYS), st.one_of(st.none(), s.scalar), min_size=1, max_size=3),
)
bad_calls = st.sampled_from(
    [
        ("add", {"ids": ["d", "d"], "embeddings": [[1, 1], [1, 1]]}),
        ("add", {"ids": ["x"], "embeddings": [[1, 2, 3]]}),
        ("add", {"ids": ["x"], "embeddings": [[1, 2]], "metadatas": [{}]}),
        ("add", {"ids": ["x"], "embeddings": [[1, 2], [3, 4]]}),
        ("get", {"where": {"$and": [{"color": "red"}]}}),
        ("get", {"where": {"n": {"$gt": "a"}}}),
        ("get", {"where": {"n": {"$foo": 1}}}),
        ("get", {"include": ["foo"]}),
        ("delete", {}),
    ]
)
operation = st.one_of(
    ids_st.flatmap(_records).map(lambda r: ("add", r)),
    ids_st.flatmap(_records).map(lambda r: ("upsert", r)),
    ids_st.flatmap(lambda ids: _records(ids, update_metadata)).map(
        lambda r: ("update", {"ids": r["ids"], "metadatas": r["metadatas"], "embeddings": r["embeddings"]})
    ),
    ids_st.map(lambda ids: ("delete", {"ids": ids})),
    s.where.map(lambda w: ("delete", {"where": w})),
    s.where.map(lambda w: ("get", {"where": w})),
    s.where_document.map(lambda w: ("get", {"where_document": w})),
    st.tuples(st.integers(0, 5), st.integers(0, 5)).map(
        lambda lo: ("get", {"limit": lo[0], "offset": lo[1]})
    ),
    ids_st.map(lambda ids: ("get", {"ids": ids})),
    bad_calls,
)


def _fractional(value) -> bool:
    """A float with a fraction in a filter: Chroma truncates it against int values (#7491); we
    compare exactly, so such filters are outside the differential test."""
    if isinstance(value, dict):
        return any(_fractional(v) for v in value.values())
    if isinstance(value, list):
        return any(_fractional(v) for v in value)
    return isinstance(value, float) and not value.is_integer()


def _float_contains(value) -> bool:
    """``$contains``/``$not_contains`` with a float: Chroma matches list elements by type (0.0 is
    not in [0]); we compare numbers numerically everywhere (docs/chroma-migration.md), so these are excluded too."""
    if isinstance(value, dict):
        return any(
            (k in ("$contains", "$not_contains") and isinstance(v, float)) or _float_contains(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_float_contains(v) for v in value)
    return False


@pytest.fixture(scope="module")
def chroma_client():
    # one client for the module (they are slow to start); reset between examples, because
    # chromadb 1.5.9 leaks list-valued metadata of a deleted collection into rows of a new one
    return chromadb.EphemeralClient(settings=chromadb.Settings(allow_reset=True, anonymized_telemetry=False))


def _same_error(ours: Exception, theirs: Exception) -> bool:
    name = type(theirs).__name__
    if hasattr(chromadb.errors, name) and isinstance(theirs, chromadb.errors.ChromaError):
        return type(ours).__name__ == name or any(c.__name__ == name for c in type(ours).__mro__)
    return isinstance(ours, type(theirs))


def _call(col, op, kwargs):
    try:
        result = getattr(col, op)(**kwargs)
    except Exception as exc:  # compared below
        return None, exc
    if op == "get":
        result = {k: result[k] for k in ("ids", "documents", "metadatas")}
    if op == "delete":
        result = None  # Chroma counts the ids it was given (even missing ones); we count rows deleted
    return result, None


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(operation, min_size=1, max_size=12))
def test_same_results_as_chroma(chroma_client, ops):
    assume(not any(_fractional(kwargs.get("where")) for _, kwargs in ops))
    assume(not any(_float_contains(kwargs.get("where")) for _, kwargs in ops))
    chroma_client.reset()
    name = f"diff-{uuid.uuid4().hex[:10]}"
    theirs = chroma_client.create_collection(name, embedding_function=None)
    ours = lakevec.EphemeralClient().create_collection(name, embedding_function=None)
    for op, kwargs in ops:
        # Chroma fixes the dimension on an update of missing ids while no row has fixed it;
        # we fix it with the first row written (a documented difference). A failed add before
        # the update fixes nothing either, so this is checked when the update comes.
        assume(op != "update" or ours._engine.dimension() is not None)
        expected, their_error = _call(theirs, op, kwargs)
        got, our_error = _call(ours, op, kwargs)
        if their_error is not None:
            assert our_error is not None, f"{op}{kwargs}: Chroma raised {their_error!r}, we did not"
            assert _same_error(our_error, their_error), f"{op}{kwargs}: {our_error!r} vs {their_error!r}"
            continue
        assert our_error is None, f"{op}{kwargs}: we raised {our_error!r}, Chroma did not"
        assert got == expected, f"{op}{kwargs}"
    assert ours.count() == theirs.count()
    final = theirs.get(include=["metadatas", "documents", "embeddings"])
    mine = ours.get(include=["metadatas", "documents", "embeddings"])
    assert mine["ids"] == final["ids"] and mine["metadatas"] == final["metadatas"]
    assert mine["documents"] == final["documents"]
    # chromadb 1.5.9 keeps the vectors of an update to missing ids and shows them once those
    # ids are added later (a bug); compare embeddings only where no such update happened
    if final["ids"] and not any(op == "update" for op, _ in ops):
        np.testing.assert_array_equal(mine["embeddings"], final["embeddings"])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    data=st.lists(
        st.tuples(s.metadata, st.lists(st.floats(-4, 4, width=32), min_size=3, max_size=3)),
        min_size=1,
        max_size=40,
    ),
    queries=st.lists(st.lists(st.floats(-4, 4, width=32), min_size=3, max_size=3), min_size=1, max_size=3),
    where=st.one_of(st.none(), s.where),
    k=st.integers(1, 10),
    space=st.sampled_from(["l2", "cosine", "ip"]),
)
def test_query_same_as_chroma(chroma_client, data, queries, where, k, space):
    """On small collections Chroma's HNSW is exact: same neighbours, same distances."""
    assume(not _fractional(where) and not _float_contains(where))
    vectors = np.array([v for _, v in data], dtype=np.float32)
    if space == "cosine":
        vectors[np.linalg.norm(vectors, axis=1) < 1e-3] = 1.0
        queries = [q if np.linalg.norm(q) > 1e-3 else [1.0, 0.0, 0.0] for q in queries]
    chroma_client.reset()
    config = {"hnsw": {"space": space}}
    theirs = chroma_client.create_collection("q-diff", configuration=config, embedding_function=None)
    ours = lakevec.EphemeralClient().create_collection(
        "q-diff", configuration=config, embedding_function=None
    )
    kwargs = {
        "ids": [f"r{i}" for i in range(len(data))],
        "embeddings": vectors,
        "metadatas": [m for m, _ in data],
    }
    theirs.add(**kwargs)
    ours.add(**kwargs)
    expected = theirs.query(query_embeddings=queries, n_results=k, where=where, include=["distances"])
    got = ours.query(query_embeddings=queries, n_results=k, where=where, include=["distances"])
    for their_ids, their_d, my_ids, my_d in zip(
        expected["ids"], expected["distances"], got["ids"], got["distances"]
    ):
        assert len(my_ids) == len(their_ids)
        np.testing.assert_allclose(my_d, their_d, rtol=1e-3, atol=1e-3)
        # ids must agree wherever the distance is not tied with a neighbour
        for i, (a, b) in enumerate(zip(my_ids, their_ids)):
            ties = [j for j in range(len(their_d)) if abs(their_d[j] - their_d[i]) < 1e-3]
            assert a == b or len(ties) > 1 or i == len(their_ids) - 1


hnsw_values = {
    "space": st.sampled_from(["l2", "cosine", "ip"]),
    "ef_construction": st.integers(1, 400),
    "ef_search": st.integers(1, 400),
    "max_neighbors": st.integers(2, 64),
    "sync_threshold": st.integers(2, 5000),
    "resize_factor": st.sampled_from([1.0, 1.2, 2.5]),
}
legacy_keys = {
    "hnsw:space": hnsw_values["space"],
    "hnsw:construction_ef": hnsw_values["ef_construction"],
    "hnsw:search_ef": hnsw_values["ef_search"],
    "hnsw:M": hnsw_values["max_neighbors"],
}


@st.composite
def _partial(draw, values):
    keys = draw(st.lists(st.sampled_from(sorted(values)), unique=True, max_size=len(values)))
    return {k: draw(values[k]) for k in keys}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    metadata=st.one_of(st.none(), _partial(legacy_keys).filter(bool)),
    source=st.sampled_from(["none", "configuration", "schema"]),
    hnsw=_partial(hnsw_values),
    drop=st.lists(st.sampled_from(["title", "year"]), unique=True),
)
def test_configuration_and_schema_as_chroma(chroma_client, metadata, source, hnsw, drop):
    """Chroma 1.5's precedence of configuration, legacy metadata keys and schema, and the schema
    a collection reports back (vector index, inverted indexes, keys), equal to chromadb's. The
    embedding function in the reported schema is left out: without one, Chroma reports
    ``legacy`` when a configuration was given and its default otherwise; lakevec reports
    ``legacy``."""
    from chromadb.api.types import Schema, StringInvertedIndexConfig, VectorIndexConfig

    configuration, schema = None, None
    if source == "configuration":
        configuration = {"hnsw": hnsw}
    elif source == "schema":
        schema = Schema()
        space = hnsw.pop("space", None)
        schema.create_index(config=VectorIndexConfig(space=space, hnsw=hnsw or None), key=None)
    if drop:
        schema = schema or Schema()
        for key in drop:
            schema.delete_index(config=StringInvertedIndexConfig(), key=key)
    chroma_client.reset()
    name = f"c{uuid.uuid4().hex[:8]}"
    kwargs = dict(schema=schema, configuration=configuration, metadata=metadata, embedding_function=None)
    try:
        theirs = chroma_client.create_collection(name, **kwargs)
    except chromadb.errors.InvalidArgumentError:
        with pytest.raises(lakevec.errors.InvalidArgumentError):
            lakevec.EphemeralClient().create_collection(name, **kwargs)
        return
    ours = lakevec.EphemeralClient().create_collection(name, **kwargs)
    assert ours.configuration["hnsw"] == theirs.configuration["hnsw"]
    assert _without_functions(ours.schema) == _without_functions(theirs.schema.serialize_to_json())


def _without_functions(schema: dict) -> dict:
    for place in (schema["defaults"], schema["keys"].get("#embedding", {})):
        place["float_list"]["vector_index"]["config"].pop("embedding_function", None)
    return schema

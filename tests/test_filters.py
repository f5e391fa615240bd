"""DuckDB-compiled filters against the plain-Python oracle, on random data and random filters."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakevec
from lakevec.read.mask import where_mask
from tests import strategies as s
from tests.oracle import match_document, match_where

rows = st.lists(st.tuples(s.metadata, s.document), min_size=1, max_size=40)


def _collection(data):
    client = lakevec.EphemeralClient()
    col = client.create_collection("filters", embedding_function=None)
    n = len(data)
    ids = [f"r{i}" for i in range(n)]
    # two writes, so filters run across fragments whose metadata fields differ
    half = n // 2
    for part in (slice(0, half), slice(half, n)):
        if part.start == part.stop:
            continue
        col.add(
            ids=ids[part],
            embeddings=np.zeros((part.stop - part.start, 2)),
            metadatas=[m for m, _ in data[part]],
            documents=[d for _, d in data[part]],
        )
    return col, ids


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=rows, where=s.where)
def test_where_matches_oracle(data, where):
    col, ids = _collection(data)
    expected = [i for i, (m, _) in zip(ids, data) if match_where(m, where)]
    assert col.get(where=where, include=[])["ids"] == expected  # DuckDB
    snap = col._engine.snapshot()  # the Arrow-kernel evaluator of the query path
    mask = where_mask(snap.rows, snap.manifest.fields, where) & snap.live
    assert sorted(snap.rows.column("id").take(np.flatnonzero(mask)).to_pylist()) == sorted(expected)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=rows, where_document=s.where_document, where=st.one_of(st.none(), s.where))
def test_where_document_matches_oracle(data, where_document, where):
    col, ids = _collection(data)
    expected = [
        i
        for i, (m, d) in zip(ids, data)
        if match_document(d, where_document) and (where is None or match_where(m, where))
    ]
    assert col.get(where=where, where_document=where_document, include=[])["ids"] == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=rows, where=s.extended_where)
def test_extended_where_matches_oracle(data, where):
    """lakevec's where extensions in get (DuckDB) and in query's filter (Arrow where it can)."""
    col, ids = _collection(data)
    expected = [i for i, (m, d) in zip(ids, data) if match_where(m, where, d, i)]
    assert col.get(where=where, include=[])["ids"] == expected
    hits = col.query(query_embeddings=[[0.0, 0.0]], n_results=len(ids), where=where, include=[])["ids"][0]
    assert sorted(hits) == sorted(expected)


def test_filter_values_are_parameters_not_sql():
    col = lakevec.EphemeralClient().create_collection(f"c{uuid.uuid4().hex[:6]}", embedding_function=None)
    evil = "x' OR 1=1 --"
    col.add(ids=["a", "b"], embeddings=[[0, 0], [1, 1]], metadatas=[{'we"ird': evil}, {'we"ird': "y"}])
    assert col.get(where={'we"ird': evil}, include=[])["ids"] == ["a"]
    assert col.get(where_document={"$contains": evil}, include=[])["ids"] == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=rows, descending=st.booleans())
def test_get_order_by_matches_python_sort(data, descending):
    """order_by a metadata key: its numbers, then its strings, then booleans; rows without it
    last; insertion order breaks ties."""
    col, ids = _collection(data)

    def sort_key(i):
        m = data[i][0] or {}
        value = m.get("n")
        sign = -1 if descending else 1
        if isinstance(value, bool):
            return (2, 0, "", i)
        if isinstance(value, (int, float)):
            return (0, sign * value, "", i)
        if isinstance(value, str):
            return (1, 0, value, i)  # strings: checked for ascending only below
        return (3, 0, "", i)

    got = col.get(order_by=[("n", "desc" if descending else "asc")], include=[])["ids"]
    expected = [ids[i] for i in sorted(range(len(ids)), key=sort_key)]
    numbers = [i for i in expected if sort_key(ids.index(i))[0] == 0]
    assert got[: len(numbers)] == numbers
    assert sorted(got) == sorted(ids)


def test_order_by_input_errors():
    col = lakevec.EphemeralClient().create_collection(f"c{uuid.uuid4().hex[:6]}", embedding_function=None)
    col.add(ids=["a"], embeddings=[[0, 0]])
    for bad in ([], [("n", "up")], "#embedding", [3]):
        with pytest.raises(lakevec.errors.InvalidArgumentError):
            col.get(order_by=bad)

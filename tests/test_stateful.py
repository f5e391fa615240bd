"""A random sequence of writes and reads, checked step by step against a plain-Python model,
with the client reopened, the collection compacted and vacuumed, and old versions read back
along the way."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import lakevec
from tests import strategies as s
from tests.oracle import match_document, match_where

ID_POOL = [f"id{i}" for i in range(30)]
upsert_metadata = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(s.KEYS), st.one_of(st.none(), s.scalar, s.list_value), min_size=1, max_size=3
    ),
)


def _batch(metadata=s.metadata):
    return st.lists(st.sampled_from(ID_POOL), min_size=1, max_size=8, unique=True).flatmap(
        lambda ids: st.tuples(
            st.just(ids),
            st.lists(
                st.lists(st.integers(-5, 5), min_size=2, max_size=2), min_size=len(ids), max_size=len(ids)
            ),
            st.lists(metadata, min_size=len(ids), max_size=len(ids)),
            st.lists(s.document, min_size=len(ids), max_size=len(ids)),
        )
    )


def _merge(old, new):
    if new is None:
        return old
    merged = dict(old or {})
    for k, v in new.items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    return merged or None


class CollectionMachine(RuleBasedStateMachine):
    @initialize(kind=st.sampled_from(["file", "memory", "s3"]))
    def open(self, kind):
        if kind == "file":
            self.tmp = tempfile.mkdtemp()
            self.root = self.tmp + "/root"
        elif kind == "s3":  # the module's fixture has moto's server running
            self.tmp = None
            self.root = f"s3://lakevec-test/stateful-{uuid.uuid4().hex}"
        else:
            self.tmp = None
            self.root = f"memory://stateful-{uuid.uuid4().hex}"
        self.col = lakevec.PersistentClient(self.root).create_collection("state", embedding_function=None)
        self.model: dict[str, dict] = {}
        self.next_seq = 0
        self.history: dict[int, tuple[list[str], list]] = {}  # version -> (ids in order, embeddings)

    def teardown(self):
        if getattr(self, "tmp", None):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _insert(self, id_, emb, meta, doc):
        self.model[id_] = {"emb": emb, "meta": _merge(None, meta), "doc": doc, "seq": self.next_seq}
        self.next_seq += 1

    @rule(batch=_batch())
    def add(self, batch):
        ids, embs, metas, docs = batch
        self.col.add(ids=ids, embeddings=embs, metadatas=metas, documents=docs)
        for i, e, m, d in zip(ids, embs, metas, docs):
            if i not in self.model:
                self._insert(i, e, m, d)

    @rule(batch=_batch(upsert_metadata))
    def upsert(self, batch):
        ids, embs, metas, docs = batch
        self.col.upsert(ids=ids, embeddings=embs, metadatas=metas, documents=docs)
        for i, e, m, d in zip(ids, embs, metas, docs):
            if i in self.model:
                row = self.model[i]
                row["emb"], row["meta"] = e, _merge(row["meta"], m)
                if d is not None:
                    row["doc"] = d
            else:
                self._insert(i, e, m, d)

    @rule(batch=_batch(upsert_metadata), with_embeddings=st.booleans())
    def update(self, batch, with_embeddings):
        ids, embs, metas, _ = batch
        self.col.update(ids=ids, embeddings=embs if with_embeddings else None, metadatas=metas)
        for i, e, m in zip(ids, embs, metas):
            if i in self.model:
                row = self.model[i]
                row["meta"] = _merge(row["meta"], m)
                if with_embeddings:
                    row["emb"] = e
                    # Chroma keeps the document when only embeddings/metadata change

    @rule(ids=st.lists(st.sampled_from(ID_POOL), min_size=1, max_size=5, unique=True))
    def delete_ids(self, ids):
        self.col.delete(ids=ids)
        for i in ids:
            self.model.pop(i, None)

    @rule(where=s.where)
    def delete_where(self, where):
        result = self.col.delete(where=where)
        gone = [i for i, r in self.model.items() if match_where(r["meta"], where)]
        assert result == {"deleted": len(gone)}
        for i in gone:
            del self.model[i]

    @rule(where=st.one_of(st.none(), s.where), where_document=st.one_of(st.none(), s.where_document))
    def get_filtered(self, where, where_document):
        got = self.col.get(where=where, where_document=where_document, include=["metadatas", "documents"])
        expected = [
            i
            for i, r in sorted(self.model.items(), key=lambda kv: kv[1]["seq"])
            if (where is None or match_where(r["meta"], where))
            and (where_document is None or match_document(r["doc"], where_document))
        ]
        assert got["ids"] == expected
        assert got["metadatas"] == [self.model[i]["meta"] for i in expected]
        assert got["documents"] == [self.model[i]["doc"] for i in expected]

    @rule(
        query=st.lists(st.integers(-5, 5), min_size=2, max_size=2),
        k=st.integers(1, 6),
        where=st.one_of(st.none(), s.where),
    )
    def query(self, query, k, where):
        got = self.col.query(query_embeddings=[query], n_results=k, where=where, include=["distances"])
        rows = [(i, r) for i, r in self.model.items() if where is None or match_where(r["meta"], where)]
        dists = sorted(float(np.sum((np.array(r["emb"], float) - query) ** 2)) for _, r in rows)[:k]
        np.testing.assert_allclose(got["distances"][0], dists, rtol=1e-5, atol=1e-5)
        assert all(i in dict(rows) for i in got["ids"][0])

    @precondition(lambda self: hasattr(self, "col"))
    @rule()
    def index_now(self):
        self.col.wait_for_index()

    @precondition(lambda self: hasattr(self, "col"))
    @rule()
    def reopen(self):
        self.col = lakevec.PersistentClient(self.root).get_collection("state", embedding_function=None)

    @precondition(lambda self: hasattr(self, "col"))
    @rule(target_rows=st.integers(3, 40))
    def compact(self, target_rows):
        self.col.compact(target_rows=target_rows)

    @precondition(lambda self: hasattr(self, "col"))
    @rule(keep=st.integers(1, 4))
    def vacuum(self, keep):
        kept = set(self.col.vacuum(older_than=timedelta(0), keep_versions=keep)["kept_versions"])
        self.history = {v: state for v, state in self.history.items() if v in kept}

    @precondition(lambda self: hasattr(self, "col"))
    @rule(pick=st.integers(0, 1_000_000))
    def read_old_version(self, pick):
        # which versions are kept depends on when background merges commit, so neither the draw
        # nor whether the rule may run can depend on them (Hypothesis calls that flaky data
        # generation): any version recorded and still kept, by position
        if not self.history:
            return
        versions = sorted(self.history)
        version = versions[pick % len(versions)]
        ids, embeddings = self.history[version]
        got = self.col.at(version).get(include=["embeddings"])
        assert got["ids"] == ids
        if ids:
            np.testing.assert_array_equal(got["embeddings"], embeddings)

    @invariant()
    def same_rows(self):
        if not hasattr(self, "col"):
            return
        assert self.col.count() == len(self.model)
        got = self.col.get(include=["embeddings"])
        order = [i for i, _ in sorted(self.model.items(), key=lambda kv: kv[1]["seq"])]
        assert got["ids"] == order
        embeddings = [self.model[i]["emb"] for i in order]
        if order:
            np.testing.assert_array_equal(got["embeddings"], embeddings)
        self.history[self.col.version] = (order, embeddings)


CollectionMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestCollectionMachine = CollectionMachine.TestCase


@pytest.fixture(autouse=True, scope="module")
def _s3_for_the_machine(s3_server):
    """The machine's S3 runs need moto's server (started once per session)."""

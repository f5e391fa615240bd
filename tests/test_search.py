"""The Search API (``collection.search``) against a plain-Python oracle: brute-force Knn, the
rank arithmetic row by row, RRF's formula, grouping and paging; with lakevec's expressions,
chromadb's own, and the dict wire form, in process and over both HTTP clients."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakevec
from lakevec import GroupBy, K, Knn, MaxK, MinK, Rrf, Search, Val
from lakevec.errors import InvalidArgumentError
from tests.oracle import match_where

chromadb = pytest.importorskip("chromadb")
from chromadb.execution import expression as cx  # noqa: E402

N, DIM = 240, 8
RNG = np.random.default_rng(7)
VECTORS = RNG.normal(size=(N, DIM)).astype(np.float32)
IDS = [f"id{i:03d}" for i in range(N)]
DOCS = [f"doc {i} {'cat' if i % 3 == 0 else 'dog'} {'red' if i % 4 == 0 else 'blue'}" for i in range(N)]
METAS = [
    {"g": i % 5, "s": "abcd"[i % 4], "x": float(i % 7)} | ({"odd": True} if i % 2 else {}) for i in range(N)
]
QUERIES = RNG.normal(size=(4, DIM)).astype(np.float32)


def _fill(collection) -> None:
    # two commits: the search spans fragments
    half = N // 2
    for part in (slice(0, half), slice(half, N)):
        collection.add(ids=IDS[part], embeddings=VECTORS[part], documents=DOCS[part], metadatas=METAS[part])


@pytest.fixture(scope="module")
def col():
    c = lakevec.EphemeralClient().create_collection("search", embedding_function=None)
    _fill(c)
    return c


# -- the oracle ----------------------------------------------------------------------------
def _passing(where) -> list[int]:
    return [i for i in range(N) if where is None or match_where(METAS[i], where, DOCS[i], IDS[i])]


def _knn(query, limit: int, where) -> list[tuple[int, float]]:
    """Brute-force nearest rows (squared L2, Chroma's default space) that pass ``where``."""
    rows = _passing(where)
    d = ((VECTORS[rows].astype(np.float64) - np.asarray(query, np.float64)) ** 2).sum(axis=1)
    order = np.argsort(d, kind="stable")[:limit]
    return [(rows[j], float(d[j])) for j in order]


def _score(rank: dict, row: int, where) -> float | None:
    """One row's score under a rank dict; None: the row drops out (a Knn without a default
    that did not find it)."""
    ((op, arg),) = rank.items()
    if op == "$val":
        return float(arg)
    if op == "$knn":
        hits = _knn(arg["query"], arg.get("limit", 16), where)
        for position, (r, d) in enumerate(hits):
            if r == row:
                return float(position) if arg.get("return_rank") else d
        return arg.get("default")
    if op in ("$abs", "$exp", "$log"):
        inner = _score(arg, row, where)
        if inner is None:
            return None
        fn = {"$abs": abs, "$exp": math.exp, "$log": lambda v: math.log(v) if v > 0 else math.nan}[op]
        try:
            return fn(inner)
        except OverflowError:
            return math.inf
    children = [arg["left"], arg["right"]] if op in ("$sub", "$div") else arg
    values = [_score(c, row, where) for c in children]
    if any(v is None for v in values):
        return None
    if op == "$sub":
        return values[0] - values[1]
    if op == "$div":
        return (
            values[0] / values[1]
            if values[1]
            else math.copysign(math.inf, values[0])
            if values[0]
            else math.nan
        )
    fn = {"$sum": sum, "$mul": math.prod, "$max": max, "$min": min}[op]
    return fn(values)


def _knn_rows(rank: dict, where) -> set[int]:
    ((op, arg),) = rank.items()
    if op == "$knn":
        return {r for r, _ in _knn(arg["query"], arg.get("limit", 16), where)}
    if op == "$val":
        return set()
    children = (
        [arg]
        if op in ("$abs", "$exp", "$log")
        else [arg["left"], arg["right"]]
        if isinstance(arg, dict)
        else arg
    )
    return set().union(*(_knn_rows(c, where) for c in children))


def oracle(payload: dict) -> dict[int, float]:
    """Row -> score of every row a ranked search returns before paging."""
    where, rank = payload.get("filter"), payload["rank"]
    out = {}
    for row in _knn_rows(rank, where):
        score = _score(rank, row, where)
        if score is not None:
            out[row] = score
    return out


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4)


def check_against_oracle(col, search) -> None:
    payload = search.to_dict()
    expected = oracle(payload)
    result = col.search(search.select(K.SCORE))
    ids, scores = result["ids"][0], result["scores"][0]
    assert sorted(ids) == sorted(IDS[r] for r in expected)
    for id_, score in zip(ids, scores):
        assert _close(score, expected[IDS.index(id_)]), (id_, score, expected[IDS.index(id_)])
    finite = [s for s in scores if not math.isnan(s)]
    assert finite == sorted(finite)  # best first


# -- Knn, filters, arithmetic, RRF -------------------------------------------------------------
WHERES = [
    None,
    {"g": {"$gte": 2}},
    {"$and": [{"s": {"$in": ["a", "c"]}}, {"#document": {"$contains": "cat"}}]},
    {"$or": [{"odd": {"$exists": False}}, {"#id": {"$in": ["id001", "id003"]}}]},
]


@pytest.mark.parametrize("where", WHERES)
def test_knn_matches_brute_force(col, where):
    q = QUERIES[0]
    for limit in (1, 7, 50):
        search = Search(where=where).rank(Knn(query=q.tolist(), limit=limit)).select(K.SCORE, K.DOCUMENT)
        result = col.search(search)
        hits = _knn(q, limit, where)
        assert result["ids"][0] == [IDS[r] for r, _ in hits]
        assert np.allclose(result["scores"][0], [d for _, d in hits], rtol=1e-4, atol=1e-4)
        assert result["documents"][0] == [DOCS[r] for r, _ in hits]


def test_defaults_decide_intersection_or_union(col):
    a, b = QUERIES[0].tolist(), QUERIES[1].tolist()
    near_a = {r for r, _ in _knn(a, 40, None)}
    near_b = {r for r, _ in _knn(b, 40, None)}
    both = col.search(Search().rank(Knn(query=a, limit=40) + Knn(query=b, limit=40)))["ids"][0]
    assert set(both) == {IDS[r] for r in near_a & near_b}
    one = col.search(Search().rank(Knn(query=a, limit=40, default=9.0) + Knn(query=b, limit=40)))["ids"][0]
    assert set(one) == {IDS[r] for r in near_b}
    union = Search().rank(Knn(query=a, limit=40, default=9.0) + Knn(query=b, limit=40, default=9.0))
    assert set(col.search(union)["ids"][0]) == {IDS[r] for r in near_a | near_b}
    check_against_oracle(col, union)


def test_rank_arithmetic_matches_the_oracle(col):
    a, b = QUERIES[0].tolist(), QUERIES[2].tolist()
    knn_a = Knn(query=a, limit=30, default=50.0)
    knn_b = Knn(query=b, limit=30, default=60.0)
    for rank in (
        knn_a * 0.7 + knn_b * 0.3,
        (knn_a - knn_b).abs() / 2 + 1,
        knn_a.max(knn_b) - knn_a.min(knn_b) * Val(0.5),
        (knn_a / 10).exp() + (knn_b + 1).log(),
        -knn_a,
    ):
        check_against_oracle(col, Search(where={"g": {"$ne": 1}}).rank(rank))


def test_rrf_matches_its_formula(col):
    a, b = QUERIES[0].tolist(), QUERIES[3].tolist()
    ranks_a = {r: i for i, (r, _) in enumerate(_knn(a, 60, None))}
    ranks_b = {r: i for i, (r, _) in enumerate(_knn(b, 60, None))}
    rrf = Rrf(
        [
            Knn(query=a, limit=60, return_rank=True, default=1000),
            Knn(query=b, limit=60, return_rank=True, default=1000),
        ],
        k=20,
        weights=[3.0, 1.0],
        normalize=True,
    )
    result = col.search(Search().rank(rrf).limit(25).select(K.SCORE))
    fused = {
        r: -(0.75 / (20 + ranks_a.get(r, 1000)) + 0.25 / (20 + ranks_b.get(r, 1000)))
        for r in set(ranks_a) | set(ranks_b)
    }
    best = sorted(fused.items(), key=lambda item: (item[1], item[0]))[:25]
    assert result["ids"][0] == [IDS[r] for r, _ in best]
    assert np.allclose(result["scores"][0], [s for _, s in best], rtol=1e-5)


def test_group_by_keeps_k_per_group(col):
    q = QUERIES[1].tolist()
    hits = _knn(q, 60, None)
    for aggregate, k in ((MinK(keys=[K.SCORE], k=2), 2), (MaxK(keys=[K.SCORE], k=1), 1)):
        search = Search().rank(Knn(query=q, limit=60)).group_by(GroupBy(keys=[K("g")], aggregate=aggregate))
        result = col.search(search.select(K.SCORE, "g"))
        largest = isinstance(aggregate, MaxK)
        kept = []
        for g in range(5):
            members = sorted((d, r) for r, d in hits if METAS[r]["g"] == g)
            kept += (members[::-1] if largest else members)[:k]
        expected = [IDS[r] for d, r in sorted(kept)]
        assert result["ids"][0] == expected
        assert [m["g"] for m in result["metadatas"][0]] == [METAS[IDS.index(i)]["g"] for i in expected]


def test_group_by_a_metadata_sort_key(col):
    q = QUERIES[2].tolist()
    hits = _knn(q, 80, None)
    search = (
        Search().rank(Knn(query=q, limit=80)).group_by(GroupBy(keys="s", aggregate=MaxK(keys=["x"], k=1)))
    )
    result = col.search(search.select("s", "x"))
    per_group = {}
    for r, _ in hits:
        s = METAS[r]["s"]
        if s not in per_group or METAS[r]["x"] > METAS[per_group[s]]["x"]:
            per_group[s] = r  # the first (nearest) row of the largest x
    assert sorted(result["ids"][0]) == sorted(IDS[r] for r in per_group.values())


def test_limit_offset_select_and_no_rank(col):
    q = QUERIES[0].tolist()
    full = col.search(Search().rank(Knn(query=q, limit=30)))["ids"][0]
    page = col.search(Search().rank(Knn(query=q, limit=30)).limit(5, offset=10))
    assert page["ids"][0] == full[10:15]
    assert page["documents"] == [None] and page["scores"] == [None] and page["select"] == [[]]
    everything = col.search(Search().rank(Knn(query=q, limit=3)).select_all())
    rows = everything.rows()[0]
    assert [r["id"] for r in rows] == full[:3]
    assert set(rows[0]) == {"id", "document", "embedding", "metadata", "score"}
    assert rows[0]["metadata"] == METAS[IDS.index(full[0])]
    assert np.allclose(rows[0]["embedding"], VECTORS[IDS.index(full[0])])
    # no rank: the filter's rows in insertion order, without scores
    plain = col.search(Search(where={"#document": {"$contains": "red"}}).limit(4, offset=1).select(K.SCORE))
    assert plain["ids"][0] == [IDS[i] for i in _passing({"#document": {"$contains": "red"}})][1:5]
    assert plain["scores"][0] == [None] * 4
    # a rank without a Knn ranks no rows, as in Chroma
    assert col.search(Search().rank(Val(1.0)))["ids"] == [[]]


def test_a_batch_answers_each_search(col):
    searches = [Search().rank(Knn(query=q.tolist(), limit=5)) for q in QUERIES]
    searches.append(Search(where={"g": 3}).limit(2))
    result = col.search(searches)
    assert len(result["ids"]) == len(searches)
    for q, ids in zip(QUERIES, result["ids"]):
        assert ids == [IDS[r] for r, _ in _knn(q, 5, None)]
    assert result["ids"][-1] == [IDS[i] for i in _passing({"g": 3})][:2]


def test_chromadb_expressions_and_dicts_give_the_same_results(col):
    q = QUERIES[1].tolist()

    def build(m):
        return (
            m.Search()
            .where((m.K("g") >= 1) & (m.K("s").is_in(["a", "b", "c"])) | m.K.DOCUMENT.contains("red"))
            .rank(
                m.Rrf(
                    [m.Knn(query=q, return_rank=True, limit=40), m.Knn(query=q, limit=20, return_rank=True)]
                )
            )
            .group_by(m.GroupBy(keys=[m.K("g")], aggregate=m.MinK(keys=[m.K.SCORE], k=3)))
            .limit(8)
            .select(m.K.DOCUMENT, m.K.SCORE, "s")
        )

    ours = col.search(build(lakevec))
    theirs = col.search(build(cx))
    wire = col.search(build(cx).to_dict())
    assert ours["ids"] == theirs["ids"] == wire["ids"] and len(ours["ids"][0]) == 8
    assert ours["scores"] == theirs["scores"] and ours["documents"] == theirs["documents"]
    for id_, meta in zip(ours["ids"][0], ours["metadatas"][0]):
        assert meta == {"s": METAS[IDS.index(id_)]["s"]}


def test_text_queries_are_embedded_with_the_collections_function():
    class Letters:
        def __call__(self, input):
            return [np.array([t.count("a"), t.count("b"), len(t)], dtype=np.float32) for t in input]

        @staticmethod
        def name() -> str:
            return "letters"

        def get_config(self) -> dict:
            return {}

    c = lakevec.EphemeralClient().create_collection("texts", embedding_function=Letters())
    c.add(ids=["x", "y", "z"], documents=["aaa", "bbb", "ab"])
    result = c.search(
        [Search().rank(Knn(query="aaab", limit=2)), cx.Search().rank(cx.Knn(query="bb", limit=1))]
    )
    assert result["ids"] == [["x", "z"], ["y"]]
    with pytest.raises(InvalidArgumentError):
        lakevec.EphemeralClient().create_collection("plain", embedding_function=None).search(
            Search().rank(Knn(query="text"))
        )


@pytest.mark.parametrize(
    "payload",
    [
        "not a search",
        {"rank": {"$knn": {"query": [0.0] * DIM, "key": "sparse"}}},
        {"rank": {"$knn": {"query": [0.0] * 3}}},
        {"rank": {"$knn": {"query": [0.0] * DIM, "limit": 0}}},
        {"rank": {"$bogus": 1}},
        {"rank": {"$sum": [{"$val": 1}]}},
        {"rank": {"$val": "x"}},
        {"filter": {"g": {"$bogus": 1}}},
        {"group_by": {"keys": ["g"]}},
        {"group_by": {"keys": ["g"], "aggregate": {"$min_k": {"keys": ["#score"], "k": 0}}}},
        {"limit": {"offset": -1}},
        {"limit": {"limit": 0}},
        {"select": {"keys": ["#nope"]}},
        {"unknown": 1},
    ],
)
def test_bad_searches_raise_invalid_argument(col, payload):
    with pytest.raises(InvalidArgumentError):
        col.search(payload)


# -- random rank expressions -----------------------------------------------------------------
def _rank_trees():
    knn = st.builds(
        lambda q, limit, default, rr: Knn(
            query=QUERIES[q].tolist(), limit=limit, default=default, return_rank=rr
        ),
        st.integers(0, len(QUERIES) - 1),
        st.integers(1, 40),
        st.none() | st.floats(0, 100),
        st.booleans(),
    )
    leaves = knn | st.builds(Val, st.floats(-5, 5))

    def grow(children):
        return (
            st.builds(lambda a, b: a + b, children, children)
            | st.builds(lambda a, b: a - b, children, children)
            | st.builds(lambda a, b: a * b, children, children)
            | st.builds(lambda a: abs(a), children)
            | st.builds(lambda a, b: a.max(b), children, children)
            | st.builds(lambda a, b: a.min(b), children, children)
        )

    return st.recursive(leaves, grow, max_leaves=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rank=_rank_trees(), where=st.sampled_from(WHERES))
def test_random_rank_expressions_match_the_oracle(col, rank, where):
    check_against_oracle(col, Search(where=where).rank(rank))


# -- over HTTP -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["chromadb", "lakevec"])
def test_search_over_http(served, kind):
    make = chromadb.HttpClient if kind == "chromadb" else lakevec.HttpClient
    client = make(host="127.0.0.1", port=served)
    c = client.create_collection(f"search-{kind}", embedding_function=None)
    c.add(ids=IDS, embeddings=VECTORS.tolist(), documents=DOCS, metadatas=METAS)
    m = cx if kind == "chromadb" else lakevec
    q = QUERIES[0].tolist()
    where = {"$and": [{"g": {"$gte": 2}}, {"#document": {"$contains": "cat"}}]}
    searches = [
        m.Search(where=where).rank(m.Knn(query=q, limit=6)).select(m.K.SCORE, m.K.DOCUMENT, "g"),
        m.Search().rank((m.Knn(query=q, limit=20, default=50.0) - 1).log()).limit(3).select(m.K.SCORE),
        m.Search(where={"s": "b"}).limit(2).select_all(),
    ]
    result = c.search(searches)
    local = lakevec.EphemeralClient().create_collection(f"mirror-{kind}", embedding_function=None)
    _fill(local)
    expected = local.search(searches)
    assert result["ids"] == expected["ids"]
    assert result["ids"][0] == [IDS[r] for r, _ in _knn(q, 6, where)]
    assert np.allclose(result["scores"][0], expected["scores"][0], rtol=1e-5)
    assert result["documents"][0] == expected["documents"][0]
    assert result["metadatas"][0] == [{"g": METAS[IDS.index(i)]["g"]} for i in result["ids"][0]]
    assert result["metadatas"][2] == expected["metadatas"][2]
    assert np.allclose(result["embeddings"][2], expected["embeddings"][2])
    rows = result.rows()
    assert rows[0][0]["id"] == result["ids"][0][0] and "score" in rows[0][0]
    errors = chromadb.errors if kind == "chromadb" else lakevec.errors
    with pytest.raises(errors.InvalidArgumentError):
        c.search(m.Search().rank(m.Knn(query=[1.0, 2.0])))

"""Hypothesis strategies for metadata, documents and Chroma filters over a small key space,
so random filters actually hit random data."""

from __future__ import annotations

from hypothesis import strategies as st

# "Color" beside "color": keys that differ only in case are different keys (DuckDB names are not)
KEYS = ["color", "Color", "n", "flag", "tags"]
WORDS = ["red", "green", "blue", "cat", "dog"]

scalar_str = st.sampled_from(WORDS)
scalar_int = st.integers(-3, 3)
scalar_float = st.sampled_from([-1.5, 0.0, 1.0, 2.5])
scalar_num = st.one_of(scalar_int, scalar_float)
scalar = st.one_of(scalar_str, scalar_num, st.booleans())
list_value = st.one_of(
    st.lists(scalar_str, min_size=1, max_size=3),
    st.lists(scalar_int, min_size=1, max_size=3),
    st.lists(st.booleans(), min_size=1, max_size=2),
)
metadata = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(KEYS), st.one_of(scalar, list_value), min_size=1, max_size=4),
)
document = st.one_of(st.none(), st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join))


def _leaf():
    key = st.sampled_from(KEYS)
    return st.one_of(
        st.builds(lambda k, v: {k: v}, key, scalar),
        st.builds(lambda k, op, v: {k: {op: v}}, key, st.sampled_from(["$eq", "$ne"]), scalar),
        st.builds(
            lambda k, op, v: {k: {op: v}}, key, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), scalar_num
        ),
        st.builds(
            lambda k, op, v: {k: {op: v}},
            key,
            st.sampled_from(["$in", "$nin"]),
            st.one_of(
                st.lists(scalar_str, min_size=1, max_size=3),
                st.lists(scalar_int, min_size=1, max_size=3),
                st.lists(scalar_float, min_size=1, max_size=3),
            ),
        ),
        st.builds(
            lambda k, op, v: {k: {op: v}},
            key,
            st.sampled_from(["$contains", "$not_contains"]),
            st.one_of(scalar_str, scalar_int, scalar_float, st.booleans()),
        ),
    )


where = st.recursive(
    _leaf(),
    lambda inner: st.builds(
        lambda op, clauses: {op: clauses},
        st.sampled_from(["$and", "$or"]),
        st.lists(inner, min_size=2, max_size=3),
    ),
    max_leaves=5,
)

_doc_leaf = st.one_of(
    st.builds(lambda op, w: {op: w}, st.sampled_from(["$contains", "$not_contains"]), st.sampled_from(WORDS)),
    st.builds(
        lambda op, w: {op: w},
        st.sampled_from(["$regex", "$not_regex"]),
        st.sampled_from(["^red", "dog$", "c.t", "(blue|green) "]),
    ),
)
where_document = st.recursive(
    _doc_leaf,
    lambda inner: st.builds(
        lambda op, clauses: {op: clauses},
        st.sampled_from(["$and", "$or"]),
        st.lists(inner, min_size=2, max_size=3),
    ),
    max_leaves=3,
)


_PATTERNS = {
    "$regex": ["^re", "g$", "[ao]", "c.t"],
    "$not_regex": ["^re", "[ao]"],
    "$like": ["r%", "%e%", "_og", "blue"],
    "$ilike": ["R%", "%E%", "_OG"],
}


def _extension_leaf():
    key = st.sampled_from(KEYS)
    text_op = st.sampled_from(sorted(_PATTERNS))
    return st.one_of(
        _leaf(),
        st.builds(lambda k, v: {k: {"$exists": v}}, key, st.booleans()),
        text_op.flatmap(lambda op: st.builds(lambda k, p: {k: {op: p}}, key, st.sampled_from(_PATTERNS[op]))),
        st.builds(
            lambda op, w: {"#document": {op: w}},
            st.sampled_from(["$contains", "$not_contains", "$like", "$ilike"]),
            st.sampled_from(["red", "%dog%", "cat%", "%E%"]),
        ),
        st.builds(
            lambda op, w: {"#document": {op: w}},
            st.sampled_from(["$regex", "$not_regex"]),
            st.sampled_from(["^red", "c.t"]),
        ),
        st.builds(
            lambda ids: {"#id": {"$in": ids}},
            st.lists(st.sampled_from(["r0", "r1", "r5", "zz"]), min_size=1, max_size=3),
        ),
        st.builds(
            lambda i, op: {"#id": {op: i}}, st.sampled_from(["r0", "r3"]), st.sampled_from(["$eq", "$ne"])
        ),
    )


# lakevec's where: Chroma's operators plus $not, $exists, text patterns, #document and #id
extended_where = st.recursive(
    _extension_leaf(),
    lambda inner: st.one_of(
        st.builds(
            lambda op, clauses: {op: clauses},
            st.sampled_from(["$and", "$or"]),
            st.lists(inner, min_size=2, max_size=3),
        ),
        st.builds(lambda w: {"$not": w}, inner),
    ),
    max_leaves=5,
)

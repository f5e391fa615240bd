"""Clients, collections, tenants and databases."""

from __future__ import annotations

import pytest

import lakevec
from lakevec.errors import AuthorizationError, InternalError, InvalidArgumentError, NotFoundError


def test_create_get_list_count_delete(client):
    a = client.create_collection("alpha", metadata={"team": "x"}, embedding_function=None)
    client.create_collection("beta", embedding_function=None)
    assert client.get_collection("alpha").id == a.id
    assert [c.name for c in client.list_collections()] == ["alpha", "beta"]
    assert [c.name for c in client.list_collections(limit=1, offset=1)] == ["beta"]
    assert client.count_collections() == 2
    with pytest.raises(InternalError):
        client.create_collection("alpha")
    assert client.create_collection("alpha", get_or_create=True).id == a.id
    assert client.get_or_create_collection("alpha").metadata == {"team": "x"}
    client.delete_collection("alpha")
    assert client.count_collections() == 1
    with pytest.raises(NotFoundError):
        client.get_collection("alpha")


def test_collection_metadata_and_configuration(client):
    col = client.create_collection(
        "conf", metadata={"hnsw:space": "cosine", "hnsw:M": 32}, embedding_function=None
    )
    assert col.configuration["hnsw"]["space"] == "cosine"
    assert col.configuration["hnsw"]["max_neighbors"] == 32
    col2 = client.create_collection("conf2", configuration={"hnsw": {"space": "ip", "ef_search": 50}})
    assert col2.configuration["hnsw"] == {
        "space": "ip",
        "ef_construction": 100,
        "ef_search": 50,
        "max_neighbors": 16,
        "resize_factor": 1.2,
        "sync_threshold": 1000,
    }
    assert col2.metadata is None
    with pytest.raises(InvalidArgumentError):
        client.create_collection("conf3", configuration={"hnsw": {"space": "hamming"}})
    with pytest.raises(InvalidArgumentError):
        client.create_collection("conf4", metadata={})


def test_modify(client):
    col = client.create_collection("old-name", metadata={"a": 1}, embedding_function=None)
    col.add(ids=["x"], embeddings=[[1, 2]])
    col.modify(name="new-name", metadata={"b": 2})
    assert col.name == "new-name" and col.metadata == {"b": 2}
    again = client.get_collection("new-name")
    assert again.id == col.id and again.count() == 1 and again.metadata == {"b": 2}
    with pytest.raises(NotFoundError):
        client.get_collection("old-name")
    col.modify(configuration={"hnsw": {"ef_search": 200}})
    assert client.get_collection("new-name").configuration["hnsw"]["ef_search"] == 200
    with pytest.raises(InvalidArgumentError):
        col.modify(configuration={"hnsw": {"space": "cosine"}})
    client.create_collection("taken", embedding_function=None)
    with pytest.raises(InternalError):
        col.modify(name="taken")
    with pytest.raises(InvalidArgumentError):
        col.modify(name="x")


def test_tenants_and_databases_are_isolated(root):
    admin = lakevec.AdminClient(path=root)
    admin.create_tenant("acme")
    admin.create_database("prod", tenant="acme")
    admin.create_database("other")
    assert admin.get_tenant("acme") == {"name": "acme"}
    assert admin.get_database("prod", tenant="acme")["name"] == "prod"
    assert [d["name"] for d in admin.list_databases()] == ["default_database", "other"]
    with pytest.raises(NotFoundError):
        admin.get_tenant("nope")
    with pytest.raises(NotFoundError):
        lakevec.PersistentClient(root, tenant="nope")

    default = lakevec.PersistentClient(root)
    prod = lakevec.PersistentClient(root, tenant="acme", database="prod")
    default.create_collection("docs", embedding_function=None).add(ids=["d"], embeddings=[[1, 1]])
    prod.create_collection("docs", embedding_function=None).add(ids=["p1", "p2"], embeddings=[[1, 1], [2, 2]])
    assert default.get_collection("docs").count() == 1
    assert prod.get_collection("docs").count() == 2
    assert default.count_collections() == 1 and prod.count_collections() == 1

    admin.delete_database("prod", tenant="acme")
    with pytest.raises(NotFoundError):
        prod.get_collection("docs")
    assert default.get_collection("docs").count() == 1


def test_ephemeral_clients_are_private():
    one, two = lakevec.EphemeralClient(), lakevec.EphemeralClient()
    one.create_collection("mine", embedding_function=None)
    assert two.count_collections() == 0
    assert lakevec.Client().count_collections() == 0


def test_reset_only_when_allowed(root):
    client = lakevec.PersistentClient(root)
    client.create_collection("keep", embedding_function=None)
    with pytest.raises(AuthorizationError):
        client.reset()
    assert client.count_collections() == 1
    allowed = lakevec.PersistentClient(root, settings=lakevec.Settings(allow_reset=True))
    assert allowed.reset() is True
    assert allowed.count_collections() == 0
    allowed.create_collection("fresh", embedding_function=None)
    assert lakevec.PersistentClient(root).count_collections() == 1


def test_heartbeat_and_version(client):
    assert isinstance(client.heartbeat(), int)
    assert client.get_version() == lakevec.__version__


def test_delete_collection_while_background_merges_run(tmp_path):
    """Deleting a collection first stops and joins its background folds and merges: a merge
    writing into data/ while the tree was removed made the delete fail (Directory not empty)."""
    client = lakevec.PersistentClient(str(tmp_path))
    for round_ in range(3):
        col = client.create_collection(f"busy{round_}", embedding_function=None)
        for b in range(12):  # past the small-fragment merge count, so a merge is under way
            col.add(ids=[f"r{b}-{i}" for i in range(5)], embeddings=[[float(b), float(i)] for i in range(5)])
        client.delete_collection(f"busy{round_}")
        assert not (tmp_path / "collections" / str(col.id)).exists()
    assert client.count_collections() == 0

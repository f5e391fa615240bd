"""Copy-on-write forks: a collection whose manifests list another collection's files.

A fork lives beside its source (``<collections>/<fork-id>``) with a log of its own. Its first
manifest lists the source's fragments, deletion files, indexes and postings by paths relative to
its own directory that climb to the sibling: ``../<source-id>/data/<fragment>.parquet``. Writes
to the fork add files under its own directory only, so neither collection ever sees the other's
later commits, and no file is copied.

The source must not delete what a fork reads. Every collection whose files a fork lists gets a
marker ``forks/<fork-id>.json`` in its directory, written before the fork's manifest; its vacuum keeps
every file that a manifest of a live fork names, and deleting it keeps those files until the
last fork that reads them is deleted too.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import time

from lakevec.lake.log import VersionLog, retained_manifests
from lakevec.lake.manifest import FILE_DIRS, FragmentEntry, Manifest
from lakevec.lake.storage import Storage

FORKS = "forks"
_UP = "../"


def resolve(directory: str, relative: str) -> str:
    """The full path of a manifest path, which may name a sibling collection's file."""
    if relative.startswith(_UP):
        return f"{posixpath.dirname(directory)}/{relative[len(_UP) :]}"
    return f"{directory}/{relative}"


def foreign(relative: str) -> bool:
    """Whether a manifest path names another collection's file (never deleted from here)."""
    return relative.startswith(_UP)


def owner(relative: str) -> str | None:
    """The directory name of the collection that holds a foreign path's file."""
    return relative[len(_UP) :].split("/", 1)[0] if foreign(relative) else None


def _shared(name: str, relative: str) -> str:
    return relative if foreign(relative) else f"{_UP}{name}/{relative}"


def _shared_optional(name: str, relative: str | None) -> str | None:
    return None if relative is None else _shared(name, relative)


def fork_manifest(source: Manifest, source_name: str) -> Manifest:
    """Version 0 of a fork of ``source`` (whose directory's base name is ``source_name``)."""

    def share(e: FragmentEntry) -> FragmentEntry:
        return dataclasses.replace(
            e,
            path=_shared(source_name, e.path),
            deletes=_shared_optional(source_name, e.deletes),
            index=_shared_optional(source_name, e.index),
            index_route=_shared_optional(source_name, e.index_route),
            index_projection=_shared_optional(source_name, e.index_projection),
            text=_shared_optional(source_name, e.text),
        )

    return dataclasses.replace(
        source,
        version=0,
        parent=None,
        operation="fork",
        timestamp=time.time(),
        fragments=tuple(share(e) for e in source.fragments),
    )


def owners(manifest: Manifest) -> set[str]:
    """The directory names of the collections whose files ``manifest`` lists."""
    return {name for path in manifest.files() if (name := owner(path)) is not None}


def register(storage: Storage, directory: str, fork_name: str, source: str) -> None:
    """Mark ``directory`` as read by the fork ``fork_name`` (forked from ``source``)."""
    body = json.dumps({"fork": fork_name, "source": source, "created": time.time()}).encode()
    storage.overwrite(f"{directory}/{FORKS}/{fork_name}.json", body)


def _manifests(storage: Storage, directory: str) -> list[Manifest] | None:
    """Every retained manifest of the collection in ``directory``; None if it has no log."""
    log = VersionLog(storage, f"{directory}/versions")
    latest = log.latest()
    return None if latest is None else retained_manifests(log, latest)


def markers(storage: Storage, directory: str) -> list[tuple[str, dict]]:
    """(fork name, marker) of every fork registered in ``directory``."""
    out = []
    for file, _, _ in storage.list_files(f"{directory}/{FORKS}"):
        if not file.endswith(".json"):
            continue  # a marker being written
        data = storage.read_if_exists(f"{directory}/{FORKS}/{file}")
        if data is not None:
            out.append((file[: -len(".json")], json.loads(data)))
    return out


@dataclasses.dataclass
class ForkReferences:
    needed: set[str]  # paths relative to ``directory`` that live forks read
    live: list[str]  # forks whose log exists
    gone: list[str]  # markers of forks deleted (or whose creation failed) before ``cutoff``


def references(storage: Storage, directory: str, cutoff: float) -> ForkReferences:
    """What the live forks registered in ``directory`` read of it. A marker whose fork has no
    log counts as gone only once it is older than ``cutoff`` (its fork may be mid-creation)."""
    name = posixpath.basename(directory)
    parent = posixpath.dirname(directory)
    prefix = f"{_UP}{name}/"
    out = ForkReferences(set(), [], [])
    for fork, marker in markers(storage, directory):
        manifests = _manifests(storage, f"{parent}/{fork}")
        if manifests is None:
            (out.gone if marker.get("created", 0) < cutoff else out.live).append(fork)
            continue
        out.live.append(fork)
        for m in manifests:
            out.needed |= {p[len(prefix) :] for p in m.files() if p.startswith(prefix)}
    return out


def release(storage: Storage, directory: str, refs: ForkReferences | None = None) -> None:
    """Delete what is left of a deleted collection that no live fork reads any more (its whole
    directory once no fork reads anything of it)."""
    if refs is None:
        refs = references(storage, directory, cutoff=time.time())
    if not refs.live:
        storage.delete_tree(directory)
        return
    for sub in FILE_DIRS:
        for name, _, _ in storage.list_files(f"{directory}/{sub}"):
            if f"{sub}/{name}" not in refs.needed:
                storage.delete(f"{directory}/{sub}/{name}")
    for fork in refs.gone:
        storage.delete(f"{directory}/{FORKS}/{fork}.json")


def delete_collection(storage: Storage, directory: str) -> None:
    """Delete a collection's directory, keeping the files live forks read; then release what
    this collection kept alive in deleted collections it was forked from."""
    latest = _manifests(storage, directory) or []
    sources = set().union(*(owners(m) for m in latest)) if latest else set()
    refs = references(storage, directory, cutoff=time.time())
    if refs.live:
        storage.delete_tree(f"{directory}/versions")
        storage.delete_tree(f"{directory}/tags")
        release(storage, directory, refs)
    else:
        storage.delete_tree(directory)
    parent = posixpath.dirname(directory)
    for name in sources:
        source = f"{parent}/{name}"
        if VersionLog(storage, f"{source}/versions").latest() is None:
            release(storage, source)


def count(storage: Storage, directory: str) -> int:
    """How many live collections were forked from this one (directly)."""
    name = posixpath.basename(directory)
    parent = posixpath.dirname(directory)
    return sum(
        1
        for fork, marker in markers(storage, directory)
        if marker.get("source") == name
        and VersionLog(storage, f"{parent}/{fork}/versions").latest() is not None
    )

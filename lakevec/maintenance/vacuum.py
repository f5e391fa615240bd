"""Delete what no retained version needs: old manifests, superseded fragments, indexes and
deletion files, and the orphans of writes that crashed before their commit.

Retention, as in Delta's VACUUM: every version committed within ``older_than`` of now is kept,
and so are the newest ``keep_versions`` versions (the latest always). A file is deleted only if
no retained version lists it *and* it was last modified before the window began, so the files
of a write in flight (written, not yet committed) are never touched. A reader that pinned a
version older than the window may lose its files: the window is the contract. Versions that
read-only views (``collection.at(...)``) alive in this process read, tagged versions, and the
files that live forks of this collection read are always kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lakevec.engine import CollectionEngine
from lakevec.lake.forks import FORKS, references
from lakevec.lake.log import version_name
from lakevec.lake.manifest import FILE_DIRS


@dataclass
class VacuumResult:
    kept_versions: list[int]
    deleted_versions: list[int] = field(default_factory=list)
    deleted_files: list[str] = field(default_factory=list)  # relative to the collection
    deleted_bytes: int = 0
    dry_run: bool = False


def vacuum(engine: CollectionEngine, older_than: float, keep_versions: int, dry_run: bool) -> VacuumResult:
    """``older_than`` in seconds; ``keep_versions`` >= 1."""
    if engine.pinned_version is not None:
        raise engine.read_only_error()
    cutoff = time.time() - older_than
    latest = engine.snapshot(fresh=True).version
    manifests = engine.manifests()
    tagged = set(engine.tags.all().values())
    newest = {m.version for m in manifests[-keep_versions:]} | {latest} | engine.pinned_versions() | tagged
    kept = [m for m in manifests if m.version in newest or m.timestamp >= cutoff]
    forks = references(engine.storage, engine.directory, cutoff)
    needed = set(forks.needed)
    for m in kept:
        needed |= m.files()
    result = VacuumResult(kept_versions=[m.version for m in kept], dry_run=dry_run)

    storage = engine.storage
    for sub in FILE_DIRS:
        for name, size, mtime in storage.list_files(engine.cache.path(sub)):
            relative = f"{sub}/{name}"
            if relative in needed or mtime >= cutoff:
                continue
            result.deleted_files.append(relative)
            result.deleted_bytes += size
    kept_numbers = set(result.kept_versions)
    result.deleted_versions = [m.version for m in manifests if m.version not in kept_numbers]
    if dry_run:
        return result
    # files first, then the manifests that listed them: a crash in between leaves manifests
    # whose files are gone only for versions already outside the window
    for relative in result.deleted_files:
        storage.delete(engine.cache.path(relative))
    for fork in forks.gone:
        storage.delete(f"{engine.directory}/{FORKS}/{fork}.json")
    for version in result.deleted_versions:
        storage.delete(f"{engine.log.directory}/{version_name(version)}")
    return result

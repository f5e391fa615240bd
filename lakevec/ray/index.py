"""Index builds as Ray tasks: one task per tier (:mod:`lakevec.maintenance.tiers`), one commit."""

from __future__ import annotations

import math
from typing import Any

import ray

from lakevec.maintenance.indexer import GROUP_MAX_ROWS, HEAD_MAX_ROWS
from lakevec.maintenance.tiers import Tier, build_tier, commit_tiers, plan_tiers
from lakevec.ray.target import Target


def _build(target: Target, tier: Tier, threads: int) -> Any:
    return build_tier(target.collection()._engine, tier, threads)


def build_indexes(
    collection: Any, *, rows_per_index: int | None = None, num_cpus: int = 1, target: Target | None = None
) -> dict[str, Any]:
    """Index every unindexed row of ``collection`` with Ray tasks (``num_cpus`` cores and as
    many usearch threads each), committed in one version. By default the tail is cut into as
    many tiers as the cluster runs tasks at once (between 262,144 and 2,000,000 rows each)."""
    target = target or Target.of(collection)
    engine = collection._engine
    if rows_per_index is None:
        slots = max(1, int(ray.cluster_resources().get("CPU", 1)) // num_cpus)
        tail = sum(e.live_rows for e in engine.snapshot(fresh=True).manifest.fragments if e.index is None)
        rows_per_index = min(GROUP_MAX_ROWS, max(HEAD_MAX_ROWS, math.ceil(tail / slots)))
    tiers = plan_tiers(engine, rows_per_index)
    if not tiers:
        return {"version": None, "indexes": 0, "rows": 0}
    task = ray.remote(num_cpus=num_cpus)(_build)
    built = ray.get([task.remote(target, tier, num_cpus) for tier in tiers])
    manifest = commit_tiers(engine, built)
    return {
        "version": manifest.version if manifest else None,
        "indexes": len(built),
        "rows": sum(t.rows for t in tiers),
    }

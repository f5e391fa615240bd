"""Index builds as Ray tasks: one task per tier (:mod:`lakevec.maintenance.tiers`), one commit."""

from __future__ import annotations

import math
import time
from typing import Any

import ray

from lakevec.maintenance.indexer import GROUP_MAX_ROWS, HEAD_MAX_ROWS
from lakevec.maintenance.tiers import Tier, build_tier, commit_tiers, plan_tiers
from lakevec.ray.target import Target


def _build(target: Target, tier: Tier, threads: int) -> tuple[Any, float]:
    start = time.perf_counter()
    return build_tier(target.collection()._engine, tier, threads), time.perf_counter() - start


def build_indexes(
    collection: Any, *, rows_per_index: int | None = None, num_cpus: int = 1, target: Target | None = None
) -> dict[str, Any]:
    """Index every unindexed row of ``collection`` with Ray tasks (``num_cpus`` cores and as
    many usearch threads each), committed in one version. By default the tail is cut into as
    many tiers as the cluster runs tasks at once (between 262,144 and 2,000,000 rows each).
    The result says what was committed, and each task's rows and seconds."""
    target = target or Target.of(collection)
    engine = collection._engine
    if rows_per_index is None:
        slots = max(1, int(ray.cluster_resources().get("CPU", 1)) // num_cpus)
        tail = sum(e.live_rows for e in engine.snapshot(fresh=True).manifest.fragments if e.index is None)
        rows_per_index = min(GROUP_MAX_ROWS, max(HEAD_MAX_ROWS, math.ceil(tail / slots)))
    tiers = plan_tiers(engine, rows_per_index)
    if not tiers:
        return {"version": None, "indexes": 0, "rows": 0, "tasks": []}
    task = ray.remote(num_cpus=num_cpus)(_build)
    done = ray.get([task.remote(target, tier, num_cpus) for tier in tiers])
    manifest = commit_tiers(engine, [built for built, _ in done])
    return {
        "version": manifest.version if manifest else None,
        "indexes": len(done),
        "rows": sum(t.rows for t in tiers),
        "tasks": [{"rows": tier.rows, "seconds": seconds} for tier, (_, seconds) in zip(tiers, done)],
    }

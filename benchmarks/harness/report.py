"""The report: every figure as JSON, tables and goal checks as markdown, and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.common import heading
from benchmarks.harness.datasets import SELECTIVITIES

TARGET_RECALL = 0.95

#: why a goal is missed, from profiling the current code (line_profiler and stage timings over
#: 2,000 queries on clustered-10k); printed under the goal table when the goal is missed
WHY = {
    "latency": "A lakevec query at 10k is ~0.2 ms of which usearch's search is ~0.05 ms; the rest is "
    "fixed Python around it (float32 re-rank of the candidates ~25 us, result values ~20 us, "
    "validation, snapshot check, small numpy calls). A fixed cost weighs most on small collections. At 1M "
    "the int8 index's search is cheaper than raw usearch's float32 one, and a collection's index "
    "tiers are searched in one native call.",
    "filtered": "Chroma's filtered query grows with the collection (7 ms at 10k, 33-140 ms at 100k), "
    "lakevec's stays near its fixed per-query cost (~0.3-1 ms), so the ratio grows with size and "
    "is lowest at 10k.",
    "unfiltered": "Same fixed per-query cost as the latency goal; Chroma's query is ~1 ms of which "
    "hnswlib is a part, so the ratio sits near 2x and moves with machine noise.",
    "disk": "Fragments keep float32 vectors and the HNSW index an int8 copy (float16 below 128 "
    "dimensions); folds delete the index files they supersede, but fragments that background "
    "merges replaced stay for the versions of vacuum's 7-day window.",
    "ingest": "Until indexed, lakevec builds the same HNSW graph Chroma does, on the same 2 cores.",
    "recall/QPS": "LanceDB's exact re-rank of refine_factor x k PQ candidates reaches recall HNSW does "
    "not reach at ef 1280 (uniform vectors, or the last 0.002 at 1M), at a small fraction of the QPS.",
}


def fmt(v, digits: int = 0) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def tuned(r: dict) -> dict | None:
    """The fastest curve point with recall@10 >= TARGET_RECALL (the default if no curve)."""
    points = [p for p in r.get("curve") or [] if p["recall"] >= TARGET_RECALL]
    if not r.get("curve") and r["query"] and r["query"]["recall"] >= TARGET_RECALL:
        points = [r["query"] | {"setting": "exact"}]
    return max(points, key=lambda p: p["qps"]) if points else None


def disk_mb(r: dict) -> str:
    if not r["disk_bytes"]:
        return "n/a"
    text = fmt(r["disk_bytes"] / 1e6, 1)
    if r.get("disk_bytes_vacuumed"):
        text += f" ({fmt(r['disk_bytes_vacuumed'] / 1e6, 1)} vacuumed)"
    return text


def ratio(a, b) -> float | None:
    return None if a is None or b in (None, 0) else a / b


def goals(name: str, systems: dict) -> list[tuple[str, str, bool | None]]:
    """(goal, measured, met) for one dataset."""
    lake, chroma, lance, raw = (systems.get(s) for s in ("lakevec", "chromadb", "lancedb", "usearch"))
    out: list[tuple[str, str, bool | None]] = []
    if not lake:
        return out
    if chroma:
        x = ratio(lake["ingest_vectors_per_s"], chroma["ingest_vectors_per_s"])
        y = ratio(chroma["ingest_to_indexed_s"], lake["ingest_to_indexed_s"])
        out.append(("ingest >= 20x Chroma", f"{x:.1f}x until add returns; {y:.1f}x until indexed", x >= 20))
        lt, ct = tuned(lake), tuned(chroma)
        if lt and ct:
            q = lt["qps"] / ct["qps"]
            out.append(
                (
                    f"unfiltered QPS >= 2x Chroma at recall@10 >= {TARGET_RECALL}",
                    f"{q:.2f}x (lakevec ef {lt['setting']} recall {lt['recall']:.3f}; Chroma ef {ct['setting']} "
                    f"recall {ct['recall']:.3f})",
                    q >= 2,
                )
            )
        for s in SELECTIVITIES:
            lf, cf = lake["filtered"][str(s)], chroma["filtered"][str(s)]
            q = lf["qps"] / cf["qps"]
            out.append(
                (
                    f"filtered {s}% QPS >= 50x Chroma at recall >= {TARGET_RECALL}",
                    f"{q:.1f}x, recall {lf['recall']:.3f} (Chroma {cf['recall']:.3f})",
                    q >= 50 and lf["recall"] >= TARGET_RECALL,
                )
            )
        if chroma.get("disk_bytes"):
            d = lake["disk_bytes"] / chroma["disk_bytes"]
            vac = lake.get("disk_bytes_vacuumed")
            if vac:
                dv = vac / chroma["disk_bytes"]
                out.append(("disk <= Chroma's", f"{dv:.2f}x after vacuum ({d:.2f}x before)", dv <= 1))
            else:
                out.append(("disk <= Chroma's", f"{d:.2f}x", d <= 1))
    if raw:
        lt, rt = tuned(lake), tuned(raw)
        if lt and rt:
            lat = lt["p50_ms"] / rt["p50_ms"]
            out.append(
                (
                    "latency <= 1.3x raw usearch at recall@10 >= 0.95",
                    f"{lat:.2f}x (p50 {lt['p50_ms']:.3f} vs {rt['p50_ms']:.3f} ms)",
                    lat <= 1.3,
                )
            )
    if lance and lance["curve"] and lake["curve"]:
        # LanceDB's QPS interpolated at each of lakevec's recall levels within LanceDB's range
        lr = sorted((p["recall"], p["qps"]) for p in lance["curve"])
        rec, qps = np.array([p[0] for p in lr]), np.array([p[1] for p in lr])
        above = [
            p["qps"] >= np.interp(p["recall"], rec, qps)
            for p in lake["curve"]
            if rec.min() <= p["recall"] <= rec.max()
        ]
        best = max(p["recall"] for p in lake["curve"]), rec.max()
        out.append(
            (
                "recall/QPS curve at or above LanceDB's",
                f"{sum(above)} of {len(above)} comparable points above; max recall {best[0]:.3f} vs {best[1]:.3f}",
                (all(above) and best[0] >= best[1]) if above else best[0] >= best[1],
            )
        )
    return out


def markdown(result: dict) -> str:
    lines = heading("lakevec vs Chroma, LanceDB, usearch and exact search", result)
    v = result["versions"]
    lines += [
        "Versions: " + ", ".join(f"{k} {v[k]}" for k in sorted(v)) + ".",
        f"Single queries one after another, k = 10, {result['queries']} queries, warm-up 10, fastest of "
        f"{result['reps']} repetitions (median in the JSON; a workload that passes 60 s stops, after "
        f"at least 30 queries); ingest in batches of {result['batch']:,}; "
        "every system in its own process, each using both cores at its default thread count. "
        "Cold open: a new process imports the system, opens the stored collection and answers one "
        "query (best of 3; the files are in the OS page cache). Peak RSS: above the process's size "
        "once the dataset is loaded. lakevec's disk is also shown after `vacuum(older_than=0)`. "
        "Recall/QPS curves sweep ef_search (lakevec, Chroma, usearch) and refine_factor (LanceDB "
        "IVF_PQ, nprobes 50).",
        "",
    ]
    for name, ds in result["datasets"].items():
        sys_ = ds["systems"]
        lines += [
            f"## {name} ({ds['n']:,} × 384)",
            "",
            "| system | ingest vec/s | to indexed s | QPS | p50 ms | p99 ms | recall@10 | batched QPS | tuned QPS @0.95 | "
            "get p50 ms | disk MB | peak RSS MB | cold open s | S3 cold open s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s, r in sys_.items():
            q, t = r["query"], tuned(r)
            s3 = r.get("s3_cold_open")
            lines.append(
                f"| {s} | {fmt(r['ingest_vectors_per_s'])} | {fmt(r['ingest_to_indexed_s'], 1)} | {fmt(q['qps'])} "
                f"| {fmt(q['p50_ms'], 3)} | {fmt(q['p99_ms'], 3)} | {fmt(q['recall'], 3)} "
                f"| {fmt(r['query_batched']['qps'])} | {fmt(t['qps']) if t else 'not reached'} "
                f"| {fmt(r['get']['p50_ms'], 1) if r['get'] else 'n/a'} "
                f"| {disk_mb(r)} | {fmt(r['peak_rss_mb'])} "
                f"| {fmt(r['cold_open']['best_s'], 2) if r.get('cold_open') else 'n/a'} "
                f"| {(fmt(s3['best_s'], 2) if 'best_s' in s3 else 'failed') if s3 else '—'} |"
            )
        for s, error in ds.get("failed", {}).items():
            lines.append(f"| {s} | failed: {error.strip().splitlines()[0][:150]} |" + " |" * 12)
        lines += ["", "| filtered | " + " | ".join(sys_) + " |", "|---|" + "---:|" * len(sys_)]
        for sel in SELECTIVITIES:
            cells = []
            for r in sys_.values():
                f = r["filtered"][str(sel)]
                cells.append(f"{fmt(f['qps'])} QPS, recall {f['recall']:.3f}" if f else "n/a")
            lines.append(f"| {sel}% | " + " | ".join(cells) + " |")
        lines += ["", "Ratios (lakevec / peer, same run):", ""]
        lake = sys_.get("lakevec")
        for s, r in sys_.items():
            if not lake or s == "lakevec":
                continue
            parts = [f"QPS {fmt(ratio(lake['query']['qps'], r['query']['qps']), 2)}x"]
            parts.append(f"p50 latency {fmt(ratio(lake['query']['p50_ms'], r['query']['p50_ms']), 2)}x")
            if r["ingest_vectors_per_s"] and lake["ingest_vectors_per_s"]:
                parts.append(
                    f"ingest {fmt(ratio(lake['ingest_vectors_per_s'], r['ingest_vectors_per_s']), 2)}x"
                )
            lines.append(f"- vs {s}: " + ", ".join(parts))
        checks = goals(name, sys_)
        if checks:
            lines += ["", "| goal | measured | met |", "|---|---|---|"]
            lines += [f"| {g} | {m} | {'yes' if ok else '**no**'} |" for g, m, ok in checks]
            causes = {
                key: text for g, _, ok in checks if not ok for key, text in WHY.items() if g.split()[0] == key
            }
            if causes:
                lines += ["", "Why the misses (profiled):", ""] + [f"- {text}" for text in causes.values()]
        lines.append("")
    return "\n".join(lines)


def plots(result: dict, stem: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    names = list(result["datasets"])
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        for s, r in result["datasets"][name]["systems"].items():
            pts = sorted((p["recall"], p["qps"]) for p in r["curve"]) or [
                (r["query"]["recall"], r["query"]["qps"])
            ]
            ax.plot(*zip(*pts), marker="o", label=s)
        ax.axvline(TARGET_RECALL, color="gray", lw=0.8, ls="--")
        ax.set(title=name, xlabel="recall@10", ylabel="single-query QPS", yscale="log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    files.append(_save(fig, stem, "recall-qps"))

    largest = max(names, key=lambda n: result["datasets"][n]["n"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for s, r in result["datasets"][largest]["systems"].items():
        if s != "exact":
            ax.plot(r["batch_sizes"], 1000 * np.array(r["batch_s"]), label=s)
    ax.set(
        title=f"ingest, {largest}: time per add of {result['batch']:,}",
        xlabel="rows in collection",
        ylabel="ms",
        yscale="log",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    files.append(_save(fig, stem, "ingest"))

    fig, ax = plt.subplots(figsize=(6, 4))
    systems = [s for s, r in result["datasets"][largest]["systems"].items() if r["filtered"]["1"]]
    width = 0.8 / max(1, len(systems))
    for i, s in enumerate(systems):
        f = result["datasets"][largest]["systems"][s]["filtered"]
        ax.bar(
            np.arange(len(SELECTIVITIES)) + i * width,
            [f[str(x)]["qps"] for x in SELECTIVITIES],
            width,
            label=s,
        )
    ax.set_xticks(
        np.arange(len(SELECTIVITIES)) + width * (len(systems) - 1) / 2, [f"{x}%" for x in SELECTIVITIES]
    )
    ax.set(title=f"filtered query, {largest}", xlabel="rows passing the filter", ylabel="QPS", yscale="log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    files.append(_save(fig, stem, "filtered"))

    by_kind: dict[str, list[str]] = {}
    for n in names:
        by_kind.setdefault(n.split("-")[0], []).append(n)
    series = max(by_kind.values(), key=len)
    if len(series) > 1:
        series.sort(key=lambda n: result["datasets"][n]["n"])
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        for s in result["datasets"][series[0]]["systems"]:
            ns = [result["datasets"][n]["n"] for n in series if s in result["datasets"][n]["systems"]]
            rs = [
                result["datasets"][n]["systems"][s] for n in series if s in result["datasets"][n]["systems"]
            ]
            if rs[0]["ingest_vectors_per_s"]:
                a1.plot(ns, [r["ingest_vectors_per_s"] for r in rs], marker="o", label=s)
            a2.plot(ns, [r["query"]["qps"] for r in rs], marker="o", label=s)
        a1.set(title="ingest", xlabel="rows", ylabel="vectors/s", xscale="log", yscale="log")
        a2.set(title="single-query QPS at defaults", xlabel="rows", ylabel="QPS", xscale="log", yscale="log")
        a1.legend(fontsize=8)
        fig.tight_layout()
        files.append(_save(fig, stem, "scaling"))
    plt.close("all")
    return files


def _save(fig, stem: Path, what: str) -> str:
    path = stem.parent / f"{stem.name}-{what}.png"
    fig.savefig(path, dpi=110)
    return path.name


def write(result: dict, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    try:
        result["plots"] = plots(result, stem)
    except ImportError:  # matplotlib is in the bench extra; the tables do without it
        result["plots"] = []
    text = markdown(result) + "".join(f"\n![{p}]({p})\n" for p in result["plots"])
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    stem.with_suffix(".md").write_text(text)
    print(text)

"""The benchmark harness runs end to end on a tiny dataset, so it cannot rot."""

from __future__ import annotations

import json

import pytest

from benchmarks import ingest


def test_ingest_benchmark_smoke(tmp_path):
    result = ingest.main(
        [
            "--n",
            "600",
            "--dim",
            "8",
            "--batch",
            "200",
            "--get-reps",
            "2",
            "--systems",
            "lakevec",
            "--out",
            str(tmp_path),
        ]
    )
    lake = result["systems"]["lakevec"]
    assert lake["vectors_per_s"] > 0 and len(lake["batch_s"]) == 3
    files = sorted(p.suffix for p in tmp_path.iterdir())
    assert files == [".json", ".md"]
    saved = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert saved["command"].startswith("python -m benchmarks ingest --n 600")


def test_query_benchmark_smoke(tmp_path):
    from benchmarks import query

    result = query.main(
        [
            "--n",
            "800",
            "--dim",
            "8",
            "--queries",
            "5",
            "--reps",
            "1",
            "--systems",
            "lakevec,usearch",
            "--out",
            str(tmp_path),
        ]
    )
    lake = result["datasets"]["clustered"]["lakevec"]["workloads"]
    assert set(lake) == {"unfiltered", "filter 25% (cat == red)", "filter 1% (i range)"}
    assert all(0 <= w["recall_at_10"] <= 1 for w in lake.values())
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".md"]


def test_import_benchmark_smoke(tmp_path):
    from benchmarks import import_table

    result = import_table.main(["--n", "3000", "--dim", "16", "--systems", "lakevec", "--out", str(tmp_path)])
    runs = {r["source"]: r for r in result["runs"]}
    assert runs["parquet"]["rows"] == runs["polars"]["count"] == 3000
    assert runs["parquet"]["peak_rss_mb"] > 0


def test_embed_benchmark_smoke(tmp_path):
    from benchmarks import embed

    result = embed.main(["--n", "40", "--chroma-n", "16", "--out", str(tmp_path)])
    assert result["chroma_per_s"] > 0 and result["lakevec_1_thread_per_s"] > 0
    assert result["max_abs_diff"] < 1e-5


def test_s3_benchmark_smoke(tmp_path):
    from benchmarks import s3

    result = s3.main(
        ["--n", "600", "--dim", "8", "--cold-runs", "1", "--settle", "0", "--out", str(tmp_path)]
    )
    assert result["s3_cold"]["cold_requests"] > 0 and result["s3_cached"]["cold_mb"] == 0
    assert result["local"]["warm_p50_ms"] > 0
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".md"]


def test_maintenance_benchmark_smoke(tmp_path):
    from benchmarks import maintenance

    result = maintenance.main(
        ["--n", "3000", "--dim", "8", "--batch", "500", "--queries", "5", "--out", str(tmp_path)]
    )
    assert result["ingest"]["vectors_per_s"] > 0 and result["qps_after_compact"] > 0
    assert result["disk_ratio_to_fresh"] > 0
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".md"]


def test_server_benchmark_smoke(tmp_path):
    pytest.importorskip("fastapi")
    from benchmarks import server

    result = server.main(["--n", "1500", "--dim", "8", "--queries", "16", "--out", str(tmp_path)])
    assert result["lakevec"]["add_vectors_per_s"] > 0 and result["chroma"]["qps_8_clients"] > 0
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".md"]


def test_harness_smoke(tmp_path):
    """The whole harness (datasets, ground truth, child processes, cold opens, report, plots)
    on two tiny datasets, one of them the embedded text corpus."""
    from benchmarks.harness.__main__ import main

    out = tmp_path / "out"
    result = main(
        [
            "--datasets",
            "clustered-600,text-60",
            "--systems",
            "lakevec,usearch,exact",
            "--queries",
            "5",
            "--reps",
            "1",
            "--batch",
            "200",
            "--cache",
            str(tmp_path / "cache"),
            "--out",
            str(out),
        ]
    )
    lake = result["datasets"]["clustered-600"]["systems"]["lakevec"]
    assert lake["query"]["recall"] == 1.0  # 600 rows: searched exactly
    assert set(lake["filtered"]) == {"1", "10", "50"} and lake["get"]["rows"] > 0
    assert lake["cold_open"]["best_s"] > 0 and len(lake["curve"]) == 8
    assert result["datasets"]["text-60"]["n"] == 60
    assert result["datasets"]["clustered-600"]["systems"]["usearch"]["filtered"]["1"] is None
    names = sorted(p.name for p in out.iterdir())
    assert any(n.endswith(".json") for n in names) and any(n.endswith("-recall-qps.png") for n in names)
    md = next(out.glob("*.md")).read_text()
    assert "| lakevec |" in md and "python -m benchmarks harness --datasets clustered-600" in md


def _on_600_rows(module: str, flag: str, tmp_path) -> dict:
    """Run benchmark ``module`` on 600 clustered rows and 5 queries, data cached in tmp_path."""
    import importlib

    main = importlib.import_module(f"benchmarks.{module}").main
    return main(
        [flag, "clustered-600", "--queries", "5", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path)]
    )


def test_filtered_benchmark_smoke(tmp_path):
    result = _on_600_rows("filtered", "--datasets", tmp_path)
    rows = {r["workload"]: r for r in result["datasets"][0]["results"]}
    assert len(rows) == 9 and rows["correlated 1%"]["matching"] == 6
    assert all(r["recall"] == 1.0 for r in rows.values())  # 600 rows: searched exactly


def test_build_options_benchmark_smoke(tmp_path):
    result = _on_600_rows("build_options", "--dataset", tmp_path)
    assert all(o["recall"] >= 0.95 for o in result["options"])  # HNSW, multithreaded build: not always exact


@pytest.mark.xdist_group("ray")
def test_ray_benchmark_smoke(tmp_path, ray_cluster):
    result = _on_600_rows("ray_ingest", "--dataset", tmp_path)
    assert result["local"]["recall"] == result["ray"]["recall"] == 1.0
    assert sum(t["rows"] for t in result["ray"]["write_tasks"]) == 600
    assert [row["nodes"] for row in result["plan"]["nodes"]] == [4, 16, 64]


def test_scale_benchmark_smoke(tmp_path):
    from benchmarks.scale import main

    args = [
        "--rows",
        "3000,6000",
        "--queries",
        "5",
        "--cache",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path),
    ]
    result = main(args)
    assert [s["rows"] for s in result["sizes"]] == [3000, 6000]
    assert all(s["recall"] == 1.0 and s["memory_mib"]["index"]["RssAnon"] > 0 for s in result["sizes"])
    assert result["extrapolated"]["rows"] == 10_000_000
    assert all(s["index_mb"] > 0 for s in result["sizes"])


def test_routed_benchmark_smoke(tmp_path, monkeypatch):
    import lakevec.write.index as index_module
    from benchmarks.routed import main

    monkeypatch.setattr(index_module, "ORDER_CLUSTER_ROWS", 200)  # this process builds the indexes
    # one fold at the end, all rows in cluster order, and a route for it: 12,000 rows leave
    # blocks of spread 0.74-0.83 from run to run (usearch's threads vary the slot order), about
    # the 0.8 a route needs (test_route.py tests that bound); this test is the benchmark's
    monkeypatch.setenv("LAKEVEC_AUTO_INDEX", "0")
    monkeypatch.setattr(index_module, "ROUTE_MAX_SPREAD", 0.95)
    args = ["--dataset", "clustered-12000", "--shares", "0.1,1", "--queries", "5", "--cold-runs", "1"]
    args += ["--route-min-rows", "2000"]
    result = main([*args, "--cache", str(tmp_path / "cache"), "--out", str(tmp_path)])
    few, every = result["sweep"]
    assert every["recall"] == 1.0 and 0 < few["mb_per_query"] < every["mb_per_query"]
    assert result["route_mb"] > 0 and set(result["cold"]) == {"routes", "noroute"}
    assert "| with routes |" in next(tmp_path.glob("*-routed.md")).read_text()


def test_codes_benchmark_smoke(tmp_path):
    from benchmarks.codes import main

    result = main(
        [
            "--dataset",
            "clustered-3000",
            "--queries",
            "5",
            "--cache",
            str(tmp_path / "c"),
            "--out",
            str(tmp_path),
        ]
    )
    sizes = {c["code"]: c["index_mb"] for c in result["codes"]}
    assert sizes["b1"] < sizes["i8p"] < sizes["i8"] and all(0 < c["recall"] <= 1 for c in result["codes"])
    assert sorted(p.suffix for p in tmp_path.iterdir() if p.is_file()) == [".json", ".md"]

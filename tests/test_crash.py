"""Crash consistency: writers killed with SIGKILL at random moments, and storage that fails.

After every kill a fresh process opens the collection: it must open, hold exactly the state
after the last acknowledged operation or the one after it (the operation running at the kill
either committed or left no trace), and a vacuum must leave no file that no version references.
``LAKEVEC_CRASH_KILLS`` sets the kills per backend (CI runs a few; the full run 100).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import lakevec
from tests.crash_writer import model_after

KILLS = int(os.environ.get("LAKEVEC_CRASH_KILLS", "6"))
REPO = str(Path(__file__).resolve().parent.parent)


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _wait_for_acks(writer: subprocess.Popen, acks: int, errors: Path, timeout: float = 300) -> list[bytes]:
    """Lines the writer printed up to its ``acks``-th ``ok``; fails if it exits first (or
    acknowledges nothing for ``timeout`` seconds, when it is killed)."""
    lines: list[bytes] = []
    timer = threading.Timer(timeout, writer.kill)
    timer.start()
    try:
        while sum(line.startswith(b"ok ") for line in lines) < acks:
            line = writer.stdout.readline()
            if not line:
                writer.wait()
                pytest.fail(
                    f"writer ended ({writer.returncode}) after {lines[-3:]}: {errors.read_text()[-3000:]}"
                )
            lines.append(line)
    finally:
        timer.cancel()
    return lines


def _same(state: dict, model: dict) -> bool:
    if set(state) != set(model):
        return False
    return all(
        np.allclose(state[i][0], model[i][0], rtol=0, atol=1e-6) and state[i][1] == model[i][1] for i in model
    )


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_killed_writers_never_leave_a_partial_state(kind, tmp_path, request):
    if kind == "s3":
        request.getfixturevalue("s3_server")
        root = f"s3://lakevec-test/crash-{uuid.uuid4().hex}"
    else:
        root = str(tmp_path / "root")
    seed, committed, rng = 11, 0, random.Random(5)
    survived = 0
    for n in range(KILLS):
        errors = tmp_path / f"writer-{n}.err"
        with open(errors, "wb") as stderr:
            writer = subprocess.Popen(
                [sys.executable, "-m", "tests.crash_writer", "write", root, str(seed), str(committed)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=_env(),
                cwd=REPO,
            )
        # Kill while operation `committed + acks` runs, at a random point inside it: progress
        # is counted in acknowledged operations, never in seconds, so a slow machine only
        # makes the test slower.
        lines = _wait_for_acks(writer, rng.randint(1, 3), errors)
        time.sleep(rng.uniform(0, 0.25))
        writer.kill()
        out, _ = writer.communicate()
        assert writer.returncode == -9, errors.read_text()[-3000:]
        out = b"".join(lines) + out
        acked = [int(line.split()[1]) for line in out.decode().splitlines() if line.startswith("ok ")]
        last = acked[-1] + 1 if acked else committed
        dumped = subprocess.run(
            [sys.executable, "-m", "tests.crash_writer", "dump", root],
            capture_output=True,
            env=_env(),
            cwd=REPO,
            timeout=300,
        )
        assert dumped.returncode == 0, dumped.stderr.decode()[-3000:]
        report = json.loads(dumped.stdout.decode().splitlines()[-1])
        state = report["state"]
        if _same(state, model_after(seed, last)):
            committed = last
        elif _same(state, model_after(seed, last + 1)):
            committed = last + 1  # killed after its commit, before it printed
        else:
            pytest.fail(f"state after kill matches neither {last} nor {last + 1} operations")
        assert report["unreferenced"] == [], report["unreferenced"]
        survived += 1
    assert survived == KILLS and committed > 0
    print(f"{kind}: {KILLS} kills survived, {committed} operations committed")


# -- faults injected through fsspec ------------------------------------------------------


class FaultyMemoryFileSystem(MemoryFileSystem):
    """``memory://`` that raises OSError on the n-th write (or read) from when it is armed."""

    protocol = ("faultymem",)
    root_marker = "/"
    writes_left: int | None = None
    reads_left: int | None = None
    tripped = False

    @classmethod
    def arm(cls, writes: int | None = None, reads: int | None = None) -> None:
        cls.writes_left, cls.reads_left, cls.tripped = writes, reads, False

    @classmethod
    def _count(cls, attribute: str, path: str) -> None:
        left = getattr(cls, attribute)
        if left is None:
            return
        if left <= 1:
            setattr(cls, attribute, None)
            cls.tripped = True
            raise OSError(5, f"injected fault ({attribute.split('_')[0][:-1]} of {path})")
        setattr(cls, attribute, left - 1)

    def pipe_file(self, path, value, **kwargs):
        self._count("writes_left", path)
        return super().pipe_file(path, value, **kwargs)

    def _open(self, path, mode="rb", **kwargs):
        self._count("writes_left" if "w" in mode or "a" in mode else "reads_left", path)
        return super()._open(path, mode, **kwargs)

    def cat_file(self, path, start=None, end=None, **kwargs):
        self._count("reads_left", path)
        return super().cat_file(path, start, end, **kwargs)


@pytest.fixture
def faulty_root(monkeypatch):
    import fsspec

    monkeypatch.setenv("LAKEVEC_AUTO_INDEX", "0")  # no background thread spending the fault count
    fsspec.register_implementation("faultymem", FaultyMemoryFileSystem, clobber=True)
    root = f"faultymem://lakevec-{uuid.uuid4().hex}"
    yield root
    FaultyMemoryFileSystem.arm()
    FaultyMemoryFileSystem.store.clear()
    FaultyMemoryFileSystem.pseudo_dirs.clear()
    FaultyMemoryFileSystem.pseudo_dirs.append("")


def _state(root: str) -> dict:
    col = lakevec.PersistentClient(root).get_collection("faulty", embedding_function=None)
    got = col.get(include=["embeddings", "metadatas", "documents"])
    return {
        i: (e.tolist(), m, d)
        for i, e, m, d in zip(got["ids"], got["embeddings"], got["metadatas"], got["documents"])
    }


WRITES = {
    "add": lambda c, rng: c.add(
        ids=[f"n{k}" for k in range(30)], embeddings=rng.random((30, 4)), documents=["d"] * 30
    ),
    "upsert": lambda c, rng: c.upsert(
        ids=["a0", "a1", "z9"], embeddings=rng.random((3, 4)), metadatas=[{"u": 1}] * 3
    ),
    "update": lambda c, rng: c.update(ids=["a2"], metadatas=[{"u": 2}]),
    "delete": lambda c, rng: c.delete(where={"g": 1}),
    "compact": lambda c, rng: c.compact(),
}


@pytest.mark.parametrize("op", sorted(WRITES))
def test_a_failed_write_changes_nothing(faulty_root, op):
    """Fail the n-th storage write of an operation, for every n until the operation succeeds:
    each failure raises OSError naming the file, and the collection is as it was before."""
    rng = np.random.default_rng(1)
    col = lakevec.PersistentClient(faulty_root).create_collection("faulty", embedding_function=None)
    for b in range(3):
        col.add(
            ids=[f"a{b * 20 + k}" for k in range(20)],
            embeddings=rng.random((20, 4)),
            metadatas=[{"g": k % 3} for k in range(20)],
        )
    before = _state(faulty_root)
    failures = 0
    for n in range(1, 60):
        FaultyMemoryFileSystem.arm(writes=n)
        client = lakevec.PersistentClient(faulty_root)
        try:
            WRITES[op](client.get_collection("faulty", embedding_function=None), np.random.default_rng(2))
        except OSError as exc:
            assert "injected fault" in str(exc)
            FaultyMemoryFileSystem.arm()
            assert _state(faulty_root) == before, f"write {n} failed and left a change"
            failures += 1
            continue
        FaultyMemoryFileSystem.arm()
        break
    else:
        pytest.fail("the operation never completed")
    assert failures >= 1
    print(f"{op}: {failures} injected write failures, the collection unchanged after each")
    after = _state(faulty_root)
    assert after != before or op == "compact"


def test_failed_reads_raise_and_later_reads_work(faulty_root):
    rng = np.random.default_rng(3)
    col = lakevec.PersistentClient(faulty_root).create_collection("faulty", embedding_function=None)
    col.add(ids=[f"a{k}" for k in range(50)], embeddings=rng.random((50, 4)))
    before = _state(faulty_root)
    for n in range(1, 12):
        FaultyMemoryFileSystem.arm(reads=n)
        try:
            _state(faulty_root)
        except OSError as exc:
            assert "injected fault" in str(exc)
        FaultyMemoryFileSystem.arm()
        assert _state(faulty_root) == before

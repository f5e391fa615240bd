"""The notebooks run top to bottom in a fresh kernel (outputs are not compared: timings differ)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    book = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    if path.stem == "quickstart":
        printed = "".join(o.get("text", "") for c in book.cells if c.cell_type == "code" for o in c.outputs)
        assert "'ids': [['id1', 'id2']]" in printed and "'ids': [['id2', 'id1']]" in printed


def test_both_notebooks_exist():
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "polars_duckdb"}

"""A feature used without its optional extra says in one line which extra to install.

Each case runs in a fresh interpreter whose import system finds no module of that name, as if
the extra were not installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CASES = {
    "server": ("fastapi", "from lakevec.cli import main; sys.exit(main(['run', '--path', ROOT]))"),
    "server-uvicorn": ("uvicorn", "from lakevec.cli import main; sys.exit(main(['run', '--path', ROOT]))"),
    "s3": ("s3fs", "from lakevec.cli import main; sys.exit(main(['info', 's3://bucket/root']))"),
    "gcs": ("gcsfs", "import lakevec; lakevec.PersistentClient('gs://bucket/root')"),
    "azure": ("adlfs", "import lakevec; lakevec.PersistentClient('az://container/root')"),
    "http": ("httpx", "import lakevec; lakevec.HttpClient(port=1)"),
    "chroma": ("chromadb", "from lakevec.cli import main; sys.exit(main(['migrate-chroma', ROOT, ROOT]))"),
    "pandas": (
        "pandas",
        "import lakevec; c = lakevec.PersistentClient(ROOT).create_collection('col', embedding_function=None);"
        " c.add(ids=['a'], embeddings=[[1.0, 2.0]]); c.to_pandas()",
    ),
    "sentence-transformers": (
        "sentence_transformers",
        "from lakevec.utils.embedding_functions import SentenceTransformerEmbeddingFunction as F; F()(['x'])",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_missing_extra_is_one_line_naming_it(case, tmp_path):
    module, code = CASES[case]
    extra = case.split("-uvicorn")[0]
    script = textwrap.dedent(f"""
        import sys

        class NotInstalled:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == {module!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, NotInstalled())
        ROOT = {str(tmp_path / "root")!r}
        try:
            {code}
        except Exception as exc:
            print(f"{{type(exc).__name__}}: {{exc}}", file=sys.stderr)
            sys.exit(1)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"lakevec[{extra}]" in lines[0], lines[0]

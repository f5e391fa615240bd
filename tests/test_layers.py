"""The package's layers, bottom to top; a module imports only from its own layer or below.

    base         errors, expression (the Search API's builders), extras, types, version
    lake         the format: manifest, row schema, storage, log, caches, snapshot, catalog;
                 and the embedding functions (utils), which know nothing of storage
    read, write  never import each other: what both need is in lake
    validate     the API boundary's checks (a where_sql is parsed by read's SQL filter)
    engine       one collection's snapshot, reads and commit loop
    maintenance  index folds, merges, compaction, vacuum: they drive the engine
    facade       client, collection (+ lakehouse: its tables, versions, forks, maintenance),
                 interop (DataFrames, SQL), HTTP client, migration
    apps         server, CLI, demo, the Ray integration (lakevec.ray)

Every import counts (function-level and ``TYPE_CHECKING`` ones too), and the module graph has
no cycles at all.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lakevec"

LAYERS: list[list[str]] = [
    ["lakevec.errors", "lakevec.expression", "lakevec.extras", "lakevec.types", "lakevec.version"],
    ["lakevec.lake", "lakevec.utils"],
    ["lakevec.read", "lakevec.write"],
    ["lakevec.validate"],
    ["lakevec.engine"],
    ["lakevec.maintenance"],
    [
        "lakevec.config",
        "lakevec.sparse_schema",
        "lakevec.interop",
        "lakevec.lakehouse",
        "lakevec.collection",
        "lakevec.client",
        "lakevec.http_client",
        "lakevec.migrate",
        "lakevec.datasets",
        "lakevec",
    ],
    ["lakevec.server", "lakevec.cli", "lakevec.demo", "lakevec.__main__", "lakevec.ray"],
]
SIBLINGS_APART = [("lakevec.read", "lakevec.write")]


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path, known: set[str]) -> set[str]:
    """The lakevec modules ``path`` imports (``from lakevec.x import y`` counts as lakevec.x.y
    when that is a module, else lakevec.x)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "lakevec"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lakevec":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
    return {m for m in out if m in known}


def layer_of(module: str) -> tuple[int, str]:
    best = None
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (level, prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) - {name} for name, path in found.items()}


def test_every_import_goes_down_or_sideways():
    wrong = []
    for module, targets in sorted(graph().items()):
        level, group = layer_of(module)
        for target in sorted(targets):
            to_level, to_group = layer_of(target)
            apart = {group, to_group} in [set(pair) for pair in SIBLINGS_APART]
            if to_level > level or apart:
                wrong.append(f"{module} ({group}) imports {target} ({to_group})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    edges = graph()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target) :] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)

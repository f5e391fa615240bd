"""The ``lakevec`` command: inspect, maintain, import and export collections of a root.

    lakevec info ROOT [COLLECTION]
    lakevec versions ROOT COLLECTION
    lakevec compact ROOT COLLECTION [--target-rows N]
    lakevec vacuum ROOT COLLECTION [--older-than-days D] [--keep-versions N] [--dry-run]
    lakevec import ROOT COLLECTION FILE [--embed] [--id-column id] [--document-column document]
    lakevec export ROOT COLLECTION OUT.parquet
    lakevec migrate-chroma CHROMA_DIR ROOT
    lakevec run --path ROOT [--host 127.0.0.1] [--port 8000] [--auth-token T] [--allow-reset]

ROOT is a directory or any fsspec URL. Errors print one line and exit 1 (``--debug`` shows the
traceback).
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

import lakevec
from lakevec.errors import NotFoundError
from lakevec.lake.catalog import DEFAULT_DATABASE, DEFAULT_TENANT


def _client(args: argparse.Namespace) -> lakevec.PersistentClient:
    return lakevec.PersistentClient(args.root, tenant=args.tenant, database=args.database)


def _collection(args: argparse.Namespace, embed: bool = False):
    ef = {} if embed else {"embedding_function": None}
    return _client(args).get_collection(args.collection, **ef)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)"
    keys = list(rows[0])
    cells = [[str(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths))  # noqa: E731
    return "\n".join([line(keys), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def cmd_info(args: argparse.Namespace) -> None:
    client = _client(args)
    if args.collection is None:
        rows = [{"collection": c.name, "id": c.id, "count": c.count()} for c in client.list_collections()]
        print(_table(rows))
        return
    stats = _collection(args).stats()
    width = max(len(k) for k in stats)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in stats.items()))


def cmd_versions(args: argparse.Namespace) -> None:
    rows = _collection(args).versions()
    for r in rows:
        r["timestamp"] = r["timestamp"].isoformat(timespec="seconds")
    print(_table(rows))


def cmd_compact(args: argparse.Namespace) -> None:
    report = _collection(args).compact(target_rows=args.target_rows)
    print(", ".join(f"{k}: {v}" for k, v in report.items()))


def cmd_vacuum(args: argparse.Namespace) -> None:
    result = _collection(args).vacuum(
        older_than=timedelta(days=args.older_than_days),
        keep_versions=args.keep_versions,
        dry_run=args.dry_run,
    )
    verb = "would delete" if args.dry_run else "deleted"
    for path in result["deleted_files"]:
        print(f"{verb} {path}")
    print(
        f"{verb} {len(result['deleted_files'])} files ({result['deleted_bytes'] / 1e6:.1f} MB) and "
        f"{len(result['deleted_versions'])} versions; kept versions {result['kept_versions']}"
    )


def cmd_import(args: argparse.Namespace) -> None:
    client = _client(args)
    ef = {} if args.embed else {"embedding_function": None}
    collection = client.get_or_create_collection(args.collection, **ef)
    rows = collection.add_table(
        args.file,
        ids=args.id_column,
        documents=args.document_column,
        embeddings=None if args.embed else args.embedding_column,
    )
    print(f"read {rows} rows; {args.collection} now holds {collection.count()}")


def cmd_export(args: argparse.Namespace) -> None:
    collection = _collection(args)
    collection.duckdb().write_parquet(args.out)
    print(f"wrote {collection.count()} rows to {args.out}")


def cmd_migrate_chroma(args: argparse.Namespace) -> None:
    from lakevec.migrate import migrate_chroma

    for name, count in migrate_chroma(args.chroma_dir, args.root):
        print(f"copied {name}: {count} records")


def cmd_run(args: argparse.Namespace) -> None:
    from lakevec.config import _env_flag
    from lakevec.server import ServerConfig, serve, token_from_environment

    config = ServerConfig(
        root=args.path,
        token=args.auth_token or token_from_environment(),
        allow_reset=args.allow_reset or _env_flag("ALLOW_RESET"),
        max_body_bytes=args.max_body_mb << 20,
        max_batch_size=args.max_batch_size,
    )
    serve(config, args.host, args.port, args.workers)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lakevec", description="lakevec collections from the command line")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--tenant", default=DEFAULT_TENANT)
    p.add_argument("--database", default=DEFAULT_DATABASE)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="collections of a root, or one collection's figures")
    s.add_argument("root")
    s.add_argument("collection", nargs="?")
    s.set_defaults(func=cmd_info)

    for name, func, extra in (
        ("versions", cmd_versions, None),
        ("compact", cmd_compact, "compact"),
        ("vacuum", cmd_vacuum, "vacuum"),
        ("export", cmd_export, "export"),
    ):
        s = sub.add_parser(name)
        s.add_argument("root")
        s.add_argument("collection")
        if extra == "compact":
            s.add_argument("--target-rows", type=int, default=1_000_000)
        elif extra == "vacuum":
            s.add_argument("--older-than-days", type=float, default=7.0)
            s.add_argument("--keep-versions", type=int, default=1)
            s.add_argument("--dry-run", action="store_true")
        elif extra == "export":
            s.add_argument("out")
        s.set_defaults(func=func)

    s = sub.add_parser("import", help="add a Parquet, CSV or JSON-lines file")
    s.add_argument("root")
    s.add_argument("collection")
    s.add_argument("file")
    s.add_argument("--embed", action="store_true", help="compute embeddings with the default function")
    s.add_argument("--id-column", default="id")
    s.add_argument("--document-column", default="document")
    s.add_argument("--embedding-column", default="embedding")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("migrate-chroma", help="copy every collection of a Chroma persistent directory")
    s.add_argument("chroma_dir")
    s.add_argument("root")
    s.set_defaults(func=cmd_migrate_chroma)

    s = sub.add_parser("run", help="serve a root over Chroma's HTTP API (chromadb.HttpClient works)")
    s.add_argument("--path", default="./chroma", help="the root: a directory or fsspec URL")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument(
        "--auth-token", help="required token (or LAKEVEC_AUTH_TOKEN / CHROMA_SERVER_AUTHN_CREDENTIALS)"
    )
    s.add_argument("--allow-reset", action="store_true", help="allow POST /reset (or ALLOW_RESET=1)")
    s.add_argument("--max-body-mb", type=int, default=256)
    s.add_argument("--max-batch-size", type=int, default=50_000)
    s.add_argument("--workers", type=int, default=1, help="server processes sharing the port and the root")
    s.set_defaults(func=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message = str(exc) or type(exc).__name__
        if isinstance(exc, NotFoundError):
            message = f"not found: {message}"
        print(f"lakevec: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Seed, export and import throughput on SQLite and Postgres (3k and 1M sessions).

For each backend and size: seed a fresh database with the synthetic generator,
export it as a CSV bundle, then import that bundle into another fresh database
and import it again (nothing changes the second time). Imports run in a child
process so its peak memory (max RSS) shows that a 1M-row bundle streams.

    .venv/bin/python benchmarks/seed_import.py [--sizes 3000,1000000] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tutorscore.db.engine import make_engine
from tutorscore.ingest.exporter import export_bundle
from tutorscore.ingest.synthetic import seed
from tutorscore.testing.databases import temporary_database

AS_OF = datetime(2026, 11, 24, tzinfo=UTC)
console = Console(width=160)


def seed_shape(sessions: int) -> dict[str, int]:
    """Demo defaults for the small size; 10k tutors over 90 days for the large one."""
    if sessions <= 10_000:
        return {"tutors": 100, "students": 2500, "days": 7, "transcripts": 120}
    return {"tutors": 10_000, "students": 250_000, "days": 90, "transcripts": 200}


def _peak_rss_mb() -> float:
    """This process's own peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    from the parent across fork+exec, which would report the seeding parent's memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_import(url: str, directory: str) -> None:
    """Runs in the child: one timed import, then its own numbers as JSON on stdout."""
    from tutorscore.ingest.importer import import_bundle

    engine = make_engine(url)
    started = time.perf_counter()
    report = import_bundle(engine, [directory])
    seconds = time.perf_counter() - started
    engine.dispose()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": sum(s.rows for s in report.summary.values()),
                "sessions": report.summary["sessions"].rows,
                "created": sum(s.created for s in report.summary.values()),
                "updated": sum(s.updated for s in report.summary.values()),
                "max_rss_mb": _peak_rss_mb(),
            }
        )
    )


def timed_import(url: str, directory: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--child-import", url, str(directory)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(backend: str, sessions: int) -> dict[str, Any]:
    shape = seed_shape(sessions)
    with tempfile.TemporaryDirectory(prefix="tutorscore-bench-") as tmp:
        bundle = Path(tmp) / "bundle"
        with temporary_database(backend, label="bench") as url:
            engine = make_engine(url)
            started = time.perf_counter()
            summary = seed(engine, sessions=sessions, seed=42, as_of=AS_OF, **shape)
            seed_s = time.perf_counter() - started
            started = time.perf_counter()
            exported = export_bundle(engine, bundle, fmt="csv")
            export_s = time.perf_counter() - started
            engine.dispose()
        size_mb = sum(p.stat().st_size for p in bundle.iterdir()) / 2**20
        with temporary_database(backend, label="bench") as url:
            first = timed_import(url, bundle)
            again = timed_import(url, bundle)
    rows = sum(exported.rows.values())
    return {
        "backend": backend,
        "sessions": summary.sessions,
        "rows": rows,
        "bundle_mb": size_mb,
        "seed_s": seed_s,
        "export_s": export_s,
        "import": first,
        "reimport": again,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="seed/export/import throughput")
    parser.add_argument("--sizes", default="3000,1000000")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--child-import", nargs=2, metavar=("URL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_import:
        child_import(*args.child_import)
        return
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        for backend in args.backends.split(","):
            console.print(f"[dim]{backend}: {size:,} sessions ...[/dim]")
            results.append(run(backend, size))
    table = Table(title="seed / export / import throughput (rows/s; sessions/s for seed)")
    for column in (
        "backend",
        "sessions",
        "bundle rows",
        "seed s",
        "seed sessions/s",
        "export rows/s",
        "import s",
        "import rows/s",
        "re-import s",
        "import peak RSS",
    ):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for r in results:
        imp, again = r["import"], r["reimport"]
        table.add_row(
            r["backend"],
            f"{r['sessions']:,}",
            f"{r['rows']:,}",
            f"{r['seed_s']:.1f}",
            f"{r['sessions'] / r['seed_s']:,.0f}",
            f"{r['rows'] / r['export_s']:,.0f}",
            f"{imp['seconds']:.1f}",
            f"{imp['rows'] / imp['seconds']:,.0f}",
            f"{again['seconds']:.1f}",
            f"{imp['max_rss_mb']:,.0f} MB",
        )
        assert imp["created"] == r["rows"], "every exported row is created on import"
        assert again["created"] == 0 and again["updated"] == 0, "re-import changes nothing"
    console.print(table)
    sizes = ", ".join(f"{r['sessions']:,} sessions: {r['bundle_mb']:.0f} MB" for r in results)
    console.print(
        f"[dim]{platform.machine()}, Python {platform.python_version()}; bundle {sizes}[/dim]"
    )


if __name__ == "__main__":
    main()

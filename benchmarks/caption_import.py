"""Import throughput of transcript files: 10,000 WebVTT files in a bundle's `transcripts/`.

For each backend: a fresh database gets the bundle's tutors, students and 10,000
sessions (untimed); then `transcripts/` (10,000 .vtt files: half Teams-style voice
tags, half Zoom-style "Name:" prefixes, about 120 cues of one or two lines each,
a 40-50 minute session) is imported in a child process, timed, with its peak RSS,
and imported again (nothing changes). For comparison the same transcripts as
`transcripts.jsonl` turns are imported into another fresh database.

    .venv/bin/python benchmarks/caption_import.py [--files 10000] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tutorscore.db.engine import make_engine
from tutorscore.testing.databases import temporary_database

console = Console(width=160)
WORDS = (
    "so let's look at the next problem what do you notice about the slope here can you "
    "explain why that works I think it is because we multiply both sides by two okay "
    "great try this one on your own and tell me where you get stuck the denominator "
    "stays the same right yes exactly nice work does that make sense"
).split()
TUTORS = [
    (f"T{i:03d}", name)
    for i, name in enumerate(
        ["Maria Gonzalez", "Sam Okafor", "Priya Natarajan", "Daniel Kim", "Aisha Bello"] * 20
    )
]
STUDENTS = ["Jordan", "Alex Chen", "Taylor", "Riley Brooks", "Casey"]


def _stamp(ms: int) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def make_vtt(
    rng: random.Random, tutor: str, student: str, voice_tags: bool
) -> tuple[str, int, list[dict[str, Any]]]:
    """(file text, number of cues, the turns it stands for)."""
    lines = ["WEBVTT", "", "NOTE generated for the caption import benchmark", ""]
    turns: list[dict[str, Any]] = []
    at = 1000
    cues = rng.randint(100, 140)
    speaker = tutor
    for i in range(cues):
        if rng.random() < 0.45:
            speaker = student if speaker == tutor else tutor
        words = rng.randint(6, 22)
        text = " ".join(rng.choice(WORDS) for _ in range(words))
        role = "tutor" if speaker == tutor else "student"
        if turns and turns[-1]["speaker"] == role:
            turns[-1]["text"] += " " + text
        else:
            turns.append({"speaker": role, "text": text, "start_s": at / 1000})
        if words > 14:
            cut = text.index(" ", len(text) // 2)
            text = text[:cut] + "\n" + text[cut + 1 :]
        length = 400 * words
        lines.append(str(i + 1))
        lines.append(f"{_stamp(at)} --> {_stamp(at + length)}")
        lines.append(f"<v {speaker}>{text}</v>" if voice_tags else f"{speaker}: {text}")
        lines.append("")
        at += length + rng.randint(100, 3000)
    return "\n".join(lines), cues, turns


def write_bundle(root: Path, files: int) -> dict[str, Any]:
    rng = random.Random(18)
    people = root / "people"
    people.mkdir(parents=True)
    (people / "tutors.csv").write_text(
        "tutor_id,name,subjects\n" + "".join(f"{t},{n},Algebra\n" for t, n in TUTORS)
    )
    (people / "students.csv").write_text(
        "student_id\n" + "".join(f"ST{i:04d}\n" for i in range(2500))
    )
    rows = []
    for i in range(files):
        tutor_id = TUTORS[i % len(TUTORS)][0]
        day = 1 + i % 28
        rows.append(
            f"V{i:05d},{tutor_id},ST{i % 2500:04d},Algebra,2026-10-{day:02d}T15:00:00Z,"
            f"2026-10-{day:02d}T15:01:00Z,50,completed\n"
        )
    (people / "sessions.csv").write_text(
        "session_id,tutor_id,student_id,subject,scheduled_start_at,actual_start_at,"
        "duration_minutes,status\n" + "".join(rows)
    )
    vtt = root / "vtt" / "transcripts"
    vtt.mkdir(parents=True)
    jsonl_dir = root / "jsonl"
    jsonl_dir.mkdir()
    cues = 0
    from tutorscore.ingest.captions import transcript_turns

    with (jsonl_dir / "transcripts.jsonl").open("w", encoding="utf-8") as jsonl:
        for i in range(files):
            tutor = TUTORS[i % len(TUTORS)][1]
            content, n, turns = make_vtt(
                rng, tutor, STUDENTS[i % len(STUDENTS)], voice_tags=i % 2 == 0
            )
            cues += n
            (vtt / f"V{i:05d}.vtt").write_text(content, encoding="utf-8")
            if i < 20:  # the generator and the importer agree on what the files say
                parsed = transcript_turns("vtt", content, session_id="V", tutor_name=tutor)
                assert parsed == turns, f"V{i:05d}"
            jsonl.write(json.dumps({"session_id": f"V{i:05d}", "turns": turns}) + "\n")
    size = sum(p.stat().st_size for p in vtt.iterdir())
    return {"cues": cues, "vtt_mb": size / 2**20}


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_import(url: str, directory: str) -> None:
    from tutorscore.ingest.importer import import_bundle

    engine = make_engine(url)
    started = time.perf_counter()
    cpu = time.process_time()
    report = import_bundle(engine, [directory])
    seconds = time.perf_counter() - started
    cpu_s = time.process_time() - cpu
    engine.dispose()
    summary = report.summary["transcripts"]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_s": cpu_s,
                "rows": summary.rows,
                "created": summary.created,
                "updated": summary.updated,
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


def run(backend: str, root: Path) -> list[dict[str, Any]]:
    from tutorscore.ingest.importer import import_bundle

    results = []
    for form, directory in (("vtt files", root / "vtt"), ("transcripts.jsonl", root / "jsonl")):
        with temporary_database(backend, label="bench") as url:
            engine = make_engine(url)
            import_bundle(engine, [root / "people"])
            engine.dispose()
            first = timed_import(url, directory)
            again = timed_import(url, directory)
        results.append({"backend": backend, "form": form, "import": first, "reimport": again})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="import throughput of WebVTT transcript files")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--child-import", nargs=2, metavar=("URL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_import:
        child_import(*args.child_import)
        return
    with tempfile.TemporaryDirectory(prefix="tutorscore-captions-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        shape = write_bundle(root, args.files)
        console.print(f"[dim]bundle written in {time.perf_counter() - started:.1f} s[/dim]")
        results = [r for b in args.backends.split(",") for r in run(b, root)]
    table = Table(title=f"import of {args.files:,} transcripts ({shape['cues']:,} cues)")
    for column in (
        "backend",
        "form",
        "import s",
        "files/s",
        "cues/s",
        "CPU s",
        "re-import s (no change)",
        "peak RSS",
    ):
        table.add_column(column, justify="left" if column in ("backend", "form") else "right")
    for r in results:
        imp, again = r["import"], r["reimport"]
        assert imp["created"] == args.files, "every transcript is created"
        assert again["created"] == 0 and again["updated"] == 0, "re-import changes nothing"
        table.add_row(
            r["backend"],
            r["form"],
            f"{imp['seconds']:.1f}",
            f"{args.files / imp['seconds']:,.0f}",
            f"{shape['cues'] / imp['seconds']:,.0f}",
            f"{imp['cpu_s']:.1f}",
            f"{again['seconds']:.1f}",
            f"{imp['max_rss_mb']:,.0f} MB",
        )
    console.print(table)
    console.print(
        f"[dim]{platform.machine()}, Python {platform.python_version()}; "
        f"{shape['vtt_mb']:.0f} MB of .vtt files[/dim]"
    )


if __name__ == "__main__":
    main()

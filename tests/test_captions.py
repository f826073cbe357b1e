"""Transcript files in a bundle (`transcripts/<session_id>.vtt|.srt|.txt`, `speakers.csv`)
and in POST /api/sessions: parsing, speaker roles, file:line errors, all-or-nothing,
re-import and the export round trip, on SQLite and Postgres."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from tutorscore.ingest.captions import (
    SpeakerRoles,
    assign_roles,
    parse_plain,
    transcript_turns,
)
from tutorscore.ingest.exporter import export_bundle
from tutorscore.ingest.importer import ImportFailed, import_bundle
from tutorscore.testing.databases import truncate_all
from web_support import AS_OF, TRANSCRIPT, add_people, bearer, session_record

DATA = Path(__file__).parent / "data" / "captions"
TUTORS = "tutor_id,name,subjects\nT1,Maria Gonzalez,Algebra;Chemistry\nT2,Sam Okafor,Physics\n"
STUDENTS = "student_id\nS1\nS2\n"
SESSIONS = (
    "session_id,tutor_id,student_id,subject,scheduled_start_at,actual_start_at,"
    "duration_minutes,status\n"
    + "".join(
        f"{sid},{tutor},S1,Algebra,2026-11-0{day}T15:00:00Z,2026-11-0{day}T15:01:00Z,50,completed\n"
        for day, (sid, tutor) in enumerate(
            [("C1", "T1"), ("C2", "T1"), ("C3", "T2"), ("C4", "T1"), ("C5", "T2")], start=1
        )
    )
)

TEAMS_TURNS = [
    {
        "speaker": "tutor",
        "text": "Hi Jordan, thanks for joining. Today we'll look at linear equations. "
        "Does that sound good?",
        "start_s": 2.14,
    },
    {
        "speaker": "student",
        "text": "Yeah, I have a quiz on Friday & I'm stuck on word problems. "
        "and the ones with fractions",
        "start_s": 7.9,
    },
    {
        "speaker": "tutor",
        "text": "Okay, let's start with one. What does 3x + 5 = 20 tell us?",
        "start_s": 12.5,
    },
    {
        "speaker": "student",
        "text": "That three x plus five is twenty, so x is five?",
        "start_s": 18.5,
    },
]
ZOOM_TURNS = [
    {"speaker": "tutor", "text": "Good afternoon! Can you hear me okay?", "start_s": 1.02},
    {"speaker": "student", "text": "Yes, I can.", "start_s": 4.59},
    {
        "speaker": "tutor",
        "text": "Great. Last time we finished the chapter on ratios, so today I'd like to try "
        "a few practice problems. If a recipe needs 2 cups of flour for 3 cups of sugar, "
        "how much flour for 9 cups of sugar?",
        "start_s": 6.3,
    },
    {"speaker": "student", "text": "Um, six cups?", "start_s": 20.01},
]
MEET_TURNS = [
    {"speaker": "tutor", "text": "Welcome back! How did the homework go?", "start_s": 0.5},
    {
        "speaker": "student",
        "text": "Pretty good, but I got stuck on question four.",
        "start_s": 3.9,
    },
    {
        "speaker": "tutor",
        "text": "Let's open it together. Share your screen when you're ready.",
        "start_s": 7.8,
    },
    {
        "speaker": "student",
        "text": "Okay, one sec. It says find the slope between (2, 3) and (6, 11).",
        "start_s": 11.5,
    },
]
CHAT_TURNS = [
    {"speaker": "tutor", "text": "Hi Jordan! Ready for some chemistry?", "start_s": 0.0},
    {"speaker": "student", "text": "yes", "start_s": 12.0},
    {
        "speaker": "tutor",
        "text": "Great. What is the molar mass of water?\nHint: add up hydrogen and oxygen.",
        "start_s": 28.0,
    },
    {"speaker": "student", "text": "18 g/mol?", "start_s": 97.0},
    {"speaker": "tutor", "text": "Exactly right.", "start_s": 109.0},
]
SAMPLES = {
    "C1.vtt": ("teams.vtt", TEAMS_TURNS),
    "C2.vtt": ("zoom.vtt", ZOOM_TURNS),
    "C3.srt": ("meet.srt", MEET_TURNS),
    "C4.txt": ("chat.txt", CHAT_TURNS),
}


def sample(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def caption_bundle(
    directory: Path, transcripts: dict[str, str | bytes] | None = None, **files: str
) -> Path:
    """tutors, students, sessions C1-C5 and `transcripts/` (default: the four samples)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in {
        "tutors.csv": TUTORS,
        "students.csv": STUDENTS,
        "sessions.csv": SESSIONS,
        **files,
    }.items():
        (directory / name).write_text(content, encoding="utf-8", newline="")
    folder = directory / "transcripts"
    folder.mkdir(exist_ok=True)
    if transcripts is None:
        transcripts = {target: sample(source) for target, (source, _) in SAMPLES.items()}
    for name, data in transcripts.items():
        path = folder / name
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8", newline="")
    return directory


def stored(engine: Engine) -> dict[str, tuple[list[dict[str, Any]], str, str]]:
    """session_id -> (turns, raw_text, content_hash)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT session_id, turns, raw_text, content_hash FROM session_transcripts")
        ).all()
    return {r[0]: (json.loads(r[1]) if isinstance(r[1], str) else r[1], r[2], r[3]) for r in rows}


def errors_of(engine: Engine, *paths: Path) -> list[str]:
    with pytest.raises(ImportFailed) as caught:
        import_bundle(engine, list(paths))
    return caught.value.details  # type: ignore[no-any-return]


def transcript_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM session_transcripts")).scalar_one())


# ---------------------------------------------------------------- the bundle


def test_each_format_imports_with_roles_start_times_and_raw_text(
    engine: Engine, tmp_path: Path
) -> None:
    report = import_bundle(engine, [caption_bundle(tmp_path)])
    assert report.summary["transcripts"].rows == 4
    assert report.summary["transcripts"].created == 4
    assert [f.label for f in report.files][-4:] == [
        "transcripts/C1.vtt",
        "transcripts/C2.vtt",
        "transcripts/C3.srt",
        "transcripts/C4.txt",
    ]
    rows = stored(engine)
    for target, (source, turns) in SAMPLES.items():
        session_id = target.split(".")[0]
        assert rows[session_id][0] == turns, target
        assert rows[session_id][1] == sample(source)  # raw_text: the file as given


def test_reimport_changes_nothing_and_a_changed_file_replaces_the_turns(
    engine: Engine, tmp_path: Path
) -> None:
    directory = caption_bundle(tmp_path)
    import_bundle(engine, [directory])
    again = import_bundle(engine, [directory])
    assert again.summary["transcripts"].created == 0
    assert again.summary["transcripts"].updated == 0
    (directory / "transcripts" / "C2.vtt").write_text(
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nMaria: Short session today.\n",
        encoding="utf-8",
    )
    changed = import_bundle(engine, [directory])
    assert changed.summary["transcripts"].updated == 1
    assert stored(engine)["C2"][0] == [
        {"speaker": "tutor", "text": "Short session today.", "start_s": 1.0}
    ]
    assert transcript_count(engine) == 4


def test_bom_and_crlf_give_the_same_turns(engine: Engine, tmp_path: Path) -> None:
    transcripts: dict[str, str | bytes] = {
        target: b"\xef\xbb\xbf" + sample(source).replace("\n", "\r\n").encode()
        for target, (source, _) in SAMPLES.items()
    }
    import_bundle(engine, [caption_bundle(tmp_path, transcripts)])
    rows = stored(engine)
    for target, (source, turns) in SAMPLES.items():
        session_id = target.split(".")[0]
        assert rows[session_id][0] == turns, target
        assert rows[session_id][1] == sample(source).replace("\n", "\r\n")  # BOM dropped


def test_sessions_and_tutors_may_be_in_the_database(engine: Engine, tmp_path: Path) -> None:
    import_bundle(engine, [caption_bundle(tmp_path / "people", transcripts={})])
    only = tmp_path / "later" / "transcripts"
    only.mkdir(parents=True)
    (only / "C2.vtt").write_text(sample("zoom.vtt"), encoding="utf-8")
    report = import_bundle(engine, [tmp_path / "later"])
    assert report.summary["transcripts"].created == 1
    assert stored(engine)["C2"][0] == ZOOM_TURNS
    # a single file named on the command line, and the transcripts folder itself
    single = tmp_path / "elsewhere" / "transcripts" / "C4.txt"
    single.parent.mkdir(parents=True)
    single.write_text(sample("chat.txt"), encoding="utf-8")
    assert import_bundle(engine, [single]).summary["transcripts"].created == 1
    assert import_bundle(engine, [only]).summary["transcripts"].unchanged == 1
    assert stored(engine)["C4"][0] == CHAT_TURNS


def test_a_bundle_directory_named_transcripts_is_still_a_bundle(
    engine: Engine, tmp_path: Path
) -> None:
    directory = caption_bundle(tmp_path / "transcripts", {"C2.vtt": sample("zoom.vtt")})
    report = import_bundle(engine, [directory])
    assert [f.label for f in report.files] == [
        "tutors.csv",
        "students.csv",
        "sessions.csv",
        "transcripts/C2.vtt",
    ]
    assert stored(engine)["C2"][0] == ZOOM_TURNS


def test_a_session_in_neither_bundle_nor_database_is_an_error(
    engine: Engine, tmp_path: Path
) -> None:
    directory = caption_bundle(tmp_path, {"NOPE.vtt": sample("zoom.vtt")})
    assert errors_of(engine, directory) == [
        "transcripts/NOPE.vtt:1: session_id: expected a session in the bundle or the "
        'database, got "NOPE"'
    ]


def test_one_bad_file_rejects_the_whole_bundle(engine: Engine, tmp_path: Path) -> None:
    transcripts: dict[str, str | bytes] = {
        target: sample(source) for target, (source, _) in SAMPLES.items()
    }
    transcripts["C5.srt"] = "1\n00:00:01,000 --> 00:00:02,000\nHello, anyone there?\n"
    errors = errors_of(engine, caption_bundle(tmp_path, transcripts))
    assert errors == [
        "transcripts/C5.srt:2: expected the first cue to name its speaker (<v Name> or "
        "'Name: text'), got \"Hello, anyone there?\""
    ]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM sessions")).scalar_one() == 0
    assert transcript_count(engine) == 0


def test_unknown_speakers_name_the_file_and_the_speakers(engine: Engine, tmp_path: Path) -> None:
    vtt = (
        "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\n<v Alex Chen>Can you see my screen?</v>\n\n"
        "00:00:03.500 --> 00:00:05.000\n<v Priya>Yes.</v>\n"
    )
    errors = errors_of(engine, caption_bundle(tmp_path, {"C1.vtt": vtt}))
    assert errors == [
        'transcripts/C1.vtt:1: speaker: expected one speaker to be the tutor "Maria Gonzalez" '
        "(by speakers.csv, a Tutor/Teacher label or the tutor's name), got speakers "
        '"Alex Chen", "Priya"'
    ]


def test_speakers_csv_maps_names_for_one_session_or_every_session(
    engine: Engine, tmp_path: Path
) -> None:
    host = (
        "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\nHost: Welcome in.\n\n"
        "00:00:03.500 --> 00:00:05.000\nGuest 1: Thanks.\n"
    )
    pair = (
        "1\n00:00:01,000 --> 00:00:03,000\nAlex Chen: Can you see my screen?\n\n"
        "2\n00:00:03,500 --> 00:00:05,000\nPriya: Yes.\n"
    )
    speakers = "session_id,speaker,role\n*,host,tutor\nC3,Priya,tutor\nC3,Alex  Chen,student\n"
    directory = caption_bundle(
        tmp_path, {"C1.vtt": host, "C3.srt": pair}, **{"speakers.csv": speakers}
    )
    import_bundle(engine, [directory])
    rows = stored(engine)
    assert [t["speaker"] for t in rows["C1"][0]] == ["tutor", "student"]
    assert [t["speaker"] for t in rows["C3"][0]] == ["student", "tutor"]


def test_speakers_csv_errors(engine: Engine, tmp_path: Path) -> None:
    speakers = (
        "session_id,speaker,role\n*,Host,teacher\nC1,,tutor\nC1,Host,tutor\nC1,host,student\n"
    )
    errors = errors_of(engine, caption_bundle(tmp_path, {}, **{"speakers.csv": speakers}))
    assert errors == [
        'speakers.csv:2: role: expected tutor or student, got "teacher"',
        "speakers.csv:3: speaker: expected a speaker name of 1-200 characters, got nothing",
        'speakers.csv:5: speaker: expected each (session_id, speaker) once, got "host" for '
        '"C1" again (first on line 4)',
    ]
    no_header = errors_of(
        engine, caption_bundle(tmp_path / "b", {}, **{"speakers.csv": "C1,Host,tutor\n"})
    )
    assert no_header == [
        "speakers.csv:1: expected a header row naming the columns session_id, speaker, role, "
        'got "C1,Host,tutor"'
    ]


def test_tutor_by_first_name_only_when_unique(engine: Engine, tmp_path: Path) -> None:
    one = "[0:01] Maria: Hi!\n[0:04] Jordan: Hello\n"
    two = "[0:01] Maria G.: Hi!\n[0:04] Maria L.: Hello\n"
    import_bundle(engine, [caption_bundle(tmp_path / "a", {"C1.txt": one})])
    assert [t["speaker"] for t in stored(engine)["C1"][0]] == ["tutor", "student"]
    errors = errors_of(engine, caption_bundle(tmp_path / "b", {"C1.txt": two}))
    assert errors == [
        'transcripts/C1.txt:1: speaker: expected one speaker to be the tutor "Maria Gonzalez" '
        "(by speakers.csv, a Tutor/Teacher label or the tutor's name), got speakers "
        '"Maria G.", "Maria L."'
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("C1.vtt", "", "transcripts/C1.vtt:1: expected WebVTT cues, got an empty file"),
        ("C1.srt", "\n\n", "transcripts/C1.srt:1: expected SubRip blocks, got an empty file"),
        ("C1.txt", "", "transcripts/C1.txt:1: expected 'Name: text' lines, got an empty file"),
        (
            "C1.vtt",
            "WEBVTT\n\nNOTE the recording failed\n",
            "transcripts/C1.vtt:1: expected at least one turn of speech, got none",
        ),
        (
            "C1.docx",
            "Tutor: hi",
            "transcripts/C1.docx:1: expected a transcript named <session_id>.vtt, .srt or "
            ".txt, got a .docx file",
        ),
        (
            "C1.jsonl",
            '{"session_id": "C1", "text": "Tutor: hi"}\n',
            "transcripts/C1.jsonl:1: expected a transcript named <session_id>.vtt, .srt or "
            ".txt, got a .jsonl file",
        ),
        (
            "C1.srt",
            sample("teams.vtt"),
            "transcripts/C1.srt:1: expected SubRip blocks, got a WebVTT file (name it .vtt)",
        ),
        (
            "C1.vtt",
            sample("meet.srt"),
            'transcripts/C1.vtt:1: expected a file starting with WEBVTT, got "1"',
        ),
        (
            "C1.vtt",
            "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<v Tutor>Hi</v>\n\n"
            "2\n00:00:03,000 --> 00:00:04,000\n<v Student>Hello</v>\n",
            "transcripts/C1.vtt:7: expected cue timings like 00:01:02.500 --> 00:01:05.000 "
            'followed by the cue text, got "00:00:03,000 --> 00:00:04,000"',
        ),
        (
            "C1.srt",
            "\n\nSession transcript\n\n1\n00:00:01,000 --> 00:00:02,000\nTutor: Hi\n",
            "transcripts/C1.srt:3: expected a SubRip block (a number, 00:01:02,500 --> "
            '00:01:05,000, then text), got "Session transcript"',
        ),
        (
            "C1.vtt",
            "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nno speaker named here\n",
            "transcripts/C1.vtt:3: expected the first cue to name its speaker (<v Name> or "
            "'Name: text'), got \"no speaker named here\"",
        ),
        (
            "C1.txt",
            "Tutor: hi\n".encode("utf-16"),
            "transcripts/C1.txt:1: expected UTF-8 text, got UTF-16 text (byte order mark)",
        ),
    ],
)
def test_bad_files_are_reported_at_file_and_line(
    engine: Engine, tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    assert errors_of(engine, caption_bundle(tmp_path, {name: content})) == [message]
    assert transcript_count(engine) == 0


def test_one_transcript_per_session(engine: Engine, tmp_path: Path) -> None:
    jsonl = '{"session_id": "C2", "text": "Tutor: Hi\\nStudent: Hello"}\n'
    directory = caption_bundle(
        tmp_path,
        {"C1.srt": sample("meet.srt"), "C1.vtt": sample("teams.vtt"), "C2.txt": sample("chat.txt")},
        **{"transcripts.jsonl": jsonl},
    )
    assert errors_of(engine, directory) == [
        'transcripts/C1.vtt:1: session_id: expected one transcript per session, got "C1" '
        "again (first in transcripts/C1.srt)",
        'transcripts/C2.txt:1: session_id: expected one transcript per session, got "C2" '
        "again (first in transcripts.jsonl line 1)",
    ]


def test_export_writes_turns_that_import_to_the_same_transcripts(
    engine: Engine, tmp_path: Path
) -> None:
    import_bundle(engine, [caption_bundle(tmp_path / "in")])
    before = stored(engine)
    export_bundle(engine, tmp_path / "out")
    lines = (tmp_path / "out" / "transcripts.jsonl").read_text(encoding="utf-8").splitlines()
    exported = {r["session_id"]: r["turns"] for r in map(json.loads, lines)}
    assert exported == {sid: turns for sid, (turns, _raw, _hash) in before.items()}
    truncate_all(engine)
    import_bundle(engine, [tmp_path / "out"])
    after = stored(engine)
    assert {k: (v[0], v[2]) for k, v in after.items()} == {
        k: (v[0], v[2]) for k, v in before.items()
    }


def test_cli_reports_caption_errors_without_a_traceback(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    directory = caption_bundle(
        tmp_path, {"C1.vtt": "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nhi\n"}
    )
    env = {**os.environ, "DATABASE_URL": db_url, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "tutorscore", "import", str(directory), "--no-follow-up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "transcripts/C1.vtt:3: expected the first cue to name its speaker" in result.stderr
    assert "Traceback" not in result.stderr
    (directory / "transcripts" / "C1.vtt").write_text(sample("teams.vtt"), encoding="utf-8")
    ok = subprocess.run(
        [sys.executable, "-m", "tutorscore", "import", str(directory), "--no-follow-up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert stored(engine)["C1"][0] == TEAMS_TURNS


# ---------------------------------------------------------------- parsing details


def _turns(fmt: str, content: str, tutor: str = "Maria Gonzalez") -> list[Any]:
    return [dict(t) for t in transcript_turns(fmt, content, session_id="X", tutor_name=tutor)]


def test_several_voices_in_one_cue_become_turns() -> None:
    vtt = (
        "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Maria Gonzalez>Is it 4?</v>\n"
        "<v Jordan>No, 5.</v>\n\n00:00:04.000 --> 00:00:05.000\n<v Jordan>I think.</v>\n"
    )
    assert _turns("vtt", vtt) == [
        {"speaker": "tutor", "text": "Is it 4?", "start_s": 1.0},
        {"speaker": "student", "text": "No, 5. I think.", "start_s": 1.0},
    ]


def test_overlapping_and_out_of_order_cues_keep_file_order() -> None:
    srt = (
        "1\n00:00:05,000 --> 00:00:09,000\nTeacher: Let's read it aloud.\n\n"
        "2\n00:00:04,000 --> 00:00:06,000\nStudent: Okay.\n\n"
        "3\n00:00:05,500 --> 00:00:07,000\nTeacher: Go ahead.\n"
    )
    assert _turns("srt", srt, tutor="") == [
        {"speaker": "tutor", "text": "Let's read it aloud.", "start_s": 5.0},
        {"speaker": "student", "text": "Okay.", "start_s": 4.0},
        {"speaker": "tutor", "text": "Go ahead.", "start_s": 5.5},
    ]


def test_text_times_elapsed_clock_and_past_midnight() -> None:
    elapsed = "00:01:02 Tutor: hi\n(00:01:10) Student: hello\n01:15 - Tutor: ok\n"
    assert [c.start_s for c in parse_plain(elapsed)] == [62.0, 70.0, 75.0]
    clock = "11:59:50 PM Tutor: late one\n12:00:10 AM Student: yes\n"
    assert [c.start_s for c in parse_plain(clock)] == [0.0, 20.0]
    untimed = "Tutor: Remember: a line may hold a colon.\nStudent: ok\nso: next\n"
    assert _turns("text", untimed) == [
        {"speaker": "tutor", "text": "Remember: a line may hold a colon."},
        {"speaker": "student", "text": "ok\nso: next"},
    ]


def test_zoom_chat_exports() -> None:
    old = (
        "00:03:12 From  Maria Gonzalez  to  Everyone : Welcome!\n"
        "00:03:40 From Jordan Smith to Maria Gonzalez (Privately) : hi\n"
    )
    assert _turns("text", old) == [
        {"speaker": "tutor", "text": "Welcome!", "start_s": 192.0},
        {"speaker": "student", "text": "hi", "start_s": 220.0},
    ]
    tabbed = "00:03:12\tFrom Maria Gonzalez to Everyone:\n\tWelcome!\n00:03:40\tJordan:\n\thi\n"
    assert _turns("text", tabbed) == [
        {"speaker": "tutor", "text": "Welcome!", "start_s": 192.0},
        {"speaker": "student", "text": "hi", "start_s": 220.0},
    ]


def test_names_in_other_scripts() -> None:
    srt = (
        "1\n00:00:01,000 --> 00:00:02,000\n山田 花子: こんにちは\n\n"
        "2\n00:00:02,000 --> 00:00:03,000\nÉlodie: Bonjour !\n"
    )
    assert _turns("srt", srt, tutor="山田 花子") == [
        {"speaker": "tutor", "text": "こんにちは", "start_s": 1.0},
        {"speaker": "student", "text": "Bonjour !", "start_s": 2.0},
    ]


def test_what_is_not_a_speaker() -> None:
    vtt = (
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nMaria Gonzalez: See https://example.org\n\n"
        "00:00:02.000 --> 00:00:03.000\nso the answer is: 5\n\n"
        "00:00:03.000 --> 00:00:04.000\nat 10:30 we stop\n\n"
        "00:00:04.000 --> 00:00:05.000\n>> Jordan: okay\n"
    )
    assert _turns("vtt", vtt) == [
        {
            "speaker": "tutor",
            "text": "See https://example.org so the answer is: 5 at 10:30 we stop",
            "start_s": 1.0,
        },
        {"speaker": "student", "text": "okay", "start_s": 4.0},
    ]


def test_tutor_name_forms() -> None:
    def roles(*labels: str, tutor: str = "Maria Gonzalez") -> dict[str, str] | None:
        return assign_roles(labels, session_id="X", tutor_name=tutor, speakers=None)[0]

    assert roles("Maria Gonzalez (she/her)", "Jordan") == {
        "Maria Gonzalez (she/her)": "tutor",
        "Jordan": "student",
    }
    assert roles("maria", "Jordan") == {"maria": "tutor", "Jordan": "student"}
    assert roles("Ms. Gonzalez", "Jordan") == {"Ms. Gonzalez": "tutor", "Jordan": "student"}
    assert roles("Teacher", "Jordan") == {"Teacher": "tutor", "Jordan": "student"}
    assert roles("Student 1", "Student 2") is None
    table = SpeakerRoles.empty()
    table.add("X", "Jordan", "student")
    table.add("*", "Jordan", "tutor")
    assert assign_roles(
        ["Jordan", "Maria"], session_id="X", tutor_name="Maria Gonzalez", speakers=table
    )[0] == {"Jordan": "student", "Maria": "tutor"}


# ---------------------------------------------------------------- POST /api/sessions


async def test_api_records_a_session_with_a_transcript_file(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    add_people(engine, [{"tutor_id": "T1", "name": "Maria Gonzalez"}], ["S1"])
    headers = bearer(engine, "ingest", "admin")
    when = AS_OF - timedelta(days=1)
    for session_id, fmt, source, turns in [
        ("A1", "vtt", "teams.vtt", TEAMS_TURNS),
        ("A2", "srt", "meet.srt", MEET_TURNS),
        ("A3", "text", "chat.txt", CHAT_TURNS),
    ]:
        body = session_record(
            session_id, "T1", "S1", when=when, transcript={"format": fmt, "content": sample(source)}
        )
        r = await client.post("/api/sessions", json=body, headers=headers)
        assert r.status_code == 201, r.text
        assert r.json()["evaluation_job_id"] is not None
        assert stored(engine)[session_id][:2] == (turns, sample(source))
    named = session_record(
        "A4",
        "T1",
        "S1",
        when=when,
        transcript={
            "format": "srt",
            "content": "1\n00:00:01,000 --> 00:00:02,000\nHost: Hi\n\n"
            "2\n00:00:02,000 --> 00:00:03,000\nGuest: Hello\n",
            "speakers": {"host": "tutor"},
        },
    )
    assert (await client.post("/api/sessions", json=named, headers=headers)).status_code == 201
    assert [t["speaker"] for t in stored(engine)["A4"][0]] == ["tutor", "student"]


async def test_api_transcript_file_errors_are_422_with_importer_messages(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    add_people(engine, [{"tutor_id": "T1", "name": "Maria Gonzalez"}], ["S1"])
    headers = bearer(engine, "ingest", "admin")
    when = AS_OF - timedelta(days=1)

    async def details(transcript: Any, **extra: Any) -> list[str]:
        body = session_record("A1", "T1", "S1", when=when, transcript=transcript, **extra)
        r = await client.post("/api/sessions", json=body, headers=headers)
        assert r.status_code == 422, r.text
        return r.json()["error"]["details"]  # type: ignore[no-any-return]

    no_speaker = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nhello\n"
    assert await details({"format": "vtt", "content": no_speaker}) == [
        "request body: transcript.content: line 3: expected the first cue to name its speaker "
        "(<v Name> or 'Name: text'), got \"hello\""
    ]
    assert await details({"format": "doc", "content": "x", "speakers": {"A": "boss"}}) == [
        'request body: transcript.format: expected vtt, srt or text, got "doc"',
        'request body: transcript.speakers.A: expected tutor or student, got "boss"',
    ]
    unknown = "[0:01] Alex: hi\n[0:02] Priya: hello\n"
    assert await details({"format": "text", "content": unknown}) == [
        "request body: transcript.content: line 1: speaker: expected one speaker to be the "
        'tutor "Maria Gonzalez" (by speakers.csv, a Tutor/Teacher label or the tutor\'s name), '
        'got speakers "Alex", "Priya"'
    ]
    both = await details({"format": "text", "content": "Tutor: hi"}, turns=TRANSCRIPT)
    assert both == ["request body: transcript: expected one of turns, text or transcript, got more"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM sessions")).scalar_one() == 0


async def test_openapi_shows_turns_and_transcript_files(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    body = schema["paths"]["/api/sessions"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) == {"turns", "vtt", "srt", "text"}
    assert "turns" in body["examples"]["turns"]["value"]
    assert body["examples"]["vtt"]["value"]["transcript"]["format"] == "vtt"
    session_in = schema["components"]["schemas"]["SessionIn"]["properties"]
    assert {"turns", "text", "transcript"} <= set(session_in)
    file_in = schema["components"]["schemas"]["TranscriptFileIn"]["properties"]
    assert file_in["format"]["enum"] == ["vtt", "srt", "text"]

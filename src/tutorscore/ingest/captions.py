"""Transcripts as meeting and chat tools write them: WebVTT, SubRip and "Name: text" logs.

The caption formats are read by maintained libraries (`webvtt-py`, `srt`); this
module only finds who speaks in each cue (a WebVTT voice tag `<v Name>`, or a
`Name:` prefix), merges consecutive cues of one speaker into a turn, and maps
speaker names to the roles the rest of tutorscore knows (tutor, student).

Every problem is a `CaptionProblem(line, message)`, the line being the physical
line of the cue (its timing line) or of the text line, so callers can report
`file:line: message` like the importer does for CSV.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import srt
import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError
from webvtt.models import Caption, Timestamp

from tutorscore.ingest._fields import field_message, render_got
from tutorscore.ingest.transcript_format import Turn

FORMATS = ("vtt", "srt", "text")
"""The `format` names (POST /api/sessions); bundle files use the extensions .vtt, .srt, .txt."""
EXTENSIONS = {"vtt": "vtt", "srt": "srt", "txt": "text"}
ROLES = ("tutor", "student")

# A speaker label before a colon: starts with a letter, at most 64 characters and
# six words, no sentence punctuation; the colon is followed by a space or the line end
# (so "https://..." and "10:30" are not speakers). An optional ">>" or "- " lead is
# how live captioners and subtitlers mark a change of speaker.
_NAME_PREFIX = re.compile(
    r"^\s*(?:>>\s*|-\s+)?(?P<name>[^\W\d_][\w .'’()/&-]{0,63}?)\s*:(?:\s+(?P<rest>.*)|\s*)$",
    re.DOTALL,
)
_MAX_NAME_WORDS = 6
# Zoom's chat export names both ends: "From Ana Rivera to Everyone".
_CHAT_FROM = re.compile(r"^From\s+(?P<name>.+?)\s+to\s+.+$", re.IGNORECASE)
# A plain-text line may start with a time: 00:01:02, [00:01:02], (01:02), 10:02:03 AM,
# optionally followed by "-" or "|" before the speaker.
_TIME_PREFIX = re.compile(
    r"^\s*[\[(]?(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:[.,]\d{1,3})?)?"
    r"(?:\s*(?P<ampm>[AaPp])\.?[Mm]\.?)?[\])]?\s*(?:[-|]\s*)?(?=\S)"
)
_SSA_CODES = re.compile(r"\{\\[^}]*\}")  # SubRip files carry SSA codes such as {\an8}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SPACES = re.compile(r"\s+")
_TRAILING_NOTE = re.compile(r"\s*\([^()]*\)\s*$")  # "Ana Rivera (she/her)" -> "Ana Rivera"
_HONORIFICS = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "professor"})
_TUTOR_WORDS = frozenset({"tutor", "teacher"})
_STUDENT_WORDS = frozenset({"student"})
_NAME_PARTICLES = frozenset(
    "de del della da das dos du la le van von der den bin binti al el y e di ter ten".split()
)


@dataclass(frozen=True)
class CaptionProblem:
    line: int
    message: str


class CaptionError(ValueError):
    """The transcript cannot be read; `problems` say where (1-based physical lines)."""

    def __init__(self, problems: Sequence[CaptionProblem]) -> None:
        super().__init__("; ".join(f"line {p.line}: {p.message}" for p in problems))
        self.problems = list(problems)


@dataclass
class Cue:
    """One piece of speech: the line it starts on, who says it (None: not named), what."""

    line: int
    speaker: str | None
    text: str
    start_s: float | None
    from_prefix: bool = False  # the speaker came from a `Name:` prefix, not a voice tag


@dataclass
class LabelledTurn:
    """Consecutive cues of one speaker, before the speaker is mapped to a role."""

    line: int
    speaker: str
    text: str
    start_s: float | None


def _quote(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    return json.dumps(text if len(text) <= 50 else text[:47] + "...", ensure_ascii=False)


def split_lines(content: str) -> list[str]:
    """Physical lines on CR, LF or CRLF (as WebVTT and the line numbers of errors count them)."""
    lines = _LINE_BREAK.split(content)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _name_prefix(line: str) -> tuple[str, str] | None:
    """("Ana Rivera", "rest of the line") for a `Name: text` line, else None."""
    if ":" not in line:
        return None
    match = _NAME_PREFIX.match(line)
    if match is None:
        return None
    name = _SPACES.sub(" ", match.group("name")).strip()
    chat = _CHAT_FROM.match(name)
    if chat is not None:
        name = chat.group("name")
    elif len(name.split(" ")) > _MAX_NAME_WORDS:
        return None
    return name, (match.group("rest") or "").strip()


def _clean(text: str) -> str:
    return _SPACES.sub(" ", html.unescape(text)).strip()


# ---------------------------------------------------------------- WebVTT


def _timing_start(line: str) -> Timestamp | None:
    """The start time of a line that looks like cue timings, by webvtt-py's own parser."""
    left = line.partition("-->")[0].strip()
    try:
        return Timestamp.from_string(left)
    except (MalformedCaptionError, ValueError, TypeError):
        return None


def parse_vtt(content: str) -> list[Cue]:
    """WebVTT cues with speakers (voice tag or `Name:` prefix); NOTE/STYLE/REGION ignored.

    webvtt-py drops a malformed cue block silently; its timing line is found here
    (every line holding "-->" must belong to a cue it read) and reported.
    """
    content = content.removeprefix("\ufeff")
    lines = split_lines(content)
    if not lines or not any(line.strip() for line in lines):
        raise CaptionError([CaptionProblem(1, "expected WebVTT cues, got an empty file")])
    try:
        captions = webvtt.from_string(content).captions
    except MalformedFileError:
        raise CaptionError(
            [CaptionProblem(1, f"expected a file starting with WEBVTT, got {_quote(lines[0])}")]
        ) from None
    except MalformedCaptionError as exc:
        raise CaptionError(
            [CaptionProblem(1, f"expected WebVTT cues, got an error ({exc})")]
        ) from None
    problems: list[CaptionProblem] = []
    arrows = [
        (number, line)
        for number, line in enumerate(lines, start=1)
        if "-->" in line and not line.startswith("NOTE")
    ]
    cues: list[Cue] = []
    position = 0
    for caption in captions:
        line = 0
        while position < len(arrows):
            number, text = arrows[position]
            position += 1
            start = _timing_start(text)
            if start is not None and caption.start_time == start:
                line = number
                break
            problems.append(_dropped(number, text))
        cues.extend(_caption_cues(caption, line or 1))
    problems.extend(_dropped(number, text) for number, text in arrows[position:])
    if problems:
        raise CaptionError(problems)
    return cues


def _dropped(line: int, text: str) -> CaptionProblem:
    return CaptionProblem(
        line,
        "expected cue timings like 00:01:02.500 --> 00:01:05.000 followed by the cue text, "
        f"got {_quote(text)}",
    )


def _caption_cues(caption: Caption, line: int) -> list[Cue]:
    """A caption's speech: one piece per voice tag or `Name:` line; lines joined by spaces."""
    start = caption.start_time.in_milliseconds() / 1000
    voice_lines = [raw for raw in caption.lines if raw.lstrip().startswith("<v")]
    if len(voice_lines) <= 1:
        voice = caption.voice
        if voice is not None:
            return _with_prefixes([caption.text], line, start, voice=voice.strip())
        return _with_prefixes(caption.text.split("\n"), line, start)
    # Several voices in one cue (<v Ana>Hi</v> / <v Sam>Hello</v>): one piece each.
    cues: list[Cue] = []
    for raw in caption.lines:
        piece = Caption(text=raw)
        if piece.voice is not None or not cues:
            speaker = piece.voice.strip() if piece.voice is not None else None
            cues.append(Cue(line, speaker, _clean(piece.text), start))
        else:
            cues[-1].text = f"{cues[-1].text} {_clean(piece.text)}".strip()
    return [c for c in cues if c.text]


def _with_prefixes(
    texts: list[str], line: int, start: float | None, *, voice: str | None = None
) -> list[Cue]:
    """Cue text lines to pieces: a line with a `Name:` prefix starts a new speaker."""
    cues: list[Cue] = []
    for text in texts:
        prefix = None if voice else _name_prefix(text)
        if prefix is not None:
            cues.append(Cue(line, prefix[0], _clean(prefix[1]), start, True))
        elif cues:
            cues[-1].text = f"{cues[-1].text} {_clean(text)}".strip()
        else:
            cues.append(Cue(line, voice, _clean(text), start))
    return [c for c in cues if c.text]


# ---------------------------------------------------------------- SubRip


def _srt_start(line: str) -> timedelta | None:
    left = line.partition("-->")[0].strip()
    try:
        value: timedelta = srt.srt_timestamp_to_timedelta(left)
    except (srt.TimestampParseError, ValueError, TypeError):
        return None
    return value


def parse_srt(content: str) -> list[Cue]:
    """SubRip blocks (read by `srt`) with speakers from `Name:` prefixes; tags stripped."""
    content = content.removeprefix("\ufeff")
    lines = split_lines(content)
    if not any(line.strip() for line in lines):
        raise CaptionError([CaptionProblem(1, "expected SubRip blocks, got an empty file")])
    if lines[0].lstrip().startswith("WEBVTT"):
        raise CaptionError(
            [CaptionProblem(1, "expected SubRip blocks, got a WebVTT file (name it .vtt)")]
        )
    try:
        subtitles = list(srt.parse(content))
    except srt.SRTParseError as exc:
        skipped = len(exc.unmatched_content) - len(exc.unmatched_content.lstrip())
        at = exc.expected_start + skipped
        line = content.count("\n", 0, at) + 1
        first = exc.unmatched_content.strip().split("\n")[0]
        raise CaptionError(
            [
                CaptionProblem(
                    line,
                    "expected a SubRip block (a number, 00:01:02,500 --> 00:01:05,000, "
                    f"then text), got {_quote(first)}",
                )
            ]
        ) from None
    arrows = [(n, text) for n, text in enumerate(lines, start=1) if "-->" in text]
    cues: list[Cue] = []
    position = 0
    for subtitle in subtitles:
        line = 1
        while position < len(arrows):
            number, text = arrows[position]
            position += 1
            start = _srt_start(text)
            if start is not None and start == subtitle.start:
                line = number
                break
        body = subtitle.content
        if "<" in body or "{" in body:
            body = Caption(text=body).text  # webvtt-py strips <i>, <b>, <font ...> alike
            body = _SSA_CODES.sub("", body)
        cues.extend(_with_prefixes(body.split("\n"), line, subtitle.start.total_seconds()))
    return cues


# ---------------------------------------------------------------- plain text


def _clock_seconds(match: re.Match[str]) -> tuple[int, bool]:
    """(seconds of a time prefix, whether it is a clock time with AM/PM)."""
    hours, minutes, seconds = match.group("h"), match.group("m"), match.group("s")
    ampm = match.group("ampm")
    if seconds is None and ampm is None:  # 01:02 is minutes:seconds of elapsed time
        return int(hours) * 60 + int(minutes), False
    h = int(hours)
    if ampm is not None:
        h = h % 12 + (12 if ampm.lower() == "p" else 0)
    return h * 3600 + int(minutes) * 60 + int(seconds or 0), ampm is not None


@dataclass
class _Clock:
    """Clock times (`10:02:03 AM`) as seconds from the first one in the file; a time
    more than 12 hours earlier than the one before it is taken as past midnight."""

    first: int | None = None
    day: int = 0
    previous: int = 0

    def start(self, time: re.Match[str]) -> float:
        """The start_s of a line's time prefix (elapsed times are taken as they are)."""
        seconds, clock = _clock_seconds(time)
        if not clock:
            return float(seconds)
        if self.first is None:
            self.first = self.previous = seconds
        if seconds + self.day < self.previous - 12 * 3600:
            self.day += 24 * 3600
        self.previous = seconds + self.day
        return float(seconds + self.day - self.first)


def parse_plain(content: str) -> list[Cue]:
    """`Name: text` lines, optionally after a time; other lines continue the turn above.

    When the first `Name:` line starts with a time, a line without one continues
    the turn above even if it looks like `Word: text`. Elapsed times (`00:01:02`)
    are the turn's start_s; clock times (`10:02:03 AM`)
    count from the first one in the file (a time earlier than the one before it is
    taken as past midnight).
    """
    content = content.removeprefix("\ufeff")
    cues: list[Cue] = []
    clock = _Clock()
    seen_text = False
    timed: bool | None = None  # whether the first speaker line starts with a time
    for number, raw in enumerate(split_lines(content), start=1):
        line = raw.strip()
        if not line:
            continue
        seen_text = True
        start: float | None = None
        time = _TIME_PREFIX.match(line)
        if time is not None:
            start = clock.start(time)
            line = line[time.end() :]
        prefix = _name_prefix(line)
        if timed is None and prefix is not None:
            timed = time is not None
        if timed and time is None:
            prefix = None  # a log whose speaker lines carry times: an untimed line continues
        if prefix is not None:
            cues.append(Cue(number, prefix[0], prefix[1].strip(), start, True))
        else:
            cues.append(Cue(number, None, line, start))
    if not seen_text:
        raise CaptionError([CaptionProblem(1, "expected 'Name: text' lines, got an empty file")])
    return cues


# ---------------------------------------------------------------- turns and roles


def parse(fmt: str, content: str) -> list[Cue]:
    """Cues of a transcript in `fmt` (vtt, srt or text)."""
    if fmt == "vtt":
        return parse_vtt(content)
    if fmt == "srt":
        return parse_srt(content)
    if fmt == "text":
        return parse_plain(content)
    raise ValueError(f"unknown transcript format {fmt!r}")


def _key(name: str) -> str:
    return _SPACES.sub(" ", name).strip().casefold()


def _looks_like_name(label: str) -> bool:
    """Words that do not start lower-case ("Ana de la Cruz", "Speaker 2", "山田"), or a
    Tutor/Teacher/Student label in any case."""
    words = label.split(" ")
    if _literal_role(label) is not None:
        return True
    # "not lower-case" rather than "upper-case": names in scripts without case (山田) count
    return not words[0][:1].islower() and all(
        not w[:1].islower() or w in _NAME_PARTICLES for w in words
    )


def _settle_prefixes(cues: Sequence[Cue]) -> None:
    """A `Name:` prefix seen once that does not look like a name ("so the answer is: 5",
    "so: next") is part of the text, not a speaker."""
    counts = Counter(_key(c.speaker) for c in cues if c.from_prefix and c.speaker)
    for cue in cues:
        if (
            cue.from_prefix
            and cue.speaker
            and counts[_key(cue.speaker)] < 2
            and not _looks_like_name(cue.speaker)
        ):
            cue.text = f"{cue.speaker}: {cue.text}".strip()
            cue.speaker, cue.from_prefix = None, False


def merge_cues(cues: Sequence[Cue], *, joiner: str = " ") -> list[LabelledTurn]:
    """Consecutive cues of one speaker become one turn (start_s of its first cue).

    A cue without a speaker continues the speaker before it; the first cue must
    name one. The speaker of a turn is the spelling of its first appearance.
    """
    _settle_prefixes(cues)
    turns: list[LabelledTurn] = []
    spelling: dict[str, str] = {}
    for cue in cues:
        if not cue.text and cue.speaker is None:
            continue
        if cue.speaker is None:
            if not turns:
                raise CaptionError(
                    [
                        CaptionProblem(
                            cue.line,
                            "expected the first cue to name its speaker (<v Name> or "
                            f"'Name: text'), got {_quote(cue.text)}",
                        )
                    ]
                )
            turn = turns[-1]
            turn.text = f"{turn.text}{joiner}{cue.text}" if turn.text else cue.text
            if turn.start_s is None:
                turn.start_s = cue.start_s
            continue
        speaker = spelling.setdefault(_key(cue.speaker), cue.speaker)
        if turns and turns[-1].speaker == speaker:
            turn = turns[-1]
            turn.text = f"{turn.text}{joiner}{cue.text}" if turn.text else cue.text
            if turn.start_s is None:
                turn.start_s = cue.start_s
            continue
        turns.append(LabelledTurn(cue.line, speaker, cue.text, cue.start_s))
    return [t for t in turns if t.text]  # "Name:" with nothing said after it


@dataclass
class SpeakerRoles:
    """speakers.csv: role by (session_id, speaker); session_id `*` stands for every session."""

    roles: dict[tuple[str, str], str]

    @classmethod
    def empty(cls) -> SpeakerRoles:
        return cls({})

    def add(self, session_id: str, speaker: str, role: str) -> None:
        self.roles[(session_id, _key(speaker))] = role

    def has(self, session_id: str, speaker: str) -> bool:
        return (session_id, _key(speaker)) in self.roles

    def role(self, session_id: str, speaker: str) -> str | None:
        key = _key(speaker)
        return self.roles.get((session_id, key)) or self.roles.get(("*", key))


def _bare(name: str) -> str:
    """A label for matching: without a trailing "(...)" note, trailing dots, case."""
    return _key(_TRAILING_NOTE.sub("", name)).rstrip(".")


def _literal_role(name: str) -> str | None:
    words = _bare(name).replace("#", " ").split(" ")
    if words[0] in _TUTOR_WORDS:
        return "tutor"
    if words[0] in _STUDENT_WORDS:
        return "student"
    return None


def _tutor_name_matches(labels: Sequence[str], tutor_name: str) -> list[str]:
    """Labels naming the tutor: the full name, else the first name (or title + last name)
    when exactly one label does."""
    full = _bare(tutor_name)
    if not full:
        return []
    exact = [label for label in labels if _bare(label) == full]
    if exact:
        return exact
    words = full.split(" ")
    first, last = words[0], words[-1]
    partial = []
    for label in labels:
        parts = _bare(label).replace(".", " ").split()
        if not parts:
            continue
        if parts[0] == first or (
            len(words) > 1 and len(parts) == 2 and parts[0] in _HONORIFICS and parts[1] == last
        ):
            partial.append(label)
    return partial if len(partial) == 1 else []


def assign_roles(
    labels: Sequence[str],
    *,
    session_id: str,
    tutor_name: str | None,
    speakers: SpeakerRoles | None = None,
) -> tuple[dict[str, str] | None, str | None]:
    """({speaker: role}, None), or (None, why no speaker could be mapped to the tutor).

    In order: speakers.csv, literal Tutor/Teacher/Student labels, the session's
    tutor name (full name, or first name when unique); every other speaker is a
    student once a tutor is known.
    """
    roles: dict[str, str] = {}
    for label in labels:
        role = speakers.role(session_id, label) if speakers is not None else None
        if role is None:
            role = _literal_role(label)
        if role is not None:
            roles[label] = role
    if "tutor" not in roles.values() and tutor_name:
        for label in _tutor_name_matches([lb for lb in labels if lb not in roles], tutor_name):
            roles[label] = "tutor"
    if "tutor" not in roles.values():
        found = ", ".join(_quote(label) for label in labels)
        whose = f" {_quote(tutor_name)}" if tutor_name else ""
        return None, (
            f"speaker: expected one speaker to be the tutor{whose} (by speakers.csv, a "
            f"Tutor/Teacher label or the tutor's name), got speakers {found}"
        )
    for label in labels:
        roles.setdefault(label, "student")
    return roles, None


def transcript_turns(
    fmt: str,
    content: str,
    *,
    session_id: str,
    tutor_name: str | None,
    speakers: SpeakerRoles | None = None,
) -> list[Turn]:
    """A transcript file's text to turns with roles; raises CaptionError (line, message)."""
    cues = parse(fmt, content)
    labelled = merge_cues(cues, joiner="\n" if fmt == "text" else " ")
    if not labelled:
        raise CaptionError([CaptionProblem(1, "expected at least one turn of speech, got none")])
    labels = list(dict.fromkeys(t.speaker for t in labelled))
    roles, problem = assign_roles(
        labels, session_id=session_id, tutor_name=tutor_name, speakers=speakers
    )
    if roles is None:
        raise CaptionError([CaptionProblem(1, problem or "speaker: no tutor")])
    turns: list[Turn] = []
    for labelled_turn in labelled:
        turn: Turn = {"speaker": roles[labelled_turn.speaker], "text": labelled_turn.text}
        if labelled_turn.start_s is not None:
            turn["start_s"] = round(labelled_turn.start_s, 3)
        turns.append(turn)
    return turns


def speaker_map(value: Mapping[str, str], session_id: str) -> SpeakerRoles:
    """A {"speaker": "tutor"|"student"} object (API) as SpeakerRoles for one session."""
    table = SpeakerRoles.empty()
    for speaker, role in value.items():
        table.add(session_id, speaker, role)
    return table


# ---------------------------------------------------------------- one transcript (API)


@dataclass(frozen=True)
class TranscriptFile:
    """`{"format": "vtt"|"srt"|"text", "content": "…", "speakers": {…}}` (POST /api/sessions)."""

    fmt: str
    content: str
    speakers: dict[str, str]


def check_transcript_file(value: Any, where: str) -> tuple[TranscriptFile | None, list[str]]:
    """The shape of a `transcript` object, with the importer's kind of messages."""
    if not isinstance(value, dict):
        expected = 'an object {"format": "vtt"|"srt"|"text", "content": "..."}'
        return None, [f"{where}: transcript: expected {expected}, got {render_got(value)}"]
    errors: list[str] = []
    fmt, content, speakers = value.get("format"), value.get("content"), value.get("speakers")
    if not isinstance(fmt, str) or fmt.strip().lower() not in FORMATS:
        errors.append(field_message(where, "transcript.format", "vtt, srt or text", fmt))
    if not isinstance(content, str):
        errors.append(field_message(where, "transcript.content", "the file's text", content))
    roles: dict[str, str] = {}
    if speakers is not None:
        if not isinstance(speakers, dict):
            expected = 'an object {"speaker name": "tutor"|"student"}'
            errors.append(field_message(where, "transcript.speakers", expected, speakers))
        else:
            for name, role in speakers.items():
                if not isinstance(role, str) or role.strip().lower() not in ROLES:
                    column = f"transcript.speakers.{name}"
                    errors.append(field_message(where, column, "tutor or student", role))
                else:
                    roles[name] = role.strip().lower()
    if errors:
        return None, errors
    assert isinstance(fmt, str) and isinstance(content, str)
    return TranscriptFile(fmt.strip().lower(), content, roles), []


def turns_of_file(
    transcript: TranscriptFile, *, session_id: str, tutor_name: str | None, where: str
) -> tuple[tuple[list[Turn], str] | None, list[str]]:
    """((turns, raw text), []) or (None, ["request body: transcript.content: line 3: ..."])."""
    content = transcript.content.removeprefix("\ufeff")
    try:
        turns = transcript_turns(
            transcript.fmt,
            content,
            session_id=session_id,
            tutor_name=tutor_name,
            speakers=speaker_map(transcript.speakers, session_id),
        )
    except CaptionError as exc:
        return None, [
            f"{where}: transcript.content: line {p.line}: {p.message}" for p in exc.problems
        ]
    return (turns, content), []

"""PII redaction: emails, phones, names; quotes of redacted text map back to the original."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tutorscore.evaluation.redact import Redactor, redact_text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("email me at jane.doe+math@example.co.uk please", "email me at [EMAIL] please"),
        ("my number is (555) 123-4567.", "my number is [PHONE]."),
        ("call 555-123-4567 or 555.123.4567", "call [PHONE] or [PHONE]"),
        ("text +1 555 123 4567 tonight", "text [PHONE] tonight"),
        ("London: +44 20 7946 0958", "London: [PHONE]"),
        ("local 555-0134 works", "local [PHONE] works"),
        ("or 5551234567", "or [PHONE]"),
        ("Hi, I'm Sofia and I need help", "Hi, I'm [NAME] and I need help"),
        ("my name is Kwame Mensah.", "my name is [NAME]."),
        ("This is Dmitri from the tutoring team", "This is [NAME] from the tutoring team"),
        ("Great job, Olivia!", "Great job, [NAME]!"),
        ("Thanks Ethan and Priya", "Thanks [NAME] and [NAME]"),
    ],
)
def test_redacts_pii(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "What is 3.14159 times 2?",
        "Solve 12x - 45 = 3 for x.",
        "I'm not sure, I'm Confused about slope.",
        "I'm Going to try the next one",
        "This is Algebra, not Geometry.",
        "You will see what May brings; mark the answer.",
        "The year 2024 had 366 days; 1234 + 5678 = 6912.",
        "12 x 12 = 144 and 1000000 is a million",
        "Compute 2 + 2 = 4, then 10 20 30 40 50.",
    ],
)
def test_leaves_ordinary_text_alone(text: str) -> None:
    assert redact_text(text) == text


def test_names_from_the_database_are_redacted_case_insensitively() -> None:
    redactor = Redactor(["Zebulon Quackenbush"])
    out = redactor.redact("zebulon said Quackenbush was here; Zebulon Quackenbush agreed")
    assert out.text == "[NAME] said [NAME] was here; [NAME] agreed"
    assert out.counts == {"[NAME]": 3}


def test_extra_names_per_call() -> None:
    out = Redactor().redact("Bye Thaddeus!", extra_names=["Thaddeus"])
    assert out.text == "Bye [NAME]!"


def test_quote_of_redacted_text_maps_back_to_the_verbatim_original() -> None:
    original = "Nice work Olivia, email olivia@example.com or call 555-123-4567 later."
    red = Redactor().redact(original)
    assert red.text == "Nice work [NAME], email [EMAIL] or call [PHONE] later."
    quote = "[NAME], email [EMAIL] or"
    start = red.text.index(quote)
    o_start, o_end = red.to_original(start, start + len(quote))
    assert original[o_start:o_end] == "Olivia, email olivia@example.com or"
    tail = "later."
    start = red.text.index(tail)
    o_start, o_end = red.to_original(start, start + len(tail))
    assert original[o_start:o_end] == "later."


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200))
def test_text_without_pii_round_trips_and_mapping_is_monotone(text: str) -> None:
    red = Redactor().redact(text)
    for pos in range(len(red.text) + 1):
        a, b = red.to_original(pos, pos)
        assert 0 <= a <= len(text) and 0 <= b <= len(text)
    if not red.spans:
        assert red.text == text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("UK: call 020 7946 0958 tonight", "UK: call [PHONE] tonight"),
        ("mon portable: 06 12 34 56 78.", "mon portable: [PHONE]."),
        ("or 0612345678", "or [PHONE]"),
        ("Berlin 030 12345678 ok", "Berlin [PHONE] ok"),
        ("Sydney (02) 9374 4000", "Sydney [PHONE]"),
        # national number followed by more digits in the same run: the number only
        ("ring 020 7946 0958 2005", "ring [PHONE] 2005"),
    ],
)
def test_redacts_national_phone_formats(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_arithmetic_next_to_a_local_number_stays_sensible() -> None:
    """`3x + 555-1234`: the seven-digit local number is redacted, the algebra is kept."""
    out = Redactor().redact("so 3x + 555-1234 = 0, what is x?")
    assert out.text == "so 3x + [PHONE] = 0, what is x?"
    start = out.text.index("[PHONE]")
    assert out.original[slice(*out.to_original(start, start + 7))] == "555-1234"

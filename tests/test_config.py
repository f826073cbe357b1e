"""Environment overrides of the rules file: TUTORSCORE_<SECTION>__<KEY>, tables at any depth."""

from __future__ import annotations

from pathlib import Path

import pytest

from tutorscore.config import ConfigError, load_rules


def test_a_top_level_section_key_is_overridden() -> None:
    rules = load_rules(None, environ={"TUTORSCORE_THRESHOLDS__HIGH_RESCHEDULER_RATE": "0.2"})
    assert rules.thresholds.high_rescheduler_rate == 0.2


def test_a_nested_table_key_is_overridden() -> None:
    default = load_rules(None, environ={})
    rules = load_rules(
        None,
        environ={
            "TUTORSCORE_EVALUATION__HEURISTIC__MONOLOGUE_WORDS": "99",
            "TUTORSCORE_EVALUATION__COUNTED__RULE": '"best_agreement"',
            "TUTORSCORE_EVALUATION__LEASE_SECONDS": "7",
        },
    )
    assert default.evaluation.heuristic.monologue_words != 99
    assert rules.evaluation.heuristic.monologue_words == 99
    assert rules.evaluation.counted.rule == "best_agreement"
    assert rules.evaluation.lease_seconds == 7
    # the rest of the nested table keeps its defaults
    assert (
        rules.evaluation.heuristic.low_student_word_share
        == default.evaluation.heuristic.low_student_word_share
    )
    assert rules.fingerprint() != default.fingerprint()


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        "[evaluation.heuristic]\nmonologue_words = 120\nmin_tutor_turns_for_checks = 6\n"
    )
    from_file = load_rules(str(path), environ={})
    assert from_file.evaluation.heuristic.monologue_words == 120
    env = {"TUTORSCORE_EVALUATION__HEURISTIC__MONOLOGUE_WORDS": "80"}
    both = load_rules(str(path), environ=env)
    assert both.evaluation.heuristic.monologue_words == 80
    assert both.evaluation.heuristic.min_tutor_turns_for_checks == 6


def test_a_value_and_a_table_at_the_same_name_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="TUTORSCORE_EVALUATION__HEURISTIC sets a value"):
        load_rules(
            None,
            environ={
                "TUTORSCORE_EVALUATION__HEURISTIC": "3",
                "TUTORSCORE_EVALUATION__HEURISTIC__MONOLOGUE_WORDS": "99",
            },
        )

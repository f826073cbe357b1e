"""The flag registry (analytics/flags.py) against what it describes: the stored columns,
the bundled playbook and the rules' reasons."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Boolean, String, Table

from tutorscore.analytics import flags
from tutorscore.config import load_rules
from tutorscore.db.models import TutorMetrics

METRICS = cast(Table, TutorMetrics.__table__)


def test_every_stored_flag_is_a_tutor_metrics_column_of_its_kind() -> None:
    for flag in flags.ALL:
        if flag.column is None:
            continue
        column = METRICS.c[flag.column]
        expected = Boolean if flag.raised is True else String
        assert isinstance(column.type, expected), flag.name


def test_names_and_labels_are_unique() -> None:
    assert len(flags.BY_NAME) == len(flags.ALL)
    assert len(set(flags.LABELS.values())) == len(flags.ALL)


def test_every_playbook_flag_has_a_bundled_playbook_entry() -> None:
    playbook = load_rules().playbook
    for flag in flags.PLAYBOOK_FLAGS:
        assert flag.playbook_key in playbook, flag.name


def test_raised_in_reads_the_column_value() -> None:
    row = {"low_rating_flag": True, "no_show_risk_label": "medium", "churn_risk_label": "high"}
    assert flags.LOW_RATING.raised_in(row)
    assert not flags.NO_SHOW_HIGH.raised_in(row)
    assert flags.CHURN_RISK.raised_in(row)
    assert not flags.HIGH_RESCHEDULER.raised_in(row)  # absent: not raised
    assert not flags.FALLING_TREND.raised_in({"falling_trend": True})  # not a stored column
    assert flags.label("rating_trend") == "rating trend"
    assert flags.label("low_rating_flag") == "low rating"

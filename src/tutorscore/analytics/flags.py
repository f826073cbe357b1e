"""Every flag, label, churn signal and report filter of docs/rules.md, defined once.

A flag's name is the `tutor_metrics` column it is stored in, the report field and
the `flag` of its reasons. Every list of flags elsewhere (the report filters, the
dashboard badges, the CLI table, the risk history, the playbook, the churn
signals) is derived from the tuples at the end of this module, so adding or
renaming a flag is a change here (plus the `TutorMetrics` column and a migration).

Wherever a flag is shown to a person it reads as its `label`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flag:
    name: str  # report field, filter value and Reason.flag
    label: str  # what a person reads: dashboard badge, CLI, churn reason text
    # the tutor_metrics column it is read from ("" = the column named `name`; None =
    # not stored, e.g. the falling-trend signal, only counted by the rules)
    column: str | None = ""
    raised: bool | str = True  # the column value that raises it
    short: str = ""  # the CLI table's short name
    playbook_key: str = ""  # its [playbook.*] entry (and alert/intervention flag); "" = none
    evidence: str | None = None  # the metrics evidence kind whose sessions back its reasons

    def __post_init__(self) -> None:
        if self.column == "":
            object.__setattr__(self, "column", self.name)

    def raised_in(self, row: Mapping[str, Any]) -> bool:
        """Whether a tutor_metrics row (or report item) carries it."""
        return self.column is not None and row.get(self.column) == self.raised


INSUFFICIENT_DATA = Flag("insufficient_data", "not enough data")
HIGH_RESCHEDULER = Flag(
    "high_rescheduler_flag",
    "high rescheduler",
    short="resched",
    playbook_key="high_rescheduler_flag",
    evidence="tutor_reschedule",
)
POOR_FIRST_SESSION = Flag(
    "poor_first_session_flag",
    "poor first sessions",
    short="1st",
    playbook_key="poor_first_session_flag",
    evidence="first_session_failed",
)
LOW_RATING = Flag(
    "low_rating_flag",
    "low rating",
    short="rating",
    playbook_key="low_rating",
    evidence="low_rating",
)
LOW_AI_QUALITY = Flag(
    "low_ai_quality_flag",
    "low AI quality",
    short="AI",
    playbook_key="low_ai_quality",
    evidence="low_ai_quality",
)
# the two labels (high / medium / low); `raised` is the value the playbook acts on
NO_SHOW_RISK = Flag("no_show_risk_label", "no-show risk", raised="high", evidence="tutor_no_show")
CHURN_RISK = Flag("churn_risk_label", "churn risk", raised="high", playbook_key="churn_risk_high")
# a high no-show label as a churn signal and a report filter
NO_SHOW_HIGH = Flag(
    "no_show_high",
    "high no-show risk",
    column=NO_SHOW_RISK.name,
    raised="high",
    playbook_key="no_show_risk_high",
)
# a churn signal only: rating_trend or ai_score_trend fell (not stored as a column)
FALLING_TREND = Flag("falling_trend", "falling trend", column=None)

# The boolean flags of a tutor, in report order.
FLAGS: tuple[Flag, ...] = (HIGH_RESCHEDULER, POOR_FIRST_SESSION, LOW_RATING, LOW_AI_QUALITY)
FLAG_NAMES: tuple[str, ...] = tuple(f.name for f in FLAGS)
# What the tutor list can filter on (every filter: the column holds `raised`).
FILTERS: tuple[Flag, ...] = (*FLAGS, INSUFFICIENT_DATA, NO_SHOW_HIGH)
FILTER_NAMES: tuple[str, ...] = tuple(f.name for f in FILTERS)
# The boolean columns an analytics run counts tutors by.
COUNTED_COLUMNS: tuple[str, ...] = (*FLAG_NAMES, INSUFFICIENT_DATA.name)
# The rules' churn signals (docs/rules.md, churn_risk_label), in the order reasons list them.
CHURN_SIGNALS: tuple[Flag, ...] = (
    HIGH_RESCHEDULER,
    NO_SHOW_HIGH,
    POOR_FIRST_SESSION,
    LOW_RATING,
    LOW_AI_QUALITY,
    FALLING_TREND,
)
# Flags with a playbook entry, in the order recommendations list them.
PLAYBOOK_FLAGS: tuple[Flag, ...] = (
    CHURN_RISK,
    POOR_FIRST_SESSION,
    HIGH_RESCHEDULER,
    NO_SHOW_HIGH,
    LOW_RATING,
    LOW_AI_QUALITY,
)
ALL: tuple[Flag, ...] = (
    INSUFFICIENT_DATA,
    *FLAGS,
    NO_SHOW_RISK,
    CHURN_RISK,
    NO_SHOW_HIGH,
    FALLING_TREND,
)
BY_NAME: dict[str, Flag] = {f.name: f for f in ALL}
LABELS: dict[str, str] = {f.name: f.label for f in ALL}


def label(name: str) -> str:
    """What a person reads for a flag (or any other reason name: its words)."""
    return LABELS.get(name, name.replace("_", " "))

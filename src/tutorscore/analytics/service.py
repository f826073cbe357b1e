"""Full recompute and incremental update of tutor_metrics.

Both paths run the same SQL (metrics.aggregate) and the same rules, the
incremental one filtered to one tutor, so an incremental row equals the row a
full recompute writes at the same `as_of`. Rows are upserted on
(tutor_id, as_of): recomputing an `as_of` replaces its rows, other `as_of`s stay
as history.

"Current" metrics are each tutor's latest row *at or before now* (report functions
with `as_of=None`), marked `is_current` by every write (`_mark_current`): a row
computed for a future `as_of` is history-to-be, never current, so it cannot hide
the rows of later runs. `repair_current` re-marks every tutor (databases where
an earlier version let a future row become current; `compute_all` runs it when
it finds such a row, `tutorscore analytics --repair-current` on demand).
`compute_rows` computes without writing (the web's reads). The live
path (`update_tutor(..., as_of=None)`, called when a session is recorded)
computes at `live_as_of()`: now, truncated to the second, and replaces the
tutor's previous live row (`_drop_live_rows`) instead of adding one per session.

Analytics knows nothing of prediction: a caller that wants the churn model, the
alerts and the webhooks after a run passes `after_write` (`tutorscore.flows.metrics`
does, and is what the CLI, the API and the worker call).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    delete,
    exists,
    false,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tutorscore.analytics import metrics
from tutorscore.analytics.flags import COUNTED_COLUMNS
from tutorscore.analytics.rules import Assessment, assess, risk_level
from tutorscore.analytics.window import Window, iso
from tutorscore.config import RulesConfig
from tutorscore.db.base import utcnow
from tutorscore.db.models.analytics import AnalyticsConfig, AnalyticsRun, TutorMetrics
from tutorscore.db.models.core import Tutor
from tutorscore.errors import NotFound

Bind = Engine | Connection | Session

RUNS = cast(Table, AnalyticsRun.__table__)
CONFIGS = cast(Table, AnalyticsConfig.__table__)
METRICS = cast(Table, TutorMetrics.__table__)
FLAG_COLUMNS = COUNTED_COLUMNS


class AfterWrite(Protocol):
    """A step run on the tutor_metrics rows a run just wrote at `as_of`, inside the
    same transaction, before the run is finished (`tutorscore.flows.metrics.after_metrics`:
    churn scoring, then alerts, then webhooks). `tutor_ids` None means every tutor.
    Returns the rows it re-scored: their labels may have changed, so the run's summary
    re-reads them."""

    def __call__(
        self, session: Session, *, as_of: datetime, rules: RulesConfig, tutor_ids: list[str] | None
    ) -> int: ...


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    kind: str
    as_of: datetime
    tutors: int
    config_hash: str
    seconds: float
    risk: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    model_scored: int = 0
    # seconds per stage: sql (aggregate queries), rules (flags, reasons, evidence),
    # write (upsert + is_current), churn (the after_write step: churn model and alerts)
    stages: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "as_of": iso(self.as_of),
            "tutors": self.tutors,
            "config_hash": self.config_hash,
            "seconds": round(self.seconds, 4),
            "risk": self.risk,
            "flags": self.flags,
            "model_scored": self.model_scored,
            "stages": {k: round(v, 4) for k, v in self.stages.items()},
        }

    def __str__(self) -> str:
        risk = ", ".join(f"{n} {k}" for k, n in self.risk.items() if n)
        return (
            f"{self.tutors} tutors at {iso(self.as_of)} in {self.seconds:.2f} s"
            f" (churn risk: {risk or 'none'})"
        )


def live_as_of() -> datetime:
    """The as_of of the live path: now, to the second."""
    return utcnow().replace(microsecond=0)


@contextmanager
def _connection(bind: Bind) -> Iterator[Connection]:
    """A connection inside a transaction: the caller's, or a new one for an Engine."""
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            yield conn
    elif isinstance(bind, Session):
        bind.flush()
        yield bind.connection()
    else:
        yield bind


def compute_all(
    bind: Bind, *, as_of: datetime, rules: RulesConfig, after_write: AfterWrite | None = None
) -> RunSummary:
    """Recompute every tutor's metrics, flags and reasons at `as_of` (idempotent).

    Rules-only labels unless `after_write` is given (see `AfterWrite`).
    """
    with _connection(bind) as conn:
        tutor_ids = list(conn.scalars(select(Tutor.tutor_id).order_by(Tutor.tutor_id)))
        return _compute(
            conn,
            as_of=as_of,
            rules=rules,
            kind="full",
            tutor_ids=tutor_ids,
            after_write=after_write,
            session=bind if isinstance(bind, Session) else None,
        )


def update_tutor(
    session: Bind,
    tutor_id: str,
    *,
    rules: RulesConfig,
    as_of: datetime | None = None,
    after_write: AfterWrite | None = None,
) -> RunSummary:
    """Recompute one tutor (after a session of theirs was recorded or evaluated).

    `as_of=None` is the live path: `live_as_of()`. `after_write`: as in `compute_all`.
    """
    when = as_of if as_of is not None else live_as_of()
    with _connection(session) as conn:
        found = conn.scalar(select(Tutor.tutor_id).where(Tutor.tutor_id == tutor_id))
        if found is None:
            raise NotFound(f"tutor {tutor_id!r} not found")
        if as_of is None:
            _drop_live_rows(conn, tutor_id, when)
        return _compute(
            conn,
            as_of=when,
            rules=rules,
            kind="incremental",
            tutor_ids=[tutor_id],
            only=tutor_id,
            after_write=after_write,
            session=session if isinstance(session, Session) else None,
        )


def compute_rows(
    conn: Connection,
    *,
    as_of: datetime,
    rules: RulesConfig,
    tutor_ids: Sequence[str] | None = None,
    only: str | None = None,
) -> list[dict[str, Any]]:
    """The tutor_metrics rows a run at `as_of` would write, computed without writing.

    Rules only: `churn_probability` is null (the churn model scores stored rows), and
    the rows carry `as_of`, `window_days`, `config_hash` and `computed_at` but no
    `id`/`run_id`. Reads only, so any request may call it.
    """
    as_of = as_of.astimezone(UTC)
    if tutor_ids is None:
        query = select(Tutor.tutor_id).order_by(Tutor.tutor_id)
        if only is not None:
            query = query.where(Tutor.tutor_id == only)
        tutor_ids = list(conn.scalars(query))
    window = Window.build(as_of, rules.analytics.window_days)
    counts = metrics.aggregate(conn, window, rules, tutor_ids, only=only)
    assessments = [assess(c, rules, window) for c in counts.values()]
    _attach_evidence(counts, rules, assessments)
    computed_at = utcnow()
    config_hash = rules.fingerprint()
    rows = []
    for a in assessments:
        row = a.columns()
        row.update(
            as_of=as_of,
            window_days=window.days,
            computed_at=computed_at,
            config_hash=config_hash,
            churn_probability=None,
        )
        rows.append(row)
    return rows


def _compute(
    conn: Connection,
    *,
    as_of: datetime,
    rules: RulesConfig,
    kind: str,
    tutor_ids: Sequence[str],
    only: str | None = None,
    after_write: AfterWrite | None = None,
    session: Session | None = None,
) -> RunSummary:
    started = time.perf_counter()
    started_at = utcnow()
    as_of = as_of.astimezone(UTC)
    window = Window.build(as_of, rules.analytics.window_days)
    counts = metrics.aggregate(conn, window, rules, tutor_ids, only=only)
    stages = {"sql": time.perf_counter() - started}
    mark = time.perf_counter()
    assessments = [assess(c, rules, window) for c in counts.values()]
    _attach_evidence(counts, rules, assessments)
    stages["rules"] = time.perf_counter() - mark
    mark = time.perf_counter()

    config_hash = rules.fingerprint()
    _record_config(conn, config_hash, rules)
    run_id = conn.execute(
        insert(RUNS)
        .values(
            as_of=as_of,
            kind=kind,
            started_at=started_at,
            # one tutor finishes in milliseconds: stamp it now and save a round trip
            finished_at=utcnow() if only is not None else None,
            tutors=len(assessments),
            config_hash=config_hash,
        )
        .returning(RUNS.c.id)
    ).scalar_one()
    computed_at = utcnow()
    now = utcnow()
    if only is None:
        repair_current(conn, now=now, only_if_damaged=True)
    superseded = _tutors_with_later_rows(conn, as_of, only, now)
    rows = []
    for a in assessments:
        row = a.columns()
        row.update(
            # a new row is current unless the tutor already has a later one (at or
            # before now), so _mark_current does not have to rewrite every row just
            # inserted; a row for a future as_of is never current
            is_current=as_of <= now and a.tutor_id not in superseded,
            as_of=as_of,
            window_days=window.days,
            run_id=run_id,
            computed_at=computed_at,
            config_hash=config_hash,
            churn_probability=None,
        )
        rows.append(row)
    if rows:
        _upsert(conn, rows)
        if as_of <= now:
            _mark_current(conn, as_of, only, now)
    stages["write"] = time.perf_counter() - mark
    mark = time.perf_counter()
    scored = 0
    if after_write is not None:
        orm = session if session is not None else Session(bind=conn)
        scored = after_write(
            orm, as_of=as_of, rules=rules, tutor_ids=None if only is None else [only]
        )
        orm.flush()
    if only is None:
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(finished_at=utcnow()))
    if scored:  # a churn model that passed its gate may have changed the labels
        risk = _stored_risk(conn, as_of, only)
    else:
        risk = Counter(risk_level(a.churn_risk_label, a.insufficient_data) for a in assessments)
    done = time.perf_counter()
    return RunSummary(
        run_id=run_id,
        kind=kind,
        as_of=as_of,
        tutors=len(assessments),
        config_hash=config_hash,
        seconds=done - started,
        risk={k: risk.get(k, 0) for k in ("high", "medium", "low", "not_enough_data")},
        flags={f: sum(1 for a in assessments if getattr(a, f)) for f in FLAG_COLUMNS},
        model_scored=scored,
        stages={**stages, "churn": done - mark},
    )


def _dialect_insert(conn: Connection, table: Table) -> Any:
    """INSERT with ON CONFLICT support (both backends have it, under their own class)."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _record_config(conn: Connection, config_hash: str, rules: RulesConfig) -> None:
    """Store the config in force under its fingerprint, once (later runs only refer to it)."""
    known = conn.scalar(select(CONFIGS.c.config_hash).where(CONFIGS.c.config_hash == config_hash))
    if known is None:
        conn.execute(
            _dialect_insert(conn, CONFIGS)
            .values(config_hash=config_hash, config=rules.model_dump(mode="json"))
            .on_conflict_do_nothing(index_elements=["config_hash"])
        )


def stored_config(bind: Bind, config_hash: str) -> dict[str, Any]:
    """The rules config recorded under `config_hash` (what explains rows that carry it)."""
    with _connection(bind) as conn:
        row = conn.execute(
            select(CONFIGS.c.config, CONFIGS.c.first_used_at).where(
                CONFIGS.c.config_hash == config_hash
            )
        ).first()
    if row is None:
        raise NotFound(f"no analytics config with fingerprint {config_hash!r}")
    return {
        "config_hash": config_hash,
        "first_used_at": iso(row.first_used_at),
        "config": row.config,
    }


def _stored_risk(conn: Connection, as_of: datetime, only: str | None) -> Counter[str]:
    """Risk levels of the rows written at `as_of`, as they are after churn scoring."""
    m = METRICS
    query = (
        select(m.c.churn_risk_label, m.c.insufficient_data, func.count())
        .where(m.c.as_of == as_of)
        .group_by(m.c.churn_risk_label, m.c.insufficient_data)
    )
    if only is not None:
        query = query.where(m.c.tutor_id == only)
    out: Counter[str] = Counter()
    for label, insufficient, n in conn.execute(query):
        out[risk_level(label, bool(insufficient))] += n
    return out


def _attach_evidence(
    counts: dict[str, metrics.TutorCounts], rules: RulesConfig, assessments: list[Assessment]
) -> None:
    """Fill each raised reason's session_ids with the sessions behind it (capped)."""
    cap = rules.analytics.evidence_session_ids
    for a in assessments:
        for reason in a.reasons:
            if reason.evidence:
                reason.session_ids = counts[a.tutor_id].evidence_ids(
                    reason.evidence, cap, reason.subject
                )


def _drop_live_rows(conn: Connection, tutor_id: str, before: datetime) -> None:
    """Delete the tutor's earlier live rows, so the live path keeps one row, not one per session.

    Live rows are the incremental ones later than the tutor's latest full-run row;
    full-run points (and anything at or after `before`) stay as history.
    """
    m, runs = METRICS, RUNS
    last_full = conn.scalar(
        select(func.max(m.c.as_of))
        .select_from(m.join(runs, runs.c.id == m.c.run_id))
        .where(m.c.tutor_id == tutor_id, runs.c.kind == "full")
    )
    incremental = exists().where(runs.c.id == m.c.run_id, runs.c.kind == "incremental")
    stmt = delete(m).where(m.c.tutor_id == tutor_id, m.c.as_of < before, incremental)
    if last_full is not None:
        stmt = stmt.where(m.c.as_of > last_full)
    conn.execute(stmt)


def _tutors_with_later_rows(
    conn: Connection, as_of: datetime, only: str | None, now: datetime
) -> set[str]:
    """Tutors that already have a row in (as_of, now] (usually none: runs move forward)."""
    c = METRICS.c
    query = select(c.tutor_id).where(c.as_of > as_of, c.as_of <= now).distinct()
    if only is not None:
        query = query.where(METRICS.c.tutor_id == only)
    return set(conn.scalars(query))


def _mark_current(conn: Connection, as_of: datetime, only: str | None, now: datetime) -> None:
    """Keep `is_current` on each tutor's latest row at or before `now` after writing at `as_of`.

    Same transaction as the write; the report's "current" filter relies on it. Only
    called for `as_of <= now`. Rows after `now` never count as "later".
    """
    m = METRICS
    other = METRICS.alias("other")
    scope = [] if only is None else [m.c.tutor_id == only]
    later = exists().where(
        other.c.tutor_id == m.c.tutor_id, other.c.as_of > as_of, other.c.as_of <= now
    )
    conn.execute(
        update(m)
        .where(m.c.as_of == as_of, m.c.is_current == false(), *scope, ~later)
        .values(is_current=True)
    )
    # every other current row of a tutor whose row at as_of is now current (earlier
    # ones, and future ones an earlier version let become current)
    current_at_as_of = exists().where(
        other.c.tutor_id == m.c.tutor_id, other.c.as_of == as_of, other.c.is_current == true()
    )
    conn.execute(
        update(m)
        .where(m.c.is_current == true(), m.c.as_of != as_of, *scope, current_at_as_of)
        .values(is_current=False)
    )


def repair_current(
    bind: Bind, *, now: datetime | None = None, only_if_damaged: bool = False
) -> int:
    """Re-mark `is_current` for every tutor: the latest row at or before `now`.

    Returns the number of rows whose marker changed. `only_if_damaged` first probes
    (on the `is_current` partial index) for a current row after `now` and does
    nothing when there is none: what `compute_all` runs on every full recompute.
    """
    now = now or utcnow()
    m = METRICS
    with _connection(bind) as conn:
        if only_if_damaged:
            damaged = conn.scalar(
                select(m.c.id).where(m.c.is_current == true(), m.c.as_of > now).limit(1)
            )
            if damaged is None:
                return 0
        other = METRICS.alias("other")
        latest = (
            select(func.max(other.c.as_of))
            .where(other.c.tutor_id == m.c.tutor_id, other.c.as_of <= now)
            .scalar_subquery()
        )
        cleared = conn.execute(
            update(m)
            .where(m.c.is_current == true(), (m.c.as_of > now) | (m.c.as_of != latest))
            .values(is_current=False)
        ).rowcount
        marked = conn.execute(
            update(m)
            .where(m.c.is_current == false(), m.c.as_of <= now, m.c.as_of == latest)
            .values(is_current=True)
        ).rowcount
        return int(cleared or 0) + int(marked or 0)


def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Bulk upsert on (tutor_id, as_of): INSERT ... ON CONFLICT DO UPDATE, executemany."""
    stmt = _dialect_insert(conn, METRICS)
    keep = {"id", "tutor_id", "as_of", "is_current"}  # is_current: _mark_current
    stmt = stmt.on_conflict_do_update(
        index_elements=["tutor_id", "as_of"],
        set_={c.name: stmt.excluded[c.name] for c in METRICS.columns if c.name not in keep},
    )
    conn.execute(stmt, rows)  # executemany (psycopg pipelines it); measured faster
    # here than RETURNING-driven multi-row VALUES or a json_to_recordset load

"""Settings from the environment and thresholds from one TOML file.

`get_settings()` is read once per process; tests build their own `Settings`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tomllib
from functools import lru_cache
from importlib import resources  # the bundled defaults.toml, read from the installed package
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AnalyticsConfig(BaseModel):
    window_days: int = 30
    evidence_session_ids: int = 50
    worst_tutors_per_subject: int = 5
    first_session_tag_min_lift: float = 1.5
    first_session_tag_min_failed: int = 2
    history_points: int = 90
    recent_sessions: int = 50


class Thresholds(BaseModel):
    high_rescheduler_rate: float = 0.15
    min_sessions: int = 10
    poor_first_session_rate: float = 0.25
    min_first_sessions: int = 4
    poor_first_session_max_rating: int = 2
    no_show_high_rate: float = 0.10
    no_show_medium_rate: float = 0.05
    no_show_high_combo_reschedule_rate: float = 0.15
    no_show_high_combo_max_rating: float = 3.5
    low_rating: float = 3.5
    min_ratings: int = 5
    low_ai_quality: float = 3.0
    min_evaluations: int = 3
    falling_trend_drop: float = 0.5
    churn_high_signals: int = 2
    churn_medium_signals: int = 1


class PredictionConfig(BaseModel):
    churn_high_probability: float = 0.5
    churn_medium_probability: float = 0.25
    horizon_days: int = 30
    no_show_alert_probability: float = 0.15
    training_snapshots: int = 8
    snapshot_step_days: float = 14.0
    min_snapshot_history_days: float = 28.0
    short_window_days: int = 14
    top_features: int = 3
    no_show_prior_strength: float = 10.0
    no_show_history_days: int = 90


class HeuristicConfig(BaseModel):
    """Thresholds of the heuristic judge (docs/evaluation.md explains each)."""

    low_student_word_share: float = 0.25
    engaged_student_word_share: float = 0.40
    engaged_student_turn_words: float = 12.0
    monologue_words: int = 150
    min_tutor_turns_for_checks: int = 4
    min_questions_for_closed_tag: int = 3
    strong_uptake_turns: int = 3
    strong_uptake_score: float = 0.35
    strong_uptake_share: float = 0.4
    weak_uptake_share: float = 0.2
    strong_scaffolding_share: float = 0.6
    telling_share_area: float = 0.3
    giveaway_min_telling: float = 0.5
    scaffolding_floor: float = 0.5
    scaffolding_ceiling: float = 0.9
    self_answered_tail_words: int = 8
    rushed_self_answered: int = 3
    rushed_words_per_second: float = 3.2
    structure_window_turns: int = 3


class CountedConfig(BaseModel):
    """Which evaluation counts for a session (metrics, reports, the tutor page)."""

    rule: Literal["latest_llm", "best_agreement"] = "latest_llm"
    min_reviewed: int = Field(default=30, ge=2)


class EvaluationConfig(BaseModel):
    priority_first_session: int = 0
    priority_high_risk_tutor: int = 10
    priority_default: int = 20
    max_attempts: int = 5
    lease_seconds: int = 120
    backoff_base_seconds: float = 5.0
    backoff_max_seconds: float = 900.0
    poll_seconds: float = 0.5
    listen_poll_seconds: float = Field(default=5.0, gt=0)
    worker_concurrency: int = 4
    analytics_debounce_seconds: float = 1.0
    db_retry_base_seconds: float = Field(default=0.5, gt=0)
    db_retry_max_seconds: float = Field(default=5.0, gt=0)
    done_job_retention_days: float = Field(default=30.0, ge=0)
    heuristic: HeuristicConfig = Field(default_factory=HeuristicConfig)
    counted: CountedConfig = Field(default_factory=CountedConfig)


class ReviewsConfig(BaseModel):
    """Human reviews: agreement statistics and the review queue (docs/reviews.md)."""

    bootstrap_seed: int = 17
    bootstrap_resamples: int = Field(default=1000, ge=100, le=100_000)
    queue_band_share: float = Field(default=0.6, ge=0)
    queue_disagreement_share: float = Field(default=0.25, ge=0)
    queue_first_session_share: float = Field(default=0.15, ge=0)
    # judge-score bands of the stratified share: [1, 2), [2, 3), [3, 4), [4, 5]
    queue_band_edges: list[float] = Field(default_factory=lambda: [2.0, 3.0, 4.0])


class InterventionsConfig(BaseModel):
    outcome_window_days: int = 30
    small_sample_sessions: int = 10
    small_sample_tutors: int = 5
    min_tag_sessions: int = 2
    alert_dedup_days: int = 7
    webhook_max_attempts: int = 4
    webhook_backoff_seconds: float = 0.5
    webhook_timeout_seconds: float = 5.0


class PlaybookEntry(BaseModel):
    title: str
    actions: list[str]


class RulesConfig(BaseModel):
    """Everything in the TOML file: thresholds, playbook and friends."""

    analytics: AnalyticsConfig = Field(default_factory=AnalyticsConfig)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    prediction: PredictionConfig = Field(default_factory=PredictionConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    interventions: InterventionsConfig = Field(default_factory=InterventionsConfig)
    reviews: ReviewsConfig = Field(default_factory=ReviewsConfig)
    playbook: dict[str, PlaybookEntry] = Field(default_factory=dict)

    def fingerprint(self) -> str:
        """Short stable hash of the config, stored with every computation."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class Settings(BaseSettings):
    """Process settings; names follow docs/cli.md."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str = Field(default="sqlite:///./tutorscore.db", alias="DATABASE_URL")
    config_path: str | None = Field(default=None, alias="TUTORSCORE_CONFIG")
    data_dir: str = Field(default="./data", alias="TUTORSCORE_DATA_DIR")
    secret_key: str | None = Field(default=None, alias="TUTORSCORE_SECRET_KEY")
    llm_base_url: str | None = Field(default=None, alias="TUTORSCORE_LLM_BASE_URL")
    llm_api_key: str | None = Field(default=None, alias="TUTORSCORE_LLM_API_KEY")
    llm_model: str = Field(default="gpt-4o", alias="TUTORSCORE_LLM_MODEL")
    llm_rpm: int = Field(default=500, alias="TUTORSCORE_LLM_RPM")
    llm_tpm: int = Field(default=30000, alias="TUTORSCORE_LLM_TPM")
    llm_max_concurrency: int = Field(default=20, alias="TUTORSCORE_LLM_MAX_CONCURRENCY")
    llm_budget_usd: float = Field(default=10.0, alias="TUTORSCORE_LLM_BUDGET_USD")
    llm_timeout_s: float = Field(default=60.0, alias="TUTORSCORE_LLM_TIMEOUT_S")
    llm_batch_backlog: bool = Field(default=False, alias="TUTORSCORE_LLM_BATCH_BACKLOG")
    # how the provider's limiter counts a request's tokens: "estimate" (OpenAI: characters / 4
    # plus max_tokens, fixed when the request arrives) or "usage" (the tokens the answer used)
    llm_token_counting: Literal["estimate", "usage"] = Field(
        default="estimate", alias="TUTORSCORE_LLM_TOKEN_COUNTING"
    )
    # worker processes sharing the account, each given RPM/TPM divided by this: the backlog
    # estimate multiplies the limits back
    llm_workers: int = Field(default=1, ge=1, alias="TUTORSCORE_LLM_WORKERS")
    alert_webhook_url: str | None = Field(default=None, alias="TUTORSCORE_ALERT_WEBHOOK_URL")
    log_level: str = Field(default="INFO", alias="TUTORSCORE_LOG_LEVEL")
    # threads per web process running sync handlers (docs/web.md "Performance")
    web_threads: int = Field(default=4, ge=1, le=200, alias="TUTORSCORE_WEB_THREADS")
    # seconds a cached tutor-report page may be served (web/report_cache.py); 0 = no cache
    report_cache_ttl: float = Field(default=30.0, ge=0, alias="TUTORSCORE_REPORT_CACHE_TTL")
    # session cookie `Secure`: true/false, or unset = when the request came over https
    # (uvicorn sets the scheme from X-Forwarded-Proto for trusted proxies)
    cookie_secure: bool | None = Field(default=None, alias="TUTORSCORE_COOKIE_SECURE")

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_base_url)

    def resolved_secret_key(self) -> str:
        """The secret from the environment, else one generated once into the data dir."""
        if self.secret_key:
            return self.secret_key
        path = Path(self.data_dir) / "secret_key"
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key


class ConfigError(Exception):
    """The TOML config cannot be read or does not validate."""


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """TUTORSCORE_<SECTION>__<KEY>=value overrides one value of the TOML file.

    Every `__` goes one table down, so nested tables are reached the same way:
    TUTORSCORE_EVALUATION__HEURISTIC__MONOLOGUE_WORDS sets [evaluation.heuristic]
    monologue_words.
    """
    out: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith("TUTORSCORE_") or "__" not in name:
            continue
        *tables, key = name[len("TUTORSCORE_") :].lower().split("__")
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        where = out
        for depth, table in enumerate(tables):
            found = where.setdefault(table, {})
            if not isinstance(found, dict):
                above = "__".join(tables[: depth + 1]).upper()
                raise ConfigError(
                    f"{name}: TUTORSCORE_{above} sets a value, so it cannot also be a table"
                )
            where = found
        where[key] = value
    return out


def load_rules(path: str | None = None, environ: dict[str, str] | None = None) -> RulesConfig:
    """Bundled defaults, overlaid by the file at `path` and by env overrides."""
    data = tomllib.loads(resources.files("tutorscore").joinpath("defaults.toml").read_text())
    if path:
        try:
            with open(path, "rb") as fh:
                data = _deep_merge(data, tomllib.load(fh))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: config file not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    data = _deep_merge(data, _env_overrides(dict(os.environ if environ is None else environ)))
    try:
        return RulesConfig.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"{path or 'config'}: {exc}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


@lru_cache(maxsize=1)
def get_rules() -> RulesConfig:
    return load_rules(get_settings().config_path)

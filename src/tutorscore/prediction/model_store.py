"""Versioned churn models on disk: `<data_dir>/models/churn-<version>.joblib` + a JSON sidecar.

The sidecar holds what a person needs without unpickling anything: metrics,
the gate decision, the training date range and the feature list. Model files
are loaded only from our own data directory (joblib is pickle underneath).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]

PREFIX = "churn-"


@dataclass
class StoredModel:
    version: str
    meta: dict[str, Any]
    payload: dict[str, Any]  # {"estimator", "feature_names", "reference", "kind"}

    @property
    def gate_passed(self) -> bool:
        return bool(self.meta.get("gate", {}).get("passed"))


def models_dir(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / "models"


def new_version(data_dir: str | os.PathLike[str], now: datetime | None = None) -> str:
    """Sortable, unique: UTC time to the second, with a suffix when two land in one second."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    folder = models_dir(data_dir)
    version, n = stamp, 1
    while (folder / f"{PREFIX}{version}.json").exists():
        n += 1
        version = f"{stamp}-{n}"
    return version


def save_model(
    data_dir: str | os.PathLike[str], version: str, payload: dict[str, Any], meta: dict[str, Any]
) -> Path:
    """Write the model, then its sidecar (the sidecar's presence marks a complete model)."""
    folder = models_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / f"{PREFIX}{version}.joblib"
    tmp = model_path.with_suffix(".joblib.tmp")
    joblib.dump(payload, tmp)
    os.replace(tmp, model_path)
    meta = {**meta, "version": version, "file": model_path.name}
    sidecar = folder / f"{PREFIX}{version}.json"
    tmp_json = sidecar.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    os.replace(tmp_json, sidecar)
    return model_path


def list_models(data_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Sidecars of every stored model, newest first."""
    folder = models_dir(data_dir)
    if not folder.is_dir():
        return []
    metas = []
    for path in folder.glob(f"{PREFIX}*.json"):
        try:
            metas.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(metas, key=lambda m: str(m.get("version", "")), reverse=True)


_cache: dict[Path, tuple[float, StoredModel]] = {}
_cache_lock = threading.Lock()


def load_model(data_dir: str | os.PathLike[str], version: str | None = None) -> StoredModel | None:
    """The given version, or the newest; None when no model was trained.

    Cached by file modification time so scoring after every session is cheap.
    """
    if version is None:
        metas = list_models(data_dir)
        if not metas:
            return None
        version = str(metas[0]["version"])
    folder = models_dir(data_dir)
    model_path = folder / f"{PREFIX}{version}.joblib"
    sidecar = folder / f"{PREFIX}{version}.json"
    if not model_path.exists() or not sidecar.exists():
        return None
    mtime = model_path.stat().st_mtime
    with _cache_lock:
        hit = _cache.get(model_path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
    stored = StoredModel(
        version=version, meta=json.loads(sidecar.read_text()), payload=joblib.load(model_path)
    )
    with _cache_lock:
        _cache[model_path] = (mtime, stored)
    return stored

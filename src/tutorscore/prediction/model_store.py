"""Versioned models on disk, plain JSON: `<data_dir>/models/<prefix><version>.model.json`
(the arrays the model predicts with) and `<prefix><version>.json` (the sidecar:
metrics, the gate decision, the training date range, the feature list, the
reliability table). Nothing is pickled, so a model file from anywhere is only data.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PREFIX = "churn-"
MODEL_SUFFIX = ".model.json"


@dataclass
class StoredModel:
    version: str
    meta: dict[str, Any]
    payload: dict[str, Any]  # {"kind", "feature_names", "model", "calibration"}

    @property
    def gate_passed(self) -> bool:
        return bool(self.meta.get("gate", {}).get("passed"))


def models_dir(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / "models"


def new_version(
    data_dir: str | os.PathLike[str], now: datetime | None = None, prefix: str = PREFIX
) -> str:
    """Sortable, unique: UTC time to the second, with a suffix when two land in one second."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    folder = models_dir(data_dir)
    version, n = stamp, 1
    while (folder / f"{prefix}{version}.json").exists():
        n += 1
        version = f"{stamp}-{n}"
    return version


def save_model(
    data_dir: str | os.PathLike[str],
    version: str,
    payload: dict[str, Any],
    meta: dict[str, Any],
    prefix: str = PREFIX,
) -> Path:
    """Write the model, then its sidecar (the sidecar's presence marks a complete model)."""
    folder = models_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / f"{prefix}{version}{MODEL_SUFFIX}"
    _write_json(model_path, {k: v for k, v in payload.items() if not k.startswith("_")})
    meta = {**meta, "version": version, "file": model_path.name}
    _write_json(folder / f"{prefix}{version}.json", meta)
    return model_path


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def list_models(data_dir: str | os.PathLike[str], prefix: str = PREFIX) -> list[dict[str, Any]]:
    """Sidecars of every stored model that has its model file, newest first."""
    folder = models_dir(data_dir)
    if not folder.is_dir():
        return []
    metas = []
    for path in folder.glob(f"{prefix}*.json"):
        if path.name.endswith(MODEL_SUFFIX):
            continue
        version = path.name[len(prefix) : -len(".json")]
        if not (folder / f"{prefix}{version}{MODEL_SUFFIX}").exists():
            continue  # e.g. a pickled model from before the JSON format: retrain
        try:
            metas.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(metas, key=lambda m: str(m.get("version", "")), reverse=True)


_cache: dict[Path, tuple[float, StoredModel]] = {}
_cache_lock = threading.Lock()


def load_model(
    data_dir: str | os.PathLike[str], version: str | None = None, prefix: str = PREFIX
) -> StoredModel | None:
    """The given version, or the newest; None when no model was trained.

    Cached by file modification time so scoring after every session is cheap.
    """
    if version is None:
        metas = list_models(data_dir, prefix)
        if not metas:
            return None
        version = str(metas[0]["version"])
    folder = models_dir(data_dir)
    model_path = folder / f"{prefix}{version}{MODEL_SUFFIX}"
    sidecar = folder / f"{prefix}{version}.json"
    if not model_path.exists() or not sidecar.exists():
        return None
    mtime = model_path.stat().st_mtime
    with _cache_lock:
        hit = _cache.get(model_path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
    try:
        payload = json.loads(model_path.read_text())
        meta = json.loads(sidecar.read_text())
    except ValueError:
        return None
    stored = StoredModel(version=version, meta=meta, payload=payload)
    with _cache_lock:
        _cache[model_path] = (mtime, stored)
    return stored

"""Local model registry: versioned models with their metrics, safe to load.

Layout under ``<warehouse_dir>/registry/<model_name>/``::

    v1/model.skops   v1/meta.json   v2/...   DEFAULT   (holds the default version's name)

* Models are stored with ``skops`` and loaded only if every type in the file is from
  scikit-learn, NumPy/SciPy or this package: loading never unpickles arbitrary code.
* A version folder is claimed with ``mkdir`` (atomic), written, then marked complete by
  ``meta.json`` written last via rename: two runs never overwrite each other's version, and a
  failed run leaves no half-written version that ``list_versions`` would show.
* ``DEFAULT`` is replaced atomically (write + rename).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skops.io as sio

from customer_analytics.config import Params

log = logging.getLogger(__name__)

MODEL_NAME = "customer_spend"
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "customer_analytics.", "builtins.", "collections.")


class RegistryError(RuntimeError):
    """The registry has no such model/version, or a stored model is not safe to load."""


@dataclass(frozen=True)
class ModelVersion:
    """A registry entry's metadata."""

    name: str
    version: str
    meta: dict[str, Any]


def code_version(root: Path | None = None) -> str:
    """The git commit of the project, or ``unknown`` outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    """Versions of the libraries a stored model depends on."""
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for lib in ("scikit-learn", "numpy", "pandas", "skops", "snowflake-snowpark-python"):
        try:
            out[lib] = version(lib)
        except Exception:  # noqa: BLE001
            out[lib] = "missing"
    return out


class LocalRegistry:
    """File-based registry for the embedded backend (same calls as the Snowflake one)."""

    def __init__(self, root: Path):
        self.root = root

    def _dir(self, name: str) -> Path:
        return self.root / name

    def log_model(self, model: Any, name: str, metrics: dict[str, float], params: dict[str, Any],
                  data_window: dict[str, str], features: list[str], targets: list[str]) -> ModelVersion:
        """Store ``model`` as a new version and return it (it is not made the default)."""
        base = self._dir(name)
        base.mkdir(parents=True, exist_ok=True)
        n = 1 + max((int(p.name[1:]) for p in base.glob("v*") if p.name[1:].isdigit()), default=0)
        while True:
            try:
                (base / f"v{n}").mkdir()
                break
            except FileExistsError:
                n += 1
        vdir = base / f"v{n}"
        sio.dump(model, vdir / "model.skops")
        meta = {
            "name": name, "version": f"v{n}", "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "estimator": type(model).__name__, "metrics": metrics, "params": params,
            "data_window": data_window, "features": features, "targets": targets,
            "code_version": code_version(), "libraries": library_versions(),
        }
        tmp = vdir / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2, default=str))
        tmp.replace(vdir / "meta.json")
        log.info("registered %s %s", name, meta["version"])
        return ModelVersion(name, meta["version"], meta)

    def list_versions(self, name: str = MODEL_NAME) -> list[ModelVersion]:
        """Complete versions, oldest first."""
        out = []
        for vdir in sorted(self._dir(name).glob("v*"), key=lambda p: int(p.name[1:]) if p.name[1:].isdigit() else 0):
            if (vdir / "meta.json").is_file():
                out.append(ModelVersion(name, vdir.name, json.loads((vdir / "meta.json").read_text())))
        return out

    def set_default(self, name: str, version: str) -> None:
        """Make ``version`` the default one."""
        if not (self._dir(name) / version / "meta.json").is_file():
            raise RegistryError(f"Model {name} has no version {version}.")
        tmp = self._dir(name) / "DEFAULT.tmp"
        tmp.write_text(version)
        tmp.replace(self._dir(name) / "DEFAULT")

    def default_version(self, name: str = MODEL_NAME) -> str | None:
        """Name of the default version, if one is set."""
        path = self._dir(name) / "DEFAULT"
        return path.read_text().strip() if path.is_file() else None

    def get(self, name: str = MODEL_NAME, version: str | None = None) -> ModelVersion:
        """Metadata of ``version`` (default: the default version)."""
        version = version or self.default_version(name)
        if version is None:
            raise RegistryError(f"Model {name} has no default version yet: run 04_model_comparison first.")
        meta = self._dir(name) / version / "meta.json"
        if not meta.is_file():
            raise RegistryError(f"Model {name} has no version {version}.")
        return ModelVersion(name, version, json.loads(meta.read_text()))

    def load(self, name: str = MODEL_NAME, version: str | None = None) -> tuple[Any, ModelVersion]:
        """Load a version's model after checking every type in it is trusted."""
        mv = self.get(name, version)
        path = self._dir(name) / mv.version / "model.skops"
        untrusted = sio.get_untrusted_types(file=path)
        bad = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
        if bad:
            raise RegistryError(f"{path} contains types that are not trusted: {bad}; refusing to load it.")
        return sio.load(path, trusted=untrusted), mv


def open_registry(params: Params) -> LocalRegistry:
    """The registry for ``params.connection`` (Snowflake's registry adapter: see issue #4)."""
    if not params.is_local:
        raise NotImplementedError("The Snowflake model registry adapter is not built yet; use connection=local.")
    root = params.warehouse_dir / "registry"
    os.makedirs(root, exist_ok=True)
    return LocalRegistry(root)


def register(reg: LocalRegistry, model: Any, best: str, board, params: Params, train, holdout,
             products: list[str]) -> ModelVersion:
    """Log the chosen model with its held-out metrics and data window, and make it the default."""
    from customer_analytics import features as ft

    metrics = {k: float(v) for k, v in board.loc[best].items() if k not in ("kind", "fit_seconds")}
    h = dt.timedelta(days=params.horizon_days)
    window = {"train_cutoffs": ", ".join(str(c) for c in sorted(set(train["CUTOFF"]))),
              "holdout_cutoff": str(holdout["CUTOFF"].iloc[0]),
              "labels_until": str(holdout["CUTOFF"].iloc[0] + h), "run_date": params.run_date.isoformat()}
    mv = reg.log_model(model, MODEL_NAME, metrics,
                       {"candidate": best, "seed": params.seed, "horizon_days": params.horizon_days,
                        "primary_metric": params.primary_metric, "sample": params.sample},
                       window, ft.feature_columns(products), ft.label_columns(products))
    reg.set_default(MODEL_NAME, mv.version)
    return mv


def versions_frame(reg: LocalRegistry, name: str = MODEL_NAME):
    """Every version with its candidate, data window and held-out metrics (for the report)."""
    import pandas as pd

    default = reg.default_version(name)
    rows = [{"version": v.version, "default": v.version == default, "candidate": v.meta["params"]["candidate"],
             "run_date": v.meta["data_window"]["run_date"], "holdout_rmse": v.meta["metrics"].get("rmse"),
             "holdout_mae": v.meta["metrics"].get("mae"), "code": v.meta["code_version"]}
            for v in reg.list_versions(name)]
    return pd.DataFrame(rows).set_index("version") if rows else pd.DataFrame()


def describe(mv: ModelVersion):
    """One model version's identity, data window and metrics, as a small table."""
    import pandas as pd

    m = mv.meta
    info = {"model": mv.name, "version": mv.version, "candidate": m["params"]["candidate"],
            **{f"window: {k}": v for k, v in m["data_window"].items()},
            **{f"holdout {k}": round(v, 3) for k, v in m["metrics"].items()}}
    return pd.Series(info, name="value").to_frame()

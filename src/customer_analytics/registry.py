"""Model registry with one interface on both backends, and the promotion guard.

Interface (both :class:`LocalRegistry` and :class:`SnowflakeRegistry`)::

    mv = reg.log_model(model, name, metrics, params, data_window, features, targets, sample_input)
    reg.list_versions(name) -> [ModelVersion, ...]      oldest first
    reg.get(name, version=None) -> ModelVersion         None = the default version
    reg.default_version(name) -> str | None
    reg.set_default(name, version, expected=None)       expected = compare-and-set guard
    reg.load(name, version=None) -> (model, ModelVersion)
    reg.run(frame, name, version=None) -> DataFrame     one column per target

A :class:`ModelVersion`'s ``meta`` holds the metrics, parameters, data window, feature list,
targets, code version (git commit), library versions, estimator and creation time.

**Local** (``connection: local``), under ``<warehouse_dir>/registry/<model_name>/``::

    v1/model.skops   v1/meta.json   v2/...   DEFAULT   (holds the default version's name)

* Models are stored with ``skops`` and loaded only if every type skops does not trust by
  default is in :data:`TRUSTED_TYPES` (an explicit allowlist, no prefixes): a tampered file
  naming any other type is refused before anything in it is constructed.
* A version folder is claimed with ``mkdir`` (atomic: two runs never get the same version),
  the model is written to a temporary name and renamed, and ``meta.json`` is renamed into place
  last: a failed run leaves no version that :meth:`LocalRegistry.list_versions` would show.
* ``DEFAULT`` is replaced atomically (write + rename) under a file lock, so a compare-and-set
  (``expected=``) cannot interleave with another run's.

**Snowflake**: the same calls go to ``snowflake.ml.registry.Registry`` (``log_model`` with
metrics, sample input, conda dependencies; the model's ``default`` property). Our metadata
travels in the version's metrics under :data:`META_KEY`. Storage and loading there are
Snowflake's own (the model files live in the account's stage, loaded by snowflake-ml). This
adapter cannot be exercised here: its argument mapping is tested against the installed
snowflake-ml signatures, see the README.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio

from customer_analytics import models as md
from customer_analytics.config import Params

log = logging.getLogger(__name__)

MODEL_NAME = "customer_spend"
#: types beyond skops' default-trusted ones that a stored model may contain (exact names)
TRUSTED_TYPES = frozenset({
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "customer_analytics.models.LastPeriodBaseline",
    "customer_analytics.models.SegmentMeanBaseline",
    "customer_analytics.btyd.BTYDRegressor",
    "customer_analytics.calibration.ScaledRegressor",
    "customer_analytics.btyd.BTYDBoosting",
})
LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "skops", "snowflake-snowpark-python", "snowflake-ml-python")
META_KEY = "ca_meta"
_VERSION = re.compile(r"^v(\d+)$")


class RegistryError(RuntimeError):
    """The registry has no such model/version, or a stored model is not safe to load."""


@dataclasses.dataclass(frozen=True)
class ModelVersion:
    """A registry entry's metadata (``meta``: metrics, params, data_window, features, targets, …)."""

    name: str
    version: str
    meta: dict[str, Any]


def code_version(root: Path | None = None) -> str:
    """The git commit of the project (``-dirty`` if tracked files changed), or ``unknown``."""
    root = root or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a stored model depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            out[lib] = "missing"
    return out


def build_meta(model: Any, name: str, version: str, metrics: dict[str, float], params: dict[str, Any],
               data_window: dict[str, str], features: list[str], targets: list[str]) -> dict[str, Any]:
    """The metadata recorded with every version (same on both backends)."""
    return {
        "name": name, "version": version, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "estimator": type(model).__name__, "metrics": {k: float(v) for k, v in metrics.items()},
        "params": params, "data_window": data_window, "features": list(features), "targets": list(targets),
        "code_version": code_version(), "libraries": library_versions(),
    }


def _predictions_frame(pred: np.ndarray, targets: list[str], index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(pred, dtype=float).reshape(len(index), -1), columns=targets, index=index)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def check_trusted(path: Path) -> list[str]:
    """The non-default types in a skops file, after checking each is in :data:`TRUSTED_TYPES`.

    Raises:
        RegistryError: the file names a type outside the allowlist, or is not a skops file.
    """
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as e:  # a corrupt or foreign file: refuse, do not guess
        raise RegistryError(f"{path} is not a readable skops file ({e}); refusing to load it.") from e
    bad = sorted(t for t in untrusted if t not in TRUSTED_TYPES)
    if bad:
        raise RegistryError(f"{path} contains types that are not on the trusted list: {bad}; refusing to load it.")
    return untrusted


class LocalRegistry:
    """File-based registry for the embedded backend (same calls as :class:`SnowflakeRegistry`)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _dir(self, name: str) -> Path:
        return self.root / name

    def log_model(self, model: Any, name: str, metrics: dict[str, float], params: dict[str, Any],
                  data_window: dict[str, str], features: list[str], targets: list[str],
                  sample_input: pd.DataFrame | None = None) -> ModelVersion:
        """Store ``model`` as a new version and return it (it is not made the default).

        ``sample_input`` (a few rows of inputs) is checked against the model: it must predict one
        value per target on it.
        """
        if sample_input is not None:
            pred = np.asarray(model.predict(sample_input[features]))
            if pred.reshape(len(sample_input), -1).shape[1] != len(targets):
                raise RegistryError(f"{name}: the model predicts {pred.shape} for {len(targets)} targets.")
        base = self._dir(name)
        base.mkdir(parents=True, exist_ok=True)
        n = 1 + max((int(m.group(1)) for p in base.iterdir() if (m := _VERSION.match(p.name))), default=0)
        while True:
            try:
                (base / f"v{n}").mkdir()
                break
            except FileExistsError:
                n += 1
        vdir = base / f"v{n}"
        try:
            _write_atomic(vdir / "model.skops", sio.dumps(model))
            meta = build_meta(model, name, f"v{n}", metrics, params, data_window, features, targets)
            _write_atomic(vdir / "meta.json", json.dumps(meta, indent=2, default=str).encode())
        except BaseException:
            shutil.rmtree(vdir, ignore_errors=True)
            raise
        log.info("registered %s %s", name, meta["version"])
        return ModelVersion(name, meta["version"], meta)

    def list_versions(self, name: str = MODEL_NAME) -> list[ModelVersion]:
        """Complete versions, oldest first."""
        base = self._dir(name)
        if not base.is_dir():
            return []
        found = sorted((int(m.group(1)), p) for p in base.iterdir() if (m := _VERSION.match(p.name)))
        return [ModelVersion(name, p.name, json.loads((p / "meta.json").read_text()))
                for _, p in found if (p / "meta.json").is_file()]

    @contextlib.contextmanager
    def _lock(self, name: str):
        self._dir(name).mkdir(parents=True, exist_ok=True)
        with open(self._dir(name) / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def set_default(self, name: str, version: str, expected: str | None = None) -> None:
        """Make ``version`` the default one.

        Args:
            expected: if given, only switch when the current default is still this version
                (``""`` = no default yet); otherwise raise :class:`RegistryError`.
        """
        if not (self._dir(name) / version / "meta.json").is_file():
            raise RegistryError(f"Model {name} has no version {version}.")
        with self._lock(name):
            current = self.default_version(name)
            if expected is not None and (current or "") != expected:
                raise RegistryError(f"Model {name}: the default changed to {current} meanwhile (expected "
                                    f"{expected or 'none'}); not switching to {version}.")
            _write_atomic(self._dir(name) / "DEFAULT", version.encode())
        log.info("default of %s is now %s", name, version)

    def default_version(self, name: str = MODEL_NAME) -> str | None:
        """Name of the default version, if one is set."""
        path = self._dir(name) / "DEFAULT"
        return (path.read_text().strip() or None) if path.is_file() else None

    def get(self, name: str = MODEL_NAME, version: str | None = None) -> ModelVersion:
        """Metadata of ``version`` (default: the default version)."""
        version = version or self.default_version(name)
        if version is None:
            raise RegistryError(f"Model {name} has no default version yet: run 04_model_comparison first.")
        meta = self._dir(name) / version / "meta.json"
        if not _VERSION.match(version) or not meta.is_file():
            raise RegistryError(f"Model {name} has no version {version}.")
        return ModelVersion(name, version, json.loads(meta.read_text()))

    def load(self, name: str = MODEL_NAME, version: str | None = None) -> tuple[Any, ModelVersion]:
        """Load a version's model after checking every type in it is trusted (see :func:`check_trusted`)."""
        mv = self.get(name, version)
        path = self._dir(name) / mv.version / "model.skops"
        trusted = check_trusted(path)
        return sio.load(path, trusted=trusted), mv

    def run(self, frame: pd.DataFrame, name: str = MODEL_NAME, version: str | None = None) -> pd.DataFrame:
        """Predictions of a version for ``frame`` (which must hold its features): one column per target."""
        model, mv = self.load(name, version)
        return _predictions_frame(model.predict(frame[mv.meta["features"]]), mv.meta["targets"], frame.index)


# --------------------------------------------------------------------------- Snowflake
def snowflake_version_name(now: dt.datetime | None = None) -> str:
    """A new, sortable, unique Snowflake version name, e.g. ``V20261101_101500_1A2B3C``."""
    now = now or dt.datetime.now(dt.UTC)
    return f"V{now:%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6].upper()}"


def conda_dependencies() -> list[str]:
    """Packages the model needs in the warehouse, pinned to the versions it was fitted with."""
    libs = library_versions()
    return [f"scikit-learn=={libs['scikit-learn']}", f"numpy=={libs['numpy']}", f"pandas=={libs['pandas']}"]


def snowflake_log_args(model: Any, name: str, version: str, meta: dict[str, Any],
                       sample_input: pd.DataFrame) -> dict[str, Any]:
    """Keyword arguments for ``snowflake.ml.registry.Registry.log_model`` (besides the model).

    Metrics are the held-out metrics plus our metadata under :data:`META_KEY` (JSON); the
    sample input gives the model's signature; our own baseline classes travel by value.
    """
    from snowflake.ml.model.task import Task

    own = [type(s) for s in ([model] + [st for _, st in getattr(model, "steps", [])])]
    ext = [md] if any(t.__module__.startswith("customer_analytics.") for t in own) else None
    info = {k: v for k, v in meta.items() if k != "metrics"}
    return {
        "model_name": name,
        "version_name": version,
        "comment": (f"{meta['params'].get('candidate', meta['estimator'])}, run_date "
                    f"{meta['data_window'].get('run_date', '?')}, code {meta['code_version']}"),
        "metrics": {**meta["metrics"], META_KEY: json.loads(json.dumps(info, default=str))},
        "conda_dependencies": conda_dependencies(),
        "sample_input_data": sample_input,
        "ext_modules": ext,
        "task": Task.TABULAR_REGRESSION,
        "target_platforms": ["WAREHOUSE"],
        "options": {"relax_version": True, "target_methods": ["predict"], "enable_explainability": False},
    }


def _meta_from_metrics(name: str, version: str, metrics: dict[str, Any]) -> dict[str, Any]:
    metrics = dict(metrics)
    info = metrics.pop(META_KEY, None) or {}
    if isinstance(info, str):
        info = json.loads(info)
    return {**info, "name": name, "version": version, "metrics": metrics}


class SnowflakeRegistry:
    """The Snowflake model registry behind the same calls as :class:`LocalRegistry`.

    Args:
        session: a Snowpark session on Snowflake.
        database, schema: where the registry lives.
        registry: an existing ``snowflake.ml.registry.Registry`` (built from the session if omitted).
    """

    def __init__(self, session, database: str, schema: str, registry=None):
        if registry is None:
            from snowflake.ml.registry import Registry

            registry = Registry(session=session, database_name=database, schema_name=schema)
        self._reg = registry

    def _model(self, name: str):
        try:
            return self._reg.get_model(name)
        except ValueError as e:
            raise RegistryError(f"Snowflake registry has no model {name}: {e}") from e

    def _mv(self, name: str, smv) -> ModelVersion:
        return ModelVersion(name, smv.version_name, _meta_from_metrics(name, smv.version_name, smv.show_metrics()))

    def log_model(self, model: Any, name: str, metrics: dict[str, float], params: dict[str, Any],
                  data_window: dict[str, str], features: list[str], targets: list[str],
                  sample_input: pd.DataFrame | None = None) -> ModelVersion:
        """Log ``model`` as a new version through ``Registry.log_model`` (not made the default)."""
        if sample_input is None:
            raise RegistryError("The Snowflake registry needs sample_input (a few rows of features) "
                                "to infer the model's signature.")
        version = snowflake_version_name()
        meta = build_meta(model, name, version, metrics, params, data_window, features, targets)
        smv = self._reg.log_model(model, **snowflake_log_args(model, name, version, meta,
                                                              sample_input[features].head(20)))
        log.info("registered %s %s in Snowflake", name, smv.version_name)
        return ModelVersion(name, smv.version_name, {**meta, "version": smv.version_name})

    def list_versions(self, name: str = MODEL_NAME) -> list[ModelVersion]:
        """Every version, oldest first (our version names sort by creation time)."""
        try:
            versions = self._model(name).versions()
        except RegistryError:
            return []
        return sorted((self._mv(name, v) for v in versions), key=lambda mv: mv.version)

    def default_version(self, name: str = MODEL_NAME) -> str | None:
        """Name of the default version, if the model exists."""
        try:
            return self._model(name).default.version_name
        except RegistryError:
            return None

    def set_default(self, name: str, version: str, expected: str | None = None) -> None:
        """Make ``version`` the default (the check against ``expected`` is not atomic on Snowflake)."""
        model = self._model(name)
        current = self.default_version(name)
        if expected is not None and (current or "") != expected:
            raise RegistryError(f"Model {name}: the default changed to {current} meanwhile; not switching.")
        model.default = version

    def get(self, name: str = MODEL_NAME, version: str | None = None) -> ModelVersion:
        """Metadata of ``version`` (default: the default version)."""
        model = self._model(name)
        return self._mv(name, model.version(version) if version else model.default)

    def load(self, name: str = MODEL_NAME, version: str | None = None) -> tuple[Any, ModelVersion]:
        """The version's Python model, loaded by snowflake-ml (needs the same library versions)."""
        model = self._model(name)
        smv = model.version(version) if version else model.default
        return smv.load(), self._mv(name, smv)

    def run(self, frame: pd.DataFrame, name: str = MODEL_NAME, version: str | None = None) -> pd.DataFrame:
        """Predictions computed in the warehouse (``ModelVersion.run``): one column per target."""
        model = self._model(name)
        smv = model.version(version) if version else model.default
        mv = self._mv(name, smv)
        out = smv.run(frame[mv.meta["features"]], function_name="predict")
        outputs = [c for c in out.columns if c not in mv.meta["features"]]
        return _predictions_frame(out[outputs].to_numpy(), mv.meta["targets"], frame.index)


def open_registry(params: Params, session=None) -> LocalRegistry | SnowflakeRegistry:
    """The registry for ``params.connection``: local files, or Snowflake's registry in the project schema."""
    if params.is_local:
        return LocalRegistry(params.warehouse_dir / "registry")
    if session is None:
        from customer_analytics import warehouse as wh

        session = wh.connect(params)
    return SnowflakeRegistry(session, params.database, params.schema)


# --------------------------------------------------------------------------- this project's use
def data_window(params: Params, train: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, str]:
    """The data a model version was fitted and evaluated on."""
    h = dt.timedelta(days=params.horizon_days)
    ho = holdout["CUTOFF"].iloc[0]
    return {"train_cutoffs": ", ".join(str(c) for c in sorted(set(train["CUTOFF"]))),
            "labels_until": str(ho), "holdout_cutoff": str(ho), "holdout_until": str(ho + h),
            "run_date": params.run_date.isoformat(), "train_rows": str(len(train)), "holdout_rows": str(len(holdout))}


def register(reg, comparison: md.Comparison, selection: md.Selection, params: Params, train: pd.DataFrame,
             holdout: pd.DataFrame) -> ModelVersion:
    """Log the chosen model with its held-out metrics and data window (the default is left to :func:`promote`).

    The stored model is exactly the one evaluated on the held-out window (fitted on the training
    cut-offs only), so the recorded metrics describe the stored artifact.
    """
    name = selection.chosen
    row = comparison.board.loc[name]
    metrics = {m: float(row[m]) for m in md.METRICS if pd.notna(row[m])}
    metrics.update({f"cv_{m}": float(row[f"cv_{m}"]) for m in md.METRICS if pd.notna(row[f"cv_{m}"])})
    model = comparison.models[name]
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    run_params = {"candidate": name, "seed": params.seed, "horizon_days": params.horizon_days,
                  "primary_metric": params.primary_metric, "sample": params.sample, "n_cutoffs": params.n_cutoffs,
                  "cv_folds": params.cv_folds, "max_train_rows": params.max_train_rows,
                  "estimator": repr(estimator)}
    return reg.log_model(model, MODEL_NAME, metrics, run_params, data_window(params, train, holdout),
                         comparison.features, comparison.targets, sample_input=train.head(20))


@dataclasses.dataclass
class Promotion:
    """The promotion guard's decision for a new version."""

    promoted: bool
    version: str
    previous: str | None
    metric: str
    new_value: float
    previous_value: float | None
    reason: str

    def sentence(self) -> str:
        """The decision in one Markdown sentence."""
        head = f"Version **{self.version}** {'is now the default' if self.promoted else 'was not promoted'}"
        return f"{head}: {self.reason}."

    def table(self) -> pd.DataFrame:
        """New version and current default side by side (for the report)."""
        label = md.METRIC_LABELS[self.metric]
        rows = {"new version": [self.version, self.new_value]}
        if self.previous:
            rows["previous default"] = [self.previous, self.previous_value]
        return pd.DataFrame(rows, index=["version", f"held-out {label}"]).T


def promote(reg, mv: ModelVersion, holdout: pd.DataFrame, metric: str, name: str = MODEL_NAME) -> Promotion:
    """Make ``mv`` the default only if it beats the current default on this run's held-out window.

    The current default is loaded and evaluated on the same held-out rows as ``mv``. It is kept
    (with the reason) when it is at least as good, and also when it was trained on labels inside
    this held-out window (a comparison there would favour it unfairly). ``mv`` becomes the default
    when there is none, or when the current one cannot score this data (other features/targets)
    or cannot be loaded safely.
    """
    label = md.METRIC_LABELS[metric]
    new_value = float(mv.meta["metrics"][metric])
    current = reg.default_version(name)

    def decide(promoted: bool, reason: str, previous_value: float | None = None) -> Promotion:
        if promoted:
            reg.set_default(name, mv.version, expected=current or "")
        log.info("promotion of %s: %s (%s)", mv.version, promoted, reason)
        return Promotion(promoted, mv.version, current, metric, new_value, previous_value, reason)

    if current is None:
        return decide(True, "there was no default version yet")
    if current == mv.version:
        return decide(False, "it already is the default")
    cur = reg.get(name, current)
    missing = [c for c in cur.meta["features"] if c not in holdout.columns]
    if missing or cur.meta["targets"] != mv.meta["targets"]:
        what = f"lacks its features {missing[:5]}" if missing else "has other targets (product types)"
        return decide(True, f"the current default {current} cannot score this run's data (it {what})")
    labels_until = cur.meta.get("data_window", {}).get("labels_until")
    holdout_cutoff = str(holdout["CUTOFF"].iloc[0])
    if labels_until and labels_until > holdout_cutoff:
        return decide(False, f"the current default {current} was trained on labels up to {labels_until}, inside this "
                             f"run's held-out window (from {holdout_cutoff}), so it cannot be compared fairly on it; "
                             f"it stays the default")
    try:
        model, _ = reg.load(name, current)
    except RegistryError as e:
        return decide(True, f"the current default {current} could not be loaded safely ({e})")
    value = md.metrics(holdout[cur.meta["targets"]].to_numpy(dtype=float),
                       md.predict(model, holdout, cur.meta["features"]))[metric]
    if md.is_better(new_value, value, metric):
        return decide(True, f"its held-out {label} {new_value:.3f} beats the current default {current}'s "
                            f"{value:.3f} on the same window", value)
    return decide(False, f"its held-out {label} {new_value:.3f} does not beat the current default {current}'s "
                         f"{value:.3f} on the same window, so {current} stays the default", value)


def versions_frame(reg, name: str = MODEL_NAME) -> pd.DataFrame:
    """Every version with its candidate, data window and held-out metrics (for the report)."""
    default = reg.default_version(name)
    rows = [{"version": v.version, "default": v.version == default, "candidate": v.meta["params"]["candidate"],
             "run_date": v.meta["data_window"]["run_date"], "holdout_rmse": v.meta["metrics"].get("rmse"),
             "holdout_mae": v.meta["metrics"].get("mae"), "created": v.meta.get("created"),
             "code": v.meta.get("code_version")}
            for v in reg.list_versions(name)]
    return pd.DataFrame(rows).set_index("version") if rows else pd.DataFrame()


def describe(mv: ModelVersion) -> pd.DataFrame:
    """One model version's identity, data window and metrics, as a small table."""
    m = mv.meta
    info = {"model": mv.name, "version": mv.version, "candidate": m["params"]["candidate"],
            **{f"window: {k}": v for k, v in m["data_window"].items()},
            **{f"holdout {k}": round(v, 3) for k, v in m["metrics"].items() if not k.startswith("cv_")}}
    return pd.Series(info, name="value").to_frame()

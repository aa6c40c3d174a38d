"""Model registry with one interface on both backends, and the promotion guard.

Interface (:class:`ModelRegistry`; :class:`LocalRegistry`, :class:`SnowflakeRegistry` and
:class:`FallbackRegistry` are checked against it by mypy and a test)::

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
* A version is built complete (``model.skops``, then ``meta.json``, each synced) in a private
  folder ``.incoming/<pid>-<id>/`` and then renamed to ``vN`` in one step; the rename fails when
  another run took ``vN`` meanwhile, and the next number is tried. So a version folder is always
  complete: a run killed at any moment leaves at most its private folder, removed by the next
  write once its process is gone (tested by SIGKILLing a real writer at each step, see
  :data:`faults.KILL_VAR`). A ``meta.json`` that cannot be read (truncated, edited) hides that
  version, with a warning, instead of failing every run.
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

import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import skops.io as sio

from customer_analytics import baselines, faults, fsutil, headlines
from customer_analytics import models as md
from customer_analytics.config import Params

log = logging.getLogger(__name__)

MODEL_NAME = "customer_spend"
#: types beyond skops' default-trusted ones that a stored model may contain (exact names)
TRUSTED_TYPES = frozenset(
    {
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "customer_analytics.baselines.LastPeriodBaseline",
        "customer_analytics.baselines.SegmentMeanBaseline",
        # versions written before the baselines moved to their own module name them here
        "customer_analytics.models.LastPeriodBaseline",
        "customer_analytics.models.SegmentMeanBaseline",
        "customer_analytics.btyd.BTYDRegressor",
        "customer_analytics.calibration.ScaledRegressor",
        "customer_analytics.btyd.BTYDBoosting",
    }
)
LIBRARIES = (
    "scikit-learn",
    "numpy",
    "pandas",
    "scipy",
    "skops",
    "snowflake-snowpark-python",
    "snowflake-ml-python",
)
META_KEY = "ca_meta"
#: set in a version's meta when the registry made it the default by itself (Snowflake does so for
#: the first version of a model); promotion then treats it as "no default yet"
AUTO_DEFAULT = "auto_default"
_VERSION = re.compile(r"^v(\d+)$")
INCOMING = ".incoming"
#: a version folder without meta.json older than this is a leftover of the older write scheme
LEFTOVER_SECONDS = 3600


class RegistryError(RuntimeError):
    """The registry has no such model/version, or a stored model is not safe to load."""


@dataclasses.dataclass(frozen=True)
class ModelVersion:
    """A registry entry's metadata (``meta``: metrics, params, data_window, features, targets,
    …)."""

    name: str
    version: str
    meta: dict[str, Any]


def code_version(root: Path | None = None) -> str:
    """The git commit of the project (``-dirty`` if tracked files changed), or ``unknown``."""
    root = root or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
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


def build_meta(
    model: Any,
    name: str,
    version: str,
    metrics: dict[str, float],
    params: dict[str, Any],
    data_window: dict[str, str],
    features: list[str],
    targets: list[str],
) -> dict[str, Any]:
    """The metadata recorded with every version (same on both backends)."""
    return {
        "name": name,
        "version": version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "estimator": type(model).__name__,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "params": params,
        "data_window": data_window,
        "features": list(features),
        "targets": list(targets),
        "code_version": code_version(),
        "libraries": library_versions(),
    }


def _predictions_frame(pred: np.ndarray, targets: list[str], index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame(
        np.asarray(pred, dtype=float).reshape(len(index), -1), columns=targets, index=index
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _owner_gone(name: str) -> bool:
    """Whether the process named by a ``<pid>-<id>`` (or ``.<file>.<pid>-<id>.tmp``) name has
    ended."""
    m = re.search(r"(?:^|\.)(\d+)-[0-9a-f]{32}(?:\.tmp)?$", name)
    return m is not None and not fsutil.pid_alive(int(m.group(1)))


def read_meta(vdir: Path) -> dict[str, Any] | None:
    """A version folder's metadata, or ``None`` (with a warning) when ``meta.json`` is missing or
    unreadable."""
    path = vdir / "meta.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        log.warning(
            "registry: %s/meta.json cannot be read (%s); that version is ignored",
            vdir.name,
            type(e).__name__,
        )
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("metrics"), dict):
        log.warning(
            "registry: %s/meta.json is not a version's metadata; that version is ignored", vdir.name
        )
        return None
    return meta


def check_trusted(path: Path) -> list[str]:
    """The non-default types in a skops file, after checking each is in :data:`TRUSTED_TYPES`.

    Raises:
        RegistryError: the file names a type outside the allowlist, or is not a skops file.
    """
    shown = f"{path.parent.name}/{path.name}"  # the version and file, not where the registry lives
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as e:  # a corrupt or foreign file: refuse, do not guess
        raise RegistryError(
            f"{shown} is not a readable skops file ({type(e).__name__}: "
            f"{str(e)[:200]}); refusing to load it."
        ) from e
    bad = sorted(t for t in untrusted if t not in TRUSTED_TYPES)
    if bad:
        raise RegistryError(
            f"{shown} contains types that are not on the trusted list: {bad}; refusing to load it."
        )
    return untrusted


@runtime_checkable
class ModelRegistry(Protocol):
    """What notebooks, :mod:`customer_analytics.predict` and the functions below use of a
    registry."""

    def log_model(
        self,
        model: Any,
        name: str,
        metrics: dict[str, float],
        params: dict[str, Any],
        data_window: dict[str, str],
        features: list[str],
        targets: list[str],
        sample_input: pd.DataFrame | None = None,
    ) -> ModelVersion:
        """Store ``model`` as a new version (not the default) and return it."""
        ...

    def list_versions(self, name: str = ...) -> list[ModelVersion]:
        """The model's versions, oldest first."""
        ...

    def default_version(self, name: str = ...) -> str | None:
        """The default version's name (``None``: none yet)."""
        ...

    def set_default(self, name: str, version: str, expected: str | None = None) -> None:
        """Make ``version`` the default; with ``expected``, only if the default is still that
        one."""
        ...

    def get(self, name: str = ..., version: str | None = None) -> ModelVersion:
        """A version (``None``: the default)."""
        ...

    def load(self, name: str = ..., version: str | None = None) -> tuple[Any, ModelVersion]:
        """The version's Python model and its :class:`ModelVersion`."""
        ...

    def run(self, frame: pd.DataFrame, name: str = ..., version: str | None = None) -> pd.DataFrame:
        """The version's predictions for ``frame`` (one column per target)."""
        ...


@runtime_checkable
class WarehouseRegistry(ModelRegistry, Protocol):
    """A registry that can also run a version inside the warehouse (Snowflake's)."""

    def run_in_warehouse(
        self, frame: Any, name: str = ..., version: str | None = None, keep: tuple[str, ...] = ()
    ) -> tuple[Any, ModelVersion]:
        """Predictions for a Snowpark DataFrame, computed in the warehouse, and the version used."""
        ...


class LocalRegistry:
    """File-based registry for the embedded backend (same calls as :class:`SnowflakeRegistry`)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _dir(self, name: str) -> Path:
        return self.root / name

    def log_model(
        self,
        model: Any,
        name: str,
        metrics: dict[str, float],
        params: dict[str, Any],
        data_window: dict[str, str],
        features: list[str],
        targets: list[str],
        sample_input: pd.DataFrame | None = None,
    ) -> ModelVersion:
        """Store ``model`` as a new version and return it (it is not made the default).

        ``sample_input`` (a few rows of inputs) is checked against the model: it must predict one
        value per target on it.
        """
        if sample_input is not None:
            pred = np.asarray(model.predict(sample_input[features]))
            if pred.reshape(len(sample_input), -1).shape[1] != len(targets):
                raise RegistryError(
                    f"{name}: the model predicts {pred.shape} for {len(targets)} targets."
                )
        base = self._dir(name)
        (base / INCOMING).mkdir(parents=True, exist_ok=True)
        self.clean_up(name)
        work = base / INCOMING / f"{os.getpid()}-{uuid.uuid4().hex}"
        work.mkdir()
        try:
            fsutil.atomic_write(work / "model.skops", sio.dumps(model), fsync=True)
            faults.point("registry.model_written")
            meta = build_meta(model, name, "", metrics, params, data_window, features, targets)
            version = self._publish(base, work, meta)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        log.info("registered %s %s", name, version)
        return ModelVersion(name, version, meta)

    @staticmethod
    def _publish(base: Path, work: Path, meta: dict[str, Any]) -> str:
        """Rename the complete version in ``work`` to the next free ``vN``; return ``vN``."""
        n = 1 + max(
            (int(m.group(1)) for p in base.iterdir() if (m := _VERSION.match(p.name))), default=0
        )
        while True:
            meta["version"] = f"v{n}"
            fsutil.atomic_write(
                work / "meta.json", json.dumps(meta, indent=2, default=str), fsync=True
            )
            _fsync_dir(work)
            faults.point("registry.meta_written")
            try:
                os.rename(
                    work, base / f"v{n}"
                )  # fails if vN exists with content: another run's version
            except OSError as e:
                if not (base / f"v{n}").exists():
                    raise RegistryError(f"Could not store version v{n}: {e}") from e
                n += 1
                continue
            _fsync_dir(base)
            faults.point("registry.registered")
            return f"v{n}"

    def clean_up(self, name: str = MODEL_NAME) -> list[str]:
        """Remove what killed writers left: their private folders and temporary files (once their
        process is gone), and version folders without metadata left by the older write scheme."""
        base = self._dir(name)
        if not base.is_dir():
            return []
        removed = []
        incoming = base / INCOMING
        for p in list(incoming.iterdir()) if incoming.is_dir() else []:
            if _owner_gone(p.name):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(f"{INCOMING}/{p.name}")
        for p in base.iterdir():
            if p.name.endswith(".tmp") and _owner_gone(p.name):
                p.unlink(missing_ok=True)
                removed.append(p.name)
            elif (
                _VERSION.match(p.name)
                and p.is_dir()
                and not (p / "meta.json").exists()
                and time.time() - p.stat().st_mtime > LEFTOVER_SECONDS
            ):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
        if removed:
            log.info("registry %s: removed what interrupted writes left: %s", name, removed)
        return removed

    def list_versions(self, name: str = MODEL_NAME) -> list[ModelVersion]:
        """Complete versions, oldest first."""
        base = self._dir(name)
        if not base.is_dir():
            return []
        found = sorted(
            (int(m.group(1)), p) for p in base.iterdir() if (m := _VERSION.match(p.name))
        )
        return [
            ModelVersion(name, p.name, meta) for _, p in found if (meta := read_meta(p)) is not None
        ]

    def _lock(self, name: str):
        """The model's lock (waits for another process's promotion to finish)."""
        return fsutil.file_lock(self._dir(name) / ".lock", timeout=float("inf"))

    def set_default(self, name: str, version: str, expected: str | None = None) -> None:
        """Make ``version`` the default one.

        Args:
            expected: if given, only switch when the current default is still this version
                (``""`` = no default yet); otherwise raise :class:`RegistryError`.
        """
        if not _VERSION.match(version) or read_meta(self._dir(name) / version) is None:
            raise RegistryError(f"Model {name} has no version {version}.")
        with self._lock(name):
            current = self.default_version(name)
            if expected is not None and (current or "") != expected:
                raise RegistryError(
                    f"Model {name}: the default changed to {current} meanwhile (expected "
                    f"{expected or 'none'}); not switching to {version}."
                )
            fsutil.atomic_write(self._dir(name) / "DEFAULT", version, fsync=True)
        log.info("default of %s is now %s", name, version)

    def default_version(self, name: str = MODEL_NAME) -> str | None:
        """Name of the default version, if one is set."""
        path = self._dir(name) / "DEFAULT"
        return (path.read_text().strip() or None) if path.is_file() else None

    def get(self, name: str = MODEL_NAME, version: str | None = None) -> ModelVersion:
        """Metadata of ``version`` (default: the default version)."""
        version = version or self.default_version(name)
        if version is None:
            raise RegistryError(
                f"Model {name} has no default version yet: run 04_model_comparison first."
            )
        if not _VERSION.match(version) or not (self._dir(name) / version / "meta.json").is_file():
            raise RegistryError(f"Model {name} has no version {version}.")
        if (meta := read_meta(self._dir(name) / version)) is None:
            raise RegistryError(
                f"Model {name} {version}: its meta.json cannot be read (see the log)."
            )
        return ModelVersion(name, version, meta)

    def load(self, name: str = MODEL_NAME, version: str | None = None) -> tuple[Any, ModelVersion]:
        """Load a version's model after checking every type in it is trusted (see
        :func:`check_trusted`)."""
        mv = self.get(name, version)
        path = self._dir(name) / mv.version / "model.skops"
        trusted = check_trusted(path)
        return sio.load(path, trusted=trusted), mv

    def run(
        self, frame: pd.DataFrame, name: str = MODEL_NAME, version: str | None = None
    ) -> pd.DataFrame:
        """Predictions of a version for ``frame`` (which must hold its features): one column per
        target."""
        model, mv = self.load(name, version)
        return _predictions_frame(
            model.predict(frame[mv.meta["features"]]), mv.meta["targets"], frame.index
        )


# --------------------------------------------------------------------------- Snowflake
def snowflake_version_name(now: dt.datetime | None = None) -> str:
    """A new, unique Snowflake version name that sorts by creation time, e.g.
    ``V20261101_101500_123456_1A2B3C`` (microseconds, so that versions logged within one second
    still sort in order)."""
    now = now or dt.datetime.now(dt.UTC)
    return f"V{now:%Y%m%d_%H%M%S_%f}_{uuid.uuid4().hex[:6].upper()}"


#: how far each package of a stored model may move from the version it was fitted with: scikit-learn
#: pickles are kept only within one minor release (patch releases keep the format); numpy and pandas
#: within their major release (numpy 2 pickles need numpy >= 2)
DEPENDENCY_RANGES = {"scikit-learn": "minor", "numpy": "major", "pandas": "major"}


def version_range(package: str, installed: str, scope: str) -> str:
    """A requirement for ``package`` around the ``installed`` version: same minor or same major
    release.

    >>> version_range("scikit-learn", "1.9.1", "minor")
    'scikit-learn>=1.9,<1.10'
    >>> version_range("numpy", "2.4.6", "major")
    'numpy>=2.0,<3'
    """
    m = re.match(r"(\d+)\.(\d+)", installed)
    if not m:
        raise RegistryError(
            f"{package} {installed}: cannot derive a version range from this version."
        )
    major, minor = int(m.group(1)), int(m.group(2))
    if scope == "minor":
        return f"{package}>={major}.{minor},<{major}.{minor + 1}"
    return f"{package}>={major}.0,<{major + 1}"


def conda_dependencies(libs: dict[str, str] | None = None) -> list[str]:
    """Packages the model needs in the warehouse, as ranges around the versions it was fitted with
    (not the exact versions of this machine, which Snowflake's package channel may not have)."""
    libs = libs or library_versions()
    return [version_range(p, libs[p], scope) for p, scope in DEPENDENCY_RANGES.items()]


def _shippable_modules() -> list[Any]:
    """Our modules whose classes may travel with a model by value: they import nothing else of
    ours."""
    from customer_analytics import btyd, calibration

    return [baselines, btyd, calibration]


def _estimator_types(model: Any) -> set[type]:
    """The classes of ``model`` and of every estimator nested in it (pipeline steps, wrapped
    models)."""
    seen: set[type] = set()
    todo = [model]
    while todo:
        est = todo.pop()
        if type(est) in seen:
            continue
        seen.add(type(est))
        todo += [st for _, st in getattr(est, "steps", [])]
        todo += (
            [t for _, t, _ in getattr(est, "transformers", []) if hasattr(t, "fit")]
            if hasattr(est, "transformers")
            else []
        )
        if hasattr(est, "get_params"):
            todo += [
                v
                for v in est.get_params(deep=False).values()
                if hasattr(v, "fit") and hasattr(v, "get_params")
            ]
    return seen


def snowflake_log_args(
    model: Any, name: str, version: str, meta: dict[str, Any], sample_input: pd.DataFrame
) -> dict[str, Any]:
    """Keyword arguments for ``snowflake.ml.registry.Registry.log_model`` (besides the model).

    Metrics are the held-out metrics plus our metadata under :data:`META_KEY` (JSON); the
    sample input gives the model's signature; our own baseline classes travel by value (their
    module, :mod:`baselines`, imports nothing else of ours, so it unpickles in the warehouse).
    """
    from snowflake.ml.model.task import Task

    ours = sorted(
        {
            t.__module__
            for t in _estimator_types(model)
            if t.__module__.startswith("customer_analytics")
        }
    )
    shippable = {m.__name__: m for m in _shippable_modules()}
    if any(m not in shippable for m in ours):
        raise RegistryError(
            f"{type(model).__name__} uses classes of {ours}: only {sorted(shippable)} are "
            "self-contained enough to be shipped to the warehouse by value."
        )
    ext = [shippable[m] for m in ours] or None
    info = {k: v for k, v in meta.items() if k != "metrics"}
    return {
        "model_name": name,
        "version_name": version,
        "comment": (
            f"{meta['params'].get('candidate', meta['estimator'])}, run_date "
            f"{meta['data_window'].get('run_date', '?')}, code {meta['code_version']}"
        ),
        "metrics": {**meta["metrics"], META_KEY: json.loads(json.dumps(info, default=str))},
        "conda_dependencies": conda_dependencies(),
        "sample_input_data": sample_input,
        "ext_modules": ext,
        "task": Task.TABULAR_REGRESSION,
        "target_platforms": ["WAREHOUSE"],
        "options": {
            "relax_version": True,
            "target_methods": ["predict"],
            "enable_explainability": False,
        },
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
        registry: an existing ``snowflake.ml.registry.Registry`` (built from the session if
            omitted).
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
        return ModelVersion(
            name, smv.version_name, _meta_from_metrics(name, smv.version_name, smv.show_metrics())
        )

    def log_model(
        self,
        model: Any,
        name: str,
        metrics: dict[str, float],
        params: dict[str, Any],
        data_window: dict[str, str],
        features: list[str],
        targets: list[str],
        sample_input: pd.DataFrame | None = None,
    ) -> ModelVersion:
        """Log ``model`` as a new version through ``Registry.log_model`` (not made the default)."""
        if sample_input is None:
            raise RegistryError(
                "The Snowflake registry needs sample_input (a few rows of features) "
                "to infer the model's signature."
            )
        version = snowflake_version_name()
        meta = build_meta(model, name, version, metrics, params, data_window, features, targets)
        had_default = self.default_version(name) is not None
        smv = self._reg.log_model(
            model, **snowflake_log_args(model, name, version, meta, sample_input[features].head(20))
        )
        log.info("registered %s %s in Snowflake", name, smv.version_name)
        meta = {**meta, "version": smv.version_name}
        if not had_default and self.default_version(name) == smv.version_name:
            meta[AUTO_DEFAULT] = True  # Snowflake makes a model's first version its default
        return ModelVersion(name, smv.version_name, meta)

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
        """Make ``version`` the default (the check against ``expected`` is not atomic on
        Snowflake)."""
        model = self._model(name)
        current = self.default_version(name)
        if expected is not None and (current or "") != expected:
            raise RegistryError(
                f"Model {name}: the default changed to {current} meanwhile; not switching."
            )
        model.default = version

    def get(self, name: str = MODEL_NAME, version: str | None = None) -> ModelVersion:
        """Metadata of ``version`` (default: the default version)."""
        model = self._model(name)
        return self._mv(name, model.version(version) if version else model.default)

    def load(self, name: str = MODEL_NAME, version: str | None = None) -> tuple[Any, ModelVersion]:
        """The version's Python model, loaded by snowflake-ml.

        snowflake-ml allows this to the model's owner role only, and raises ValueError when this
        environment differs from the model's (it is not forced): scoring and promotion use
        :meth:`run`, which works for any role allowed to use the model.
        """
        model = self._model(name)
        smv = model.version(version) if version else model.default
        return smv.load(), self._mv(name, smv)

    def run(
        self, frame: pd.DataFrame, name: str = MODEL_NAME, version: str | None = None
    ) -> pd.DataFrame:
        """Predictions computed in the warehouse (``ModelVersion.run``): one column per target."""
        model = self._model(name)
        smv = model.version(version) if version else model.default
        mv = self._mv(name, smv)
        out = smv.run(frame[mv.meta["features"]], function_name="predict")
        outputs = [c for c in out.columns if c not in mv.meta["features"]]
        return _predictions_frame(out[outputs].to_numpy(), mv.meta["targets"], frame.index)

    def run_in_warehouse(
        self, frame, name: str = MODEL_NAME, version: str | None = None, keep: tuple[str, ...] = ()
    ):
        """Predictions for a Snowpark DataFrame, computed in the warehouse: no row comes to the
        client.

        Args:
            frame: Snowpark DataFrame holding the version's features (and the ``keep`` columns).
            keep: columns passed through to the result (e.g. the customer key).

        Returns:
            ``(DataFrame, ModelVersion)``: the ``keep`` columns, then one column per target, named
            as the targets, in the version's target order.
        """
        import snowflake.snowpark.functions as F

        model = self._model(name)
        smv = model.version(version) if version else model.default
        mv = self._mv(name, smv)
        features = mv.meta["features"]
        # a kept column may also be a feature (the BTYD outlook of a hybrid model): select it once
        out = smv.run(frame.select(*dict.fromkeys((*keep, *features))), function_name="predict")
        given = {c.strip('"').upper() for c in (*keep, *features)}
        outputs = [c for c in out.columns if c.strip('"').upper() not in given]
        if len(outputs) != len(mv.meta["targets"]):
            raise RegistryError(
                f"{name} {mv.version} returned {len(outputs)} prediction columns for "
                f"{len(mv.meta['targets'])} targets."
            )
        cols = [F.col(c) for c in keep] + [
            F.col(o).cast("double").alias(t)
            for o, t in zip(outputs, mv.meta["targets"], strict=True)
        ]
        return out.select(*cols), mv


def open_registry(params: Params, session=None, schema: str | None = None) -> ModelRegistry:
    """The registry of one warehouse schema (production's by default; experiments and scratch have
    their own).

    Local: files under ``<warehouse_dir>/registry/<schema>/``. Snowflake: snowflake-ml's registry in
    ``<database>.<schema>``.
    """
    from customer_analytics import config

    if params.is_local:
        return LocalRegistry(
            params.warehouse_dir
            / "registry"
            / (schema or params.schema or config.LOCAL_SCHEMA).lower()
        )
    from customer_analytics import warehouse as wh

    if session is None:
        session = wh.connect(params)
    database, current = wh.current_names(session)
    return SnowflakeRegistry(session, database, schema or current)


def for_run(run) -> ModelRegistry:
    """The registry of a notebook's run (:class:`customer_analytics.runs.Run`): its namespace's own.

    A scratch run (a notebook on its own) writes to scratch's registry and, until it has a default
    model of its own, scores with production's.
    """
    own = open_registry(run.params, run.session, schema=run.schema)
    if run.namespace.kind == "scratch":
        return FallbackRegistry(
            own, open_registry(run.params, run.session, schema=run.production_schema)
        )
    return own


class FallbackRegistry:
    """A registry that writes to ``primary`` and, where ``primary`` has no default yet, reads
    ``fallback``'s.

    Scratch runs use it: a notebook run on its own scores with production's default model until
    it has trained one of its own, and never changes production's registry.
    """

    def __init__(self, primary: ModelRegistry, fallback: ModelRegistry):
        self.primary, self.fallback = primary, fallback

    def _reader(self, name: str) -> ModelRegistry:
        return self.primary if self.primary.default_version(name) else self.fallback

    def log_model(
        self,
        model: Any,
        name: str,
        metrics: dict[str, float],
        params: dict[str, Any],
        data_window: dict[str, str],
        features: list[str],
        targets: list[str],
        sample_input: pd.DataFrame | None = None,
    ) -> ModelVersion:
        return self.primary.log_model(
            model, name, metrics, params, data_window, features, targets, sample_input
        )

    def set_default(self, name: str, version: str, expected: str | None = None) -> None:
        self.primary.set_default(name, version, expected)

    def list_versions(self, name: str = MODEL_NAME) -> list[ModelVersion]:
        return self.primary.list_versions(name)

    def default_version(self, name: str = MODEL_NAME) -> str | None:
        return self.primary.default_version(name)

    def get(self, name: str = MODEL_NAME, version: str | None = None) -> ModelVersion:
        return (self.primary if version else self._reader(name)).get(name, version)

    def load(self, name: str = MODEL_NAME, version: str | None = None) -> tuple[Any, ModelVersion]:
        return (self.primary if version else self._reader(name)).load(name, version)

    def run(
        self, frame: pd.DataFrame, name: str = MODEL_NAME, version: str | None = None
    ) -> pd.DataFrame:
        return (self.primary if version else self._reader(name)).run(frame, name, version)


def model_name(horizon_days: int) -> str:
    """The registry model of a horizon: one model (and one default) per horizon, so that a model of
    one horizon can never be promoted over, or score for, another (e.g. ``customer_spend_60d``)."""
    return f"{MODEL_NAME}_{int(horizon_days)}d"


# --------------------------------------------------------------------------- this project's use
def data_window(params: Params, train: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, str]:
    """The data a model version was fitted and evaluated on."""
    h = dt.timedelta(days=params.horizon_days)
    ho = holdout["CUTOFF"].iloc[0]
    return {
        "train_cutoffs": ", ".join(str(c) for c in sorted(set(train["CUTOFF"]))),
        "labels_until": str(ho),
        "holdout_cutoff": str(ho),
        "holdout_until": str(ho + h),
        "run_date": params.run_date.isoformat(),
        "train_rows": str(len(train)),
        "holdout_rows": str(len(holdout)),
    }


def register(
    reg: ModelRegistry,
    comparison: md.Comparison,
    selection: md.Selection,
    params: Params,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
) -> ModelVersion:
    """Log the chosen model with its held-out metrics and data window (the default is left to
    :func:`promote`).

    The stored model is exactly the one evaluated on the held-out window (fitted on the training
    cut-offs only), so the recorded metrics describe the stored artifact.
    """
    name = selection.chosen
    row = comparison.board.loc[name]
    metrics = {m: float(row[m]) for m in md.METRICS if pd.notna(row[m])}
    metrics.update(
        {f"cv_{m}": float(row[f"cv_{m}"]) for m in md.METRICS if pd.notna(row[f"cv_{m}"])}
    )
    model = comparison.models[name]
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    # what the model predicts, checked before it scores (predict.check_model) and before promotion
    run_params = {
        "candidate": name,
        "seed": params.seed,
        "horizon_days": params.horizon_days,
        "definitions_version": md.ft.DEFINITIONS_VERSION,
        "product_types": md.ft.products_from_columns(comparison.targets),
        "primary_metric": params.primary_metric,
        "sample": params.sample,
        "n_cutoffs": params.n_cutoffs,
        "cv_folds": params.cv_folds,
        "max_train_rows": params.max_train_rows,
        "max_holdout_rows": params.max_holdout_rows,
        "estimator": repr(estimator),
    }
    return reg.log_model(
        model,
        model_name(params.horizon_days),
        metrics,
        run_params,
        data_window(params, train, holdout),
        comparison.features,
        comparison.targets,
        sample_input=train.head(20),
    )


@dataclasses.dataclass
class Promotion:
    """The promotion guard's decision for a new version."""

    promoted: bool
    version: str
    previous: str | None
    metric: str
    new_value: float
    previous_value: float | None
    reason: str  # for the log
    #: why, for the report's words (:mod:`customer_analytics.narrative.models`): first | already |
    #: unloadable | incompatible | overlap | better | not_better
    code: str = ""

    def table(self) -> pd.DataFrame:
        """New version and current default side by side (for the report)."""
        label = md.METRIC_LABELS[self.metric]
        rows = {"new version": [self.version, self.new_value]}
        if self.previous:
            rows["previous default"] = [self.previous, self.previous_value]
        return pd.DataFrame(rows, index=["version", f"held-out {label}"]).T


def promote(
    reg: ModelRegistry,
    mv: ModelVersion,
    holdout: pd.DataFrame,
    metric: str,
    name: str | None = None,
) -> Promotion:
    """Make ``mv`` the default only if it beats the current default on this run's held-out window.

    The current default is loaded and evaluated on the same held-out rows as ``mv``. It is kept
    (with the reason) when it is at least as good, and also when it was trained on labels inside
    this held-out window (a comparison there would favour it unfairly). ``mv`` becomes the default
    when there is none, or when the current one cannot score this data (other features/targets)
    or cannot be loaded safely.
    """
    name = name or mv.name
    label = md.METRIC_LABELS[metric]
    new_value = float(mv.meta["metrics"][metric])
    current = reg.default_version(name)

    def decide(
        promoted: bool, reason: str, previous_value: float | None = None, code: str = ""
    ) -> Promotion:
        if promoted:
            reg.set_default(name, mv.version, expected=current or "")
        log.info("promotion of %s: %s (%s)", mv.version, promoted, reason)
        return Promotion(
            promoted, mv.version, current, metric, new_value, previous_value, reason, code
        )

    if current is None or (current == mv.version and mv.meta.get(AUTO_DEFAULT)):
        return decide(True, "there was no default version yet", code="first")
    if current == mv.version:
        return decide(False, "it already is the default", code="already")
    try:  # anything wrong with the stored default (unreadable meta.json, …) means it cannot compete
        cur = reg.get(name, current)
        missing = [c for c in cur.meta["features"] if c not in holdout.columns]
        same_targets = cur.meta["targets"] == mv.meta["targets"]
    except Exception as e:  # noqa: BLE001 - see above
        return decide(
            True,
            f"the current default {current} could not be loaded ({_why(e)})",
            code="unloadable",
        )
    if missing or not same_targets:
        what = (
            f"lacks its features {missing[:5]}" if missing else "has other targets (product types)"
        )
        return decide(
            True,
            f"the current default {current} cannot score this run's data (it {what})",
            code="incompatible",
        )
    labels_until = cur.meta.get("data_window", {}).get("labels_until")
    holdout_cutoff = str(holdout["CUTOFF"].iloc[0])
    if labels_until and labels_until > holdout_cutoff:
        return decide(
            False,
            f"the current default {current} was trained on labels up to {labels_until}, inside "
            f"this run's held-out window (from {holdout_cutoff}), so it cannot be compared fairly "
            "on it; it stays the default",
            code="overlap",
        )
    # any failure: refused as unsafe (RegistryError), skops' own errors, snowflake-ml's owner-role
    try:
        # and environment checks (ValueError), a truncated file, …: the default cannot compete
        pred = np.clip(reg.run(holdout, name, current).to_numpy(dtype=float), 0, None)
    except Exception as e:  # noqa: BLE001 - see above
        return decide(
            True,
            f"the current default {current} could not be loaded ({_why(e)})",
            code="unloadable",
        )
    value = md.metrics(holdout[cur.meta["targets"]].to_numpy(dtype=float), pred)[metric]
    if md.is_better(new_value, value, metric):
        return decide(
            True,
            f"its held-out {label} {new_value:.3f} beats the current default {current}'s "
            f"{value:.3f} on the same window",
            value,
            "better",
        )
    return decide(
        False,
        f"its held-out {label} {new_value:.3f} does not beat the current default {current}'s "
        f"{value:.3f} on the same window, so {current} stays the default",
        value,
        "not_better",
    )


def _why(e: BaseException) -> str:
    """An exception in a few words for a report: its type and the first line of its message."""
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def versions_frame(reg: ModelRegistry, name: str = MODEL_NAME) -> pd.DataFrame:
    """Every version with its candidate, data window and held-out metrics (for the report)."""
    default = reg.default_version(name)
    rows = [
        {
            "version": v.version,
            "default": v.version == default,
            "candidate": v.meta["params"]["candidate"],
            "run_date": v.meta["data_window"]["run_date"],
            "holdout_rmse": v.meta["metrics"].get("rmse"),
            "holdout_mae": v.meta["metrics"].get("mae"),
            "created": v.meta.get("created"),
            "code": v.meta.get("code_version"),
        }
        for v in reg.list_versions(name)
    ]
    return pd.DataFrame(rows).set_index("version") if rows else pd.DataFrame()


def describe(mv: ModelVersion) -> pd.DataFrame:
    """One model version's identity, data window and metrics, as a small table."""
    m = mv.meta
    info = {
        "model": mv.name,
        "version": mv.version,
        "candidate": m["params"]["candidate"],
        **{f"window: {k}": v for k, v in m["data_window"].items()},
        **{f"holdout {k}": round(v, 3) for k, v in m["metrics"].items() if not k.startswith("cv_")},
    }
    return pd.Series(info, name="value").to_frame()


def headline(selection: md.Selection, mv: ModelVersion, decision: Promotion) -> headlines.Model:
    """04's headline record: the version trained in this run, how it compares, and the promotion
    decision."""
    return headlines.Model(
        candidate=selection.chosen,
        version=mv.version,
        model_name=mv.name,
        metric=selection.metric,
        error=_number(selection.holdout_chosen),
        baseline=selection.baseline,
        improvement=_number(selection.improvement),
        promoted=decision.promoted,
        decision=decision.code,
        default_version=mv.version if decision.promoted else (decision.previous or ""),
        default_error=_number(decision.new_value if decision.promoted else decision.previous_value),
    )


def _number(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if v == v else None

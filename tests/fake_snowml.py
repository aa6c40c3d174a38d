"""A fake of snowflake-ml's ``Registry`` with the behaviour of snowflake-ml-python 2.6 that our
adapter meets.

Snowflake cannot run here, so :class:`registry.SnowflakeRegistry` is tested against this fake.
What it reproduces (read from the installed 2.6 sources, ``snowflake/ml/registry`` and
``snowflake/ml/model/_client/model``):

* ``Registry.log_model`` takes the arguments of the real signature (checked by binding them to it);
  the model is pickled with cloudpickle, ``ext_modules`` by value, as the packager does, and is
  unpickled from those bytes whenever it runs (the warehouse never sees our Python objects);
* ``get_model`` of an unknown model raises ``ValueError("Unable to find model …")``; ``version`` of
  an unknown version raises ``ValueError``;
* the first version logged for a model becomes its default (``CREATE MODEL … WITH VERSION``);
* ``ModelVersion.load()`` is allowed only when the session's role owns the model
  (``SnowflakeMLException``, insufficient privileges), and raises ``ValueError`` when the local
  environment does not satisfy the model's dependencies, unless ``force=True``;
* ``ModelVersion.run`` returns the input columns plus ``output_feature_<i>`` columns: a pandas
  frame for a pandas input; for a Snowpark DataFrame a Snowpark DataFrame over a table written by
  the "warehouse" (here: this fake, on the embedded warehouse).
"""

from __future__ import annotations

import inspect
import json
import uuid
from importlib.metadata import version as installed_version
from typing import Any

import cloudpickle
import pandas as pd
from packaging.requirements import Requirement


class FakeModelVersion:
    def __init__(
        self,
        registry: FakeRegistry,
        model_name: str,
        version_name: str,
        payload: bytes,
        metrics: dict,
        dependencies: list[str],
        features: list[str],
    ):
        self._features = features
        self._registry, self._model_name, self._version_name = registry, model_name, version_name
        self._payload, self._dependencies = payload, dependencies
        self._metrics = json.loads(json.dumps(metrics))  # stored as JSON by Snowflake

    @property
    def version_name(self) -> str:
        return self._version_name

    def show_metrics(self) -> dict:
        return json.loads(json.dumps(self._metrics))

    def _environment_errors(self) -> list[str]:
        errors = []
        for dep in self._dependencies:
            req = Requirement(dep)
            local = self._registry.local_versions.get(req.name) or installed_version(req.name)
            if not req.specifier.contains(local, prereleases=True):
                errors.append(f"{req.name}=={local} does not satisfy {dep}")
        return errors

    def load(self, *, force: bool = False, options: Any = None) -> Any:
        from snowflake.ml._internal.exceptions import error_codes, exceptions

        self._registry.calls.append(("load", self._model_name, self._version_name))
        if self._registry.current_role != self._registry.owner_role:
            raise exceptions.SnowflakeMLException(
                error_code=error_codes.INSUFFICIENT_PRIVILEGES,
                original_exception=RuntimeError(
                    "model registry: cannot load this model — only the model's "
                    "owner role is permitted. You may use export() instead."
                ),
            )
        if not force and (errors := self._environment_errors()):
            raise ValueError(
                f"Unable to load this model due to following validation errors: {errors}. Make "
                "sure your local environment is the same as that when you logged the model, or "
                "if you believe it should work, specify `force=True` to bypass this check."
            )
        return cloudpickle.loads(self._payload)

    def run(
        self,
        X,
        *,
        function_name: str | None = None,
        partition_column: str | None = None,  # noqa: N803
        strict_input_validation: bool = False,
    ):
        self._registry.calls.append(
            ("run", self._model_name, self._version_name, type(X).__module__.split(".")[0])
        )
        if failure := self._registry.run_failures.get(self._version_name):
            raise failure
        model = cloudpickle.loads(
            self._payload
        )  # what the warehouse function does with the logged bytes
        if isinstance(X, pd.DataFrame):
            return self._predict(model, X)
        from customer_analytics import warehouse as wh

        frame = X.to_pandas()  # the "warehouse" computing: in this fake, on the embedded warehouse
        out = self._predict(model, frame)
        name = f"FAKE_RUN_{uuid.uuid4().hex[:8].upper()}"
        wh.write_pandas(X.session, out, name, self._registry.staging_dir)
        self._registry.tables.append(name)
        return X.session.table(name)

    def _predict(self, model, frame: pd.DataFrame) -> pd.DataFrame:
        pred = (
            pd.DataFrame(model.predict(frame[self._features]))
            .to_numpy(dtype=float)
            .reshape(len(frame), -1)
        )
        out = frame.copy()
        for i in range(pred.shape[1]):
            out[f"output_feature_{i}"] = pred[:, i]
        return out


class FakeModel:
    def __init__(self, registry: FakeRegistry, name: str):
        self._registry, self.name = registry, name
        self._versions: dict[str, FakeModelVersion] = {}
        self._default: str | None = None

    def versions(self) -> list[FakeModelVersion]:
        return list(self._versions.values())

    def version(self, version_or_alias: str) -> FakeModelVersion:
        try:
            return self._versions[version_or_alias]
        except KeyError:
            raise ValueError(
                f"Unable to find version with name {version_or_alias} in model {self.name}"
            ) from None

    @property
    def default(self) -> FakeModelVersion:
        return self.version(self._default)

    @default.setter
    def default(self, version: str | FakeModelVersion) -> None:
        name = version if isinstance(version, str) else version.version_name
        self.version(name)
        self._registry.calls.append(("set_default", self.name, name))
        self._default = name


class FakeRegistry:
    """Stands in for ``snowflake.ml.registry.Registry`` (see the module doc).

    Args:
        owner_role, current_role: the model's owner role and the session's role.
        local_versions: package versions this "local environment" reports (default: installed ones).
        staging_dir: where the fake writes Parquet files for tables it creates (Snowpark input).
    """

    def __init__(
        self,
        owner_role: str = "ANALYST",
        current_role: str = "ANALYST",
        local_versions: dict[str, str] | None = None,
        staging_dir=None,
    ):
        self.owner_role, self.current_role = owner_role, current_role
        self.local_versions = local_versions or {}
        self.staging_dir = staging_dir
        self.models: dict[str, FakeModel] = {}
        self.calls: list[tuple] = []
        self.run_failures: dict[str, Exception] = {}
        self.tables: list[str] = []

    def get_model(self, model_name: str) -> FakeModel:
        try:
            return self.models[model_name]
        except KeyError:
            raise ValueError(f"Unable to find model {model_name}") from None

    def log_model(self, model, **kwargs) -> FakeModelVersion:
        from snowflake.ml.registry import Registry

        inspect.signature(Registry.log_model).bind(
            self, model, **kwargs
        )  # the real API accepts these
        name, version = kwargs["model_name"], kwargs["version_name"]
        self.calls.append(("log_model", name, version))
        registered = []
        for mod in kwargs.get("ext_modules") or []:
            if mod.__name__ not in cloudpickle.list_registry_pickle_by_value():
                cloudpickle.register_pickle_by_value(mod)
                registered.append(mod)
        try:
            payload = cloudpickle.dumps(model)
        finally:
            for mod in registered:
                cloudpickle.unregister_pickle_by_value(mod)
        m = self.models.setdefault(name, FakeModel(self, name))
        if version in m._versions:
            raise ValueError(f"Version {version} already exists in model {name}")
        mv = FakeModelVersion(
            self,
            name,
            version,
            payload,
            kwargs.get("metrics") or {},
            kwargs.get("conda_dependencies") or [],
            list(kwargs["sample_input_data"].columns),
        )
        m._versions[version] = mv
        if m._default is None:
            m._default = version  # the first version of a model becomes its default
        return mv

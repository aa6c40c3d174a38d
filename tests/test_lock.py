"""Installs are reproducible: ``requirements.lock`` satisfies ``pyproject.toml``, and the
environment the tests run in holds exactly the locked versions (what ``make`` installs).

Outside CI a package installed by hand beside the locked ones (a profiler, say) is reported but
allowed; with ``CA_REQUIRE_BROWSER=1`` (set by ``.ci/run``, a fresh clone) it fails too.
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO

LOCK = REPO / "requirements.lock"
#: Installed by venv/pip themselves, never locked.
TOOLING = {"pip", "customer-analytics"}
IN_CI = os.environ.get("CA_REQUIRE_BROWSER") == "1"


def locked() -> dict[str, str]:
    """Package (canonical name) -> locked version."""
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line):
            pins[canonicalize_name(m[1].split("[")[0])] = m[2]
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [
        Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]
    ]


def test_the_lock_satisfies_every_declared_dependency():
    pins = locked()
    assert len(pins) > 100
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in pins, (
            f"{req.name} is declared in pyproject.toml but not locked: run make lock"
        )
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={pins[name]}, outside pyproject.toml's "
            f"{req.specifier}: run make lock"
        )


def test_the_environment_holds_exactly_the_locked_versions():
    pins = locked()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {n: (v, installed.get(n)) for n, v in pins.items() if installed.get(n) != v}
    assert not wrong, f"locked -> installed versions differ (run make, or make lock): {wrong}"
    extra = sorted(set(installed) - set(pins) - TOOLING)
    if IN_CI:
        assert not extra, f"installed but not locked: {extra}"
    elif extra:
        print(f"installed by hand beside the lock (allowed outside CI): {extra}")

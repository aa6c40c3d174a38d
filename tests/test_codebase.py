"""The codebase's own checks, run by CI through `make test`: types, lint, format, interfaces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from customer_analytics import registry

BIN = Path(sys.executable).parent


@pytest.mark.slow  # about a minute without mypy's cache
def test_the_type_checker_is_clean_on_the_library():
    out = subprocess.run(
        [str(BIN / "mypy"), "--cache-dir", "/dev/null"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:]


@pytest.mark.parametrize(
    "args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"]
)
def test_ruff_lint_and_format_are_clean(args):
    out = subprocess.run(
        [str(BIN / "ruff"), *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-3000:]


def test_every_registry_is_a_model_registry_and_only_snowflakes_runs_in_the_warehouse(tmp_path):
    local = registry.LocalRegistry(tmp_path / "local")
    snowflake = registry.SnowflakeRegistry(None, "ANALYTICS", "SHOP", registry=object())
    scratch = registry.FallbackRegistry(local, registry.LocalRegistry(tmp_path / "production"))
    for reg in (local, snowflake, scratch):
        assert isinstance(reg, registry.ModelRegistry), type(reg).__name__
    assert isinstance(snowflake, registry.WarehouseRegistry)
    assert not isinstance(local, registry.WarehouseRegistry) and not isinstance(
        scratch, registry.WarehouseRegistry
    )

    class Partial:  # a registry missing a call is not one
        def get(self, name, version=None): ...

    assert not isinstance(Partial(), registry.ModelRegistry)

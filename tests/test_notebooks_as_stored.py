"""The committed notebooks, executed exactly as stored (no parameters injected), with nbval.

This is what a data scientist gets with "Run All" in JupyterLab: the ``parameters`` cells hold
``None``s that resolve to ``env.yaml``. Here the env file is a small-sample copy of ``env.yaml``
(``CUSTOMER_ANALYTICS_ENV``) pointing at scratch folders. Notebooks run on their own write into the
scratch namespace, never production.
"""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest
import yaml

from conftest import REPO
from customer_analytics import config, synthetic
from customer_analytics import warehouse as wh

pytestmark = pytest.mark.slow
NOTEBOOKS = sorted(str(p) for p in (REPO / "notebooks").glob("*.ipynb"))


def test_every_notebook_runs_top_to_bottom_as_committed(tmp_path, monkeypatch):
    synthetic.write(synthetic.generate(1500, seed=5), tmp_path / "raw")
    env = yaml.safe_load((REPO / "env.yaml").read_text())
    env.update(
        data_dir=str(tmp_path / "raw"),
        warehouse_dir=str(tmp_path / "warehouse"),
        reports_dir=str(tmp_path / "reports"),
        sample=0.5,
    )
    (tmp_path / "env.test.yaml").write_text(yaml.safe_dump(env))
    monkeypatch.setenv("CUSTOMER_ANALYTICS_ENV", str(tmp_path / "env.test.yaml"))
    run_env = {
        **os.environ,
        "CUSTOMER_ANALYTICS_ENV": str(tmp_path / "env.test.yaml"),
        "CUSTOMER_ANALYTICS_ROOT": str(REPO),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(tmp_path),
            *NOTEBOOKS,
        ],
        cwd=tmp_path,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-6000:]
    code_cells = sum(
        c.cell_type == "code" for nb in NOTEBOOKS for c in nbformat.read(nb, as_version=4).cells
    )
    assert out.stdout.splitlines()[-1].startswith(f"{code_cells} passed"), out.stdout[-2000:]
    # they worked on the scratch warehouse named by the env file, and scored its customers
    params = config.load(REPO)
    assert params.warehouse_dir == tmp_path / "warehouse"
    s = wh.connect(params)
    try:
        assert s.table("ANALYTICS.SHOP__SCRATCH.PREDICTIONS").count() > 0
        assert not wh.table_exists(s, "PREDICTIONS")  # production's schema holds nothing of theirs
    finally:
        s.close()
        wh.stop_local_server(params.warehouse_dir)

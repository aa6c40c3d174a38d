"""JupyterLab with the project's Jupyter configuration: the file browser lists, notebooks open and
save.

Ploomber's auto-enabled server extension makes JupyterLab 4 answer HTTP 500 on every listing
("'coroutine' object is not subscriptable"); `.jupyter/jupyter_server_config.json` disables it.
This starts a real server the way `make lab` does and talks to its REST API.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO

NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 over a scratch copy of notebooks/, stopped by its PID."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    home = tmp_path_factory.mktemp("home")  # keeps the user's own ~/.jupyter out of the test
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_PATH": str(REPO / ".jupyter"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    cmd = [
        str(Path(sys.executable).with_name("jupyter")),
        "lab",
        "--no-browser",
        "--allow-root",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    log = (home / "lab.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "JupyterLab did not start: " + (home / "lab.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.3)
        yield base, token, root, home / "lab.log"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def api(base: str, token: str, path: str, method: str = "GET", body: dict | None = None):
    req = urllib.request.Request(
        f"{base}/api/contents/{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read())


def test_the_notebooks_folder_lists(lab):
    base, token, _, _ = lab
    status, listing = api(base, token, "notebooks")
    assert status == 200 and listing["type"] == "directory"
    assert sorted(item["name"] for item in listing["content"]) == NOTEBOOKS
    assert len(NOTEBOOKS) == 5


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_notebook_opens_as_valid_notebook_json(lab, name):
    import nbformat

    base, token, _, _ = lab
    status, model = api(base, token, f"notebooks/{name}?content=1")
    assert status == 200 and model["type"] == "notebook"
    nb = nbformat.from_dict(model["content"])
    nbformat.validate(nb)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)


def test_saving_a_notebook_round_trips_unchanged(lab):
    base, token, root, log = lab
    path = root / "notebooks" / NOTEBOOKS[0]
    before = path.read_bytes()
    _, model = api(base, token, f"notebooks/{NOTEBOOKS[0]}?content=1")
    status, _ = api(
        base,
        token,
        f"notebooks/{NOTEBOOKS[0]}",
        "PUT",
        {"type": "notebook", "format": "json", "content": model["content"]},
    )
    assert status == 200
    assert path.read_bytes() == before
    assert "Traceback" not in log.read_text()

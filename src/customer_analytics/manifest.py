"""A small manifest of the input files, so Ploomber re-runs the ingest when (and only when) they change.

Ploomber tracks files listed as task ``resources_`` by hashing their whole content on every
build, and refuses to build when one is missing. Input files are large and partly optional, so
the ingest task tracks this manifest instead: the name, size and modification time of each input
file (or "absent"). ``pipeline.yaml`` names :func:`serial_executor` as its executor; Ploomber
calls it while loading the pipeline, before it checks what is outdated, so the manifest is
always current: a changed, added or removed input file changes the manifest and re-runs
``01_ingest`` (and what follows); nothing changed, nothing re-runs.

Standard library only, apart from Ploomber's executor created at the end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from customer_analytics.contract import CALLS, candidates


def _resolve(path: str | os.PathLike, root: str | os.PathLike | None) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or root is None else Path(root) / p


def _stat(path: Path) -> dict[str, Any]:
    try:
        st = path.stat()
    except OSError:
        return {"present": False}
    return {"present": True, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def data_manifest(data_dir: Path, files: dict[str, str | None]) -> dict[str, Any]:
    """Fingerprint (size, mtime) of each configured input; ``files``: source -> name inside data_dir."""
    out: dict[str, Any] = {"data_dir": str(data_dir), "data_dir_exists": data_dir.is_dir(), "sources": {}}
    for source, name in sorted(files.items()):
        if not name:
            out["sources"][source] = {"configured": False}
        elif source == CALLS.name:
            folder = data_dir / name
            entries = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
            out["sources"][source] = {"name": name, "present": folder.is_dir(),
                                      "files": {p.name: _stat(p) for p in entries}}
        else:
            out["sources"][source] = {"name": name, "files": {p.name: _stat(p) for p in candidates(data_dir, name)}}
    return out


def write_manifest(path: Path, manifest: dict[str, Any]) -> bool:
    """Write ``manifest`` as JSON unless the file already says the same; return whether it changed."""
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def serial_executor(data_dir: str, manifest: str, root: str | None = None, orders_file: str | None = None,
                    customers_file: str | None = None, reviews_file: str | None = None,
                    calls_dir: str | None = None):
    """Refresh the input manifest, then return Ploomber's serial executor (see the module docstring).

    Args:
        data_dir: the ``data_dir`` parameter (relative paths are taken from ``root``).
        manifest: where to write the manifest (tracked as a resource of the ingest task).
        root: the project folder (Ploomber's ``{{root}}``).
        orders_file, customers_file, reviews_file, calls_dir: the configured input names.
    """
    from ploomber.executors import Serial

    files = {"orders": orders_file, "customers": customers_file, "reviews": reviews_file, CALLS.name: calls_dir}
    write_manifest(_resolve(manifest, root), data_manifest(_resolve(data_dir, root), files))
    return Serial()

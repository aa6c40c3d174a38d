"""Garbage-collector settings for the processes a pipeline run owns: a notebook's kernel (it runs
one notebook, then exits) and the local warehouse server.

With CPython's defaults, a young collection runs every 700 new objects, and a full one walks every
object alive. A kernel's imports (Snowpark, pandas, scikit-learn, matplotlib: 150,000-280,000
objects that live as long as the kernel) cost ~0.9 s of collections each, and every full
collection during the notebook walks them again; over a pipeline run at 9,536 orders the five
kernels spent 8.3 s collecting, the warehouse server 2.7 s and the pipeline's process 0.7 s, on a
machine with two cores.

* :func:`warm` imports a kernel's modules with the collector off, then :func:`settle`\\ s.
* :func:`settle` collects once, sets every object alive aside (``gc.freeze()``: full collections
  skip them from then on) and collects the young generation every :data:`THRESHOLDS` [0] new
  objects. The warehouse server calls it once it is set up.
* The process that loaded the pipeline skips the interpreter's last collections on exit
  (:func:`exit_without_collecting`).
* The pipeline's own process may be a long-lived one (a build started from Python): while it builds
  it only collects less often (:func:`fewer_collections`), and nothing of it is frozen.

Garbage in reference cycles is still collected, a little later: at most a few tens of thousands of
objects wait for it.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import importlib
from collections.abc import Iterator, Sequence

#: gc.set_threshold: young collections every 20,000 net new objects (CPython's default: 700); the
#: older generations as CPython sets them by default.
THRESHOLDS = (20_000, 10, 10)


def settle() -> None:
    """Collect once, set every object alive now aside from the collector, and collect the young
    generation less often from now on (the collector on). For a process that has done its imports
    and runs one job."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    gc.enable()


def warm(modules: Sequence[str]) -> None:
    """Import ``modules`` with the collector off (imports make few cycles: one collection after them
    does), then :func:`settle`, also when an import fails (the error is raised after it)."""
    gc.disable()
    try:
        for name in modules:
            importlib.import_module(name)
    finally:
        settle()


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Young collections every :data:`THRESHOLDS` [0] new objects while the block runs, then back to
    what they were. For a process that goes on afterwards (a pipeline build started from Python):
    nothing is frozen."""
    before = gc.get_threshold()
    gc.set_threshold(*THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


@functools.cache
def exit_without_collecting() -> None:
    """At this process's exit, skip the interpreter's last garbage collections.

    A process that loaded the pipeline holds ~275,000 objects (Ploomber imports Papermill,
    nbconvert, pandas, matplotlib, boto3...). On exit, CPython collects them all again while it
    tears the modules down: ~0.6 s of a 3 s no-op ``ploomber build``, and none of it is work.
    ``gc.freeze()`` in an exit handler moves them out of the collector's reach first; the memory is
    returned by the exit itself. Registered once per process, by the pipeline's executor factory:
    after the ``logging`` module's own handler, and exit handlers run last-in first-out, so log
    files are still flushed and closed after it. What is lost: ``__del__`` of objects left in
    reference cycles at exit, which Python never promises to call; everything the pipeline writes
    is closed explicitly.
    """
    atexit.register(gc.freeze)

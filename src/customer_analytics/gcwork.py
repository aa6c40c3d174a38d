"""Garbage-collector settings for the processes a pipeline run owns: a notebook's kernel (it runs
one notebook, then exits) and the local warehouse server.

Measured over a pipeline run at 9,536 orders with CPython's defaults, the five kernels spent 8.3 s
collecting garbage, the warehouse server 2.7 s and the pipeline's process 0.7 s, on a machine with
two cores. Most of it is full collections that walk, again and again, the ~250,000 objects of the
imported modules (Snowpark, pandas, scikit-learn, fakesnow...), which live as long as the process,
and young collections run every 700 new objects while a notebook builds lists of rows.

:func:`settle`, called once the imports are done, sets what exists aside (``gc.freeze()``) and
collects the young generation every :data:`THRESHOLDS` [0] new objects instead. Over the same run
the collections took 4.0 s in the kernels and 1.1 s in the server. Garbage in reference cycles is
still collected, a little later: at most a few tens of thousands of objects wait for it.

The pipeline's own process may be a long-lived one (a build started from Python): while it builds
it only collects less often (:func:`fewer_collections`), and nothing of it is frozen.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: gc.set_threshold: young collections every 20,000 net new objects (CPython's default: 700); the
#: older generations as CPython sets them by default.
THRESHOLDS = (20_000, 10, 10)


def settle() -> None:
    """Collect once, set every object alive now aside from the collector, and collect the young
    generation less often from now on. For a process that has done its imports and runs one job."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


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

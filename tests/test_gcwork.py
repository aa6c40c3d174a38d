"""Garbage-collector settings of the processes a run owns (customer_analytics.gcwork)."""

from __future__ import annotations

import gc

import pytest

from customer_analytics import gcwork


def test_a_build_collects_less_often_and_gives_the_settings_back_even_when_it_fails():
    before = gc.get_threshold()
    assert before != gcwork.THRESHOLDS
    with gcwork.fewer_collections():
        assert gc.get_threshold() == gcwork.THRESHOLDS
    assert gc.get_threshold() == before
    frozen = gc.get_freeze_count()
    with pytest.raises(RuntimeError), gcwork.fewer_collections():
        raise RuntimeError("a notebook failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen  # a process that goes on keeps every object collectable


WARM_PROBE = """
import gc, json, sys
from customer_analytics import gcwork
try:
    gcwork.warm(["email.parser", "customer_analytics_has_no_such_module"])
except ImportError as e:
    failed = type(e).__name__
print(json.dumps({"failed": failed, "enabled": gc.isenabled(), "threshold": gc.get_threshold(),
                  "frozen": gc.get_freeze_count(), "imported": "email.parser" in sys.modules}))
"""


def test_a_kernel_warm_up_that_fails_to_import_still_turns_the_collector_back_on():
    """Run in a process of its own: the warm-up freezes every object of the process it runs in."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", WARM_PROBE], capture_output=True, text=True, check=True
    ).stdout
    seen = json.loads(out)
    assert seen["failed"] == "ModuleNotFoundError" and seen["imported"]
    assert seen["enabled"] and tuple(seen["threshold"]) == gcwork.THRESHOLDS
    assert seen["frozen"] > 1_000

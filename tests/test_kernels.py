"""The kernels a pipeline run starts ahead of their notebook (customer_analytics.kernels)."""

from __future__ import annotations

import json

import pytest
from jupyter_client import BlockingKernelClient

from customer_analytics import gcwork
from customer_analytics.kernels import KernelService

pytestmark = pytest.mark.slow

PROBE = (
    "import gc, json, sys; print(json.dumps({'threshold': gc.get_threshold(), "
    "'frozen': gc.get_freeze_count(), 'imported': 'customer_analytics.fsutil' in sys.modules, "
    "'names': [n for n in globals() if not n.startswith('_')]}))"
)


def test_a_warm_kernel_has_its_imports_done_set_aside_from_the_collector_and_no_name_bound():
    service = KernelService([("01_ingest", ["customer_analytics.fsutil"])], ahead=1)
    try:
        service.prepare()
        warm = service.take("01_ingest")
        assert warm is not None
        kc = BlockingKernelClient()
        kc.load_connection_info(warm.km.get_connection_info())
        kc.start_channels()
        try:
            out: list[str] = []
            reply = kc.execute_interactive(
                PROBE,
                timeout=60,
                output_hook=lambda m: out.append(m["content"].get("text", "")),
            )
        finally:
            kc.stop_channels()
        assert reply["content"]["status"] == "ok"
        seen = json.loads("".join(out))
        assert seen["imported"]
        # the warm-up's objects (the imported modules) are out of the collector's reach, and young
        # collections wait for gcwork.THRESHOLDS new objects, not CPython's 700
        assert seen["frozen"] > 10_000
        assert tuple(seen["threshold"]) == gcwork.THRESHOLDS
        # the probe's own imports are the only names in the notebook's namespace
        assert set(seen["names"]) <= {
            "gc",
            "json",
            "sys",
            "In",
            "Out",
            "exit",
            "quit",
            "open",
            "get_ipython",
        }
        service.release(warm.km)
    finally:
        service.close()

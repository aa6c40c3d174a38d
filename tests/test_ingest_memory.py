"""Bounded work per order (issue 15, item 4): one JSON line with 100,000 items once took the
warehouse server to
19.8 GB (FLATTEN + GET carried the whole list on every item row). Now the reader stages the items
and the server's
memory stays bounded; and beyond contract.MAX_ITEMS an order is rejected whole, with its own reason.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from conftest import make_params
from customer_analytics import contract, ingest
from customer_analytics import warehouse as wh
from customer_analytics import warehouse_server as srv
from customer_analytics.contract import Reason

N_ITEMS = 100_000
#: Peak resident memory the warehouse server may reach while ingesting the 100,000-item line.
BOUND_BYTES = 1_500 * 2**20


def peak_rss(warehouse_dir: Path) -> int:
    """Peak resident set size (VmHWM) of the warehouse server of ``warehouse_dir``, in bytes."""
    pid = json.loads((warehouse_dir / srv.STATE_FILE).read_text())["pid"]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM for the warehouse server")


def write_orders(folder: Path) -> int:
    """Two ordinary orders around one of N_ITEMS items (~5 MB, under the 16 MB line limit)."""
    folder.mkdir(parents=True, exist_ok=True)
    big = {
        "order_id": "BIG",
        "customer_id": "C1",
        "ts": "2026-03-01T10:00:00",
        "items": [
            {"product": f"p{k % 50}", "quantity": 1 + k % 3, "unit_price": 1.5}
            for k in range(N_ITEMS)
        ],
    }
    small = [
        {
            "order_id": f"O{i}",
            "customer_id": "C2",
            "ts": "2026-03-02",
            "items": [{"product": "p1", "quantity": 2, "unit_price": 3.0}],
        }
        for i in range(2)
    ]
    text = "\n".join(json.dumps(o) for o in [small[0], big, small[1]]) + "\n"
    (folder / "orders.jsonl").write_text(text)
    assert len(text.encode()) < contract.MAX_LINE_BYTES
    return sum(it["quantity"] for it in big["items"])


@pytest.fixture
def big_order(tmp_path):
    units = write_orders(tmp_path / "data")
    p = make_params(
        tmp_path / "data", tmp_path / "wh", customers_file=None, reviews_file=None, calls_dir=None
    )
    yield p, units
    wh.stop_local_server(p.warehouse_dir)


def test_a_line_of_100000_items_is_flattened_within_a_memory_bound(big_order, monkeypatch):
    p, units = big_order
    monkeypatch.setattr(
        contract, "MAX_ITEMS", 200_000
    )  # let this order through, to measure the flattening
    s = wh.connect(p)
    try:
        o = {c.source: c for c in ingest.run(s, p)}["orders"]
        assert (o.read, o.accepted, o.rejected) == (N_ITEMS + 2, N_ITEMS + 2, 0)
        big = s.table("CLEAN_ORDER_LINES").filter("ORDER_ID = 'BIG'")
        assert big.count() == N_ITEMS
        got = big.agg({"QUANTITY": "sum", "ITEM_NO": "max"}).collect()[0]
        assert (got[0], got[1]) == (units, N_ITEMS - 1)
        peak = peak_rss(p.warehouse_dir)
        print(f"warehouse server peak RSS: {peak / 2**20:.0f} MiB")
        assert peak < BOUND_BYTES, peak / 2**20
    finally:
        s.close()


def test_beyond_the_cap_an_order_is_rejected_whole_with_its_own_reason(big_order):
    p, _ = big_order
    s = wh.connect(p)
    try:
        o = {c.source: c for c in ingest.run(s, dataclasses.replace(p, max_reject_share=0.5))}[
            "orders"
        ]
        assert (o.read, o.accepted, o.reasons) == (3, 2, {Reason.TOO_MANY_ITEMS: 1})
        (d,) = o.details
        assert (d["field"], d["examples"][0]["line"]) == ("items", 2)
    finally:
        s.close()

"""The feature stage on Snowpark's own ``local_testing`` emulator, for comparison with the pipeline.

Usage: ``.venv/bin/python bench/local_testing.py DATA_DIR`` (``bench/run.py`` calls it with a
    timeout).

The clean tables are made with the pandas reference ingest (not timed) and loaded into a
``local_testing`` session with ``create_dataframe`` (timed as ``load_s``: the emulator has no file
readers). Then the very same Snowpark feature code the pipeline runs (``features.features_for``,
every cut-off and ``run_date``) is evaluated and pulled to the client (timed as ``features_s``).
Three adaptations, all forced by the emulator: the small cut-offs table is built with
``create_dataframe`` (it has no ``session.sql``), ``STDDEV_SAMP`` and ``YEAR`` are patched in (not
implemented there), and the text-sentiment features are left out (they need the sentiment table that
03 scores in the warehouse with SQL). Prints one JSON line.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the pandas reference (tests/reference.py)

from snowflake.snowpark import Session  # noqa: E402
from snowflake.snowpark.mock import ColumnEmulator, ColumnType, patch  # noqa: E402
from snowflake.snowpark.types import DoubleType, LongType  # noqa: E402

import reference  # noqa: E402
from customer_analytics import config, features  # noqa: E402


@patch("stddev_samp")
def _stddev_samp(column: ColumnEmulator) -> ColumnEmulator:
    """The emulator lacks STDDEV_SAMP (used for the spread of inter-purchase gaps): a minimal
    stand-in."""
    values = column.dropna().astype(float)
    return ColumnEmulator(
        data=[values.std(ddof=1) if len(values) > 1 else None],
        sf_type=ColumnType(DoubleType(), True),
    )


@patch("year")
def _year(column: ColumnEmulator) -> ColumnEmulator:
    """The emulator lacks YEAR (used for the customer's age at the cut-off): a minimal stand-in."""
    return ColumnEmulator(
        data=[None if v is None else v.year for v in column], sf_type=ColumnType(LongType(), True)
    )


def cutoff_frame(session: Session, cutoffs: list[dt.date], horizon_days: int, roles=None):
    """:func:`features.cutoff_frame` without ``session.sql`` (same columns, same values)."""
    h = dt.timedelta(days=horizon_days)
    ts = lambda d: dt.datetime.combine(d, dt.time())  # noqa: E731
    rows = [
        [c, (roles or {}).get(c, ""), ts(c), ts(c - h), ts(c - 2 * h), ts(c + h)]
        for c in sorted(set(cutoffs))
    ]
    return session.create_dataframe(
        rows, schema=["CUTOFF", "ROLE", "T0", "T_LAST", "T_PREV", "T_NEXT"]
    )


def clean_tables(data_dir: Path, params: config.Params) -> dict[str, pd.DataFrame]:
    ing = reference.ingest(
        data_dir,
        params.orders_file,
        params.customers_file,
        params.reviews_file,
        params.calls_dir,
        params.columns,
    )
    lines = ing.order_lines
    orders = (
        lines.assign(AMOUNT=lines["QUANTITY"] * lines["UNIT_PRICE"])
        .groupby(["ORDER_ID", "CUSTOMER_ID", "TS"], as_index=False)
        .agg(COUPON=("COUPON", "max"), ORDER_TOTAL=("AMOUNT", "sum"))
    )
    cust = ing.customers[["CUSTOMER_ID", "SIGNUP_DATE", "COUNTRY", "CHANNEL", "BIRTH_YEAR"]].assign(
        SIGNUP_DATE=lambda d: pd.to_datetime(d["SIGNUP_DATE"]).dt.date
    )
    revs = ing.reviews[["CUSTOMER_ID", "TS", "RATING", "TEXT", "KIND"]]
    return {
        "CLEAN_CUSTOMERS": cust,
        "CLEAN_ORDER_LINES": lines[
            ["ORDER_ID", "CUSTOMER_ID", "TS", "COUPON", "PRODUCT", "QUANTITY", "UNIT_PRICE"]
        ],
        "CLEAN_ORDERS": orders,
        "CLEAN_REVIEWS": revs,
    }


def main(data_dir: Path) -> dict:
    params = config.load(ROOT, data_dir=str(data_dir))
    tables = clean_tables(data_dir, params)
    session = Session.builder.config("local_testing", True).create()
    t0 = time.perf_counter()
    for name, pdf in tables.items():
        session.create_dataframe(pdf).write.save_as_table(name, mode="overwrite")
    t1 = time.perf_counter()
    features.cutoff_frame = cutoff_frame
    products = sorted(tables["CLEAN_ORDER_LINES"]["PRODUCT"].unique())
    cutoffs = [*params.cutoffs(), params.run_date]
    df = features.features_for(session, cutoffs, params.horizon_days, products)
    n = len(df.to_pandas())
    t2 = time.perf_counter()
    return {"load_s": t1 - t0, "features_s": t2 - t1, "rows": n}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))

"""Ingest: input files -> RAW_* -> CLEAN_* (+ REJECTED_*), checked against the data contract.

The contract (formats, fields, rejection reasons) is :mod:`customer_analytics.contract`; the
human-readable version is ``docs/data_contract.md``. A run goes through four phases:

1. **Plan** (:func:`plan_sources`): find the configured files, check what can be checked without
   reading them all (existence, size, format, CSV header, first JSON lines) and stop with one
   :class:`IngestError` naming the file, the problem and the fix. Nothing has been written yet.
2. **Load** each file into ``RAW_<SOURCE>__NEW``, one row per physical record, by the streaming
   readers (:mod:`readers`, bounded memory): unreadable records (encoding, JSON/CSV syntax) are
   flagged there, never dropped.
3. **Check** every row in the warehouse (Snowpark, identical on both backends): the first failing
   check of each row gives its ``FIELD`` and ``REASON``; then duplicates, then unknown customers.
   Row accounting (read = accepted + rejected + sampled out) is asserted per source, and a
   source with more than ``max_reject_share`` rejected stops the run.
4. **Publish**: ``CLEAN_*``, ``REJECTED_*``, ``RAW_*``, ``INGEST_LOG`` and ``INGEST_REASONS`` are
   written as ``*__NEW`` tables and only then put in place together (:func:`warehouse.publish`).
   Any failure before that leaves every previous table as it was.

Names and e-mails are never typed into a column: they stay inside ``RECORD`` in ``RAW_CUSTOMERS``
(and ``REJECTED_CUSTOMERS``); no clean table and no report carries them. Sampling (``sample`` < 1)
keeps the accepted rows of customers whose id hashes into the sample, after every check ran.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame, Session
from snowflake.snowpark.window import Window

from customer_analytics import contract, readers
from customer_analytics import portable as pt
from customer_analytics import warehouse as wh
from customer_analytics.config import Params, check_identifier
from customer_analytics.contract import CALLS, CUSTOMERS, ORDERS, REVIEWS, Reason, Source

log = logging.getLogger(__name__)

#: Warehouse table stem of each source (CLEAN_/REJECTED_/STAGE_ + stem; calls share the reviews tables).
STEM = {"customers": "CUSTOMERS", "orders": "ORDER_LINES", "reviews": "REVIEWS", "calls": "REVIEWS"}
RAW = {"customers": "RAW_CUSTOMERS", "orders": "RAW_ORDERS", "reviews": "RAW_REVIEWS", "calls": "RAW_CALLS"}
CLEAN_COLUMNS = {
    "CUSTOMERS": ["CUSTOMER_ID", "SIGNUP_DATE", "COUNTRY", "CHANNEL", "BIRTH_YEAR", "LINE_NO", "SOURCE_FILE"],
    "ORDER_LINES": ["ORDER_ID", "CUSTOMER_ID", "TS", "COUPON", "SHIP_METHOD", "SHIP_COST", "PRODUCT", "QUANTITY",
                    "UNIT_PRICE", "LINE_NO", "ITEM_NO", "SOURCE_FILE"],
    "REVIEWS": ["CUSTOMER_ID", "TS", "RATING", "TEXT", "LINE_NO", "KIND", "SOURCE_FILE"],
}
CLEAN_TYPES = {"CUSTOMER_ID": "VARCHAR", "SIGNUP_DATE": "DATE", "COUNTRY": "VARCHAR", "CHANNEL": "VARCHAR",
               "BIRTH_YEAR": "INT", "LINE_NO": "INT", "SOURCE_FILE": "VARCHAR", "ORDER_ID": "VARCHAR",
               "TS": "TIMESTAMP_NTZ", "COUPON": "VARCHAR", "SHIP_METHOD": "VARCHAR", "SHIP_COST": "DOUBLE",
               "PRODUCT": "VARCHAR", "QUANTITY": "INT", "UNIT_PRICE": "DOUBLE", "ITEM_NO": "INT",
               "RATING": "INT", "TEXT": "VARCHAR", "KIND": "VARCHAR"}
REJECT_COLUMNS = ["SOURCE_FILE", "LINE_NO", "ITEM_NO", "FIELD", "REASON", "VALUE", "RECORD"]
RAW_COLUMNS = list(readers.BASE_COLUMNS)
#: Fields whose offending values may be shown in reports (never ids, names or free text).
SHOWABLE_FIELDS = {"signup_date", "birth_year", "ts", "quantity", "unit_price", "amount", "ship_cost", "rating",
                   "items"}
VALUE_CHARS = 200
_NUMBER = r"[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?"
_WHOLE = r"[+-]?[0-9]+([.]0*)?"
_DATE_CORE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]+)?)?)?"
_DATETIME = _DATE_CORE + r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?"


class IngestError(RuntimeError):
    """An input cannot be used at all; the message names the file, the problem and the fix."""

    def _render_traceback_(self) -> list[str]:
        """What IPython/Jupyter (and so Papermill and Ploomber) show instead of a traceback: the message alone."""
        return [f"IngestError: {self}"]


def load_raw_file(session: Session, path: Path, table: str, fmt: str, staging_dir: Path, *,
                  source_file: str | None = None, columns: dict[str, str] | None = None) -> readers.FileStats:
    """Load an input file into ``table``: one row per physical record, nothing dropped, nothing parsed away.

    The file is streamed once by :mod:`customer_analytics.readers` into a Parquet file under
    ``staging_dir`` (bounded memory), which is then loaded by :func:`warehouse.load_staged` and deleted.
    Columns: ``SOURCE_FILE``, ``LINE_NO``, ``RECORD``, ``READ_REASON``, ``READ_FIELD`` and, for CSV
    and call transcripts, one VARCHAR column per contract field found.

    Args:
        fmt: ``jsonl``, ``csv`` or ``calls`` (``path`` is then a folder of ``*.txt`` transcripts).
        source_file: name written to ``SOURCE_FILE`` (default: the file name; never a full path).
        columns: CSV only: contract field -> expected column name.

    Returns:
        The reader's statistics; ``records`` equals the rows loaded (checked).
    """
    table = check_identifier(table)
    name = source_file or path.name
    staged = staging_dir / f"{table}_{uuid.uuid4().hex}.parquet"
    try:
        if fmt == "jsonl":
            stats = readers.read_jsonl(path, staged, name)
        elif fmt == "csv":
            stats = readers.read_csv(path, staged, name, columns or {})
        elif fmt == "calls":
            stats = readers.read_calls(path, staged, name)
        else:
            raise ValueError(f"unknown format {fmt!r}")
        loaded = wh.load_staged(session, staged, table)
    finally:
        staged.unlink(missing_ok=True)
    if loaded != stats.records:
        raise wh.WarehouseError(f"{path.name}: {stats.records:,} records read but {loaded:,} rows loaded into {table}.")
    return stats



@dataclass
class SourceCounts:
    """Row accounting for one source: ``read == accepted + rejected + sampled_out`` always holds."""

    source: str
    unit: str
    read: int
    accepted: int
    rejected: int
    reasons: dict[str, int] = field(default_factory=dict)
    sampled_out: int = 0
    file: str | None = None
    status: str = "loaded"  # loaded | missing | derived (customers built from orders)
    records: int = 0  # physical records in the file (orders JSON lines: lines, not order lines)
    derived: int = 0  # customers derived from orders when the customers source is missing
    bytes: int = 0
    sha256: str = ""
    details: list[dict] = field(default_factory=list)  # per field/reason: rows and example lines

    @property
    def reject_share(self) -> float:
        return self.rejected / self.read if self.read else 0.0


@dataclass
class SourcePlan:
    """What the plan phase found for one source."""

    source: Source
    name: str | None
    path: Path | None
    fmt: str | None
    status: str  # loaded (to be loaded) | missing | disabled
    wanted: dict[str, str] = field(default_factory=dict)  # contract field -> column/key in the file
    stats: readers.FileStats | None = None

    @property
    def present(self) -> bool:
        return self.status == "loaded"

    def column(self, fld: str) -> str:
        """The field's name as the user's file spells it (for FIELD in REJECTED_* and messages)."""
        if self.stats and fld in self.stats.columns:
            return self.stats.columns[fld]
        return self.wanted.get(fld, fld)


def in_sample(customer_id: Column, fraction: float) -> Column:
    """Deterministic customer sample: the id's bucket (of 10,000) is below ``fraction``.

    The bucket comes from :func:`portable.stable_hash` (MD5), so Snowflake, the local warehouse
    and the pandas reference (:func:`portable.stable_hash_py`) keep the same customers.
    """
    kept = int(round(fraction * 10000))
    if kept >= 10000:  # everyone: no hash to compute on every row
        return F.lit(True)
    return (pt.stable_hash(customer_id) % F.lit(10000)) < F.lit(kept)


# --------------------------------------------------------------------------- plan (no table touched)
def _wanted(src: Source, fmt: str, params: Params) -> dict[str, str]:
    mapping = params.columns.get(src.name, {})
    return {f.name: mapping.get(f.name) or (f.json_path if fmt == "jsonl" and f.json_path else f.name)
            for f in src.fields}


def _fix_hint(src: Source, fld: str) -> str:
    return (f"rename the column in the file, or map it in env.yaml: columns: {{{src.name}: {{{fld}: <your column>}}}} "
            "(docs/data_contract.md)")


def _check_csv_header(plan: SourcePlan) -> None:
    src, path = plan.source, plan.path
    header = readers.read_header(path)
    if not header or not any(h.strip() for h in header):
        raise IngestError(f"{path}: no readable header line. Fix: the first line of a CSV must name its columns.")
    if any("\x00" in h or any("\udc80" <= c <= "\udcff" for c in h) for h in header):
        raise IngestError(f"{path}: the header is not UTF-8 text; this does not look like a CSV file. "
                          "Fix: export the file as CSV in UTF-8.")
    have = {readers.normalise(h) for h in header}
    missing = [f for f in _required_fields(src, "csv") if not any(readers.normalise(plan.wanted[x]) in have
                                                                      for x in f.split("|"))]
    if missing:
        names = " or ".join(f"'{plan.wanted[x]}'" for x in missing[0].split("|"))
        if names.replace("'", "") != missing[0].replace("|", " or "):
            names += f" (contract field '{missing[0].replace('|', ' or ')}')"
        hint = ""
        if len(header) == 1 and any(d in header[0] for d in ";\t|"):
            hint = (" The header is a single column containing ';', tab or '|': the file is probably not "
                    "comma-separated; export it with commas.")
        fld = missing[0].split("|")[0]
        raise IngestError(
            f"{path}: required column {names} not found. "
            f"Columns in the file: {', '.join(repr(h) for h in header)}.{hint} Fix: {_fix_hint(src, fld)}.")
    with path.open("rb") as f:
        records = readers.csv_records(readers.physical_lines(f, _NoDigest()))
        next(records, None)
        if not any(text.strip() for _, text, _ in records):
            raise IngestError(f"{path}: the file has a header but no data rows. Fix: re-export it"
                              + ("" if src.required else f", or remove it to run without {src.name}") + ".")


class _NoDigest:
    def update(self, _: bytes) -> None:
        pass


def _check_jsonl_start(plan: SourcePlan) -> None:
    """Refuse a file that is one JSON array, or whose first lines are not JSON at all."""
    path, seen, good = plan.path, 0, 0
    with path.open("rb") as f:
        for _, raw, too_long in readers.physical_lines(f, _NoDigest()):
            if too_long or not raw.strip():
                continue
            text = raw.decode("utf-8", "replace").strip()
            if seen == 0 and text.startswith("[") and readers.json_problem(text) is not None:
                raise IngestError(f"{path}: the file is one JSON array, not JSON lines (one object per line). Fix: "
                                  f"convert it, e.g. `jq -c '.[]' {path.name} > {path.stem}.jsonl`, and set "
                                  f"{plan.source.setting} to the new file.")
            seen += 1
            good += readers.json_problem(text) is None
            if seen >= 5:
                break
    if seen and not good:
        raise IngestError(f"{path}: none of the first {seen} lines is a JSON object: this is not a JSON-lines file. "
                          f"Fix: point {plan.source.setting} at the right file, or give it the extension of its "
                          f"real format ({', '.join(sorted(contract.FORMATS))}).")


def _required_fields(src: Source, fmt: str) -> list[str]:
    """Required fields for ``fmt``; alternatives joined by ``|`` (e.g. ``unit_price|amount``)."""
    if src is ORDERS:
        return (["order_id", "customer_id", "ts", "items"] if fmt == "jsonl"
                else ["customer_id", "ts", "quantity", "unit_price|amount"])
    if src is REVIEWS:
        return ["customer_id", "ts", "rating|text"]
    return [f.name for f in src.fields if f.is_required]


def plan_sources(params: Params) -> list[SourcePlan]:
    """Find and pre-check every source (the plan phase): raise :class:`IngestError` on unusable input.

    Nothing is written. Optional sources that are not there come back with status ``missing``
    (or ``disabled`` when their setting is empty).
    """
    data_dir = params.data_dir
    if not data_dir.is_dir():
        raise IngestError(f"data_dir {data_dir} does not exist. Fix: set data_dir in env.yaml (or "
                          "--env--data_dir) to the folder holding your files; for the demo data run `make demo-data`.")
    plans = []
    for src in contract.SOURCES:
        name = getattr(params, src.setting)
        if not name:
            plans.append(SourcePlan(src, None, None, None, "disabled"))
            continue
        if src is CALLS:
            path = data_dir / name
            status = "loaded" if readers.call_files(path) else "missing"
            plans.append(SourcePlan(src, name, path, "calls", status))
            continue
        path = contract.locate(data_dir, name) or data_dir / name
        if path.name != Path(name).name:
            log.warning("%s: not found; using %s instead", data_dir / name, path)
            name = (Path(name).parent / path.name).as_posix()
        if not path.exists():
            if src.required:
                raise IngestError(f"{path}: the {src.name} file is missing (it is the only required input). Fix: "
                                  f"set {src.setting} and data_dir in env.yaml to your export; for the demo data "
                                  "run `make demo-data`.")
            log.warning("%s: not found; running without %s", path, src.name)
            plans.append(SourcePlan(src, name, path, None, "missing"))
            continue
        plans.append(_plan_file(src, name, path, params))
    return plans


def _plan_file(src: Source, name: str, path: Path, params: Params) -> SourcePlan:
    fmt = contract.file_format(path)
    if not path.is_file():
        raise IngestError(f"{path}: expected a file for {src.setting}, found a folder. Fix: set {src.setting} "
                          "to the file name.")
    if fmt not in src.formats:
        accepted = ", ".join(e for e, f in contract.FORMATS.items() if f in src.formats)
        raise IngestError(f"{path}: unsupported file type '{path.suffix or '(none)'}' for {src.name}; accepted: "
                          f"{accepted}. Fix: export the data as CSV or JSON lines (spreadsheets: 'Save as CSV UTF-8').")
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty (0 bytes). Fix: re-export it"
                          + ("" if src.required else f", or remove it to run without {src.name}") + ".")
    plan = SourcePlan(src, name, path, fmt, "loaded", _wanted(src, fmt, params))
    if fmt == "csv":
        _check_csv_header(plan)
    else:
        _check_jsonl_start(plan)
    return plan


# --------------------------------------------------------------------------- typed values (Snowpark)
def _text(c: Column) -> Column:
    """Trimmed string; empty -> NULL (a missing value)."""
    t = F.trim(c.cast("string"))
    return F.iff(t == F.lit(""), F.lit(None).cast("string"), t)


def _number(s: Column) -> Column:
    """A plain decimal number as DOUBLE; NULL when the text is not one (checked before casting)."""
    return F.iff(s.rlike(F.lit(_NUMBER)), s.try_cast("double"), F.lit(None).cast("double"))


def _valid_date(s: Column) -> Column:
    return s.rlike(F.lit(_DATETIME)) & F.substring(s, 1, 10).try_cast("date").is_not_null()


def _timestamp(s: Column) -> Column:
    """ISO 8601 text -> TIMESTAMP (time zone suffix dropped); NULL when not a real date/time.

    The text is validated before any cast: fakesnow's timestamp casts raise (even TRY_CAST) on
    bad input and read digit strings as epoch seconds.
    """
    core = F.replace(F.call_function("REGEXP_SUBSTR", s, F.lit(_DATE_CORE)), F.lit("T"), F.lit(" "))
    return F.iff(_valid_date(s), F.substring(core, 1, 26).try_cast(pt.TIMESTAMP_NTZ),
                 F.lit(None).cast(pt.TIMESTAMP_NTZ))


def _date(s: Column) -> Column:
    return F.iff(_valid_date(s), F.substring(s, 1, 10).try_cast("date"), F.lit(None).cast("date"))


def _typed(df: DataFrame, timestamps: tuple[str, ...] = (), dates: tuple[str, ...] = (),
           numbers: tuple[str, ...] = ()) -> DataFrame:
    """Add ``T_<F>`` (timestamp/date) and ``N_<F>`` (number) columns parsed from the ``S_<F>`` texts."""
    cols = ([_timestamp(F.col(f"S_{f}")).alias(f"T_{f}") for f in timestamps]
            + [_date(F.col(f"S_{f}")).alias(f"T_{f}") for f in dates]
            + [_number(F.col(f"S_{f}")).alias(f"N_{f}") for f in numbers])
    return df.select("*", *cols)


Check = tuple[Column, str, str, str | None]  # (row is bad, field as named in the file, reason, column shown as VALUE)


def _date_checks(f: str, name: str) -> list[Check]:
    """Checks of the date/timestamp field ``S_<f>`` (typed in ``T_<f>``); ``name``: its column in the file."""
    s, t = F.col(f"S_{f}"), F.col(f"T_{f}")
    day = F.to_date(t)
    return [(s.is_null(), name, Reason.MISSING, None),
            (t.is_null(), name, Reason.BAD_DATE, f"S_{f}"),
            ((day < F.lit(contract.MIN_DATE)) | (day > F.lit(contract.MAX_DATE)), name, Reason.DATE_RANGE, f"S_{f}")]


def _number_checks(f: str, name: str, *, whole: bool = False, positive: bool = False, lo: float | None = None,
                   hi: float | None = None, required: bool = False) -> list[Check]:
    """Checks of the numeric field ``S_<f>`` (typed in ``N_<f>``); absent values pass unless ``required``."""
    s, n, v = F.col(f"S_{f}"), F.col(f"N_{f}"), f"S_{f}"
    present = s.is_not_null()
    checks: list[Check] = [(s.is_null(), name, Reason.MISSING, None)] if required else []
    checks.append((present & n.is_null(), name, Reason.NOT_A_NUMBER, v))
    if whole:
        checks.append((present & (F.floor(n) != n), name, Reason.NOT_WHOLE, v))
    if positive:
        checks.append((present & (n <= 0), name, Reason.NOT_POSITIVE, v))
    elif lo == 0:
        checks.append((present & (n < 0), name, Reason.NEGATIVE, v))
    if lo is not None and lo != 0:
        checks.append((present & (n < lo), name, Reason.OUT_OF_RANGE, v))
    if hi is not None:
        checks.append((present & (n > hi), name, Reason.OUT_OF_RANGE, v))
    return checks


def _with_reason(df: DataFrame, checks: list[Check]) -> DataFrame:
    """Add FIELD/REASON/VALUE from the first failing check; a reading problem (READ_REASON) comes first."""
    none = F.lit(None).cast("string")
    fld, why, val = none, none, none
    for bad, name, reason, value in reversed(checks):
        fld = F.when(bad, F.lit(name)).otherwise(fld)
        why = F.when(bad, F.lit(reason)).otherwise(why)
        val = F.when(bad, F.substring(F.col(value), 1, VALUE_CHARS) if value else none).otherwise(val)
    unread = F.col("READ_REASON").is_not_null()
    return (df.with_column("FIELD", F.when(unread, F.col("READ_FIELD")).otherwise(fld))
              .with_column("REASON", F.when(unread, F.col("READ_REASON")).otherwise(why))
              .with_column("VALUE", F.when(unread, none).otherwise(val)))


# --------------------------------------------------------------------------- per-source checks
def _json_get(v: Column, path: str) -> Column:
    for part in path.split("."):
        v = v[part]
    return v


def _json(record: Column) -> Column:
    """The record parsed as JSON, only where the reader found it valid (PARSE_JSON never sees bad text)."""
    return F.parse_json(F.iff(F.col("READ_REASON").is_null(), record, F.lit(None).cast("string")))


def _fields(raw: DataFrame, plan: SourcePlan, names: list[str], raw_columns: list[str]) -> DataFrame:
    """Raw rows with one trimmed text column ``S_<FIELD>`` per contract field (NULL when absent or empty)."""
    cols = [F.col(c) for c in RAW_COLUMNS]
    if plan.fmt == "jsonl":
        v = _json(F.col("RECORD"))
        return raw.select(*cols, *[_text(_json_get(v, plan.wanted[n])).alias(f"S_{n.upper()}") for n in names])
    return raw.select(*cols, *[(_text(F.col(n.upper())) if n.upper() in raw_columns
                                else F.lit(None).cast("string")).alias(f"S_{n.upper()}") for n in names])


def _materialise(df: DataFrame, name: str) -> DataFrame:
    """Write ``df`` to table ``name`` and return the table (keeps the next plans small)."""
    return df.session.table(wh.replace_table(df, name))


def _occurs(df: DataFrame, plan: SourcePlan, names: list[str]) -> dict[str, bool]:
    """Whether each field has a value on at least one readable row (one aggregate query)."""
    if not names:
        return {}
    row = df.filter(F.col("READ_REASON").is_null()).agg(
        F.count(F.lit(1)).alias("_N"), *[F.count(F.col(f"S_{n.upper()}")).alias(n.upper()) for n in names]).collect()[0]
    return {n: bool(row[n.upper()]) for n in names} | {"_rows": bool(row["_N"])}


def _require_somewhere(occurs: dict[str, bool], plan: SourcePlan, fields: list[str]) -> None:
    """JSON lines: a required key absent from every readable line is a structural problem, not N rejects."""
    if plan.fmt != "jsonl" or not occurs.get("_rows"):
        return
    for f in fields:
        if not occurs[f]:
            raise IngestError(f"{plan.path}: no line has the key '{plan.wanted[f]}' (contract field '{f}'). "
                              f"Fix: {_fix_hint(plan.source, f)}. Nothing was replaced.")


def _cross_checks(t: DataFrame, columns: list[str], rules: list[tuple[Column, str, str]],
                  customers: DataFrame | None = None, customer_field: str = "customer_id") -> DataFrame:
    """Apply checks across rows to the rows still accepted, in order (the first that applies wins).

    ``rules``: (row is bad, field, reason); window functions partitioned by :func:`_accepted_flag`
    only compare accepted rows. With ``customers``, rows whose CUSTOMER_ID is not among them are
    rejected last as unknown customers.
    """
    rules = list(rules)
    if customers is not None:
        known = customers.select(F.col("CUSTOMER_ID").alias("_K")).distinct()
        t = t.join(known, F.col("CUSTOMER_ID") == F.col("_K"), "left")
        rules.append((F.col("_K").is_null(), customer_field, Reason.UNKNOWN_CUSTOMER))
    ok = F.col("REASON").is_null()
    fld, why, val = F.col("FIELD"), F.col("REASON"), F.col("VALUE")
    for bad, name, reason in reversed(rules):
        hit = ok & bad
        fld = F.when(hit, F.lit(name)).otherwise(fld)
        why = F.when(hit, F.lit(reason)).otherwise(why)
        val = F.when(hit, F.lit(None).cast("string")).otherwise(val)
    keep = [F.col(c) for c in columns if c not in ("FIELD", "REASON", "VALUE")]
    return t.select(*keep, fld.alias("FIELD"), why.alias("REASON"), val.alias("VALUE"))


def _accepted_flag() -> Column:
    return F.iff(F.col("REASON").is_null(), F.lit(1), F.lit(0))


def _not_first(keys: list[str], order: list[str]) -> Column:
    """Accepted row that is not the first accepted one (in file order) with these ``keys``."""
    w = Window.partition_by(*[F.col(k) for k in keys], _accepted_flag()).order_by(*[F.col(o) for o in order])
    return F.row_number().over(w) > 1


def _differs_from_first(key: str, same: list[str], order: list[str]) -> Column:
    """Accepted row whose ``same`` columns differ from those of the first accepted row with its ``key``."""
    w = Window.partition_by(F.col(key), _accepted_flag()).order_by(*[F.col(o) for o in order])
    differs = F.lit(False)
    for c in same:
        differs = differs | (F.col(c) != F.first_value(F.col(c)).over(w))
    return differs


def stage_customers(session: Session, raw: DataFrame, raw_columns: list[str], plan: SourcePlan) -> str:
    """STAGE_CUSTOMERS: every customer row with typed columns and FIELD/REASON/VALUE (REASON null = accepted)."""
    f = _materialise(_fields(raw, plan, list(CUSTOMERS.field_names), raw_columns), "STAGE_CUSTOMERS_F")
    _require_somewhere(_occurs(f, plan, ["customer_id", "signup_date"]), plan, ["customer_id", "signup_date"])
    c = plan.column
    checked = _with_reason(_typed(f, dates=("SIGNUP_DATE",), numbers=("BIRTH_YEAR",)), [
        (F.col("S_CUSTOMER_ID").is_null(), c("customer_id"), Reason.MISSING, None),
        *_date_checks("SIGNUP_DATE", c("signup_date")),
        *_number_checks("BIRTH_YEAR", c("birth_year"), whole=True, lo=contract.BIRTH_YEARS[0],
                        hi=contract.BIRTH_YEARS[1]),
    ])
    ok = F.col("REASON").is_null()
    cols = ["SOURCE_FILE", "LINE_NO", "RECORD", "FIELD", "REASON", "VALUE", "CUSTOMER_ID", "SIGNUP_DATE", "COUNTRY",
            "CHANNEL", "BIRTH_YEAR"]
    t = _materialise(checked.select(
        *cols[:6], F.col("S_CUSTOMER_ID").alias("CUSTOMER_ID"), F.col("T_SIGNUP_DATE").alias("SIGNUP_DATE"),
        F.coalesce(F.upper(F.col("S_COUNTRY")), F.lit(contract.UNKNOWN)).alias("COUNTRY"),
        F.coalesce(F.lower(F.col("S_ACQUISITION_CHANNEL")), F.lit(contract.UNKNOWN)).alias("CHANNEL"),
        F.iff(ok, F.col("N_BIRTH_YEAR"), F.lit(None)).cast("int").alias("BIRTH_YEAR")), "STAGE_CUSTOMERS_C")
    final = _cross_checks(t, cols, [(_not_first(["CUSTOMER_ID"], ["LINE_NO"]), c("customer_id"),
                                     Reason.DUPLICATE_CUSTOMER)])
    return wh.replace_table(final, "STAGE_CUSTOMERS")


ORDER_FIELDS = ["order_id", "customer_id", "ts", "items", "coupon", "ship_method", "ship_cost"]
ITEM_FIELDS = ["product", "quantity", "unit_price", "amount", "line_id"]


def _order_rows(raw: DataFrame, raw_columns: list[str], plan: SourcePlan) -> DataFrame:
    """Orders as one row per order line; a JSON line without items (or unreadable) stays one row.

    Snowflake's ``FLATTEN(…, OUTER => TRUE)`` would keep such lines, but fakesnow ignores OUTER,
    so lines with a non-empty ``items`` list are flattened and the others appended as they are
    (correct on both backends).
    ``_N_ITEMS`` is 1 on flattened rows, else the list size (0) or NULL (absent or not a list).
    """
    if plan.fmt == "csv":
        return _fields(raw, plan, ORDER_FIELDS + ITEM_FIELDS, raw_columns).select(
            "*", F.lit(None).cast("int").alias("ITEM_NO"), F.lit(1).alias("_N_ITEMS"))
    items = _json_get(_json(F.col("RECORD")), plan.wanted["items"])
    lines = _fields(raw, plan, ORDER_FIELDS, raw_columns).select("*", F.array_size(items).alias("_N_ITEMS"),
                                                                 items.alias("_ITEMS"))
    base = RAW_COLUMNS + [f"S_{f.upper()}" for f in ORDER_FIELDS]
    # the element is taken with GET(items, INDEX), not FLATTEN's VALUE: fakesnow numbers INDEX with an unordered
    # row_number(), so only the set of indexes is right there; on Snowflake both are the same element
    item = F.get(F.col("_ITEMS"), F.col("INDEX"))
    flat = lines.filter(F.col("_N_ITEMS") > 0).join_table_function("flatten", F.col("_ITEMS")).select(
        *base, *[_text(_json_get(item, plan.wanted[f])).alias(f"S_{f.upper()}") for f in ITEM_FIELDS],
        F.col("INDEX").cast("int").alias("ITEM_NO"), F.lit(1).alias("_N_ITEMS"))
    bare = lines.filter(F.coalesce(F.col("_N_ITEMS"), F.lit(0)) == 0).select(
        *base, *[F.lit(None).cast("string").alias(f"S_{f.upper()}") for f in ITEM_FIELDS],
        F.lit(None).cast("int").alias("ITEM_NO"), "_N_ITEMS")
    return flat.union_all(bare)


def stage_orders(session: Session, raw: DataFrame, raw_columns: list[str], plan: SourcePlan,
                 customers: DataFrame | None) -> str:
    """STAGE_ORDER_LINES: every order line with typed columns and FIELD/REASON/VALUE."""
    f = _materialise(_order_rows(raw, raw_columns, plan), "STAGE_ORDER_LINES_F")
    c, jsonl = plan.column, plan.fmt == "jsonl"
    if jsonl:
        occurs = _occurs(f, plan, ORDER_FIELDS + ITEM_FIELDS)
        _require_somewhere(occurs, plan, ["order_id", "customer_id", "ts", "items"])
    else:
        occurs = {n: n in plan.stats.columns for n in ORDER_FIELDS + ITEM_FIELDS}
    has_id, has_product, price = occurs["order_id"], occurs["product"], "UNIT_PRICE" if occurs["unit_price"] else "AMOUNT"
    checks: list[Check] = []
    if jsonl or has_id:
        checks.append((F.col("S_ORDER_ID").is_null(), c("order_id"), Reason.MISSING, None))
    checks += [(F.col("S_CUSTOMER_ID").is_null(), c("customer_id"), Reason.MISSING, None), *_date_checks("TS", c("ts"))]
    if jsonl:
        checks += [(F.col("S_ITEMS").is_null(), c("items"), Reason.MISSING, None),
                   (F.col("_N_ITEMS").is_null(), c("items"), Reason.NOT_A_LIST, "S_ITEMS"),
                   (F.col("_N_ITEMS") == 0, c("items"), Reason.NO_ITEMS, "S_ITEMS")]
    if has_product:
        checks.append((F.col("S_PRODUCT").is_null(), c("product"), Reason.MISSING, None))
    checks += [*_number_checks("QUANTITY", c("quantity"), whole=True, positive=True, hi=contract.MAX_QUANTITY,
                               required=True),
               *_number_checks(price, c(price.lower()), lo=0, hi=contract.MAX_AMOUNT, required=True),
               *_number_checks("SHIP_COST", c("ship_cost"), lo=0, hi=contract.MAX_AMOUNT)]
    checked = _with_reason(_typed(f, timestamps=("TS",), numbers=("QUANTITY", price, "SHIP_COST")), checks)
    ok = F.col("REASON").is_null()
    unit = F.col("N_UNIT_PRICE") if price == "UNIT_PRICE" else F.col("N_AMOUNT") / F.col("N_QUANTITY")
    order_id = F.col("S_ORDER_ID") if jsonl or has_id else F.concat(F.col("S_CUSTOMER_ID"), F.lit("@"), F.col("S_TS"))
    keys = ["S_LINE_ID"]
    cols = ["SOURCE_FILE", "LINE_NO", "ITEM_NO", "RECORD", "FIELD", "REASON", "VALUE", *keys, *CLEAN_COLUMNS[
        "ORDER_LINES"][:9]]
    t = _materialise(checked.select(
        *cols[:7 + len(keys)], order_id.alias("ORDER_ID"), F.col("S_CUSTOMER_ID").alias("CUSTOMER_ID"),
        F.iff(ok, F.col("T_TS"), F.lit(None).cast(pt.TIMESTAMP_NTZ)).alias("TS"),
        F.col("S_COUPON").alias("COUPON"), F.col("S_SHIP_METHOD").alias("SHIP_METHOD"),
        F.iff(ok, F.col("N_SHIP_COST"), F.lit(None).cast("double")).alias("SHIP_COST"),
        (F.lower(F.col("S_PRODUCT")) if has_product else F.lit(contract.ALL_PRODUCTS)).alias("PRODUCT"),
        F.iff(ok, F.col("N_QUANTITY"), F.lit(None)).cast("int").alias("QUANTITY"),
        F.iff(ok, unit, F.lit(None).cast("double")).alias("UNIT_PRICE")), "STAGE_ORDER_LINES_C")
    order = ["LINE_NO", "ITEM_NO"]
    rules = []
    if occurs["line_id"]:
        rules.append((F.col("S_LINE_ID").is_not_null() & _not_first(["S_LINE_ID"], order), c("line_id"),
                      Reason.DUPLICATE_LINE))
    if jsonl:
        rules.append((_differs_from_first("ORDER_ID", ["LINE_NO"], order), c("order_id"), Reason.DUPLICATE_ORDER))
    elif has_id:
        rules.append((_differs_from_first("ORDER_ID", ["CUSTOMER_ID", "TS"], order), c("order_id"),
                      Reason.DUPLICATE_ORDER))
    final = _cross_checks(t, [x for x in cols if x not in keys], rules, customers, c("customer_id"))
    return wh.replace_table(final, "STAGE_ORDER_LINES")


def stage_reviews(session: Session, raw: DataFrame, raw_columns: list[str], plan: SourcePlan,
                  customers: DataFrame | None) -> str:
    """STAGE_REVIEWS: every review row with typed columns and FIELD/REASON/VALUE."""
    f = _materialise(_fields(raw, plan, list(REVIEWS.field_names), raw_columns), "STAGE_REVIEWS_F")
    _require_somewhere(_occurs(f, plan, ["customer_id", "ts"]), plan, ["customer_id", "ts"])
    c = plan.column
    checked = _with_reason(_typed(f, timestamps=("TS",), numbers=("RATING",)), [
        (F.col("S_CUSTOMER_ID").is_null(), c("customer_id"), Reason.MISSING, None),
        *_date_checks("TS", c("ts")),
        *_number_checks("RATING", c("rating"), whole=True, lo=contract.RATINGS[0], hi=contract.RATINGS[1]),
        (F.col("S_TEXT").is_null() & F.col("S_RATING").is_null(), c("text"), Reason.NO_CONTENT, None),
    ])
    ok = F.col("REASON").is_null()
    cols = ["SOURCE_FILE", "LINE_NO", "RECORD", "FIELD", "REASON", "VALUE", "S_TS", "S_RATING", "CUSTOMER_ID", "TS",
            "RATING", "TEXT", "KIND"]
    t = _materialise(checked.select(
        *cols[:8], F.col("S_CUSTOMER_ID").alias("CUSTOMER_ID"),
        F.iff(ok, F.col("T_TS"), F.lit(None).cast(pt.TIMESTAMP_NTZ)).alias("TS"),
        F.iff(ok, F.col("N_RATING"), F.lit(None)).cast("int").alias("RATING"),
        F.col("S_TEXT").alias("TEXT"), F.lit("review").alias("KIND")), "STAGE_REVIEWS_C")
    rules = [(_not_first(["CUSTOMER_ID", "S_TS", "S_RATING", "TEXT"], ["LINE_NO"]), "line", Reason.DUPLICATE_LINE)]
    final = _cross_checks(t, [x for x in cols if not x.startswith("S_")], rules, customers, c("customer_id"))
    return wh.replace_table(final, "STAGE_REVIEWS")


def stage_calls(session: Session, raw: DataFrame, raw_columns: list[str], plan: SourcePlan,
                customers: DataFrame | None) -> str:
    """STAGE_CALLS: every transcript as a review row (KIND 'call', RATING null) with FIELD/REASON/VALUE."""
    f = raw.select(*[F.col(c) for c in RAW_COLUMNS],
                   *[_text(F.col(x)).alias(f"S_{x}") for x in ("CUSTOMER_ID", "TS", "TEXT")])
    checked = _with_reason(_typed(f, timestamps=("TS",)), [
        (F.col("S_CUSTOMER_ID").is_null(), "customer_id", Reason.MISSING, None),
        *_date_checks("TS", "ts"),
        (F.col("S_TEXT").is_null(), "text", Reason.MISSING, None),
    ])
    ok = F.col("REASON").is_null()
    cols = ["SOURCE_FILE", "LINE_NO", "RECORD", "FIELD", "REASON", "VALUE", "CUSTOMER_ID", "TS", "RATING", "TEXT",
            "KIND"]
    t = _materialise(checked.select(
        *cols[:6], F.col("S_CUSTOMER_ID").alias("CUSTOMER_ID"),
        F.iff(ok, F.col("T_TS"), F.lit(None).cast(pt.TIMESTAMP_NTZ)).alias("TS"),
        F.lit(None).cast("int").alias("RATING"), F.col("S_TEXT").alias("TEXT"), F.lit("call").alias("KIND")),
        "STAGE_CALLS_C")
    return wh.replace_table(_cross_checks(t, cols, [], customers, "customer_id"), "STAGE_CALLS")


# --------------------------------------------------------------------------- accounting
def _account(session: Session, stage: str, plan: SourcePlan, unit: str, fraction: float) -> SourceCounts:
    """Counts of a staged source; asserts that every record read is in it and read = accepted + rejected + out."""
    t = session.table(stage)
    sampled = F.col("REASON").is_null() & ~in_sample(F.col("CUSTOMER_ID"), fraction)
    row = t.agg(F.count(F.lit(1)).alias("READ"),
                F.sum(F.iff(F.col("REASON").is_null() & ~sampled, 1, 0)).alias("ACCEPTED"),
                F.sum(F.iff(F.col("REASON").is_not_null(), 1, 0)).alias("REJECTED"),
                F.sum(F.iff(sampled, 1, 0)).alias("OUT")).collect()[0]
    read, acc, rej, out = (int(row[k] or 0) for k in ("READ", "ACCEPTED", "REJECTED", "OUT"))
    records = t.select("SOURCE_FILE", "LINE_NO").distinct().count()
    reasons = {r["REASON"]: int(r["N"]) for r in t.filter(F.col("REASON").is_not_null()).group_by("REASON").agg(
        F.count(F.lit(1)).alias("N")).collect()}
    st = plan.stats
    counts = SourceCounts(plan.source.name, unit, read, acc, rej, reasons, sampled_out=out, file=plan.name,
                          records=st.records, bytes=st.bytes, sha256=st.sha256, details=_details(t, plan))
    if records != st.records or read != acc + rej + out or sum(reasons.values()) != rej:
        raise IngestError(f"{plan.path}: row accounting failed ({st.records:,} records read, {records:,} staged; "
                          f"{read:,} rows vs {acc:,} accepted + {rej:,} rejected + {out:,} sampled out). "
                          "This is a bug: nothing was replaced.")
    return counts


def _details(t: DataFrame, plan: SourcePlan) -> list[dict]:
    """Rows per field and reason, with up to three example lines (first in file order)."""
    bad = t.filter(F.col("REASON").is_not_null())
    groups = bad.group_by("FIELD", "REASON").agg(F.count(F.lit(1)).alias("N")).collect()
    item = F.col("ITEM_NO") if "ITEM_NO" in t.columns else F.lit(None).cast("int")
    per_line = bad.group_by("FIELD", "REASON", "SOURCE_FILE", "LINE_NO").agg(
        F.min(item).alias("ITEM_NO"), F.min(F.col("VALUE")).alias("VALUE"))  # examples on distinct lines
    w = Window.partition_by(F.col("FIELD"), F.col("REASON")).order_by(F.col("SOURCE_FILE"), F.col("LINE_NO"))
    ex = per_line.select("FIELD", "REASON", "SOURCE_FILE", "LINE_NO", "ITEM_NO", "VALUE",
                         F.row_number().over(w).alias("RN")).filter(F.col("RN") <= 3).collect()
    contract_field = {plan.column(f): f for f in plan.source.field_names}
    out = []
    for g in sorted(groups, key=lambda r: (-r["N"], r["REASON"], r["FIELD"] or "")):
        rows = sorted((r for r in ex if r["FIELD"] == g["FIELD"] and r["REASON"] == g["REASON"]),
                      key=lambda r: (r["SOURCE_FILE"], r["LINE_NO"], r["ITEM_NO"] or 0))
        out.append({"field": g["FIELD"], "contract_field": contract_field.get(g["FIELD"], g["FIELD"]),
                    "reason": g["REASON"], "rows": int(g["N"]),
                    "examples": [{"file": r["SOURCE_FILE"], "line": int(r["LINE_NO"]),
                                  "item": None if r["ITEM_NO"] is None else int(r["ITEM_NO"]),
                                  "value": r["VALUE"]} for r in rows]})
    return out


def _check_threshold(counts: SourceCounts, plan: SourcePlan, limit: float) -> None:
    if counts.read == 0 or counts.reject_share <= limit:
        return
    top = "; ".join(f"'{d['reason']}' in '{d['field']}' ({d['rows']:,} rows, e.g. line {d['examples'][0]['line']})"
                    for d in counts.details[:3])
    raise IngestError(
        f"{plan.path}: {counts.rejected:,} of {counts.read:,} {counts.unit} rejected ({counts.reject_share:.1%}), "
        f"more than max_reject_share = {limit:.0%}. Most common: {top}. Fix: correct the file (see "
        "docs/data_contract.md), map your column names in env.yaml (columns:), or raise max_reject_share if these "
        "rejections are expected. Nothing was replaced: the previous tables are unchanged.")


# --------------------------------------------------------------------------- run
NEW = "__NEW"


def _staged_names() -> list[str]:
    names = [f"STAGE_{s}{x}" for s in ("CUSTOMERS", "ORDER_LINES", "REVIEWS", "CALLS") for x in ("", "_F", "_C")]
    names += [t + NEW for t in (*RAW.values(), "CLEAN_CUSTOMERS", "CLEAN_ORDER_LINES", "CLEAN_ORDERS",
                                "CLEAN_REVIEWS", "REJECTED_CUSTOMERS", "REJECTED_ORDER_LINES", "REJECTED_REVIEWS",
                                "INGEST_LOG", "INGEST_REASONS")]
    return names


def _drop(session: Session, names: list[str]) -> None:
    for n in names:
        session.sql(f"DROP TABLE IF EXISTS {n}").collect()


def _empty(session: Session, table: str, columns: list[str], types: dict[str, str]) -> None:
    cols = ", ".join(f"{c} {types.get(c, 'VARCHAR')}" for c in columns)
    session.sql(f"CREATE OR REPLACE TABLE {table} ({cols})").collect()


def _load(session: Session, plan: SourcePlan, staging_dir: Path) -> tuple[DataFrame, list[str]]:
    """Load the source's file into RAW_<SOURCE>__NEW; return the table and its columns."""
    table = RAW[plan.source.name] + NEW
    log.info("reading %s", plan.path)
    wanted = plan.wanted if plan.fmt == "csv" else None
    plan.stats = load_raw_file(session, plan.path, table, plan.fmt, staging_dir, source_file=plan.name,
                                  columns=wanted)
    columns = RAW_COLUMNS + [f.upper() for f in plan.stats.columns]
    return session.table(table), columns


def run(session: Session, params: Params) -> list[SourceCounts]:
    """Ingest every configured source; replace the CLEAN_*/REJECTED_*/RAW_* tables only if all of it succeeded.

    Returns:
        Row accounting per source (customers, orders, reviews, calls), missing sources included.

    Raises:
        IngestError: unusable input (see the module docstring); the previous tables are unchanged.
    """
    plans = {p.source.name: p for p in plan_sources(params)}
    staging = params.warehouse_dir / "staging"
    _drop(session, _staged_names())  # leftovers of an interrupted run
    try:
        counts = _stage_all(session, params, plans, staging)
        _publish(session)
    finally:
        _drop(session, _staged_names())
    for c in counts:
        log.info("%s: %s read, %s accepted, %s rejected", c.source, c.read, c.accepted, c.rejected)
    return counts


def _stage_all(session: Session, params: Params, plans: dict[str, SourcePlan], staging: Path) -> list[SourceCounts]:
    f, limit = params.sample, params.max_reject_share
    counts: dict[str, SourceCounts] = {}
    customers = None
    p = plans["customers"]
    if p.present:
        stage = stage_customers(session, *_load(session, p, staging), p)
        counts["customers"] = _account(session, stage, p, "customers", f)
        _check_threshold(counts["customers"], p, limit)
        customers = session.table(stage).filter(F.col("REASON").is_null())
    p = plans["orders"]
    stage = stage_orders(session, *_load(session, p, staging), p, customers)
    counts["orders"] = _account(session, stage, p, "order lines", f)
    _check_threshold(counts["orders"], p, limit)
    for name, build, unit in (("reviews", stage_reviews, "reviews"), ("calls", stage_calls, "calls")):
        p = plans[name]
        if p.present:
            stage = build(session, *_load(session, p, staging), p, customers)
            counts[name] = _account(session, stage, p, unit, f)
            _check_threshold(counts[name], p, limit)
    _write_clean(session, plans, f)
    result = []
    for src in contract.SOURCES:
        p = plans[src.name]
        if src.name in counts:
            result.append(counts[src.name])
            continue
        unit = {"customers": "customers", "reviews": "reviews", "calls": "calls"}[src.name]
        _empty(session, RAW[src.name] + NEW, RAW_COLUMNS, {"LINE_NO": "INT"})
        c = SourceCounts(src.name, unit, 0, 0, 0, file=p.name, status="missing" if p.name else "disabled")
        if src is CUSTOMERS:
            c.status, c.derived = "derived", wh.row_count(session, "CLEAN_CUSTOMERS" + NEW)
        result.append(c)
    _write_log(session, result, staging)
    return result


def _accepted(session: Session, stage: str, fraction: float) -> DataFrame:
    return session.table(stage).filter(F.col("REASON").is_null() & in_sample(F.col("CUSTOMER_ID"), fraction))


def _rejected(session: Session, stage: str) -> DataFrame:
    t = session.table(stage)
    item = F.col("ITEM_NO") if "ITEM_NO" in t.columns else F.lit(None).cast("int")
    return t.filter(F.col("REASON").is_not_null()).select(
        "SOURCE_FILE", "LINE_NO", item.alias("ITEM_NO"), "FIELD", "REASON", "VALUE", "RECORD")


def _write_clean(session: Session, plans: dict[str, SourcePlan], fraction: float) -> None:
    """CLEAN_*__NEW and REJECTED_*__NEW from the STAGE_ tables (ordered, so re-runs give identical tables)."""
    lines = _accepted(session, "STAGE_ORDER_LINES", fraction)
    if plans["orders"].fmt == "csv":
        w = Window.partition_by(F.col("ORDER_ID")).order_by(F.col("LINE_NO"))
        lines = lines.with_column("ITEM_NO", (F.row_number().over(w) - 1).cast("int"))
    wh.replace_table(lines.select(*CLEAN_COLUMNS["ORDER_LINES"]).sort("LINE_NO", "ITEM_NO"), "CLEAN_ORDER_LINES" + NEW)
    if plans["customers"].present:
        cust = _accepted(session, "STAGE_CUSTOMERS", fraction).select(*CLEAN_COLUMNS["CUSTOMERS"]).sort("LINE_NO")
    else:
        first = session.table("CLEAN_ORDER_LINES" + NEW).group_by("CUSTOMER_ID").agg(F.min("TS").alias("FIRST_TS"))
        cust = first.select("CUSTOMER_ID", F.to_date(F.col("FIRST_TS")).alias("SIGNUP_DATE"),
                            F.lit(contract.UNKNOWN).alias("COUNTRY"), F.lit(contract.UNKNOWN).alias("CHANNEL"),
                            F.lit(None).cast("int").alias("BIRTH_YEAR"), F.lit(None).cast("int").alias("LINE_NO"),
                            F.lit(plans["orders"].name).alias("SOURCE_FILE")).sort("CUSTOMER_ID")
    wh.replace_table(cust, "CLEAN_CUSTOMERS" + NEW)
    reviews = [_accepted(session, f"STAGE_{n.upper()}", fraction).select(*CLEAN_COLUMNS["REVIEWS"])
               for n in ("reviews", "calls") if plans[n].present]
    if reviews:
        union = reviews[0] if len(reviews) == 1 else reviews[0].union_all(reviews[1])
        wh.replace_table(union.sort("KIND", "SOURCE_FILE", "LINE_NO"), "CLEAN_REVIEWS" + NEW)
    else:
        _empty(session, "CLEAN_REVIEWS" + NEW, CLEAN_COLUMNS["REVIEWS"], CLEAN_TYPES)
    orders = session.table("CLEAN_ORDER_LINES" + NEW).group_by("ORDER_ID", "CUSTOMER_ID", "TS").agg(
        F.max("COUPON").alias("COUPON"), F.max("SHIP_COST").alias("SHIP_COST"),
        F.count(F.lit(1)).alias("N_LINES"), F.sum(F.col("QUANTITY") * F.col("UNIT_PRICE")).alias("ORDER_TOTAL"))
    wh.replace_table(orders.sort("TS", "ORDER_ID"), "CLEAN_ORDERS" + NEW)
    for stem, stages in (("CUSTOMERS", ["customers"]), ("ORDER_LINES", ["orders"]), ("REVIEWS", ["reviews", "calls"])):
        parts = [_rejected(session, f"STAGE_{STEM[s] if s != 'calls' else 'CALLS'}") for s in stages
                 if plans[s].present]
        if parts:
            rej = parts[0] if len(parts) == 1 else parts[0].union_all(parts[1])
            wh.replace_table(rej.sort("SOURCE_FILE", "LINE_NO", "ITEM_NO"), f"REJECTED_{stem}" + NEW)
        else:
            _empty(session, f"REJECTED_{stem}" + NEW, REJECT_COLUMNS, {"LINE_NO": "INT", "ITEM_NO": "INT"})


def _write_log(session: Session, counts: list[SourceCounts], staging: Path) -> None:
    log_rows = [{"SOURCE": c.source, "FILE_NAME": c.file, "STATUS": c.status, "UNIT": c.unit, "RECORDS": c.records,
                 "ROWS_READ": c.read, "ACCEPTED": c.accepted, "REJECTED": c.rejected, "SAMPLED_OUT": c.sampled_out,
                 "DERIVED": c.derived, "FILE_BYTES": c.bytes, "FILE_SHA256": c.sha256} for c in counts]
    reason_rows = [{"SOURCE": c.source, "FIELD": d["field"], "REASON": d["reason"], "N_ROWS": d["rows"],
                    "EXAMPLE_LINES": json.dumps([e["line"] for e in d["examples"]])}
                   for c in counts for d in c.details]
    wh.write_pandas(session, pd.DataFrame(log_rows), "INGEST_LOG" + NEW, staging)
    reasons = pd.DataFrame(reason_rows, columns=["SOURCE", "FIELD", "REASON", "N_ROWS", "EXAMPLE_LINES"])
    if reasons.empty:
        _empty(session, "INGEST_REASONS" + NEW, list(reasons.columns), {"N_ROWS": "INT"})
    else:
        wh.write_pandas(session, reasons, "INGEST_REASONS" + NEW, staging)


def _publish(session: Session) -> None:
    targets = [*RAW.values(), "CLEAN_CUSTOMERS", "CLEAN_ORDER_LINES", "CLEAN_ORDERS", "CLEAN_REVIEWS",
               "REJECTED_CUSTOMERS", "REJECTED_ORDER_LINES", "REJECTED_REVIEWS", "INGEST_LOG", "INGEST_REASONS"]
    wh.publish(session, {t + NEW: t for t in targets})


# --------------------------------------------------------------------------- report helpers
def counts_frame(counts: list[SourceCounts]) -> pd.DataFrame:
    """Row accounting per source for the report (read = accepted + rejected + sampled out)."""
    rows = [{"source": c.source, "file": c.file or "—", "status": c.status, "unit": c.unit, "read": c.read,
             "accepted": c.accepted, "rejected": c.rejected, "sampled out": c.sampled_out,
             "rejected %": round(100 * c.reject_share, 2),
             "balanced": c.read == c.accepted + c.rejected + c.sampled_out} for c in counts]
    return pd.DataFrame(rows).set_index("source")


def _example(e: dict, show_value: bool) -> str:
    where = Path(e["file"]).name if e["file"] and "/" in e["file"] else f"line {e['line']}"
    where += f" item {e['item']}" if e["item"] is not None else ""
    value = e["value"] if e["value"] is None or len(e["value"]) <= 30 else e["value"][:29] + "…"
    return where + (f" ({value!r})" if show_value and value is not None else "")


def reasons_frame(counts: list[SourceCounts]) -> pd.DataFrame:
    """Rejected rows per source, field and reason, with the first examples (values only of non-personal fields)."""
    rows = [{"source": c.source, "field": d["field"], "reason": d["reason"], "rows": d["rows"],
             "examples": "; ".join(_example(e, d["contract_field"] in SHOWABLE_FIELDS) for e in d["examples"])}
            for c in counts for d in c.details]
    return pd.DataFrame(rows, columns=["source", "field", "reason", "rows", "examples"]).set_index(
        ["source", "field", "reason"])


def rejections(counts: list[SourceCounts]):
    """For the report: :func:`reasons_frame`, or a one-line Markdown note when nothing was rejected."""
    from IPython.display import Markdown

    if not any(c.rejected for c in counts):
        return Markdown("No row was rejected.")
    return reasons_frame(counts).style  # a Styler: long example lists are not cut at 50 characters


def missing_note(counts: list[SourceCounts]) -> str:
    """Markdown: which optional sources were missing and what was used instead ('' when none)."""
    notes = []
    for c in counts:
        if c.status == "derived":
            notes.append(f"- **customers**: no file ({c.file or 'disabled'}); {c.derived:,} customers were derived "
                         f"from the orders (sign-up = first order; country and channel '{contract.UNKNOWN}').")
        elif c.status in ("missing", "disabled"):
            what = "no review rows" if c.source == "reviews" else "no support-call rows"
            notes.append(f"- **{c.source}**: no {'file' if c.source != 'calls' else 'transcripts'} "
                         f"({c.file or 'disabled'}); {what}.")
    return "\n".join(notes)


def summary(counts: list[SourceCounts]) -> str:
    """Markdown summary of the ingest: accepted/rejected per source and what was missing."""
    parts = [f"**{c.accepted:,}** of {c.read:,} {c.unit} accepted ({c.rejected:,} rejected"
             + (f", {c.sampled_out:,} outside the sample" if c.sampled_out else "") + ")"
             for c in counts if c.status == "loaded"]
    text = "This run ingested: " + "; ".join(parts) + "."
    missing = [c for c in counts if c.status != "loaded"]
    if missing:
        text += " Missing: " + "; ".join(
            f"{c.source} (derived {c.derived:,} customers from the orders)" if c.status == "derived"
            else f"{c.source} (none used)" for c in missing) + "."
    rejected = sum(c.rejected for c in counts)
    if rejected:
        top = max(((d["reason"], d["rows"]) for c in counts for d in c.details), key=lambda x: x[1])
        text += f" Most common rejection: '{top[0]}' ({top[1]:,} rows); all rejected rows are kept in REJECTED_*."
    return text


def sources_frame(params: Params) -> pd.DataFrame:
    """The plan as a table: per source, the file used, its format and size, or why it is absent.

    Raises:
        IngestError: a file cannot be used at all (this is the plan phase of :func:`run`).
    """
    rows = []
    for p in plan_sources(params):
        size = (sum(f.stat().st_size for f in readers.call_files(p.path)) if p.fmt == "calls"
                else p.path.stat().st_size) if p.present else None
        n_files = len(readers.call_files(p.path)) if p.fmt == "calls" and p.present else None
        rows.append({"source": p.source.name, "required": "yes" if p.source.required else "no",
                     "file": p.name or "—", "status": {"loaded": "found", "missing": "missing",
                                                       "disabled": "disabled"}[p.status],
                     "format": p.fmt or "—", "files": n_files or (1 if p.present else 0),
                     "MB": None if size is None else round(size / 2**20, 2)})
    return pd.DataFrame(rows).set_index("source")


def source_paths(params: Params) -> dict[str, Path | None]:
    """Where each source is expected (None: disabled)."""
    return {s.name: (params.data_dir / getattr(params, s.setting)) if getattr(params, s.setting) else None
            for s in contract.SOURCES}


def table_counts(session: Session) -> pd.DataFrame:
    """Row counts of the RAW_, CLEAN_ and REJECTED_ tables."""
    names = [*RAW.values(), "CLEAN_CUSTOMERS", "CLEAN_ORDERS", "CLEAN_ORDER_LINES", "CLEAN_REVIEWS",
             "REJECTED_CUSTOMERS", "REJECTED_ORDER_LINES", "REJECTED_REVIEWS"]
    return pd.DataFrame({"rows": [wh.row_count(session, n) for n in names]}, index=names)

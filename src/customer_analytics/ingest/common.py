"""What the parts of the ingest share: its error, the plan and accounting records, table names."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from customer_analytics import readers, redaction
from customer_analytics.contract import Source, SourceStatus

#: Suffix of the tables a run builds before putting them in place together.
NEW = "__NEW"
#: Warehouse table stem of each source (CLEAN_/REJECTED_/STAGE_ + stem; calls share the reviews
#: tables).
STEM = {"customers": "CUSTOMERS", "orders": "ORDER_LINES", "reviews": "REVIEWS", "calls": "REVIEWS"}
#: STAGE_ table of each source (calls are staged apart, then published with the reviews).
#: Suffix of the order lines whose order fields were filled from their order's other lines.
FILLED = "_FILLED"
STAGE = {
    "customers": "STAGE_CUSTOMERS",
    "orders": "STAGE_ORDER_LINES",
    "reviews": "STAGE_REVIEWS",
    "calls": "STAGE_CALLS",
}
RAW = {
    "customers": "RAW_CUSTOMERS",
    "orders": "RAW_ORDERS",
    "reviews": "RAW_REVIEWS",
    "calls": "RAW_CALLS",
}
#: What one row of a source is called in reports.
UNIT = {"customers": "customers", "orders": "order lines", "reviews": "reviews", "calls": "calls"}
CLEAN_COLUMNS = {
    "CUSTOMERS": [
        "CUSTOMER_ID",
        "SIGNUP_DATE",
        "COUNTRY",
        "CHANNEL",
        "BIRTH_YEAR",
        "LINE_NO",
        "SOURCE_FILE",
    ],
    "ORDER_LINES": [
        "ORDER_ID",
        "CUSTOMER_ID",
        "TS",
        "COUPON",
        "SHIP_METHOD",
        "SHIP_COST",
        "PRODUCT",
        "PRODUCT_NAME",
        "QUANTITY",
        "UNIT_PRICE",
        "IS_RETURN",
        "LINE_NO",
        "ITEM_NO",
        "SOURCE_FILE",
    ],
    "REVIEWS": [
        "CUSTOMER_ID",
        "TS",
        "RATING",
        "TEXT",
        "LINE_NO",
        "KIND",
        "SOURCE_FILE",
        "RECOGNIZER",
        "CONFIDENCE",
    ],
}
CLEAN_TYPES = {
    "CUSTOMER_ID": "VARCHAR",
    "SIGNUP_DATE": "DATE",
    "COUNTRY": "VARCHAR",
    "CHANNEL": "VARCHAR",
    "BIRTH_YEAR": "INT",
    "LINE_NO": "INT",
    "SOURCE_FILE": "VARCHAR",
    "ORDER_ID": "VARCHAR",
    "TS": "TIMESTAMP_NTZ",
    "COUPON": "VARCHAR",
    "SHIP_METHOD": "VARCHAR",
    "SHIP_COST": "DOUBLE",
    "PRODUCT": "VARCHAR",
    "QUANTITY": "INT",
    "UNIT_PRICE": "DOUBLE",
    "ITEM_NO": "INT",
    "RATING": "INT",
    "TEXT": "VARCHAR",
    "KIND": "VARCHAR",
    "RECOGNIZER": "VARCHAR",
    "CONFIDENCE": "DOUBLE",
    "IS_RETURN": "BOOLEAN",
    "PRODUCT_NAME": "VARCHAR",
}
#: Where a row's outcome is kept in every STAGE_ table, and what a REJECTED_ table holds.
OUTCOME = ["FIELD", "REASON", "VALUE"]
REJECT_COLUMNS = ["SOURCE_FILE", "LINE_NO", "ITEM_NO", "FIELD", "REASON", "VALUE", "RECORD"]
RAW_COLUMNS = list(readers.BASE_COLUMNS)
#: Fields whose offending values may be shown in reports (never ids, names or free text).
SHOWABLE_FIELDS = {
    "signup_date",
    "birth_year",
    "ts",
    "quantity",
    "unit_price",
    "amount",
    "ship_cost",
    "rating",
    "items",
}
#: Characters of an offending value kept in REJECTED_*.VALUE.
VALUE_CHARS = 200


class IngestError(RuntimeError):
    """An input cannot be used at all; the message names the file, the problem and the fix."""

    def _render_traceback_(self) -> list[str]:
        """What IPython/Jupyter (and so Papermill and Ploomber) show instead of a traceback: the
        message alone."""
        return [f"IngestError: {self}"]


@dataclass
class SourceCounts:
    """Row accounting for one source: ``read == accepted + rejected + excluded + sampled_out``
    always holds."""

    source: str
    unit: str
    read: int
    accepted: int
    rejected: int
    reasons: dict[str, int] = field(default_factory=dict)
    sampled_out: int = 0
    excluded: int = 0  # valid rows kept out on purpose (guest orders, excluded returns): not errors
    excluded_reasons: dict[str, int] = field(default_factory=dict)
    file: str | None = None
    status: SourceStatus = SourceStatus.LOADED
    records: int = 0  # physical records in the file (orders JSON lines: lines, not order lines)
    derived: int = 0  # customers derived from orders when the customers source is missing
    bytes: int = 0
    sha256: str = ""
    details: list[dict] = field(default_factory=list)  # per field/reason: rows and example lines
    skipped: dict[str, int] = field(default_factory=dict)  # calls: entries not read, per reason
    layouts: list[dict] = field(
        default_factory=list
    )  # per date field: the layout used and how it was chosen
    filled: dict[str, int] = field(
        default_factory=dict
    )  # orders: lines that took an order field from another line of their order, per column
    one_unit: bool = False  # orders without any quantity: every line read as one unit
    by_order: bool = False  # reviews without customer_id: each took its order's customer
    decimal_comma: list[str] = field(default_factory=list)  # CSV: columns read with a decimal comma
    thousands: list[str] = field(default_factory=list)  # CSV: columns with thousands separators
    parentheses: list[str] = field(
        default_factory=list
    )  # CSV: columns with (3.50) or 3.50- negatives
    currency_signs: dict[str, str] = field(
        default_factory=dict
    )  # CSV: columns with currency signs -> the signs seen
    encoding: dict[str, Any] = field(
        default_factory=dict
    )  # a file not in UTF-8: its encoding, how it was chosen, characters replaced
    workbook: dict[str, Any] = field(
        default_factory=dict
    )  # a spreadsheet workbook: the sheets read, the sheets not read, rows

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
    status: SourceStatus  # LOADED (to be loaded) | MISSING | DISABLED
    wanted: dict[str, str] = field(default_factory=dict)  # contract field -> column/key in the file
    stats: readers.FileStats | None = None
    declared: dict[str, tuple[str, ...]] = field(
        default_factory=dict
    )  # date field -> layout (date_formats)
    layouts: dict[str, Any] = field(
        default_factory=dict
    )  # date field -> dates.LayoutChoice (set when staged)
    settings: dict[str, Any] = field(
        default_factory=dict
    )  # orders: returns, return_order_prefix, guest_ids
    root: Path | None = None  # the data folder a file must lie in (None: a table or stage file)
    skipped: dict[str, int] = field(default_factory=dict)  # calls: entries not read, per reason
    filled: dict[str, int] = field(
        default_factory=dict
    )  # orders: lines that took an order field from another line of their order, per column
    one_unit: bool = False  # orders without any quantity: every line is one unit
    by_order: bool = False  # reviews without customer_id: the customer is the review's order's
    delimiter: str = ","  # CSV: the field separator (readers.detect_delimiter)
    decimal_comma: list[str] = field(default_factory=list)  # CSV: columns read with a decimal comma
    thousands: list[str] = field(default_factory=list)  # CSV: columns with thousands separators
    parentheses: list[str] = field(
        default_factory=list
    )  # CSV: columns with (3.50) or 3.50- negatives
    currency_signs: dict[str, str] = field(
        default_factory=dict
    )  # CSV: columns with currency signs -> the signs seen
    names: tuple[str, ...] = ()  # CSV without a header line: its column names (column_names)
    encoding: str | None = None  # declared (``encodings``; a Python codec name); None: detected
    scratch: Path | None = None  # where a UTF-8 copy of a file in another encoding is written
    transcoded: readers.Transcoded | None = None  # that copy, read instead of the file
    encoding_how: str | None = None  # why the copy's encoding: declared, byte-order mark, detected
    workbook: readers.Workbook | None = None  # a workbook read through a CSV copy: its sheets

    @property
    def present(self) -> bool:
        return self.status == SourceStatus.LOADED

    # The planned source's parts, for the steps that only run once the plan found them.
    @property
    def local_path(self) -> Path:
        """The file (or calls folder) on this machine; a table or stage source has none."""
        if self.path is None:
            raise IngestError(f"{self.source.name}: not a file on this machine")
        return self.path

    @property
    def readable(self) -> tuple[Path, Path | None]:
        """The file to read and the folder it must lie in: the file itself, or its UTF-8 copy."""
        if self.transcoded is not None:
            return self.transcoded.path, self.transcoded.path.parent
        return self.local_path, self.root

    @property
    def encoding_note(self) -> dict[str, Any]:
        """How a file in another encoding was read (empty for UTF-8), for the counts and the
        report."""
        t = self.transcoded
        if t is None or self.workbook is not None:
            return {}
        return {"encoding": t.encoding, "how": self.encoding_how, "replaced": t.replaced}

    @property
    def found_name(self) -> str:
        """The file, table or stage path as the user named it."""
        if self.name is None:
            raise IngestError(f"{self.source.name}: no input was found")
        return self.name

    @property
    def found_fmt(self) -> str:
        """``jsonl``, ``csv``, ``calls`` or ``table``."""
        if self.fmt is None:
            raise IngestError(f"{self.source.name}: no input was found")
        return self.fmt

    @property
    def found_stats(self) -> readers.FileStats:
        """What reading the input counted (set once it was staged)."""
        if self.stats is None:
            raise IngestError(f"{self.source.name}: not staged yet")
        return self.stats

    def column(self, fld: str) -> str:
        """The field's name as the user's file spells it (for FIELD in REJECTED_* and messages)."""
        if self.stats and fld in self.stats.columns:
            return self.stats.columns[fld]
        return self.wanted.get(fld, fld)


def fix_hint(src: Source, fld: str) -> str:
    """How to map a field whose column was not found."""
    return (
        "rename the column in the file, or map it in env.yaml: columns: "
        f"{{{src.name}: {{{fld}: <your column>}}}} "
        "(docs/data_contract.md)"
    )


def public_text(text: str, data_dir: Path) -> str:
    """A message as reports, run.json, the index and logs may show it: through the one redaction
    (:func:`customer_analytics.redaction.redact`), files named relative to ``data_dir`` (as given
    or resolved), no other path, no e-mail address. Never cut: a stop message is shown whole."""
    for d in {str(data_dir), os.path.realpath(data_dir)}:
        text = text.replace(f"data_dir {d}", "data_dir")
    return redaction.redact(text, None, inside=(data_dir,))

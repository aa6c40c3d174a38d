"""A stand-in Snowpark session that records what the Snowflake-only branches would send.

Snowflake cannot run here. The branches of :mod:`warehouse` that only Snowflake takes (``PUT`` +
``COPY INTO`` loading, ``SWAP WITH`` publishing, the connector's ``write_pandas``) are run against
a :class:`RecordingSession` registered as a Snowflake session: every statement is kept, in order,
as the text the connector would send (``PUT`` and ``write_pandas`` as the commands they issue), and
answered with the rows the code needs (``COPY INTO``'s load report, table existence, row counts).
Tests assert the exact sequences; the dry run (:mod:`dryrun`) prints them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from snowflake.snowpark import Row

from customer_analytics import warehouse as wh

_EXISTS = re.compile(r"INFORMATION_SCHEMA\.TABLES .*TABLE_NAME = '(\w+)'", re.S)
_COPY = re.compile(r"^COPY INTO (\w+) ")


@dataclass
class _Result:
    rows: list[Row]

    def collect(self) -> list[Row]:
        return self.rows


@dataclass
class _Table:
    session: RecordingSession
    name: str

    def count(self) -> int:
        return self.session.row_counts.get(self.name, 0)


@dataclass
class RecordingSession:
    """Records statements; answers ``COPY INTO`` with ``row_counts`` and existence checks with
    ``existing``.

    Attributes:
        statements: every statement, in order.
        existing: tables that exist in the schema (``ALTER … RENAME``/``SWAP`` and ``DROP`` keep it
            true).
        row_counts: rows per table (what ``count()`` returns, and ``COPY INTO`` reports as loaded).
        copy_loaded: what ``COPY INTO`` reports as loaded, where it differs from ``row_counts``.
    """

    statements: list[str] = field(default_factory=list)
    existing: set[str] = field(default_factory=set)
    row_counts: dict[str, int] = field(default_factory=dict)
    copy_loaded: dict[str, int] = field(default_factory=dict)
    schema: str = "SHOP"

    def __post_init__(self) -> None:
        wh.register_backend(self, wh.SNOWFLAKE)  # type: ignore[arg-type]  # stands in for a Session

    def __hash__(self) -> int:  # a registered session is a key of warehouse's backend map
        return id(self)

    @property
    def file(self) -> RecordingSession:
        return self

    def sql(self, text: str) -> _Result:
        self.statements.append(text)
        return _Result(self._answer(text))

    def _answer(self, text: str) -> list[Row]:
        if m := _EXISTS.search(text):
            return [Row(N=int(m.group(1) in self.existing))]
        if m := _COPY.match(text):
            n = self.copy_loaded.get(m.group(1), self.row_counts.get(m.group(1), 0))
            return [Row(file="data.parquet", status="LOADED", rows_parsed=n, rows_loaded=n)]
        if m := re.match(r"^ALTER TABLE (\w+) RENAME TO (\w+)$", text):
            self.existing.discard(m.group(1))
            self.existing.add(m.group(2))
        elif m := re.match(r"^DROP TABLE IF EXISTS (\w+)$", text):
            self.existing.discard(m.group(1))
        elif m := re.match(r"^CREATE OR REPLACE TABLE (\w+)", text):
            self.existing.add(m.group(1))
        return []

    def put(
        self,
        local_file_name: str,
        stage_location: str,
        *,
        auto_compress: bool = True,
        overwrite: bool = False,
        **kwargs: Any,
    ) -> list[Row]:
        """``session.file.put``: recorded as the ``PUT`` command the connector sends."""
        self.statements.append(
            f"PUT 'file://{local_file_name}' {stage_location} "
            f"AUTO_COMPRESS={str(auto_compress).upper()} OVERWRITE={str(overwrite).upper()}"
        )
        return [Row(source=local_file_name, status="UPLOADED")]

    def write_pandas(
        self,
        df,
        table_name: str,
        *,
        auto_create_table: bool = False,
        overwrite: bool = False,
        use_logical_type: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """``session.write_pandas``: recorded as one line naming the table and its columns."""
        self.statements.append(
            f"-- write_pandas {table_name} ({', '.join(map(str, df.columns))}): "
            f"{len(df):,} rows, auto_create_table={auto_create_table}, overwrite={overwrite}, "
            f"use_logical_type={use_logical_type}"
        )
        self.existing.add(table_name)
        self.row_counts[table_name] = len(df)

    def table(self, name: str) -> _Table:
        return _Table(self, name)

    def get_current_schema(self) -> str:
        return f'"{self.schema}"'

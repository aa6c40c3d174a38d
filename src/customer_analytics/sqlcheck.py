"""Offline Snowflake-compatibility check of the SQL a run sends.

Nothing here can run on Snowflake, and the embedded warehouse (fakesnow on DuckDB) accepts SQL
that Snowflake rejects or computes differently. So every statement a run sends is recorded in
full by the embedded server (``CA_WAREHOUSE_AUDIT``, see :mod:`warehouse_server`), parsed with
sqlglot's Snowflake dialect and linted here. Rules (each a :class:`Finding` ``rule``):

* ``parse``: the statement does not parse as Snowflake SQL;
* ``reserved-word``: an identifier is one of Snowflake's reserved or limited keywords
  (:data:`RESERVED`, e.g. ``ROWS``, ``SAMPLE``, ``ORDER``): a syntax error unquoted, and a trap for
  every user of the table when quoted;
* ``duckdb-only``: a DuckDB-only function (:data:`DUCKDB_ONLY`, e.g. ``read_parquet``), a file
  named as a table, or a DuckDB-only statement, outside statements tagged local-only by design
  (:data:`portable.LOCAL_ONLY`, a SQL comment);
* ``avg-not-double``: ``AVG``/``STDDEV``/``VARIANCE`` of anything but an explicit cast to a
  floating type (fixed-point on Snowflake for integers and decimals, DOUBLE on DuckDB);
* ``timestamp-mapping``: the type ``TIMESTAMP`` (cast, column, literal) or ``TO_TIMESTAMP``, whose
  meaning follows the account's ``TIMESTAMP_TYPE_MAPPING``: say ``TIMESTAMP_NTZ``;
* ``hash-sampling``: ``HASH`` (signed on Snowflake, another function on DuckDB), ``RANDOM``/
  ``UNIFORM`` or ``SAMPLE``/``TABLESAMPLE``: samples that differ between backends or runs.

Usage: ``python -m customer_analytics.sqlcheck AUDIT.jsonl`` prints the findings (exit 1 if any).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from customer_analytics.portable import LOCAL_ONLY

log = logging.getLogger(__name__)

#: Snowflake's reserved and limited keywords ("Reserved & limited keywords" in its SQL reference)
RESERVED = frozenset(
    """
ACCOUNT ALL ALTER AND ANY AS ASOF BETWEEN BY CASE CAST CHECK COLUMN CONNECT CONNECTION CONSTRAINT
CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER DATABASE DELETE
DISTINCT DROP ELSE EXISTS FALSE FOLLOWING FOR FROM FULL GRANT GROUP GSCLUSTER HAVING ILIKE IN
INCREMENT INNER INSERT INTERSECT INTO IS ISSUE JOIN LATERAL LEFT LIKE LOCALTIME LOCALTIMESTAMP
MATCH_CONDITION MINUS NATURAL NOT NULL OF ON OR ORDER ORGANIZATION QUALIFY REGEXP REVOKE RIGHT
RLIKE ROW ROWS SAMPLE SCHEMA SELECT SET SOME START TABLE TABLESAMPLE THEN TO TRIGGER TRUE
TRY_CAST UNION UNIQUE UPDATE USING VALUES VIEW WHEN WHENEVER WHERE WITH
""".split()
)
#: DuckDB functions that Snowflake does not have (file readers, DuckDB spellings)
DUCKDB_ONLY = frozenset(
    """
READ_PARQUET PARQUET_SCAN PARQUET_METADATA PARQUET_SCHEMA READ_CSV READ_CSV_AUTO SNIFF_CSV
READ_JSON READ_JSON_AUTO READ_JSON_OBJECTS READ_NDJSON READ_NDJSON_AUTO READ_NDJSON_OBJECTS
READ_TEXT READ_BLOB GLOB STRING_AGG LIST_VALUE LIST_AGGREGATE LIST_EXTRACT STRUCT_PACK
STRUCT_EXTRACT STRFTIME STRPTIME EPOCH_MS REGEXP_MATCHES REGEXP_FULL_MATCH STRING_SPLIT
STR_SPLIT GENERATE_SERIES UNNEST MD5_NUMBER MD5_NUMBER_LOWER MD5_NUMBER_UPPER
""".split()
)
#: statements only DuckDB knows
DUCKDB_STATEMENTS = (
    "ATTACH",
    "DETACH",
    "INSTALL",
    "LOAD",
    "PRAGMA",
    "CHECKPOINT",
    "EXPORT DATABASE",
    "IMPORT DATABASE",
)
NONPORTABLE_SAMPLING = frozenset({"HASH", "RANDOM", "UNIFORM", "RANDSTR"})
TIMESTAMP_FUNCTIONS = frozenset({"TO_TIMESTAMP", "TRY_TO_TIMESTAMP"})
FLOAT_TYPES = frozenset({exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT})
SPREAD = (exp.Avg, exp.Stddev, exp.StddevSamp, exp.StddevPop, exp.Variance, exp.VariancePop)
RULES = (
    "parse",
    "reserved-word",
    "duckdb-only",
    "avg-not-double",
    "timestamp-mapping",
    "hash-sampling",
)
SHOWN = 160


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem in one statement."""

    rule: str
    detail: str
    sql: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.detail}: {self.sql}"


def is_local_only(sql: str) -> bool:
    """Whether the statement carries the local-only tag (it is sent to the local warehouse only)."""
    return LOCAL_ONLY in sql


def _shown(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= SHOWN else flat[:SHOWN] + " …"


def _function_calls(sql: str) -> list[str]:
    """Upper-case names of the functions called in ``sql`` as written (a name followed by ``(``)."""
    tokens = sqlglot.Dialect.get_or_raise("snowflake").tokenize(sql)
    names = []
    for tok, nxt in zip(tokens, tokens[1:], strict=False):
        if nxt.token_type == TokenType.L_PAREN and tok.token_type in (
            TokenType.VAR,
            TokenType.IDENTIFIER,
        ):
            names.append(tok.text.upper())
    return names


def _is_float_cast(node: exp.Expression) -> bool:
    return isinstance(node, exp.Cast | exp.TryCast) and node.to.this in FLOAT_TYPES


def _tree_findings(tree: exp.Expression, local: bool) -> list[tuple[str, str]]:
    out = []
    for node in tree.walk():
        if isinstance(node, exp.Identifier) and node.name.upper() in RESERVED:
            how = "quoted" if node.quoted else "unquoted"
            out.append(
                ("reserved-word", f"identifier {node.name} ({how}) is a Snowflake reserved word")
            )
        elif isinstance(node, SPREAD) and not _is_float_cast(node.this):
            out.append(
                (
                    "avg-not-double",
                    f"{node.sql_name()} of {_shown(node.this.sql('snowflake'))} without a "
                    "cast to DOUBLE (fixed-point on Snowflake for integers/decimals)",
                )
            )
        elif isinstance(node, exp.DataType) and node.this == exp.DataType.Type.TIMESTAMP:
            out.append(
                (
                    "timestamp-mapping",
                    "TIMESTAMP follows the account's TIMESTAMP_TYPE_MAPPING: say TIMESTAMP_NTZ",
                )
            )
        elif isinstance(node, exp.TableSample):
            out.append(
                ("hash-sampling", "SAMPLE/TABLESAMPLE draws other rows on each backend and run")
            )
        elif isinstance(node, exp.Table) and isinstance(node.this, exp.Literal) and not local:
            out.append(("duckdb-only", "a file named as a table (DuckDB only)"))
    return out


def check_statement(sql: str) -> list[Finding]:
    """The findings of one statement (see the module doc for the rules)."""
    local = is_local_only(sql)
    shown = _shown(sql)
    head = sql.lstrip().upper()
    if not local and head.startswith(DUCKDB_STATEMENTS):
        return [Finding("duckdb-only", "a DuckDB-only statement", shown)]
    found: list[tuple[str, str]] = []
    try:
        calls = _function_calls(sql)
        quiet = logging.getLogger("sqlglot")
        level, quiet.level = (
            quiet.level,
            logging.ERROR,
        )  # "falling back to a Command" is not a finding
        try:
            trees = sqlglot.parse(sql, read="snowflake")
        finally:
            quiet.level = level
    except SqlglotError as e:
        return [
            Finding(
                "parse", f"does not parse as Snowflake SQL ({str(e).splitlines()[0][:120]})", shown
            )
        ]
    for name in calls:
        if name in DUCKDB_ONLY and not local:
            found.append(("duckdb-only", f"{name} is a DuckDB function"))
        elif name in NONPORTABLE_SAMPLING:
            found.append(
                (
                    "hash-sampling",
                    f"{name} differs between Snowflake and DuckDB (use portable.stable_hash)",
                )
            )
        elif name in TIMESTAMP_FUNCTIONS:
            found.append(
                (
                    "timestamp-mapping",
                    f"{name} follows the account's TIMESTAMP_TYPE_MAPPING: use TO_TIMESTAMP_NTZ",
                )
            )
    for tree in trees:
        if tree is not None:
            found += _tree_findings(tree, local)  # type: ignore[arg-type]  # parse() yields Expression
    return [Finding(rule, detail, shown) for rule, detail in dict.fromkeys(found)]


def check(statements: Iterable[str]) -> list[Finding]:
    """The findings of many statements; each distinct statement is checked once."""
    out: list[Finding] = []
    for sql in dict.fromkeys(statements):
        out += check_statement(sql)
    return out


def audit_statements(path: Path) -> list[str]:
    """The SQL of every statement recorded in an audit file of the embedded server."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["sql"] for line in lines if line.strip()]


def check_audit(path: Path) -> list[Finding]:
    """The findings of every statement in an audit file (``CA_WAREHOUSE_AUDIT``)."""
    return check(audit_statements(path))


def summary(findings: list[Finding]) -> str:
    """Findings per rule, then each finding on one line (for logs and assertion messages)."""
    if not findings:
        return "no findings"
    counts = {r: sum(f.rule == r for f in findings) for r in RULES}
    head = ", ".join(f"{r}: {n}" for r, n in counts.items() if n)
    return head + "\n" + "\n".join(str(f) for f in findings)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "audit", type=Path, help="a JSON-lines audit file written with CA_WAREHOUSE_AUDIT"
    )
    a = p.parse_args(argv)
    findings = check_audit(a.audit)
    sys.stdout.write(summary(findings) + "\n")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())

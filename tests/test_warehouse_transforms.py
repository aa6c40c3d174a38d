"""The embedded server's statement translation skips only the fakesnow rewrites that cannot apply
(customer_analytics.warehouse_transforms): same statements out, fakesnow's chain copied exactly."""

import inspect
import logging
import re
from datetime import datetime

import pytest
import sqlglot.expressions as exp
from fakesnow import transforms as fst
from fakesnow.cursor import FakeSnowflakeCursor
from fakesnow.dialect import parse_one
from fakesnow.instance import FakeSnow

from customer_analytics import warehouse_transforms as wt

#: statements that set off most of fakesnow's rewrites (and plain ones that set off few)
STATEMENTS = [
    "SELECT A, SUM(B) AS S FROM T WHERE A <> 'x' GROUP BY A",
    "SELECT * FROM IDENTIFIER('T')",
    "SELECT CURRENT_VERSION()",
    "USE SCHEMA DB.S",
    "CREATE DATABASE IF NOT EXISTS DB2",
    "CREATE OR REPLACE TABLE C1 (A VARCHAR(10) COMMENT 'a', B NUMBER) COMMENT = 'the table'",
    "COMMENT ON TABLE T IS 'text'",
    "ALTER TABLE T ALTER COLUMN A COMMENT 'a column'",
    "ALTER SESSION SET TIMEZONE = 'UTC'",
    "SET V1 = 3",
    "SELECT COUNT(*) AS N FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = 'T'",
    "SELECT TRY_PARSE_JSON('{\"a\": 1}') AS J, SPLIT('a,b', ',') AS P",
    "SELECT TRIM(CAST(A AS VARCHAR)) AS T1, PARSE_JSON('{\"a\": [1]}')['a'][0] AS X FROM T",
    'SELECT PARSE_JSON(\'{"a": "x"}\'):a::VARCHAR AS X, UPPER(PARSE_JSON(\'{"a": "x"}\'):a) AS U',
    "SELECT f.VALUE::VARCHAR AS V FROM T, LATERAL FLATTEN(INPUT => PARSE_JSON('[1, 2]')) AS f",
    "SELECT REGEXP_REPLACE(A, '[0-9]', '') AS R, REGEXP_SUBSTR(A, '[a-z]+') AS S FROM T",
    "SELECT TO_DATE('2024-01-02') AS D, TO_DECIMAL('1.5', 10, 2) AS N",
    "SELECT TO_TIMESTAMP(1700000000) AS TS",
    "SELECT TO_VARIANT(1) AS V, OBJECT_CONSTRUCT('a', 1, 'b', NULL) AS O",
    "SELECT CAST('2024-01-02 03:04:05' AS TIMESTAMP_NTZ) AS T0, '1.5'::FLOAT AS F",
    "SELECT '2'::NUMBER AS N, '2'::NUMBER(38, 0) AS N38",
    "SELECT '2024-01-02 03:04:05 +01:00'::TIMESTAMP_TZ AS TZ",
    "SELECT * FROM T SAMPLE (100)",
    "SELECT ARRAY_SIZE(PARSE_JSON('[1, 2]')) AS N, RANDOM(7) AS R",
    "SELECT ARRAY_AGG(A) WITHIN GROUP (ORDER BY B) AS G, OBJECT_AGG(A, B::VARIANT) AS O FROM T",
    "SELECT ARRAY_CONSTRUCT(1, 2) AS AC, ARRAY_AGG(A) AS AA FROM T",
    "SELECT DATEADD(DAY, 1, '2024-01-01'::DATE) AS D1, DATEADD(HOUR, 1, '2024-01-01') AS D2",
    "SELECT DATEDIFF(DAY, '2024-01-01', '2024-02-01') AS DD",
    "SHOW DATABASES",
    "SHOW SCHEMAS",
    "SHOW TABLES",
    "SHOW COLUMNS IN TABLE T",
    "SHOW PRIMARY KEYS IN TABLE T",
    "SHOW USERS",
    "SELECT HAVERSINE(1, 2, 3, 4) AS H, SHA2('x') AS S, X'41' AS HX",
    "CREATE TABLE C2 CLONE T",
    "SELECT U.B AS K FROM T JOIN T AS U ON K = T.B WHERE K = 1",
    "ALTER TABLE T CLUSTER BY (A)",
    "SELECT SUM(A) AS S FROM (SELECT '1' AS A)",
    "CREATE STAGE ST1",
    "CREATE FILE FORMAT FF1 TYPE = CSV",
    "LIST @ST0",
    "CREATE OR REPLACE TABLE C3 AS SELECT A, B FROM T",
    "INSERT INTO T SELECT COLUMN1, COLUMN2 FROM VALUES ('a', 1), ('b', 2)",
    "DROP SCHEMA IF EXISTS S9",
    "ALTER TABLE T SET TAG TG1 = 'x'",
    "CREATE TAG TG2",
    "ALTER TABLE T SET COMMENT = 'c'",
    "SHOW FUNCTIONS",
    "SHOW USER FUNCTIONS",
    "SHOW PARAMETERS LIKE 'TIME%'",
    "SHOW STAGES",
    "SHOW SEQUENCES",
    "SHOW IMPORTED KEYS IN TABLE T",
    "SHOW UNIQUE KEYS",
    "SELECT OBJECT_CONSTRUCT(*) AS O FROM T",
    "SELECT OBJECT_CONSTRUCT_KEEP_NULL('a', NULL) AS O",
    "SELECT ARRAY_CONSTRUCT_COMPACT(1, NULL) AS A, ARRAY_CAT([1], [2]) AS C",
    "SELECT SHA2_HEX('x') AS S, SHA2_BINARY('x') AS B",
    "SELECT A, AVG(B) OVER (PARTITION BY A) AS M, ARRAY_AGG(B) OVER (PARTITION BY A) AS W FROM T",
]


def new_cursor(folder, cursor_class=FakeSnowflakeCursor):
    """A cursor on a new fakesnow database holding table T and stage ST0."""
    folder.mkdir(exist_ok=True)
    cur = FakeSnow(db_path=folder).connect("DB", "S").cursor()
    cur.__class__ = cursor_class
    cur.execute("CREATE OR REPLACE TABLE T (A VARCHAR, B NUMBER(38, 0))")
    cur.execute("INSERT INTO T VALUES ('x', 1), ('y2', 2)")
    cur.execute("CREATE STAGE ST0")
    return cur


@pytest.fixture
def cursor(tmp_path):
    return new_cursor(tmp_path)


def test_the_copied_chain_is_the_installed_fakesnows():
    """Same rewrites in the same order as fakesnow's ``_transform``, whose source is the one the
    copy was taken from (a fakesnow upgrade that changes it makes this fail, and the server then
    runs fakesnow's own chain: see the next test)."""
    source = inspect.getsource(FakeSnowflakeCursor._transform)  # noqa: SLF001
    theirs = re.findall(r"transforms\.([a-z_0-9]+)", source)
    cur = type("Cursor", (), {"_conn": None, "_duck_conn": None})()
    ours = [rewrite.__name__ for _, rewrite in wt.steps(cur, None)]
    assert ours == theirs
    assert wt.chain_source_digest() == wt.CHAIN_SOURCE_SHA256


def test_install_replaces_the_chain_only_when_it_is_the_known_one(monkeypatch, caplog):
    known = type("Known", (FakeSnowflakeCursor,), {})
    assert wt.install(known)
    assert known._transform is not FakeSnowflakeCursor._transform  # noqa: SLF001

    monkeypatch.setattr(wt, "CHAIN_SOURCE_SHA256", "0" * 64)
    other = type("Other", (FakeSnowflakeCursor,), {})
    with caplog.at_level(logging.WARNING, "customer_analytics.warehouse"):
        assert not wt.install(other)
    assert other._transform is FakeSnowflakeCursor._transform  # noqa: SLF001
    assert "running them all" in caplog.text


def outcome(translate, statement):
    """What a translation gives: the tree (and its DuckDB SQL), or the error it raises; the
    creation times fakesnow writes for stages and file formats blanked out."""
    try:
        tree = translate(statement.copy())
    except Exception as e:  # noqa: BLE001 - compared, not handled
        return "error", type(e).__name__, str(e)
    return "tree", *(re.sub(NOW, "<now>", t) for t in (repr(tree), tree.sql(dialect="duckdb")))


def run(cursor, sql):
    """The rows a statement gives (creation times blanked out), or its error."""
    try:
        rows = cursor.execute(sql).fetchall()
        return "rows", [tuple("<time>" if isinstance(v, datetime) else v for v in r) for r in rows]
    except Exception as e:  # noqa: BLE001 - compared, not handled
        return "error", type(e).__name__, re.sub(NOW, "<now>", str(e))


NOW = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00"


@pytest.mark.parametrize("sql", STATEMENTS)
def test_skipping_gives_fakesnows_own_translation(sql, cursor, tmp_path):
    """Each statement comes out of the skipping chain exactly as out of fakesnow's (the whole
    tree, the arguments fakesnow attaches for itself included; or the same error), and running
    it gives the same rows or error."""
    for statement in cursor._transform_explode(parse_one(sql)):  # noqa: SLF001
        theirs = outcome(lambda s: cursor._transform(s, None), statement)  # noqa: SLF001
        assert outcome(lambda s: wt.transform(cursor, s, None), statement) == theirs
    skipping = type("Skipping", (FakeSnowflakeCursor,), {})
    assert wt.install(skipping)
    ours = new_cursor(tmp_path / "skipping", skipping)
    assert run(ours, sql) == run(cursor, sql)


def test_a_plain_query_skips_most_rewrites(cursor):
    """The point of it: a plain SELECT sets off few of the 76 rewrites."""
    tree = parse_one("SELECT A, SUM(B) AS S FROM T WHERE A <> 'x' GROUP BY A")
    present = {type(n) for n in tree.walk()}
    skipped = [
        rewrite
        for _, rewrite in wt.steps(cursor, None)
        if (kinds := wt.triggers(rewrite)) is not None
        and not any(issubclass(c, kinds) for c in present)
    ]
    assert len(skipped) > 30
    assert fst.show_users in skipped and fst.create_table_as in skipped


def shown(expression):
    if isinstance(expression, exp.Show) and expression.name == "X":
        expression.set("this", "Y")
    return expression


def guarded(expression):
    """Docstring."""
    kept: list = []
    if not isinstance(expression, (exp.Table, exp.Column)):
        return expression
    kept.append(expression)
    return exp.Null()


def with_else(expression):
    if isinstance(expression, exp.Show):
        return expression
    else:
        return exp.Null()


def call_first(expression):
    shown(expression)
    if isinstance(expression, exp.Show):
        return exp.Null()
    return expression


def other_test(expression):
    if expression.key == "show":
        return exp.Null()
    return expression


def other_variable(expression, node=None):
    if isinstance(node, exp.Show):
        return exp.Null()
    return expression


def work_after(expression):
    if isinstance(expression, exp.Show):
        return exp.Null()
    expression.set("this", None)
    return expression


def chained(expression):
    if isinstance(expression, exp.Show) and expression.name == "X":
        return exp.Null()
    elif isinstance(expression, exp.Table):
        expression.set("this", None)
    if isinstance(expression, exp.Column):
        return exp.Null()
    return expression


def negated(expression, kind=None):
    """Docstring."""
    wanted = kind
    if kind == "A":
        wanted = "B"
    if not (isinstance(expression, exp.Show) and expression.name == wanted):
        return expression
    return exp.Null()


def either_not(expression):
    if not isinstance(expression, exp.Drop) or expression.args.get("kind") != "SCHEMA":
        return expression
    return exp.Null()


def else_returns(expression):
    if isinstance(expression, exp.Show):
        found = 1
    elif isinstance(expression, (exp.Table, exp.Column)):
        found = 2
    else:
        return expression
    return exp.Literal.number(found)


KINDS = (exp.Sum, exp.Avg)


def named_kinds(expression):
    if isinstance(expression, KINDS):
        return exp.Null()
    return expression


def unguarded_or(expression):
    if isinstance(expression, exp.Show) or expression.key == "table":
        return exp.Null()
    return expression


def rebinds_the_node(expression):
    expression = None
    if isinstance(expression, exp.Show):
        return exp.Null()
    return expression


def shadowed_kinds(expression):
    KINDS = (1,)  # noqa: N806 - the shadow is the point
    if isinstance(expression, KINDS):
        return exp.Null()
    return expression


def other_elif(expression):
    if isinstance(expression, exp.Show):
        return exp.Null()
    elif expression.key == "table":
        return exp.Null()
    return expression


def compares_the_node(expression, kind=None):
    wanted = None
    if expression == kind:
        wanted = 1
    if isinstance(expression, exp.Show):
        return exp.Literal.number(wanted)
    return expression


def reads_a_global(expression):
    kinds = KINDS
    if isinstance(expression, exp.Show):
        return exp.Literal.number(len(kinds))
    return expression


def test_triggers_come_only_from_a_provable_type_test():
    assert wt.triggers(shown) == (exp.Show,)
    assert wt.triggers(guarded) == (exp.Table, exp.Column)
    assert wt.triggers(chained) == (exp.Show, exp.Table, exp.Column)
    assert wt.triggers(negated) == (exp.Show,)
    assert wt.triggers(either_not) == (exp.Drop,)
    assert wt.triggers(else_returns) == (exp.Show, exp.Table, exp.Column)
    assert wt.triggers(named_kinds) == (exp.Sum, exp.Avg)
    for fn in (
        with_else, call_first, other_test, other_variable, work_after, unguarded_or,
        rebinds_the_node, shadowed_kinds, other_elif, compares_the_node, reads_a_global,
    ):  # fmt: skip
        assert wt.triggers(fn) is None, fn.__name__


def test_which_of_fakesnows_rewrites_can_be_skipped():
    """fakesnow's own rewrites, as read from their source: the shapes above cover all but those
    whose test is not a type test on the node."""
    assert wt.triggers(fst.show_users) == (exp.Show,)
    assert wt.triggers(fst.drop_schema_cascade) == (exp.Drop,)
    assert set(wt.triggers(fst.tag)) == {exp.Alter, exp.Command, exp.Create, exp.Drop}
    assert set(wt.triggers(fst.array_agg)) == {exp.ArrayAgg, exp.Window}
    assert exp.Sum in wt.triggers(fst.numeric_agg_implicit_cast)
    always = {
        rewrite.__name__
        for _, rewrite in wt.steps(type("Cursor", (), {"_conn": None})(), None)
        if wt.triggers(rewrite) is None
    }
    # a test on something else than the node's type: SET/UNSET detection, a DataType's `this`
    # compared for any node, the node handed to helper functions first, a call before the test
    assert always == {
        "update_variables", "integer_precision", "alter_table_strip_cluster_by", "to_timestamp",
    }  # fmt: skip

"""Skip the fakesnow rewrites that cannot change a statement (the embedded server's hot loop).

fakesnow turns each Snowflake statement into DuckDB's dialect with a chain of 76 rewrites
(``FakeSnowflakeCursor._transform``), each a full walk of the statement's syntax tree calling a
Python function on every node. Over a 10k-order run (572 statements) that chain is about a third
of the server's time, and only 19 of the 76 rewrites ever change one of this project's statements
(bench/results/server_time.md). Most rewrites decide by a type test on the node
(``if isinstance(expression, exp.Show) ...``, ``elif`` chains of them, ``if not (isinstance(...)
and ...): return expression``) and return every other node unchanged: when no node of those types
is in the tree, the walk is a no-op, and one walk collecting the tree's node types says so for all
of them. 70 of fakesnow 0.12.1's 74 distinct rewrites have such a shape; the other four test
something else first and always run.

Exactness is by construction, not by sampling:

* the chain is fakesnow's own: :func:`install` replaces ``_transform`` only when the source of the
  installed fakesnow's ``_transform`` is the one :data:`CHAIN_SOURCE_SHA256` was taken from (the
  chain below is a copy of it); otherwise it leaves fakesnow alone and says so in the log;
* a rewrite is skipped only when :func:`triggers` proves, from the rewrite's own source (Python's
  ``ast``), that it returns every node of other types unchanged and does nothing else for them;
  rewrites of any other shape always run;
* the test for those types is made on the tree as it stands right before that rewrite, so what
  earlier rewrites added is seen.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import logging
import textwrap
from collections.abc import Callable
from typing import Any

log = logging.getLogger("customer_analytics.warehouse")

#: sha256 of ``inspect.getsource(FakeSnowflakeCursor._transform)`` in fakesnow 0.12.1, the chain
#: :func:`chain` copies; any other source disables the skipping (fakesnow's own chain runs).
CHAIN_SOURCE_SHA256 = "81704cb776b7966c22e14a493615418f15cf9c8760ef3a6b312c431d7162f9c3"


def chain_source_digest() -> str:
    """sha256 of the installed fakesnow's ``FakeSnowflakeCursor._transform`` source."""
    from fakesnow.cursor import FakeSnowflakeCursor

    source = inspect.getsource(FakeSnowflakeCursor._transform)  # noqa: SLF001
    return hashlib.sha256(source.encode()).hexdigest()


#: what a name bound inside the analysed function resolves to (not a class, not ``isinstance``)
_LOCAL = object()


def _type_test(test: ast.expr, param: str, names: dict[str, Any]) -> tuple[type, ...] | None:
    """The classes of ``isinstance(<param>, <classes>)`` (``test``), else None. The classes are
    attributes of modules (``exp.Show``) or module-level names bound to a class or a tuple of
    classes (``_NUMERIC_ONLY_AGGS``)."""
    if not (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Name)
        and test.func.id == "isinstance"
        and "isinstance" not in names  # the builtin, not a module-level shadow
        and len(test.args) == 2
        and not test.keywords
        and isinstance(test.args[0], ast.Name)
        and test.args[0].id == param
    ):
        return None
    spec = test.args[1]
    parts = spec.elts if isinstance(spec, ast.Tuple) else [spec]
    classes: list[type] = []
    for part in parts:
        if isinstance(part, ast.Attribute) and isinstance(part.value, ast.Name):
            found = getattr(names.get(part.value.id), part.attr, None)
        elif isinstance(part, ast.Name):
            found = names.get(part.id)
        else:
            return None
        found = found if isinstance(found, tuple) else (found,)
        if not found or not all(isinstance(cls, type) for cls in found):
            return None
        classes.extend(found)
    return tuple(classes)


def _false_for_others(test: ast.expr, param: str, names: dict[str, Any]) -> tuple[type, ...] | None:
    """Classes outside which ``test`` is false and evaluates nothing but ``isinstance`` calls:
    ``isinstance(e, T)``, ``isinstance(e, T) and ...`` (the rest is not evaluated), ``not <true
    for others>``, or an ``or`` of such tests (all of them evaluated)."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return _false_for_others(test.values[0], param, names)
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or):
        return _union([_false_for_others(v, param, names) for v in test.values])
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _true_for_others(test.operand, param, names)
    return _type_test(test, param, names)


def _true_for_others(test: ast.expr, param: str, names: dict[str, Any]) -> tuple[type, ...] | None:
    """The mirror of :func:`_false_for_others`: ``not isinstance(e, T) or ...``,
    ``not (isinstance(e, T) and ...)``, or an ``and`` of such tests."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or):
        return _true_for_others(test.values[0], param, names)
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return _union([_true_for_others(v, param, names) for v in test.values])
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _false_for_others(test.operand, param, names)
    return None


def _union(parts: list[tuple[type, ...] | None]) -> tuple[type, ...] | None:
    if any(p is None for p in parts):
        return None
    return tuple(dict.fromkeys(c for p in parts for c in p))  # type: ignore[union-attr]


def _is_return_of(stmt: ast.stmt, param: str) -> bool:
    return (
        isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Name) and stmt.value.id == param
    )


def _harmless(stmt: ast.stmt, param: str, args: set[str]) -> bool:
    """A statement with no effect but on local names other than ``param``: an assignment of a
    literal or of one of the function's other arguments (or an annotated empty name), or an
    ``if`` comparing the function's other arguments with literals (``if kind == "FOREIGN":``)
    whose branches are harmless statements."""
    if isinstance(stmt, ast.AnnAssign):
        return (
            isinstance(stmt.target, ast.Name)
            and stmt.target.id != param
            and (stmt.value is None or _literal(stmt.value))
        )
    if isinstance(stmt, ast.Assign):
        return all(isinstance(t, ast.Name) and t.id != param for t in stmt.targets) and (
            _literal(stmt.value) or (isinstance(stmt.value, ast.Name) and stmt.value.id in args)
        )
    if isinstance(stmt, ast.If):
        test = stmt.test
        return (
            isinstance(test, ast.Compare)
            and all(
                isinstance(o, ast.Constant) or (isinstance(o, ast.Name) and o.id in args)
                for o in [test.left, *test.comparators]
            )
            and all(_harmless(s, param, args) for s in [*stmt.body, *stmt.orelse])
        )
    return False


def _literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.List | ast.Tuple):
        return all(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _literal(k) for k in node.keys) and all(
            _literal(v) for v in node.values
        )
    return False


def _for_others(
    body: list[ast.stmt], param: str, names: dict[str, Any], args: set[str]
) -> tuple[tuple[type, ...], bool] | None:
    """What ``body`` does for a node outside the classes returned: (classes, True) when it returns
    the node itself, (classes, False) when it runs to its end; in both cases doing nothing else
    (only harmless statements and ``if`` tests that :func:`_false_for_others` or
    :func:`_true_for_others` decide for such nodes). None when that cannot be shown."""
    classes: tuple[type, ...] = ()
    for stmt in body:
        if _is_return_of(stmt, param):
            return classes, True
        if _harmless(stmt, param, args):
            continue
        if not isinstance(stmt, ast.If):
            return None
        if (found := _false_for_others(stmt.test, param, names)) is not None:
            taken = stmt.orelse  # other nodes take the else branch (an elif is an If in it)
        elif (found := _true_for_others(stmt.test, param, names)) is not None:
            taken = stmt.body
        else:
            return None
        if (branch := _for_others(taken, param, names, args)) is None:
            return None
        classes = _union([classes, found, branch[0]])  # type: ignore[assignment]
        if branch[1]:
            return classes, True
    return classes, False


@functools.cache
def triggers(fn: Callable[..., Any]) -> tuple[type, ...] | None:
    """The node classes outside which ``fn`` provably returns its first argument unchanged.

    Read from ``fn``'s source: for a node of no such class, ``fn`` runs only harmless statements
    (assignments of literals to local names, comparisons of its other arguments with literals)
    and ``if`` tests decided by ``isinstance`` on the node alone — ``if isinstance(e, T) and
    ...:`` (and ``elif`` chains of them) is false for other nodes, ``if not isinstance(e, T) or
    ...:`` / ``if not (isinstance(e, T) and ...):`` is true — until it reaches ``return e``.
    Anything else (other tests, calls before the test, work on the way) gives None: the rewrite
    always runs.
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None
    func = tree.body[0] if tree.body else None
    if not isinstance(func, ast.FunctionDef) or not func.args.args:
        return None
    param = func.args.args[0].arg
    every = [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]
    args = {a.arg for a in every} - {param}
    # names bound in the function (arguments, assignments, walruses, loops) shadow the module's:
    # they resolve to no class, and a local ``isinstance`` is not the builtin
    bound = (
        args
        | {param}
        | {
            n.id
            for n in ast.walk(func)
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)
        }
    )
    names = {**fn.__globals__, **dict.fromkeys(bound, _LOCAL)}
    body = list(func.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # docstring
    found = _for_others(body, param, names, args)
    if found is None or not found[1] or not found[0]:
        return None
    return found[0]


def steps(cursor: Any, params: Any) -> list[tuple[Callable[[Any], Any], Any]]:
    """fakesnow 0.12.1's ``_transform`` chain for ``cursor``, in order, as ``(function applied to
    each node, the rewrite whose source decides the skip)``; the connection's database, schema,
    variables and stages are read when the function runs, as fakesnow's chain reads them."""
    from fakesnow import transforms as t

    conn = cursor._conn  # noqa: SLF001
    out: list[tuple[Callable[[Any], Any], Any]] = [
        (lambda e: t.identifier(e, params), t.identifier),
        (t.upper_case_unquoted_identifiers, t.upper_case_unquoted_identifiers),
        (t.alter_session, t.alter_session),
        (lambda e: t.update_variables(e, variables=conn.variables), t.update_variables),
        (t.current_version, t.current_version),
        (lambda e: t.set_schema(e, current_database=conn.database), t.set_schema),
        (lambda e: t.create_database(e, db_path=conn.db_path), t.create_database),
        (t.extract_comment_on_table, t.extract_comment_on_table),
        (t.extract_comment_on_columns, t.extract_comment_on_columns),
        (t.information_schema_fs, t.information_schema_fs),
        (
            lambda e: t.information_schema_databases(e, current_schema=conn.schema),
            t.information_schema_databases,
        ),
    ]
    out += [
        (f, f)
        for f in [
            t.drop_schema_cascade, t.tag, t.semi_structured_types, t.try_parse_json, t.split,
            t.trim_cast_varchar, t.indices_to_json_extract, t.json_extract_cast_as_varchar,
            t.json_extract_cased_as_varchar, t.json_extract_precedence,
            t.flatten_value_cast_as_varchar, t.flatten, t.regex_replace, t.regex_substr,
            t.result_scan, t.sequence_nextval, t.values_columns, t.to_date, t.timestamp_offsets,
            t.to_decimal, t.to_timestamp, t.to_variant, t.object_construct, t.timestamp_ntz,
            t.float_to_double, t.integer_precision, t.extract_text_length, t.sample,
            t.array_size, t.random, t.array_agg_within_group, t.array_agg, t.object_agg,
            t.array_construct_etc, t.dateadd_date_cast, t.dateadd_string_literal_timestamp_cast,
            t.datediff_string_literal_timestamp_cast, t.show_databases, t.show_functions,
            t.show_procedures, t.show_parameters, t.show_warehouses,
        ]
    ]  # fmt: skip
    out += [
        (lambda e: t.show_schemas(e, conn.database), t.show_schemas),
        (lambda e: t.show_tables_etc(e, conn.database, conn.schema), t.show_tables_etc),
        (lambda e: t.show_columns(e, conn.database, conn.schema), t.show_columns),
        (lambda e: t.show_stages(e, conn.database, conn.schema), t.show_stages),
        (lambda e: t.show_sequences(e, conn.database, conn.schema), t.show_sequences),
        (lambda e: t.show_keys(e, conn.database, kind="PRIMARY"), t.show_keys),
        (lambda e: t.show_keys(e, conn.database, kind="UNIQUE"), t.show_keys),
        (lambda e: t.show_keys(e, conn.database, kind="FOREIGN"), t.show_keys),
    ]
    out += [
        (f, f)
        for f in [
            t.show_users, t.create_user, t.haversine, t.hex_string, t.sha256, t.create_clone,
            t.alias_in_join, t.alias_in_where, t.alter_table_strip_cluster_by,
            t.numeric_agg_implicit_cast,
        ]
    ]  # fmt: skip
    out += [
        (lambda e: t.create_stage(e, conn.database, conn.schema), t.create_stage),
        (lambda e: t.create_file_format(e, conn.database, conn.schema), t.create_file_format),
        (
            lambda e: t.list_stage(e, conn.database, conn.schema, conn.table_stages),
            t.list_stage,
        ),
        (
            lambda e: t.put_stage(e, conn.database, conn.schema, params, conn.table_stages),
            t.put_stage,
        ),
        (lambda e: t.create_table_as(e, cursor._duck_conn), t.create_table_as),  # noqa: SLF001
    ]
    return out


def transform(cursor: Any, expression: Any, params: Any) -> Any:
    """``FakeSnowflakeCursor._transform``, skipping the rewrites no node of the tree can trigger.

    The node classes present are collected in one walk; a rewrite that runs may add classes, so
    the set is collected again, once, before the next skip decision that depends on it (the
    rewrites that run in a row share no walk but their own).
    """
    present = _classes(expression)
    stale = False
    for fn, rewrite in steps(cursor, params):
        kinds = triggers(rewrite)
        if kinds is not None and not any(issubclass(c, kinds) for c in present):
            if stale:
                present, stale = _classes(expression), False
            if not any(issubclass(c, kinds) for c in present):
                continue
        expression = expression.transform(fn, copy=False)
        stale = True
    return expression


def _classes(expression: Any) -> set[type]:
    return {type(node) for node in expression.walk()}


def install(cursor_class: Any) -> bool:
    """Make ``cursor_class._transform`` (fakesnow's cursor) skip the rewrites that cannot apply;
    False, fakesnow untouched, when its chain is not the one :func:`steps` copies."""
    digest = chain_source_digest()
    if digest != CHAIN_SOURCE_SHA256:
        log.warning(
            "fakesnow's statement rewrites differ from the ones this version knows "
            "(sha256 %s); running them all, as fakesnow does",
            digest[:12],
        )
        return False

    def _transform(self: Any, expression: Any, params: Any) -> Any:
        return transform(self, expression, params)

    cursor_class._transform = _transform  # noqa: SLF001
    return True

"""The plan phase: find every source and check what can be checked without reading it all.

Nothing is written here, but for the UTF-8 copy of a file in another encoding
(:func:`transcode`, under the warehouse's staging folder; removed on a stop, and by the ingest when
it is done). A file that cannot be used at all stops the run with one :class:`IngestError` naming
the file, the problem and the fix.
"""

from __future__ import annotations

import logging
import re
import tempfile
import uuid
from pathlib import Path

from snowflake.snowpark import Session

from customer_analytics import audio, contract, readers
from customer_analytics import warehouse as wh
from customer_analytics.config import Params, check_identifier
from customer_analytics.contract import CALLS, Source, SourceStatus
from customer_analytics.ingest.common import IngestError, SourcePlan, fix_hint

log = logging.getLogger(__name__)


def load_raw_file(
    session: Session,
    path: Path,
    table: str,
    fmt: str,
    staging_dir: Path,
    *,
    source_file: str | None = None,
    columns: dict[str, str] | None = None,
    items: tuple[str, str] | None = None,
    root: Path | None = None,
    transcriber=None,
    delimiter: str = ",",
    names: tuple[str, ...] = (),
) -> readers.FileStats:
    """Load an input file into ``table``: one row per physical record, nothing dropped, nothing
    parsed away.

    The file is streamed once by :mod:`customer_analytics.readers` into a Parquet file under
    ``staging_dir`` (bounded memory; a large JSON-lines file into several, read side by side),
    which is then loaded by :func:`warehouse.load_staged` and deleted.
    Columns: ``SOURCE_FILE``, ``LINE_NO``, ``RECORD``, ``READ_REASON``, ``READ_FIELD`` and, for CSV
    and call transcripts, one VARCHAR column per contract field found.

    Args:
        fmt: ``jsonl``, ``csv`` or ``calls`` (``path`` is then a folder of ``*.txt`` transcripts).
        source_file: name written to ``SOURCE_FILE`` (default: the file name; never a full path).
        columns: CSV only: contract field -> expected column name.
        items: JSON lines only: ``(key path of the items list, table)``: each element is also loaded
            into that table, one row each (``readers.ITEM_COLUMNS``).
        root: the data folder: a file (or transcript) that resolves outside it is never read.
        transcriber: calls only: an :class:`audio.Transcriber` for the folder's recordings.
        delimiter: CSV only: the field separator (``SourcePlan.delimiter``).
        names: CSV only: the column names of a file without a header line (``column_names``).

    Returns:
        The reader's statistics; ``records`` equals the rows loaded (checked).

    Raises:
        IngestError: the file is outside ``root`` or not a regular file, or it changed while it
            was read (an export still being written).
    """
    table = check_identifier(table)
    name = source_file or path.name
    staged = staging_dir / f"{table}_{uuid.uuid4().hex}.parquet"
    staged_items = staging_dir / f"{table}_items_{uuid.uuid4().hex}.parquet"
    try:
        stats = _read(
            path,
            staged,
            name,
            fmt,
            columns,
            items,
            staged_items,
            root,
            transcriber,
            delimiter,
            names,
        )
        if items:
            wh.load_staged(session, stats.item_parts or [staged_items], check_identifier(items[1]))
        loaded = wh.load_staged(session, stats.parts or [staged], table)
    finally:  # a large JSON-lines file is staged in parts (readers.part_path)
        for f in (staged, staged_items):
            for part in f.parent.glob(f"{f.stem}*{f.suffix}"):
                part.unlink(missing_ok=True)
    if loaded != stats.records:
        raise wh.WarehouseError(
            f"{path.name}: {stats.records:,} records read but {loaded:,} rows loaded into {table}."
        )
    return stats


def _read(
    path: Path,
    staged: Path,
    name: str,
    fmt: str,
    columns: dict[str, str] | None,
    items: tuple[str, str] | None,
    staged_items: Path,
    root: Path | None,
    transcriber=None,
    delimiter: str = ",",
    names: tuple[str, ...] = (),
) -> readers.FileStats:
    """Stage one source with its reader; refuse what must not be read, and a file that changed."""
    try:
        if fmt == "jsonl":
            stats = readers.read_jsonl(
                path, staged, name, (items[0], staged_items) if items else None, root=root
            )
        elif fmt == "csv":
            stats = readers.read_csv(
                path, staged, name, columns or {}, root=root, delimiter=delimiter, names=names
            )
        elif fmt == "calls":
            stats = readers.read_calls(path, staged, name, root=root, transcriber=transcriber)
        else:
            raise ValueError(f"unknown format {fmt!r}")
    except readers.UnsafeInput as e:
        raise IngestError(f"{name}: refused: {e}. Fix: {_UNSAFE_FIX}.") from None
    if stats.changed:
        raise IngestError(
            f"{name}: the file changed while it was read (an export still being written?). "
            "Nothing was replaced. Fix: run again once the export is complete."
        )
    return stats


_UNSAFE_FIX = (
    "copy the file itself into data_dir (or set data_dir to the folder that holds it); "
    "links that lead out of data_dir and special files are never read"
)


def wanted_columns(src: Source, fmt: str, params: Params) -> dict[str, str]:
    """Contract field -> the column (CSV) or key path (JSON) to read it from."""
    mapping = params.columns.get(src.name, {})
    out = {
        f.name: mapping.get(f.name) or (f.json_path if fmt == "jsonl" and f.json_path else f.name)
        for f in src.fields
    }
    if src.name == "orders":
        out |= {attribute_field(k): v for k, v in params.customer_attributes.items()}
    return out


def quantity_alike(plan: SourcePlan, header: list[str]) -> str | None:
    """The first column of ``header`` that is not mapped to a field but is named like a quantity
    (a word of :data:`contract.QUANTITY_WORDS`): ``Qty``, ``Menge``, ``Units sold``."""
    used = {readers.normalise(c) for c in plan.wanted.values()}
    for h in header:
        words = set(re.split(r"[\W\d_]+", readers.normalise(h)))
        if readers.normalise(h) not in used and words & contract.QUANTITY_WORDS:
            return h
    return None


def quantity_mapped(plan: SourcePlan) -> bool:
    """Whether ``columns`` maps ``quantity`` to a column: absent from the file, it is a missing
    required column (a typo, not a file without quantities)."""
    return "quantity" in plan.settings.get("mapped", ())


def one_unit(plan: SourcePlan, header: list[str] | None, where: str) -> None:
    """An orders source without a quantity (no column; no key on any JSON item) and no mapping of
    it (:func:`quantity_mapped`): every line is one unit (``plan.one_unit``), as in exports with a
    row per unit, unless ``header`` has an unmapped column named like a quantity
    (:func:`quantity_alike`): reading one unit per line would lose it, so the run stops."""
    alike = quantity_alike(plan, header or [])
    if alike is not None:
        raise IngestError(
            f"{where}: no column 'quantity', but column '{alike}' looks like one, and reading "
            "every line as one unit would lose it. Fix: map it in env.yaml: columns: "
            f"{{{plan.source.name}: {{quantity: {alike}}}}} (docs/data_contract.md)."
        )
    plan.one_unit = True


def lacks_quantity(plan: SourcePlan, have: set[str]) -> bool:
    """Whether an orders source's columns (``have``: normalised names) hold no quantity."""
    wanted = plan.wanted.get("quantity")
    return wanted is not None and readers.normalise(wanted) not in have


def missing_columns(plan: SourcePlan, have: set[str]) -> list[str]:
    """Required fields (alternatives joined by ``|``) of a CSV file or table whose columns are
    ``have`` (normalised names) that it lacks: from the contract, plus a mapped quantity
    (:func:`quantity_mapped`), less customer_id for reviews read through their order
    (:func:`by_order`, which marks the plan so)."""
    missing = [
        f
        for f in required_fields(plan.source, "csv")
        if not any(readers.normalise(plan.wanted[x]) in have for x in f.split("|"))
    ]
    if lacks_quantity(plan, have) and quantity_mapped(plan):
        missing.append("quantity")
    if missing[:1] == ["customer_id"] and by_order(plan, have):
        missing = missing[1:]
    return missing


def by_order(plan: SourcePlan, have: set[str]) -> bool:
    """Reviews without a customer_id column but with an order_id one (``have``: the normalised
    column names): each review's customer is its order's (``plan.by_order``)."""
    if plan.source.name != "reviews" or readers.normalise(plan.wanted["order_id"]) not in have:
        return False
    plan.by_order = True
    return True


def attribute_field(name: str) -> str:
    """The staged field of a customer attribute read from the order lines (``attr_<name>``)."""
    return f"attr_{name}"


def required_fields(src: Source, fmt: str) -> list[str]:
    """Fields a file of format ``fmt`` must have, from the contract; alternatives joined by ``|``.

    JSON lines: record-level fields needed on every line (item fields are checked per item).
    CSV: fields needed on every row, plus one of each group of stand-ins (``unit_price|amount``,
    ``rating|text``) at the place of its first member.
    """
    if fmt == "jsonl":
        return [f.name for f in src.fields if f.level == "record" and f.need in ("always", "jsonl")]
    out: list[str] = []
    for f in src.fields:
        if f.group:
            alternatives = "|".join(g.name for g in src.fields if g.group == f.group)
            if alternatives not in out:
                out.append(alternatives)
        elif f.need == "always" and f.kind != "list":
            out.append(f.name)
    return out


#: A header cell that is a value, not a column name: an e-mail address, a date, a number.
_EMAIL_CELL = re.compile(r"[^@\s]+@[^@\s]+")
_DATE_CELL = re.compile(r"\s*\d{1,4}[-./]\d{1,2}[-./]\d{1,4}([ T].*)?|\s*\d{8}(T\d{4,6})?\s*")
_NUMBER_CELL = re.compile(r"\s*[-+]?[\d.,' ]*\d[\d.,' ]*\s*")
#: At most this many header cells, of at most this many characters, are quoted in a message.
SHOWN_COLUMNS, SHOWN_CHARS = 30, 40


def _value_kind(cell: str) -> str | None:
    """What a header cell looks like when it is a value rather than a column name."""
    if _EMAIL_CELL.search(cell):
        return "an e-mail address"
    if _DATE_CELL.fullmatch(cell):
        return "a date"
    if _NUMBER_CELL.fullmatch(cell):
        return "a number"
    return None


def header_is_data(header: list[str]) -> str | None:
    """What makes a CSV's first line look like a record (``None`` when it may be column names)."""
    return next((k for c in header if (k := _value_kind(c))), None)


def header_is_shown(header: list[str], second: list[str] | None, names: set[str]) -> bool:
    """Whether a message may quote the header cells: they look like column names and not like a
    record — no cell is a value, and a cell is a name the run knows (a contract field or a mapped
    column) or the next record holds values where the header holds names. A header that is really
    the first customer ("Anna,Schmidt,Berlin") is therefore never quoted."""
    if header_is_data(header):
        return False
    if any(readers.normalise(c) in names for c in header):
        return True
    return second is not None and any(_value_kind(c) for c in second)


def columns_text(header: list[str], shown: bool) -> str:
    """The header for a message: quoted when :func:`header_is_shown`, else only counted."""
    if not shown:
        return (
            f"The first line has {len(header)} field(s), not listed: it does not look like column "
            "names (it may be the first record)."
        )
    cells = [c if len(c) <= SHOWN_CHARS else c[: SHOWN_CHARS - 1] + "…" for c in header]
    more = len(cells) - SHOWN_COLUMNS
    text = ", ".join(repr(c) for c in cells[:SHOWN_COLUMNS])
    return f"Columns in the file: {text}{f' and {more:,} more' if more > 0 else ''}."


def _known_names(plan: SourcePlan) -> set[str]:
    return {readers.normalise(x) for x in (*plan.wanted.values(), *plan.source.field_names)}


def _check_csv_header(plan: SourcePlan) -> None:
    src, path = plan.source, plan.local_path
    readable, root = plan.readable
    given = list(plan.names) or None
    plan.delimiter = readers.detect_delimiter(
        readable, plan.wanted.values(), root, len(given) if given else None
    )
    head = readers.read_head(readable, 1 if given else 2, root, plan.delimiter)
    if given:  # no header line: the first line is a record
        _check_names(plan, given, head[0] if head else None)
        head = [given, *head]
    header = head[0] if head else None
    if not header or not any(h.strip() for h in header):
        raise IngestError(
            f"{path}: no readable header line (the first line is empty, longer than "
            f"{contract.MAX_LINE_BYTES // 2**20} MB, or opens a quote it never closes). Fix: the "
            "first line of a CSV must name its columns."
        )
    if any("\x00" in h or any("\udc80" <= c <= "\udcff" for c in h) for h in header):
        raise IngestError(
            f"{path}: the header is not UTF-8 text; this does not look like a CSV file. "
            "Fix: export the file as CSV in UTF-8."
        )
    _check_duplicates(plan, header)
    have = {readers.normalise(h) for h in header}
    shown = header_is_shown(header, head[1] if len(head) > 1 else None, _known_names(plan))
    missing = missing_columns(plan, have)
    if missing:
        names = " or ".join(f"'{plan.wanted[x]}'" for x in missing[0].split("|"))
        if names.replace("'", "") != missing[0].replace("|", " or "):
            names += f" (contract field '{missing[0].replace('|', ' or ')}')"
        fld = missing[0].split("|")[0]
        add = ""
        if header_is_data(header):
            # the required columns, and the quantity (optional, but a log without it is rare)
            shown_fields = {f.split("|")[0] for f in required_fields(src, "csv")}
            shown_fields |= {"quantity"} & set(src.field_names)
            order = list(src.field_names)
            needed = ", ".join(plan.wanted[f] for f in sorted(shown_fields, key=order.index))
            add = (
                f"add the header line naming the columns ({needed}, …), or name them in order "
                f"in env.yaml: column_names: {{{src.name}: [{needed}, …]}}, or "
            )
        raise IngestError(
            f"{path}: required column {names} not found. {_header_advice(header, shown)} "
            f"Fix: {add}{fix_hint(src, fld)}."
        )
    if lacks_quantity(plan, have):
        one_unit(plan, header, str(path))
    absent = [
        c
        for k, c in plan.wanted.items()
        if k.startswith("attr_") and readers.normalise(c) not in have
    ]
    if absent:
        raise IngestError(
            f"{path}: column '{absent[0]}' (customer_attributes) not found. "
            f"{columns_text(header, shown)} Fix: set customer_attributes to columns of the "
            "orders file."
        )
    if len(head) < 2 or not _has_data(plan):
        raise IngestError(
            f"{path}: the file has a header but no data rows. Fix: re-export it"
            + ("" if src.required else f", or remove it to run without {src.name}")
            + "."
        )


def _check_names(plan: SourcePlan, names: list[str], first: list[str] | None) -> None:
    """A file without a header line (``column_names``): its first record must have one field per
    name. Field values are never shown (they may be personal data)."""
    if first is not None and len(first) == len(names):
        return
    got = "cannot be read as a record" if first is None else f"has {len(first):,} field(s)"
    raise IngestError(
        f"{plan.path}: column_names gives {len(names):,} columns, but the first line {got} "
        f"under any separator ({_SEPARATORS}). Fix: list one name per column of the file in "
        f"column_names: {{{plan.source.name}: [...]}}, or set it to null if the first line names "
        "the columns."
    )


_SEPARATORS = "comma, semicolon, tab, pipe, runs of spaces"


def _header_advice(header: list[str], shown: bool) -> str:
    """The header part of a missing-column stop: the columns, or why they are not listed."""
    what = header_is_data(header)
    if what:
        return (
            f"The first line looks like a record, not column names (a field of it is {what}): "
            f"the file probably has no header line. Its {len(header)} field(s) are not shown "
            "(they may be personal data)."
        )
    hint = ""
    if len(header) == 1 and any(d in header[0] for d in ";\t|"):
        hint = (
            " The header is a single column containing ';', tab or '|' although those separate "
            "fields too: check that the export separates every field the same way."
        )
    return columns_text(header, shown) + hint


def _check_duplicates(plan: SourcePlan, header: list[str]) -> None:
    """Stop when a column the run reads is named twice: which one holds the field is ambiguous."""
    for fld, col in plan.wanted.items():
        want = readers.normalise(col)
        where = [i + 1 for i, h in enumerate(header) if readers.normalise(h) == want]
        if len(where) > 1:
            name = fld.removeprefix("attr_")
            setting = (
                f"customer_attributes: {{{name}: <your column>}}"
                if fld.startswith("attr_")
                else f"columns: {{{plan.source.name}: {{{name}: <your column>}}}}"
            )
            raise IngestError(
                f"{plan.path}: the header names the column '{col}' {len(where)} times (columns "
                f"{', '.join(map(str, where[:5]))}; names are compared ignoring case and "
                f"surrounding spaces): which one holds {name} is ambiguous. Fix: rename or remove "
                f"the extra column in the export, or map {name} to another column ({setting})."
            )


def _has_data(plan: SourcePlan) -> bool:
    with readers.open_input(*plan.readable) as f:
        lines = readers.physical_lines(f, _NoDigest())
        records = readers.csv_records(lines, not plan.names, plan.delimiter)
        if not plan.names:
            next(records, None)
        return any(text.strip() for _, text, _ in records)


class _NoDigest:
    def update(self, _: bytes) -> None:
        pass


def _check_jsonl_start(plan: SourcePlan) -> None:
    """Refuse a file that is one JSON array, or whose first lines are not JSON at all."""
    path, seen, good = plan.local_path, 0, 0
    with readers.open_input(*plan.readable) as f:
        for _, raw, too_long in readers.physical_lines(f, _NoDigest()):
            if too_long or not raw.strip():
                continue
            text = raw.decode("utf-8", "replace").strip()
            if seen == 0 and text.startswith("[") and readers.json_problem(text) is not None:
                raise IngestError(
                    f"{path}: the file is one JSON array, not JSON lines (one object per line). "
                    "Fix: "
                    f"convert it, e.g. `jq -c '.[]' {path.name} > {path.stem}.jsonl`, and set "
                    f"{plan.source.setting} to the new file."
                )
            seen += 1
            good += readers.json_problem(text) is None
            if seen >= 5:
                break
    if seen and not good:
        raise IngestError(
            f"{path}: none of the first {seen} lines is a JSON object: this is not a JSON-lines "
            "file. "
            f"Fix: point {plan.source.setting} at the right file, or give it the extension of its "
            f"real format ({', '.join(sorted(contract.FORMATS))})."
        )


def check_encoding(plan: SourcePlan) -> None:
    """Stop on a file that is not text, saying what it is and how to re-export it
    (:func:`readers.sniff`: an archive or other binary data, CR-only line endings, nothing but
    blank lines); read a file in another encoding through a UTF-8 copy (:func:`transcode`).

    The encoding is the declared one (``encodings``), else detected: UTF-8; UTF-16/32 by its
    byte-order mark or its zero bytes; a file with several bytes that are not UTF-8 and no
    character beyond ASCII that is (:func:`readers.scan_utf8`, the whole file) as
    :data:`readers.LEGACY_ENCODING`. A UTF-8 file with a few damaged lines stays UTF-8: those lines
    are rejected with their reason.
    """
    src = plan.source
    what = readers.sniff_file(plan.local_path, plan.root)
    if what is not None and (what.kind not in ("utf16", "legacy") or plan.encoding == "utf-8"):
        fix = what.fix.replace("the setting", src.setting).replace("<source>", src.name)
        raise IngestError(f"{plan.path}: the file {what.what}. Fix: {fix}.")
    if plan.encoding == "utf-8":  # declared: no detection, damaged lines are rejected
        return
    if plan.encoding is not None:
        encoding, how = plan.encoding, "declared"
    elif what is not None and what.kind == "utf16":
        encoding = what.codec or "utf-16"
        how = "byte-order mark" if "with a byte-order mark" in what.what else "detected"
    else:
        scan = readers.scan_utf8(plan.local_path, plan.root)
        if not scan.legacy:
            return
        encoding, how = readers.LEGACY_ENCODING, f"detected: {scan.bad:,} bytes are not UTF-8"
    transcode(plan, encoding, how)
    again = readers.sniff_file(*plan.readable)
    if again is not None:  # e.g. CR-only lines, or a declared encoding that is not the file's
        fix = again.fix.replace("the setting", src.setting).replace("<source>", src.name)
        raise IngestError(
            f"{plan.path}: read as {encoding} ({how}), the file {again.what}. Fix: {fix}, or "
            f"declare its encoding (encodings: {{{src.name}: <encoding>}})."
        )


def _copy_path(plan: SourcePlan, suffix: str) -> Path:
    """A new file name for a copy of the plan's file in its scratch folder (else the system's
    temporary folder: never beside the data)."""
    scratch = plan.scratch or Path(tempfile.gettempdir()) / "customer_analytics_transcoded"
    return scratch / f"{plan.source.name}_{uuid.uuid4().hex}{suffix}"


def transcode(plan: SourcePlan, encoding: str, how: str) -> None:
    """Read the plan's file through a UTF-8 copy in its scratch folder (removed by
    :func:`drop_copies`); its line numbers, size and SHA-256 stay the original's."""
    dest = _copy_path(plan, plan.local_path.suffix)
    try:
        plan.transcoded = readers.transcode(plan.local_path, dest, encoding, plan.root)
    except readers.UnsafeInput as e:
        raise IngestError(f"{plan.path}: refused: {e}. Fix: {_UNSAFE_FIX}.") from None
    plan.encoding_how = how
    log.info("%s: read as %s (%s) through a UTF-8 copy", plan.name, encoding, how)


def convert_workbook(plan: SourcePlan) -> None:
    """Read a spreadsheet workbook through a CSV copy (:func:`readers.workbook_to_csv`), removed
    by :func:`drop_copies`; its size and SHA-256 stay the workbook's."""
    try:
        plan.transcoded, book = readers.workbook_to_csv(
            plan.local_path, _copy_path(plan, ".csv"), plan.root
        )
    except readers.UnsafeInput as e:
        raise IngestError(f"{plan.path}: refused: {e}. Fix: {_UNSAFE_FIX}.") from None
    except ValueError as e:  # the copy is already removed
        raise IngestError(
            f"{plan.path}: {e}. Fix: open it in the spreadsheet and save it again (or 'Save as "
            "CSV UTF-8')."
        ) from None
    if not book.sheets:
        drop_copies([plan])
        raise IngestError(
            f"{plan.path}: the workbook has no visible worksheet with a header row. Fix: put the "
            f"{plan.source.name} on the first sheet, column names in its first row."
        )
    plan.workbook = book
    log.info(
        "%s: workbook read through a CSV copy: sheets %s (%s rows)%s",
        plan.name,
        ", ".join(book.sheets),
        f"{book.rows:,}",
        f"; not read (another header): {', '.join(book.skipped)}" if book.skipped else "",
    )


def drop_copies(plans) -> None:
    """Remove the copies :func:`transcode` and :func:`convert_workbook` made."""
    for p in plans:
        if p.transcoded is not None:
            p.transcoded.path.unlink(missing_ok=True)


def plan_sources(params: Params) -> list[SourcePlan]:
    """Find and pre-check every source (the plan phase): raise :class:`IngestError` on unusable
    input.

    Nothing is written but UTF-8 copies of files in other encodings (:func:`transcode`; the caller
    removes them with :func:`drop_copies`). Optional sources that are not there come back with
    status ``missing`` (or ``disabled`` when their setting is empty).
    """
    plans: list[SourcePlan] = []
    try:
        for src in contract.SOURCES:
            plans.append(plan_source(src, params))
    except BaseException:
        drop_copies(plans)
        raise
    return plans


def plan_source(src: Source, params: Params, *, listing: bool = False) -> SourcePlan:
    """The plan of one source: a warehouse table (``<source>_table``), a file on a Snowflake stage
    (``@stage/path``), a file or folder in ``data_dir``, or nothing.

    ``listing``: only to list the sources (the 01 sources table): a workbook is not converted
    again (seconds for a large one; the run has read it).

    Raises:
        IngestError: the source cannot be used at all.
    """
    declared = params.date_formats.get(src.name, {})
    table = getattr(params, f"{src.name}_table", None)
    if table:
        return SourcePlan(
            src,
            table,
            None,
            "table",
            SourceStatus.LOADED,
            wanted_columns(src, "table", params),
            declared=declared,
            settings=_settings(src, params),
        )
    name = getattr(params, src.setting)
    if not name:
        return SourcePlan(src, None, None, None, SourceStatus.DISABLED)
    if name.startswith("@"):
        return _plan_stage(src, name, params)
    data_dir = params.data_dir
    if not data_dir.is_dir():
        if src.required:
            raise IngestError(
                f"data_dir {data_dir} does not exist. Fix: set data_dir in env.yaml (or "
                "--env--data_dir) to the "
                f"folder holding your files (or read {src.name} from a table: {src.name}_table); "
                "for the demo "
                "data run `make demo-data`."
            )
        return SourcePlan(src, name, data_dir / name, None, SourceStatus.MISSING)
    if src is CALLS:
        return _plan_calls(src, name, data_dir, declared, params)
    path = contract.locate(data_dir, name) or data_dir / name
    if path.name != Path(name).name:
        log.warning("%s: not found; using %s instead", data_dir / name, path)
        name = (Path(name).parent / path.name).as_posix()
    if not path.exists():
        if src.required:
            raise IngestError(
                f"{path}: the {src.name} file is missing (it is the only required input). Fix: set "
                f"{src.setting} "
                f"and data_dir in env.yaml to your export (or {src.name}_table to a table); for "
                "the demo data run "
                "`make demo-data`."
            )
        log.warning("%s: not found; running without %s", path, src.name)
        return SourcePlan(src, name, path, None, SourceStatus.MISSING)
    return _plan_file(src, name, path, params, listing)


def _plan_stage(src: Source, name: str, params: Params) -> SourcePlan:
    """A file on a Snowflake stage: fetched (GET) into the staging folder when loaded, then read as
    a file."""
    if params.is_local:
        raise IngestError(
            f"{src.setting} = {name}: files on a stage (@…) exist only on Snowflake. Fix: with "
            f"connection: local, use a file in data_dir or a table ({src.name}_table)."
        )
    fmt = contract.file_format(Path(name))
    if fmt not in src.formats:
        raise IngestError(
            f"{name}: unsupported file type for {src.name}; accepted: "
            f"{', '.join(e for e, f in contract.FORMATS.items() if f in src.formats)}."
        )
    return SourcePlan(
        src,
        name,
        None,
        fmt,
        SourceStatus.LOADED,
        wanted_columns(src, fmt, params),
        declared=params.date_formats.get(src.name, {}),
        settings=_settings(src, params),
        encoding=params.encodings.get(src.name),
        names=params.column_names.get(src.name, ()),
    )


def _plan_calls(
    src: Source, name: str, data_dir: Path, declared: dict, params: Params
) -> SourcePlan:
    """The calls folder: its transcripts and recordings (:mod:`customer_analytics.audio`: with the
    transcriber's settings), and the entries that are not read (counted by reason)."""
    path = data_dir / name
    if path.exists() or path.is_symlink():
        if not readers.within(path, data_dir):
            raise IngestError(
                f"{path}: refused: the calls folder resolves to a place outside data_dir (a link "
                f"or '..'); nothing outside the data folder is read. Fix: {_UNSAFE_FIX}."
            )
        if not path.is_dir():
            raise IngestError(
                f"{path}: expected a folder of transcripts for {src.setting}, found a file. Fix: "
                f"set {src.setting} to the folder holding the *.txt transcripts (or null)."
            )
    scan = readers.scan_calls(path)
    if scan.skipped:
        log.warning(
            "%s: %s entries not read (%s)",
            name,
            sum(scan.skipped.values()),
            "; ".join(f"{n} {r}" for r, n in scan.skipped.items()),
        )
    status = SourceStatus.LOADED if scan.files else SourceStatus.MISSING
    return SourcePlan(
        src,
        name,
        path,
        "calls",
        status,
        declared=declared,
        root=data_dir,
        skipped=scan.skipped,
        settings=audio.settings(params),
    )


def _plan_file(
    src: Source, name: str, path: Path, params: Params, listing: bool = False
) -> SourcePlan:
    fmt = contract.file_format(path)
    try:
        readers.check_input(path, params.data_dir)
    except readers.UnsafeInput as e:
        if path.is_dir() and readers.within(path, params.data_dir):
            raise IngestError(
                f"{path}: expected a file for {src.setting}, found a folder. Fix: set "
                f"{src.setting} to the file name."
            ) from None
        raise IngestError(f"{path}: refused: {e}. Fix: {_UNSAFE_FIX}.") from None
    if fmt not in src.formats:
        accepted = ", ".join(e for e, f in contract.FORMATS.items() if f in src.formats)
        raise IngestError(
            f"{path}: unsupported file type '{path.suffix or '(none)'}' for {src.name}; accepted: "
            f"{accepted}. Fix: export the data as CSV or JSON lines (spreadsheets: 'Save as CSV "
            "UTF-8')."
        )
    if path.stat().st_size == 0:
        raise IngestError(
            f"{path}: the file is empty (0 bytes). Fix: re-export it"
            + ("" if src.required else f", or remove it to run without {src.name}")
            + "."
        )
    plan = SourcePlan(
        src,
        name,
        path,
        fmt,
        SourceStatus.LOADED,
        wanted_columns(src, fmt, params),
        declared=params.date_formats.get(src.name, {}),
        settings=_settings(src, params),
        root=params.data_dir,
        encoding=params.encodings.get(src.name),
        scratch=params.warehouse_dir / "staging" / "transcoded",
        names=params.column_names.get(src.name, ()),
    )
    if listing and path.suffix.lower() in contract.WORKBOOK_SUFFIXES:
        return plan
    check_file(plan)
    return plan


def check_file(plan: SourcePlan) -> None:
    """Pre-check a file's start: what it is (:func:`check_encoding`), then its CSV header, or its
    first JSON lines. A UTF-8 copy made for it does not outlive a stop."""
    try:
        if plan.local_path.suffix.lower() in contract.WORKBOOK_SUFFIXES:
            convert_workbook(plan)
        else:
            check_encoding(plan)
        if plan.fmt == "csv":
            _check_csv_header(plan)
        else:
            _check_jsonl_start(plan)
    except BaseException:
        drop_copies([plan])
        raise


def _settings(src: Source, params: Params) -> dict:
    """The parameters a source's checks depend on besides its columns and dates."""
    if src.name != "orders":
        return {}
    return {
        "returns": params.returns,
        "return_order_prefix": params.return_order_prefix,
        "guest_ids": params.guest_ids,
        "attributes": list(params.customer_attributes),
        "mapped": sorted(params.columns.get(src.name, {})),  # fields columns maps explicitly
        "max_product_types": params.max_product_types,
    }

"""A corpus of broken inputs, generated from the seeded demo data: every rejection reason, plus
the awkward-but-valid cases (BOM + CRLF, quoted newlines, non-ASCII, huge text, time zones).

:func:`corrupt` copies the demo files, corrupting about 2% of the rows of each source, and
returns what it did: for each corrupted row, the exact (file, line, item, field, reason) the
ingest must report. Rows it changed but expects to be accepted are listed too.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from customer_analytics import contract
from customer_analytics.contract import MAX_ITEMS, MAX_LINE_BYTES, Excluded, Reason

R = Reason


@dataclass(frozen=True)
class Expected:
    """One row the ingest must reject (reason), exclude (an :class:`Excluded` reason) or accept
    (reason None)."""

    source: str
    file: str
    line: int
    item: int | None
    field: str | None
    reason: str | None
    what: str


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _csv_line(values: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(
        values
    )  # fields holding a line break get quoted
    return buf.getvalue()[:-2]


def corrupt(raw: Path, out: Path, seed: int = 3, n_calls: int = 250) -> list[Expected]:
    """Write a corrupted copy of the demo data in ``raw`` to ``out``; return the expectations."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    expected: list[Expected] = []
    bad_customers = _customers(raw / "customers.csv", out / "customers.csv", rng, expected)
    good = _good_customer_ids(raw / "customers.csv", bad_customers)
    _orders(raw / "orders.jsonl", out / "orders.jsonl", rng, expected)
    _reviews(raw / "reviews.jsonl", out / "reviews.jsonl", rng, expected)
    _calls(out / "calls", rng, sorted(good), n_calls, expected)
    return expected


def _good_customer_ids(path: Path, bad: set[str]) -> set[str]:
    with path.open(encoding="utf-8", newline="") as f:
        return {r["customer_id"] for r in csv.DictReader(f)} - bad


# ----------------------------------------------------------------------- customers.csv (BOM, CRLF)
def _customers(src: Path, dst: Path, rng: random.Random, expected: list[Expected]) -> set[str]:
    """Corrupt customers.csv; return the ids whose only row gets rejected (their orders become
    unknown)."""
    with src.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    col = {h: i for i, h in enumerate(header)}
    edits: dict[int, tuple] = {}  # body index -> (kind, payload)
    kinds = [
        "missing_id",
        "feb30",
        "us_date",
        "old_date",
        "by_text",
        "by_frac",
        "by_old",
        "bad_utf8",
        "nul",
        "few_fields",
        "unclosed",
        "lone_cr",
        "trailing_comma",
        "multiline",
        "cjk",
        "quoted",
        "spaces",
        "ts_signup",
        "zwsp_id",
        "bidi_id",
        "crlf_name",
        "tab_id",
    ]
    picks = rng.sample(range(5, len(body) - 5), 2 * len(kinds))
    for k, idx in enumerate(picks):
        edits[idx] = kinds[k % len(kinds)]
    dup_source = sorted(set(range(len(body))) - set(edits))[:2]  # rows to repeat later (duplicates)
    lines: list[bytes] = [("\ufeff" + _csv_line(header)).encode()]
    bad_ids: set[str] = set()

    def add(source_line: bytes | list[bytes], fld, reason, what):
        first = len(lines) + 1
        lines.extend(source_line if isinstance(source_line, list) else [source_line])
        expected.append(Expected("customers", "customers.csv", first, None, fld, reason, what))

    for i, row in enumerate(body):
        row = list(row)
        kind = edits.get(i)
        if i == len(body) // 2:
            add(b"", "line", R.EMPTY_LINE, "blank line")
        if i == len(body) // 3:
            for j in dup_source:
                add(
                    _csv_line(body[j]).encode(), "customer_id", R.DUPLICATE_CUSTOMER, "repeated row"
                )
        if kind is None:
            lines.append(_csv_line(row).encode())
            continue
        cid = row[col["customer_id"]]
        enc, fld, reason = None, None, None
        if kind == "missing_id":
            row[col["customer_id"]], fld, reason = "", "customer_id", R.MISSING
        elif kind == "feb30":
            row[col["signup_date"]], fld, reason = "2026-02-30", "signup_date", R.BAD_DATE
        elif kind == "us_date":
            row[col["signup_date"]], fld, reason = "03/01/2026", "signup_date", R.BAD_DATE
        elif kind == "old_date":
            row[col["signup_date"]], fld, reason = "1899-12-31", "signup_date", R.DATE_RANGE
        elif kind == "by_text":
            row[col["birth_year"]], fld, reason = "19x0", "birth_year", R.NOT_A_NUMBER
        elif kind == "by_frac":
            row[col["birth_year"]], fld, reason = "1980.5", "birth_year", R.NOT_WHOLE
        elif kind == "by_old":
            row[col["birth_year"]], fld, reason = "1850", "birth_year", R.OUT_OF_RANGE
        elif kind == "bad_utf8":
            enc = _csv_line(row).encode().replace(row[col["name"]].encode(), b"Ren\xe9 \xff\xfe", 1)
            fld, reason = "name", R.INVALID_UTF8
        elif kind == "nul":
            row[col["email"]], fld, reason = row[col["email"]] + "\x00", "email", R.NUL_BYTE
        elif kind == "few_fields":
            row, fld, reason = row[:-2], "line", R.CSV_FIELD_COUNT
        elif kind == "unclosed":
            enc = _csv_line(row).encode().replace(b",", b',"', 1)
            fld, reason = "line", R.CSV_UNCLOSED_QUOTE
        elif kind == "lone_cr":
            enc = _csv_line(row).encode().replace(row[col["name"]].encode(), b"Anna\rMaria", 1)
            fld, reason = "line", R.CSV_SYNTAX
        elif kind == "trailing_comma":
            enc = _csv_line(row).encode() + b","
        elif kind == "multiline":
            row[col["name"]] = row[col["name"]] + "\nsecond line"
        elif kind == "cjk":
            row[col["name"]] = "山田 太郎 🍪"
        elif kind == "quoted":
            row[col["name"]] = 'Smith, "Jr"'
        elif kind == "spaces":
            row[col["customer_id"]], row[col["country"]] = f"  {cid} ", "de"
        elif kind == "ts_signup":
            row[col["signup_date"]] = row[col["signup_date"]] + "T08:30:00"
        elif kind in ("zwsp_id", "bidi_id", "tab_id"):  # invisible in any viewer: a look-alike id
            mark = {"zwsp_id": "\u200b", "bidi_id": "\u202e", "tab_id": "\t"}[kind]
            row[col["customer_id"]] = cid[:2] + mark + cid[2:]
            fld, reason = "customer_id", R.INVISIBLE_IN_ID
        elif kind == "crlf_name":  # a CRLF inside a quoted field: kept exactly (issue 15.17)
            row[col["name"]] = row[col["name"]] + "\r\nc/o Meier"
        enc = enc if enc is not None else _csv_line(row).encode()
        if reason:
            bad_ids.add(cid)
        sep = b"\r\n" if b"\r\n" in enc else b"\n"
        add(enc.split(sep) if sep in enc else enc, fld, reason, kind)
    dst.write_bytes(b"\r\n".join(lines) + b"\r\n")
    return bad_ids


# --------------------------------------------------------------------------- orders.jsonl
ORDER_KINDS = [
    "truncated",
    "trailing_comma",
    "array",
    "bad_utf8",
    "nan",
    "surrogate",
    "items_empty",
    "items_missing",
    "items_object",
    "qty_zero",
    "qty_negative",
    "qty_fraction",
    "qty_text",
    "price_text",
    "price_euro",
    "price_negative",
    "ts_missing",
    "ts_month13",
    "ts_9999",
    "customer_null",
    "unknown_customer",
    "product_missing",
    "ship_free",
    "order_id_missing",
    "tz",
    "date_only",
    "huge_note",
    "qty_string",
    "deep",
    "deep_ok",
    "huge_number",
    "big_int",
    "nul_coupon",
    "nul_raw",
    "customer_object",
    "customer_true",
    "customer_list",
    "order_id_zwsp",
    "qty_bool",
    "product_object",
    "dup_key_deep",
    "bom_line",
    "control_coupon",
    "emoji_coupon",
]


def _orders(src: Path, dst: Path, rng: random.Random, expected: list[Expected]) -> None:
    raw_lines = src.read_text(encoding="utf-8").splitlines()
    picks = rng.sample(range(10, len(raw_lines) - 10), 4 * len(ORDER_KINDS))
    edits = {idx: ORDER_KINDS[k % len(ORDER_KINDS)] for k, idx in enumerate(picks)}
    repeat = sorted(set(range(len(raw_lines))) - set(edits))[:3]
    out: list[bytes] = []

    def exp(line, item, fld, reason, what):
        expected.append(Expected("orders", "orders.jsonl", line, item, fld, reason, what))

    for i, text in enumerate(raw_lines):
        if i == len(raw_lines) // 2:
            out.append(b"")
            exp(len(out), None, "line", R.EMPTY_LINE, "blank line")
            out.append(b"[1, 2]")
            exp(len(out), None, "line", R.NOT_AN_OBJECT, "array line")
            big = json.loads(text)
            big["order_id"] += "-big"
            one = {"product": "gift_box", "quantity": 1, "unit_price": 1.0}
            big["items"] = [one] * (MAX_ITEMS + 1)
            out.append(_dumps(big).encode())
            exp(len(out), None, "items", R.TOO_MANY_ITEMS, "an order of 10,001 items")
        if i == 2 * len(raw_lines) // 3:
            for j in repeat:
                out.append(raw_lines[j].encode())
                for k in range(len(json.loads(raw_lines[j])["items"])):
                    exp(len(out), k, "order_id", R.DUPLICATE_ORDER, "repeated order")
        kind = edits.get(i)
        o = json.loads(text)
        n = len(o["items"])
        line = len(out) + 1
        if kind is None:
            out.append(text.encode())
            continue
        enc = None
        whole = None  # (field, reason) for every item of the line
        if kind == "truncated":
            enc, single = text[: len(text) // 2].encode(), ("line", R.MALFORMED_JSON)
        elif kind == "trailing_comma":
            enc, single = (text + ",").encode(), ("line", R.MALFORMED_JSON)
        elif kind == "array":
            enc, single = ("[" + text + "]").encode(), ("line", R.NOT_AN_OBJECT)
        elif kind == "bad_utf8":
            o["coupon"] = "XMAS"
            enc, single = (
                _dumps(o).replace("XMAS", "X\udcffMAS").encode("utf-8", "surrogateescape"),
                ("line", R.INVALID_UTF8),
            )
        elif kind == "nan":
            o["items"][0]["quantity"] = "__NAN__"
            enc, single = _dumps(o).replace('"__NAN__"', "NaN").encode(), ("line", R.MALFORMED_JSON)
        elif kind == "surrogate":
            o["coupon"] = "__S__"
            enc, single = _dumps(o).replace("__S__", "\\ud800").encode(), ("line", R.MALFORMED_JSON)
        elif kind == "items_empty":
            o["items"], single = [], ("items", R.NO_ITEMS)
        elif kind == "items_missing":
            del o["items"]
            single = ("items", R.MISSING)
        elif kind == "items_object":
            o["items"], single = o["items"][0], ("items", R.NOT_A_LIST)
        elif kind == "deep":  # issue 15.5: 500 levels with a \u escape crashed the whole ingest
            o["note"] = "__DEEP__"
            deep = '{"a":' * 500 + '"caf\\u00e9"' + "}" * 500
            enc, single = _dumps(o).replace('"__DEEP__"', deep).encode(), ("line", R.TOO_DEEP)
        elif kind == "huge_number":
            o["shipping"]["cost"] = "__BIG__"
            enc, single = _dumps(o).replace('"__BIG__"', "1e400").encode(), ("line", R.NUMBER_RANGE)
        elif kind == "big_int":
            o["note"] = "__BIG__"
            enc = _dumps(o).replace('"__BIG__"', "9" * 40).encode()
            single = ("line", R.NUMBER_RANGE)
        elif kind == "nul_coupon":  # issue 15.15: the same reason as a NUL in a CSV field
            o["coupon"] = "__NUL__"
            enc, single = _dumps(o).replace("__NUL__", "A\\u0000B").encode(), ("coupon", R.NUL_BYTE)
        elif kind == "nul_raw":
            o["coupon"] = "__NUL__"
            enc, single = _dumps(o).replace("__NUL__", "A\x00B").encode(), ("line", R.NUL_BYTE)
        elif kind == "dup_key_deep":
            o["shipping"] = "__DUP__"
            enc = _dumps(o).replace('"__DUP__"', '{"method":"a","x":{"k":1,"k":2}}').encode()
            single = ("line", R.MALFORMED_JSON)
        else:
            single = None
            if kind in (
                "qty_zero",
                "qty_negative",
                "qty_fraction",
                "qty_text",
                "price_text",
                "price_euro",
                "price_negative",
                "product_missing",
            ):
                key, value, fld, reason = {
                    "qty_zero": ("quantity", 0, "quantity", R.NOT_POSITIVE),
                    # a return line: accepted, kept negative
                    "qty_negative": ("quantity", -2, None, None),
                    "qty_fraction": ("quantity", 2.5, "quantity", R.NOT_WHOLE),
                    "qty_text": ("quantity", "three", "quantity", R.NOT_A_NUMBER),
                    "price_text": ("unit_price", "abc", "unit_price", R.NOT_A_NUMBER),
                    "price_euro": ("unit_price", "€2.50", "unit_price", R.NOT_A_NUMBER),
                    "price_negative": ("unit_price", -1, "unit_price", R.NEGATIVE),
                    "product_missing": ("product", None, "product", R.MISSING),
                }[kind]
                if value is None:
                    del o["items"][0][key]
                else:
                    o["items"][0][key] = value
                exp(line, 0, fld, reason, kind)  # reason None: accepted
                for k in range(1, n):
                    exp(line, k, None, None, kind + " (other items kept)")
            elif kind == "ts_missing":
                del o["ts"]
                whole = ("ts", R.MISSING)
            elif kind == "ts_month13":
                o["ts"], whole = "2026-13-01T00:00:00", ("ts", R.BAD_DATE)
            elif kind == "ts_9999":
                o["ts"], whole = "9999-12-31T00:00:00", ("ts", R.DATE_RANGE)
            elif kind == "customer_null":  # a guest order: excluded, not rejected
                o["customer_id"], whole = None, ("customer_id", Excluded.GUEST)
            elif kind == "unknown_customer":
                o["customer_id"], whole = "X-NOBODY", ("customer_id", R.UNKNOWN_CUSTOMER)
            elif kind == "ship_free":
                o["shipping"]["cost"], whole = "free", ("shipping.cost", R.NOT_A_NUMBER)
            elif kind == "order_id_missing":
                del o["order_id"]
                whole = ("order_id", R.MISSING)
            elif kind == "tz":
                o["ts"] = o["ts"] + "+02:00"
            elif kind == "date_only":
                o["ts"] = o["ts"][:10]
            elif kind == "huge_note":
                o["note"] = "long " * 60_000
            elif kind == "qty_string":
                o["items"][0]["quantity"] = str(o["items"][0]["quantity"])
            elif kind in ("customer_object", "customer_true", "customer_list"):  # issue 15.16
                o["customer_id"] = {
                    "customer_object": {"id": o["customer_id"]},
                    "customer_true": True,
                    "customer_list": [o["customer_id"]],
                }[kind]
                whole = ("customer_id", R.NOT_A_VALUE)
            elif kind == "order_id_zwsp":
                o["order_id"] = o["order_id"] + "\u200b"
                whole = ("order_id", R.INVISIBLE_IN_ID)
            elif kind == "deep_ok":  # nested, but within the limit: accepted
                o["note"] = json.loads('{"a":' * 40 + '"\\u00e9"' + "}" * 40)
            elif kind == "control_coupon":  # a control character in text: kept exactly
                o["coupon"] = "A\u0001B"
            elif kind == "emoji_coupon":
                o["coupon"] = "XMAS🎄🍪\u05d0"
            if whole:
                for k in range(n):
                    exp(line, k, *whole, kind)
            elif kind in ("deep_ok", "control_coupon", "emoji_coupon"):
                for k in range(n):
                    exp(line, k, None, None, kind)
            if kind in ("qty_bool", "product_object"):
                key = "quantity" if kind == "qty_bool" else "product"
                bad = True if kind == "qty_bool" else {"name": o["items"][0].get("product")}
                o["items"][0][key] = bad
                exp(line, 0, key, R.NOT_A_VALUE, kind)
                for k in range(1, n):
                    exp(line, k, None, None, kind + " (other items kept)")
            if kind == "bom_line":  # files joined together: a byte-order mark starting a line
                enc = b"\xef\xbb\xbf" + _dumps(o).encode()
                for k in range(n):
                    exp(line, k, None, None, kind)
            whole = None
            if whole:
                for k in range(n):
                    exp(line, k, *whole, kind)
            elif kind in ("tz", "date_only", "huge_note", "qty_string"):
                for k in range(n):
                    exp(line, k, None, None, kind)
        if single:
            exp(line, None, *single, kind)
        out.append(enc if enc is not None else _dumps(o).encode())
    dst.write_bytes(b"\n".join(out) + b"\n")


# --------------------------------------------------------------------------- reviews.jsonl
def _reviews(src: Path, dst: Path, rng: random.Random, expected: list[Expected]) -> None:
    raw_lines = src.read_text(encoding="utf-8").splitlines()
    kinds = [
        "rating_6",
        "rating_frac",
        "rating_text",
        "no_content",
        "trailing_comma",
        "ts_word",
        "unknown_customer",
        "huge_text",
        "emoji",
        "text_object",
        "rating_true",
    ]
    picks = rng.sample(range(5, len(raw_lines) - 5), len(kinds))
    edits = dict(zip(picks, kinds, strict=True))
    out: list[bytes] = []

    def exp(fld, reason, what):
        expected.append(Expected("reviews", "reviews.jsonl", len(out), None, fld, reason, what))

    for i, text in enumerate(raw_lines):
        if i == len(raw_lines) // 2:
            out.append(text.encode())
            out.append(text.encode())
            exp("line", R.DUPLICATE_LINE, "repeated line")
            out.append(b'{"customer_id": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}')
            exp("line", R.LINE_TOO_LONG, "17 MB line")
            continue
        kind = edits.get(i)
        o = json.loads(text)
        if kind is None:
            out.append(text.encode())
            continue
        fld = reason = None
        enc = None
        if kind == "rating_6":
            o["rating"], fld, reason = 6, "rating", R.OUT_OF_RANGE
        elif kind == "rating_frac":
            o["rating"], fld, reason = 4.5, "rating", R.NOT_WHOLE
        elif kind == "rating_text":
            o["rating"], fld, reason = "five", "rating", R.NOT_A_NUMBER
        elif kind == "no_content":
            o.pop("rating", None)
            o["text"], fld, reason = "   ", "text", R.NO_CONTENT
        elif kind == "trailing_comma":
            enc, fld, reason = (text[:-1] + ",}").encode(), "line", R.MALFORMED_JSON
        elif kind == "ts_word":
            o["ts"], fld, reason = "yesterday", "ts", R.BAD_DATE
        elif kind == "unknown_customer":
            o["customer_id"], fld, reason = "X-NOBODY", "customer_id", R.UNKNOWN_CUSTOMER
        elif kind == "huge_text":
            o["text"] = "Lovely cookies. " * 130_000  # ~2 MB
        elif kind == "emoji":
            o["text"] = "美味しい 🍪🍪 très bon — ünglaublich"
        elif kind == "text_object":
            o["text"], fld, reason = {"body": "nested"}, "text", R.NOT_A_VALUE
        elif kind == "rating_true":
            o["rating"], fld, reason = True, "rating", R.NOT_A_VALUE
        out.append(enc if enc is not None else _dumps(o).encode())
        exp(fld, reason, kind)
    dst.write_bytes(b"\n".join(out) + b"\n")


# --------------------------------------------------------------------------- calls/*.txt
def _calls(
    folder: Path, rng: random.Random, customers: list[str], n: int, expected: list[Expected]
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    bad = {3: "no_customer", 17: "bad_utf8", 42: "unknown_customer", 77: "empty_body"}
    for i in range(n):
        cid = rng.choice(customers)
        day = f"2026-{1 + i % 9:02d}-{1 + i % 27:02d}"
        body = f"Agent: hello.\nCustomer: my order {i} arrived late and the cookies were broken.\n"
        kind = bad.get(i)
        fld = reason = None
        if kind == "no_customer":
            name, data = f"call{i:03d}.txt", body.encode()
            fld, reason = "customer_id", R.MISSING
        elif kind == "bad_utf8":
            name, data = f"{cid}_{day}.txt", b"caf\xe9 \xff" + body.encode()
            fld, reason = "text", R.INVALID_UTF8
        elif kind == "unknown_customer":
            name, data = f"X-NOBODY_{day}.txt", body.encode()
            fld, reason = "customer_id", R.UNKNOWN_CUSTOMER
        elif kind == "empty_body":
            name, data = f"c{i:03d}.txt", f"customer_id: {cid}\nts: {day} 10:00\n\n".encode()
            fld, reason = "text", R.MISSING
        elif i % 2:
            name, data = f"{cid}_{day}_{i}.txt", body.encode()
        else:
            name, data = (
                f"t{i:03d}.txt",
                f"Customer: {cid}\nDate: {day}T09:{i % 60:02d}:00\n\n{body}".encode(),
            )
        (folder / name).write_bytes(data)
        expected.append(Expected("calls", f"calls/{name}", 1, None, fld, reason, kind or "ok"))
    _hostile_calls(folder, customers, expected)


def _hostile_calls(folder: Path, customers: list[str], expected: list[Expected]) -> None:
    """Entries of a calls folder that must not be read as they are (issue 15.10, 15.18, 15.19)."""
    body = "Agent: hello.\nCustomer: the parcel was late.\n"
    cid = customers[0]
    outside = folder.parent.parent / "outside_secret.txt"  # next to data_dir, not inside it
    outside.write_text(f"customer_id: {cid}\nts: 2026-02-02\n\nroot:x:0:0:SECRET-OUTSIDE")
    (folder / f"{cid}_2026-02-02_link.txt").symlink_to(outside)
    target = folder / f"{cid}_2026-02-03_target.txt"
    (folder / f"{cid}_2026-02-09_inside_link.txt").symlink_to(target)
    (folder / f"{cid}_2026-02-03_target.txt").write_text(body)
    (folder / f"{cid}_2026-02-04_utf16.txt").write_bytes(body.encode("utf-16"))
    (folder / f"{cid}_2026-02-05_zip.txt").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    (folder / f"{cid}\u200b_2026-02-06.txt").write_text(body)  # an invisible character in the id
    # a Windows-reserved name is an ordinary file here
    (folder / "CON.txt").write_text(f"customer_id: {cid}\nts: 2026-02-07\n\n{body}")
    cr_only = f"customer_id: {cid}\rts: 2026-02-08\r\r{body}"  # CR-only lines: a transcript is read
    (folder / f"{cid}_2026-02-08_cr.txt").write_bytes(cr_only.encode())
    for name, fld, reason in [
        (f"{cid}_2026-02-02_link.txt", "file", R.OUTSIDE_DATA_DIR),
        (f"{cid}_2026-02-09_inside_link.txt", None, None),  # a link inside data_dir is read
        (f"{cid}_2026-02-03_target.txt", None, None),
        (f"{cid}_2026-02-04_utf16.txt", None, None),  # Windows 'Unicode' text is read
        (f"{cid}_2026-02-05_zip.txt", "text", R.NOT_TEXT),
        (f"{cid}\u200b_2026-02-06.txt", "customer_id", R.INVISIBLE_IN_ID),
        ("CON.txt", None, None),
        (f"{cid}_2026-02-08_cr.txt", None, None),
    ]:
        expected.append(Expected("calls", f"calls/{name}", 1, None, fld, reason, "hostile entry"))
    # not transcripts: counted as not read, by reason, never named (issue 15.19)
    (folder / "notes.pdf").write_bytes(b"%PDF-1.4 ...")
    (folder / "archive.txt.gz").write_bytes(b"\x1f\x8b\x08\x00")
    (folder / "memo.text").write_text(body)
    (folder / ".hidden_call.txt").write_text(body)
    (folder / "old").mkdir()
    (folder / "old" / f"{cid}_2026-01-01.txt").write_text(body)
    (folder / "call.m4a").write_bytes(b"\0\0\0\x20ftypM4A ")  # a format the ingest never reads


#: What the calls folder of the corpus holds that is not read, per reason.
CALL_SKIPPED = {
    contract.SKIP_DOCUMENT: 1,
    contract.SKIP_COMPRESSED: 1,
    contract.SKIP_TEXT: 1,
    contract.SKIP_HIDDEN: 1,
    contract.SKIP_FOLDER: 1,
    contract.SKIP_MEDIA: 1,
}

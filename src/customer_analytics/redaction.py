"""The one redaction every message goes through before a report, the index, run.json or a log.

A message may be built from anything the run met: file paths (the data folder may be called
``/srv/shops/Acme Corp Shop/exports 2026``), exceptions of libraries, and — by mistake — input
content. :func:`redact` keeps what helps (the file's own name, the project's own paths in a log)
and removes what reveals where data lives or whose it is:

* absolute, home (``~/``) and ``../`` paths become their last part (``orders.jsonl``), also when
  folder names hold spaces (a folder part may contain spaces, never at its ends, and never a line
  break, quote, ``:`` or ``<>|*?```);
* paths under ``inside`` folders (the data folder) become relative to it, whatever they hold, and
  the folder itself is called ``data_dir``; both its given and its resolved spelling are known;
* e-mail addresses become ``<e-mail>`` wherever they appear (a customers file without its header
  line has one in its "column names");
* control characters (terminal escapes, NUL) become ``?``; the text is cut to ``limit``.

Standard library only: it is imported by the library's logging set-up in every kernel.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

#: A character of a path part that may start or end it (no white space).
_EDGE = r"[^\s/\\'\"<>:|*?`]"
#: A character inside a path part (spaces allowed, line breaks not).
_MID = r"[^\n\r\t\f\v/\\'\"<>:|*?`]"
_PART = rf"{_EDGE}(?:{_MID}*{_EDGE})?"
_ABS_PATH = re.compile(
    rf"(?<![\w.~-])(?:[A-Za-z]:|~|\.\.?)?[/\\](?:{_PART}[/\\])+([^\s/\\'\"<>:|*?`]*)"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: Longest text the patterns are run on (longer messages are cut first: no message is this long).
_MAX_SCAN = 100_000


def _spellings(roots: Iterable[Path | str]) -> list[str]:
    """Each folder as given and as resolved (symbolic links followed), longest first."""
    out: set[str] = set()
    for root in roots:
        text = str(root).rstrip("/\\")
        if not text or text == ".":
            continue
        out.add(text)
        try:
            out.add(os.path.realpath(text).rstrip("/\\"))
        except (OSError, ValueError):
            pass
    return sorted((s for s in out if s), key=len, reverse=True)


def redact(
    text: str,
    limit: int | None = 400,
    *,
    keep: Iterable[Path | str] = (),
    inside: Iterable[Path | str] = (),
) -> str:
    """``text`` without the places and the personal data a shared report must not show.

    Args:
        text: any message (an exception's text, a stop message, a log line).
        limit: at most this many characters (``None``: no cut).
        keep: folders whose paths stay as they are (a log may name the project's own files).
        inside: folders whose paths become relative to them (``data_dir``: "/srv/Acme Corp
            Shop/orders.jsonl" -> "orders.jsonl"); the folder alone is shown as ``data_dir``.

    Returns:
        The redacted text, on the lines it had (control characters shown as ``?``).
    """
    out = str(text).strip()
    if len(out) > _MAX_SCAN:
        out = out[:_MAX_SCAN]
    for root in _spellings(inside):
        out = out.replace(root + "/", "").replace(root + "\\", "")
        out = re.sub(re.escape(root) + r"(?![\w.-])", "data_dir", out)
    kept = tuple(s + sep for s in _spellings(keep) for sep in "/\\")

    def short(m: re.Match) -> str:
        path = m.group(0)
        return path if kept and path.startswith(kept) else (m.group(1) or "…")

    out = _ABS_PATH.sub(short, out)
    out = _EMAIL.sub("<e-mail>", out)
    out = _CONTROL.sub("?", out)
    return out if limit is None or len(out) <= limit else out[: limit - 1] + "…"


class RedactingFormatter(logging.Formatter):
    """Log lines through :func:`redact` (no cut): the project's own paths kept, data paths relative.

    Args:
        keep: folders whose paths stay as they are (project, reports, logs).
        inside: folders whose paths become relative (``data_dir``).
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        keep: tuple[Path, ...] = (),
        inside: tuple[Path, ...] = (),
    ):
        super().__init__(fmt, datefmt)
        self.keep, self.inside = keep, inside

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), None, keep=self.keep, inside=self.inside)

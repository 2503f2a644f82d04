"""``vms cdr export``: the call detail records of a ``data_dir``, as CSV or JSONL.

One record per ended leg (legs still in progress are not exported yet: they
have no outcome), ordered by start time, then call and leg. ``--from`` and
``--to`` select on ``start``, ``from`` included and ``to`` excluded, so
consecutive periods never share a leg. Rows are streamed: a cursor over the
``legs_by_start`` index, written a batch at a time as they come, so memory
stays flat however many there are. SQLite formats each row into its CSV line
or JSON object (``strftime``, ``json_object``): Python only moves one string
per row, which keeps a year of records quick to export.

Formats (the same fields, in :data:`engine.cdr.record.FIELDS` order: the
contract's, then the extras):

- CSV (RFC 4180, CRLF line ends): a header row, then one row per leg; a text
  cell a spreadsheet would run as a formula (``=...``, ``@...``) starts with ``'``;
- JSONL: one JSON object per line with those keys.

Times are ISO 8601 UTC with milliseconds (``2026-12-01T10:00:00.123Z``),
``duration`` seconds with millisecond precision, ``other_operator``
``true``/``false``, and an unknown value is empty (CSV) or ``null`` (JSON).

The database is opened read-only: exporting never changes it, and runs
while engines write (WAL readers do not block writers). A ``data_dir`` with
no records yet (no database, or no ended leg) exports nothing and succeeds,
like an empty period: a scheduled daily export must not fail on a quiet or
new engine. Only an unusable database or bad times are errors.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from engine.cdr.migrations import MIGRATIONS, open_readonly
from engine.cdr.record import FIELDS, TIME_FIELDS
from engine.cdr.store import FILENAME

__all__ = [
    "FORMATS",
    "ExportError",
    "NoRecordsError",
    "export",
    "format_time",
    "lines",
    "parse_time",
    "query",
    "run",
]

FORMATS = ("csv", "jsonl")
_PROG = "vms cdr export"
_BATCH = 1000
CSV_EOL = "\r\n"  # RFC 4180


class ExportError(Exception):
    """Bad input or an unusable database; the message is one sentence for the user."""


def parse_time(text: str, option: str) -> float:
    """An ISO 8601 time (with an offset, ``Z``, or naive meaning UTC) as UNIX seconds."""
    try:
        moment = datetime.fromisoformat(text.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise ExportError(
            f"{option} '{text}' is not an ISO 8601 time; write it like 2026-12-01T08:00:00Z, "
            "2026-12-01T09:00:00+01:00 or 2026-12-01 (naive times are UTC)"
        ) from None


def format_time(t: float | None) -> str | None:
    """UNIX seconds as ISO 8601 UTC with milliseconds; None stays None."""
    if t is None:
        return None
    ms = round(t * 1000)
    seconds, ms = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def _iso(column: str) -> str:
    # ISO 8601 UTC with milliseconds; SQLite rounds to the millisecond as format_time does.
    return f"strftime('%Y-%m-%dT%H:%M:%fZ', \"{column}\", 'unixepoch')"


def _value(name: str, fmt: str) -> str:
    """One field as an SQL expression: its text (csv) or JSON value (jsonl)."""
    column = f'"{name}"'
    if name in TIME_FIELDS:
        return _iso(name)
    if name == "duration":
        return "round(duration, 3)"
    if name == "other_operator":
        flag = "CASE WHEN other_operator THEN 'true' ELSE 'false' END"
        return flag if fmt == "csv" else f"json({flag})"
    if fmt == "csv" and name not in ("leg", "sip_code", "outcome"):
        return _csv_cell(column)
    return column


def _csv_cell(column: str) -> str:
    """A text field as a CSV cell that no spreadsheet runs as a formula.

    Callers, Call-IDs and reasons come from the wire, and a cell starting
    with ``=``, ``+``, ``-``, ``@``, a tab or a CR is a formula to a
    spreadsheet (OWASP "CSV injection"): such a cell gets a leading ``'``,
    unless it is a plain number (``+3222001000``), which billing tools must
    read as is. Then RFC 4180: a cell holding a comma, a quote or a line
    break is quoted, its quotes doubled (as Python's csv module does).
    """
    number = f"({column} GLOB '[+-][0-9]*' AND substr({column}, 2) NOT GLOB '*[^0-9]*')"
    risky = f"substr({column}, 1, 1) IN ('=', '+', '-', '@', char(9), char(13))"
    cell = f"(CASE WHEN {risky} AND NOT {number} THEN '''' || {column} ELSE {column} END)"
    special = " OR ".join(f"instr({column}, {c})" for c in ("','", "'\"'", "char(10)",
                                                            "char(13)"))  # fmt: skip
    return f"CASE WHEN {special} THEN '\"' || replace({cell}, '\"', '\"\"') || '\"' ELSE {cell} END"


def _line(fmt: str) -> str:
    """The SQL expression of one output line (without its end) for ``fmt``."""
    if fmt == "csv":
        return " || ',' || ".join(f"IFNULL({_value(name, fmt)}, '')" for name in FIELDS)
    pairs = ", ".join(f"'{name}', {_value(name, fmt)}" for name in FIELDS)
    return f"json_object({pairs})"


class NoRecordsError(Exception):
    """``data_dir`` holds no call record yet: not a failure, the message is a note for the user."""


def open_records(data_dir: Path) -> sqlite3.Connection:
    """The call-record database of ``data_dir``, read-only.

    NoRecordsError when it has none yet, ExportError when it cannot be used.
    """
    path = data_dir / FILENAME
    if not path.is_file():
        raise NoRecordsError(f"there are no call records in {data_dir} yet (no {FILENAME}: "
                             "the engine writes it once it has handled calls)")  # fmt: skip
    what, known = "a call-record database", len(MIGRATIONS)
    conn = open_readonly(path, known, error=ExportError, what=what,
                         newer=lambda version: ExportError(
                             f"{path} is at schema version {version}, newer than this vms "
                             f"knows ({known}); export with the newer vms"))  # fmt: skip
    try:
        empty = conn.execute("SELECT 1 FROM legs LIMIT 1").fetchone() is None
    except sqlite3.Error as exc:
        conn.close()
        raise ExportError(f"{path} cannot be read as {what} ({exc})") from None
    if empty:
        conn.close()
        raise NoRecordsError(f"there are no call records in {data_dir} yet ({FILENAME} "
                             "has no ended call legs)")  # fmt: skip
    return conn


def query(fmt: str, start: float | None = None,
          end: float | None = None) -> tuple[str, list[float]]:  # fmt: skip
    """The SELECT of the ended legs with ``start <= leg.start < end``, in start order.

    Each row is one column: the leg's CSV line or JSON object.
    """
    where = []
    params: list[float] = []
    if start is not None:
        where.append("start >= ?")
        params.append(start)
    if end is not None:
        where.append("start < ?")
        params.append(end)
    sql = (f"SELECT {_line(fmt)} FROM legs INDEXED BY legs_by_start"
           f"{' WHERE ' + ' AND '.join(where) if where else ''} "
           "ORDER BY start, call_id, leg")  # fmt: skip
    return sql, params


def lines(conn: sqlite3.Connection, fmt: str, start: float | None = None,
          end: float | None = None) -> Iterator[list[str]]:  # fmt: skip
    """The lines of :func:`query`, a batch at a time (never all at once)."""
    cursor = conn.execute(*query(fmt, start, end))
    while batch := cursor.fetchmany(_BATCH):
        yield [row[0] for row in batch]


def export(data_dir: Path, fmt: str, out: TextIO, start: float | None = None,
           end: float | None = None) -> int:  # fmt: skip
    """Write the legs of ``data_dir`` that started in [start, end) to ``out``; return how many.

    With no records at all, the output is what an empty period gives (the
    CSV header alone), then NoRecordsError says why.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    eol = CSV_EOL if fmt == "csv" else "\n"
    header = ",".join(FIELDS) + eol if fmt == "csv" else ""
    try:
        conn = open_records(data_dir)
    except NoRecordsError:
        out.write(header)
        raise
    count = 0
    try:
        out.write(header)
        for batch in lines(conn, fmt, start, end):
            out.write(eol.join(batch) + eol)
            count += len(batch)
    except sqlite3.Error as exc:
        raise ExportError(f"reading the call records in {data_dir} failed after {count} legs "
                          f"({exc})") from None  # fmt: skip
    finally:
        conn.close()
    return count


def run(data_dir: Path, fmt: str, start_text: str | None, end_text: str | None,
        out: TextIO, err: TextIO) -> int:  # fmt: skip
    """The command: exit status 0, or 1 with one sentence on ``err`` for bad input.

    No records yet is no failure: 0, the CSV header alone, and a note on ``err``.
    """
    try:
        start = parse_time(start_text, "--from") if start_text is not None else None
        end = parse_time(end_text, "--to") if end_text is not None else None
        if start is not None and end is not None and start > end:
            raise ExportError(f"--from ({format_time(start)}) is after --to ({format_time(end)}); "
                              "the period runs from --from to --to")  # fmt: skip
        export(data_dir, fmt, out, start, end)
    except ExportError as exc:
        print(f"{_PROG}: {exc}", file=err)
        return 1
    except NoRecordsError as exc:
        print(f"{_PROG}: {exc}; nothing exported", file=err)
    return 0

"""Exporting call records: exact CSV and JSONL, time filters, order, and streaming."""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
import tracemalloc
from pathlib import Path

import pytest

from cdrkit import T0, clock_at, leg, open_store
from engine.cdr.export import (
    ExportError,
    NoRecordsError,
    export,
    format_time,
    open_records,
    parse_time,
    query,
)
from engine.cdr.record import FIELDS

HEADER = ("call_id,leg,customer,caller,called,destination,route,outcome,start,answer,end,"
          "duration,sip_code,billed_to,ringing,action_path,other_operator,reason,sip_call_id,"
          "peer\r\n")  # fmt: skip


def one_call(data_dir: Path) -> None:
    """An anonymous call: leg 0 answered by the engine, leg 1 to another operator's mobile."""
    clock = clock_at()
    store = open_store(data_dir / "cdr.sqlite", clock)
    inbound = leg("c1", 0, caller=None, sip_call_id="a1@pbx", peer="192.0.2.10:5060")
    outgoing = leg("c1", 1, start=T0 + 0.25, destination="+32475123456", other_operator=True,
                   action_path="on_no_answer", sip_call_id="b1@vms",
                   peer="192.0.2.20:5060")  # fmt: skip
    store.leg_started(inbound)
    store.leg_started(outgoing)
    store.leg_started(leg("still up", 0, start=T0 + 1))  # open legs are not exported
    clock.advance(1)
    outgoing.ringing = T0 + 0.5
    outgoing.answer = inbound.answer = T0 + 2.5
    outgoing.finish(T0 + 62.75, "answered", 200)
    inbound.finish(T0 + 62.75, "answered", 200, reason="caller hung up")
    store.leg_ended(outgoing)
    store.leg_ended(inbound)
    store.close()


def test_csv_has_the_contract_header_then_one_row_per_ended_leg(tmp_path: Path) -> None:
    one_call(tmp_path)
    out = io.StringIO()
    assert export(tmp_path, "csv", out) == 2
    assert out.getvalue() == (
        HEADER
        + "c1,0,acme,,+3225551234,,office hours,answered,2026-12-01T08:00:00.000Z,"
          "2026-12-01T08:00:02.500Z,2026-12-01T08:01:02.750Z,60.25,200,,,,false,"
          "caller hung up,a1@pbx,192.0.2.10:5060\r\n"
        + "c1,1,acme,+3226001122,+3225551234,+32475123456,office hours,answered,"
          "2026-12-01T08:00:00.250Z,2026-12-01T08:00:02.500Z,2026-12-01T08:01:02.750Z,60.25,200,"
          "acme,2026-12-01T08:00:00.500Z,on_no_answer,true,,b1@vms,192.0.2.20:5060\r\n"
    )  # fmt: skip


def test_jsonl_has_one_object_per_leg_with_the_same_keys(tmp_path: Path) -> None:
    one_call(tmp_path)
    out = io.StringIO()
    assert export(tmp_path, "jsonl", out) == 2
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1] == (
        '{"call_id":"c1","leg":1,"customer":"acme","caller":"+3226001122",'
        '"called":"+3225551234","destination":"+32475123456","route":"office hours",'
        '"outcome":"answered","start":"2026-12-01T08:00:00.250Z",'
        '"answer":"2026-12-01T08:00:02.500Z","end":"2026-12-01T08:01:02.750Z","duration":60.25,'
        '"sip_code":200,"billed_to":"acme","ringing":"2026-12-01T08:00:00.500Z",'
        '"action_path":"on_no_answer","other_operator":true,"reason":null,'
        '"sip_call_id":"b1@vms","peer":"192.0.2.20:5060"}'
    )
    first = json.loads(lines[0])
    assert list(first) == list(FIELDS)
    assert (first["caller"], first["billed_to"], first["other_operator"]) == (None, None, False)


def test_csv_quotes_what_needs_quoting_as_the_csv_module_reads_it(tmp_path: Path) -> None:
    store = open_store(tmp_path / "cdr.sqlite")
    tricky = leg("c,1", 1, route='the "night" rule, part 2', sip_call_id='x"y@pbx',
                 peer="192.0.2.10:5060").finish(T0 + 1, "failed", 500,
                 reason="line one\r\nline two; Zürich ✓")  # fmt: skip
    store.leg_ended(tricky)
    store.close()
    out = io.StringIO()
    export(tmp_path, "csv", out)
    header, row = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert header == list(FIELDS)
    got = dict(zip(header, row, strict=True))
    assert (got["call_id"], got["route"], got["sip_call_id"], got["reason"]) == (
        "c,1",
        'the "night" rule, part 2',
        'x"y@pbx',
        "line one\r\nline two; Zürich ✓",
    )
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\r\n").writerow(row)
    assert out.getvalue() == HEADER + expected.getvalue()  # the csv module's own quoting


@pytest.mark.parametrize(
    ("call_id", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("\tx", "'\tx"),
        ("+3225550000", "+3225550000"),  # a number stays what billing tools read
        ("-1", "-1"),
        ("+", "'+"),
        ("a=b@pbx", "a=b@pbx"),
    ],
)
def test_csv_cells_never_start_a_spreadsheet_formula(tmp_path: Path, call_id: str,
                                                     cell: str) -> None:  # fmt: skip
    """The SIP Call-ID comes from the wire as it is (the caller is E.164 or empty)."""
    store = open_store(tmp_path / "cdr.sqlite")
    store.leg_ended(leg("c1", 0, sip_call_id=call_id).finish(T0 + 1, "busy", 486))
    store.close()
    out = io.StringIO()
    export(tmp_path, "csv", out)
    _, row = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    got = dict(zip(FIELDS, row, strict=True))
    assert (got["sip_call_id"], got["caller"]) == (cell, "+3226001122")
    jsonl = io.StringIO()
    export(tmp_path, "jsonl", jsonl)
    assert json.loads(jsonl.getvalue())["sip_call_id"] == call_id  # JSON is data: as it came


def many(data_dir: Path, starts: list[float]) -> None:
    store = open_store(data_dir / "cdr.sqlite")
    for i, start in enumerate(starts):
        store.leg_ended(leg(f"call-{i:03d}", 0, start=start).finish(start + 1, "busy", 486))
    store.close()


def exported_starts(data_dir: Path, start: float | None = None,
                    end: float | None = None) -> list[str]:  # fmt: skip
    out = io.StringIO()
    export(data_dir, "jsonl", out, start, end)
    return [json.loads(line)["start"] for line in out.getvalue().splitlines()]


def test_from_is_inclusive_and_to_exclusive(tmp_path: Path) -> None:
    many(tmp_path, [T0, T0 + 10, T0 + 20, T0 + 30])
    assert exported_starts(tmp_path, T0 + 10, T0 + 30) == [
        "2026-12-01T08:00:10.000Z", "2026-12-01T08:00:20.000Z"]  # fmt: skip
    assert exported_starts(tmp_path, T0 + 10.001, None) == [
        "2026-12-01T08:00:20.000Z", "2026-12-01T08:00:30.000Z"]  # fmt: skip
    assert exported_starts(tmp_path, None, T0 + 10) == ["2026-12-01T08:00:00.000Z"]
    assert exported_starts(tmp_path, T0 + 10, T0 + 10) == []


def test_rows_come_in_start_order_then_call_and_leg(tmp_path: Path) -> None:
    starts = [T0 + i for i in range(100)] + [T0 + 50] * 5
    random.Random(7).shuffle(starts)
    many(tmp_path, starts)
    out = io.StringIO()
    export(tmp_path, "jsonl", out)
    got = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(got) == 105
    assert [(r["start"], r["call_id"]) for r in got] == sorted((r["start"], r["call_id"])
                                                              for r in got)  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-01T08:00:00Z", T0),
    ("2026-12-01T09:00:00+01:00", T0),
    ("2026-12-01T08:00:00", T0),  # naive = UTC
    ("2026-12-01T08:00:00.250Z", T0 + 0.25),
    ("2026-12-01", T0 - 8 * 3600),
    ("20261201T080000Z", T0),
])  # fmt: skip
def test_times_in_iso_8601(text: str, expected: float) -> None:
    assert parse_time(text, "--from") == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2026-12-01T25:00", "", "1796112000"])
def test_times_that_do_not_parse_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ExportError, match=r"--to '.*' is not an ISO 8601 time; write it like"):
        parse_time(text, "--to")


def test_times_are_written_in_utc_with_milliseconds() -> None:
    assert format_time(T0) == "2026-12-01T08:00:00.000Z"
    assert format_time(T0 + 59.9996) == "2026-12-01T08:01:00.000Z"  # rounding carries
    assert format_time(T0 + 0.0015) == "2026-12-01T08:00:00.002Z"
    assert format_time(None) is None


def test_the_export_reads_by_the_start_index_without_sorting(tmp_path: Path) -> None:
    open_store(tmp_path / "cdr.sqlite").close()
    conn = sqlite3.connect(tmp_path / "cdr.sqlite")
    for bounds in ((None, None), (T0, None), (None, T0), (T0, T0 + 1)):
        sql, params = query("csv", *bounds)
        plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "USING INDEX legs_by_start" in plan and "TEMP B-TREE" not in plan, plan


def test_the_export_never_writes_the_database(tmp_path: Path) -> None:
    one_call(tmp_path)
    path = tmp_path / "cdr.sqlite"
    conn = open_records(tmp_path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM legs")
    conn.close()
    assert path.stat().st_size > 0


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_no_records_yet_is_the_output_of_an_empty_period_then_a_note(
    tmp_path: Path, fmt: str
) -> None:
    out = io.StringIO()
    with pytest.raises(NoRecordsError, match=r"no cdr\.sqlite"):
        export(tmp_path, fmt, out)  # a fresh data_dir
    open_store(tmp_path / "cdr.sqlite").close()
    with pytest.raises(NoRecordsError, match="has no ended call legs"):
        export(tmp_path, fmt, out)  # a database, no leg yet
    assert out.getvalue() == (HEADER * 2 if fmt == "csv" else "")


class Counter(io.TextIOBase):
    """A sink that keeps only how much was written."""

    def __init__(self) -> None:
        self.chars = 0
        self.lines = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        self.lines += text.count("\n")
        return len(text)


def test_200000_rows_stream_in_little_memory(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    open_store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 199999)
        INSERT INTO legs ({", ".join(f'"{c}"' for c in (*FIELDS, "owner"))})
        SELECT printf('%016x', i), i % 3, 'acme', '+3226001122', '+3225551234', '+3225559999',
               'office hours', 'answered', s, s + 1, s + 61, 60.0, 200, 'acme', s, 'on_busy',
               i % 2, 'a reason, for a person', i || '@pbx', '192.0.2.10:5060', 'owner'
        FROM (SELECT i, {T0} + i * 0.5 AS s FROM n)""")  # fmt: skip
    conn.close()
    sink = Counter()
    tracemalloc.start()
    try:
        assert export(tmp_path, "csv", sink) == 200_000  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.lines == 200_001
    # The rows at once would take at least the output's size (~40 MB), and several times
    # more as Python objects; JSONL goes through the same batches (export.lines).
    assert sink.chars > 30_000_000
    assert peak < 3_000_000, f"peak {peak:,} bytes for {sink.chars:,} characters written"

"""The fault-tolerant log (SPEC section 7): the vendor's line format, one file per day, never raising."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotstandby.ftlog import LINE, FaultTolerantLog, format_line

COMPONENTS = ("Arbiter", "Monitor", "CTI")


class Now:
    """A settable local clock."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.mark.parametrize(
    ("when", "component", "message", "line"),
    [
        (datetime(2026, 11, 25, 14, 48, 27, 734000), "Arbiter",
         "Check primary server : failure detected, count = 3",
         "2026/11/25_14:48:27:734 Arbiter : Check primary server : failure detected, count = 3"),
        (datetime(2026, 11, 25, 14, 48, 27, 734000), "Arbiter",
         "SWITCH THIS SERVER TO PRIMARY, maximum heart beat fails",
         "2026/11/25_14:48:27:734 Arbiter : SWITCH THIS SERVER TO PRIMARY, maximum heart beat fails"),
        (datetime(2026, 1, 2, 3, 4, 5, 6999), "Monitor", "up", "2026/01/02_03:04:05:006 Monitor : up"),
        (datetime(2026, 1, 2, 0, 0, 0, 0), "CTI", "started pid 42", "2026/01/02_00:00:00:000 CTI : started pid 42"),
        (datetime(2026, 12, 31, 23, 59, 59, 999999), "CTI", "x", "2026/12/31_23:59:59:999 CTI : x"),
        (datetime(2026, 5, 5, 5, 5, 5), "Arbiter", "line one\nline two\r\nthree",
         "2026/05/05_05:05:05:000 Arbiter : line one line two three"),
        (datetime(2026, 5, 5, 5, 5, 5), "Arbiter", "  padded\ttabs  ", "2026/05/05_05:05:05:000 Arbiter : padded tabs"),
    ],
    ids=["failure-count", "switch", "ms-truncated", "midnight", "last-ms", "newlines", "whitespace"],
)
def test_format_line(when: datetime, component: str, message: str, line: str) -> None:
    """``YYYY/MM/DD_HH:MM:SS:mmm <Component> : <message>``, the message flattened to one line."""
    assert line == format_line(when, component, message)


messages = st.text(min_size=1, max_size=80).filter(lambda m: m.split())
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))


@given(moments, st.sampled_from(COMPONENTS), messages)
def test_format_then_parse_round_trips(when: datetime, component: str, message: str) -> None:
    """Any message, however many lines it held, is one line that ``parse`` reads back."""
    line = format_line(when, component, message)
    assert len(line.splitlines()) == 1
    assert LINE.match(line)
    parsed = FaultTolerantLog.parse(line + "\n")
    expected_at = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}"
    assert [{"at": expected_at, "component": component, "message": " ".join(message.split())}] == parsed


def test_parse_skips_lines_not_in_the_format() -> None:
    """Foreign lines in a log file are ignored rather than misread."""
    text = "garbage\n2026/11/25_14:48:27:734 Arbiter : kept\n2026/11/25 14:48:27 Arbiter : not ours\n"
    assert [e["message"] for e in FaultTolerantLog.parse(text)] == ["kept"]


def test_one_file_per_day_with_midnight_rollover(tmp_path: Path) -> None:
    """Lines go to ``YYYY-MM-DD.log`` of their own day; the file changes at midnight."""
    now = Now(datetime(2026, 11, 25, 23, 59, 59, 999000))
    log = FaultTolerantLog(tmp_path / "logs", node_id="server1", now=now)
    log.write("Arbiter", "before midnight")
    now.at += timedelta(milliseconds=1)
    log.write("CTI", "after midnight")
    log.write("Monitor", "still the 26th")

    assert log.days() == ["2026-11-25", "2026-11-26"]
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["2026-11-25.log", "2026-11-26.log"]
    assert log.read(date(2026, 11, 25)) == "2026/11/25_23:59:59:999 Arbiter : before midnight\n"
    assert log.read() == ("2026/11/26_00:00:00:000 CTI : after midnight\n"
            "2026/11/26_00:00:00:000 Monitor : still the 26th\n")  # today by default
    assert log.parse(log.read(date(2026, 1, 1))) == []  # a day with no file reads empty


def test_days_are_sorted_and_foreign_files_ignored(tmp_path: Path) -> None:
    """``days()`` lists the day files in date order, whatever order they were written in."""
    now = Now(datetime(2026, 3, 1, 12))
    log = FaultTolerantLog(tmp_path, node_id="server2", now=now)
    for day in (datetime(2026, 3, 10), datetime(2025, 12, 31), datetime(2026, 1, 5)):
        now.at = day
        log.write("Arbiter", "event")
    (tmp_path / "notes.txt").write_text("not a log")
    assert log.days() == ["2025-12-31", "2026-01-05", "2026-03-10"]


def test_write_returns_the_line_and_parse_reads_the_file(tmp_path: Path) -> None:
    """What ``write`` returns is the line stored, and ``parse(read())`` gives every event back."""
    now = Now(datetime(2026, 11, 25, 14, 48, 27, 734000))
    log = FaultTolerantLog(tmp_path, node_id="server1", now=now)
    events = [("Arbiter", "Check primary server : failure detected, count = 1"),
              ("Arbiter", "SWITCH THIS SERVER TO BACKUP, R5 LAN lost"),
              ("CTI", "stopped"),
              ("Monitor", "config changed:\nheartbeat_interval_s from server2")]
    lines = []
    for i, (component, message) in enumerate(events):
        now.at += timedelta(milliseconds=i)
        lines.append(log.write(component, message))  # type: ignore[arg-type]
    assert "".join(line + "\n" for line in lines) == log.read()
    parsed = log.parse(log.read())
    assert [(c, " ".join(m.split())) for c, m in events] == [(e["component"], e["message"]) for e in parsed]


def test_non_ascii_and_undecodable_text_does_not_raise(tmp_path: Path) -> None:
    """Any message text is written (unencodable characters escaped) and the write never raises."""
    log = FaultTolerantLog(tmp_path, node_id="server1", now=Now(datetime(2026, 1, 1)))
    log.write("Arbiter", "café → ok")
    log.write("Arbiter", "bad byte \udcff from a filename")
    assert log.write_errors == 0
    messages = [e["message"] for e in log.parse(log.read())]
    assert messages[0] == "café → ok"
    assert messages[1].startswith("bad byte ") and messages[1].endswith(" from a filename")


@pytest.mark.parametrize("break_it", ["day-file-is-a-directory", "logs-dir-removed", "logs-dir-replaced-by-file"])
def test_write_failure_is_counted_and_reported_never_raised(tmp_path: Path, break_it: str) -> None:
    """A write that fails with an OSError bumps ``write_errors`` and calls ``on_error``; the caller goes on."""
    reports: list[str] = []
    directory = tmp_path / "logs"
    log = FaultTolerantLog(directory, node_id="server1", now=Now(datetime(2026, 11, 25, 8)), on_error=reports.append)
    if break_it == "day-file-is-a-directory":
        (directory / "2026-11-25.log").mkdir()
    else:
        directory.rmdir()
        if break_it == "logs-dir-replaced-by-file":
            directory.write_text("")
    line = log.write("Arbiter", "SWITCH THIS SERVER TO PRIMARY")
    log.write("Arbiter", "again")
    assert line.endswith("Arbiter : SWITCH THIS SERVER TO PRIMARY")
    assert log.write_errors == 2
    assert len(reports) == 2
    assert all(r.startswith("fault-tolerant log write failed") for r in reports)


def test_constructor_creates_the_directory(tmp_path: Path) -> None:
    """The logs directory (and its parents) are created, and hold only day files after writes."""
    directory = tmp_path / "data" / "logs"
    log = FaultTolerantLog(directory, node_id="server1", now=Now(datetime(2026, 2, 3, 4, 5)))
    assert directory.is_dir()
    assert log.days() == []
    log.write("Monitor", "up")
    assert [p.name for p in directory.iterdir()] == ["2026-02-03.log"]

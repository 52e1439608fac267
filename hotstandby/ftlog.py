"""The fault-tolerant log in the vendor's format, one plain-text file per day (SPEC section 7).

    2026/11/25_14:48:27:734 Arbiter : SWITCH THIS SERVER TO PRIMARY, R1 failover: ...

Lines go to ``<data_dir>/logs/YYYY-MM-DD.log`` in the node's local time, and as structured JSON
to standard output. A write that fails (full disk) is reported, never raised: losing a log line
must not stop a failover.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Literal

Component = Literal["Arbiter", "Monitor", "CTI"]
LINE = re.compile(r"^(\d{4})/(\d\d)/(\d\d)_(\d\d):(\d\d):(\d\d):(\d{3}) (Arbiter|Monitor|CTI) : (.+)$")
_DAY_FILE = re.compile(r"^(\d{4}-\d\d-\d\d)\.log$")
_json = logging.getLogger("hotstandby.events")


def format_line(when: datetime, component: str, message: str) -> str:
    stamp = when.strftime("%Y/%m/%d_%H:%M:%S:") + f"{when.microsecond // 1000:03d}"
    flat = " ".join(message.split())  # one event, one line, whatever the message held
    return f"{stamp} {component} : {flat}"


class FaultTolerantLog:
    def __init__(self, directory: Path, *, node_id: str, now: Callable[[], datetime] = datetime.now,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self.node_id = node_id
        self._now = now
        self._on_error = on_error
        self._lock = threading.Lock()
        self.write_errors = 0
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, component: Component, message: str) -> str:
        when = self._now()
        line = format_line(when, component, message)
        _json.info(json.dumps({"node": self.node_id, "component": component, "message": message,
                               "at": when.isoformat(timespec="milliseconds")}))
        try:
            with self._lock, open(self.directory / f"{when.date().isoformat()}.log", "a", encoding="utf-8",
                                  errors="backslashreplace") as fh:
                fh.write(line + "\n")
        except OSError as exc:
            self.write_errors += 1
            if self._on_error:
                self._on_error(f"fault-tolerant log write failed: {exc.strerror}")
        return line

    def days(self) -> list[str]:
        found = (_DAY_FILE.match(p.name) for p in self.directory.iterdir())
        return sorted(m.group(1) for m in found if m)

    def read(self, day: date | None = None) -> str:
        path = self.directory / f"{(day or self._now().date()).isoformat()}.log"
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    @staticmethod
    def parse(text: str) -> list[dict[str, str]]:
        out = []
        for raw in text.splitlines():
            m = LINE.match(raw)
            if m:
                y, mo, d, h, mi, s, ms, comp, msg = m.groups()
                out.append({"at": f"{y}-{mo}-{d}T{h}:{mi}:{s}.{ms}", "component": comp, "message": msg})
        return out

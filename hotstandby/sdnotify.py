"""systemd's notification protocol (sd_notify(3)), without libsystemd: one datagram a message.

Under ``Type=notify`` the service manager passes ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the
abstract namespace) and, with ``WatchdogSec=``, ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``). The node
sends ``READY=1`` once both services serve, ``WATCHDOG=1`` from the heartbeat loop after each completed
tick (never from a thread of its own, which would keep beating while the loop is stuck), ``STOPPING=1``
on SIGTERM, and ``WATCHDOG_USEC=`` when I changes, so the timeout follows the live setting.

Sending never blocks and never raises: a full or vanished socket loses a message, not a tick.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("hotstandby.sdnotify")

WATCHDOG_MARGIN_S = 5.0  # above 3·I: the slowest legitimate tick (a CTI stop's grace, a handover, fsyncs)
CHILD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")  # never passed on to CTI or a hook


def watchdog_seconds(interval_s: float) -> int:
    """WatchdogSec for I: 3·I (when /healthz turns 503) plus a margin for the slowest legitimate tick,
    in whole seconds. The watchdog restarts the node, so it must fire after /healthz, never before."""
    return math.ceil(3 * interval_s + WATCHDOG_MARGIN_S)


def _address(value: str) -> str | None:
    if value.startswith("@"):
        return "\0" + value[1:]  # the abstract namespace
    if value.startswith("/"):
        return value
    return None  # vsock and other forms are not ours to speak


class Notifier:
    """Messages to the service manager; every method is a no-op when there is none."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        # The unit enabled the watchdog (WatchdogSec=) for this very process.
        self.watchdog_usec: int | None = int(usec) if usec.isdigit() and int(usec) > 0 and mine else None
        self.sent = 0
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """One datagram of ``KEY=VALUE`` lines; False when it could not be sent (or no manager listens)."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode(), socket.MSG_DONTWAIT, self.address)
        except OSError as exc:
            if not self._failed:
                log.warning("sd_notify to %r failed: %s", self.address.replace("\0", "@"), exc)
            self._failed = True
            return False
        self._failed = False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self, status: str = "") -> bool:
        return self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={' '.join(text.split())}")

    def watchdog(self) -> bool:
        """One beat; sent whenever there is a manager (harmless without WatchdogSec=)."""
        return self.send("WATCHDOG=1")

    def follow_interval(self, interval_s: float) -> bool:
        """Keep the watchdog timeout in step with I: only when the unit enabled the watchdog (an operator
        who set WatchdogSec=0 keeps it off: WATCHDOG_USEC= would turn it on)."""
        if self.watchdog_usec is None:
            return False
        usec = watchdog_seconds(interval_s) * 1_000_000
        if usec == self.watchdog_usec:
            return False
        if self.send(f"WATCHDOG_USEC={usec}"):
            self.watchdog_usec = usec
            return True
        return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

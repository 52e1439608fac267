"""Process-control primitives for the CTI supervisor: parent-death signal, group signals, exit words.

Kept apart from the supervisor's state machine so the Linux-specific parts (prctl through ctypes,
process groups) sit in one small place.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1


def _load_prctl() -> Any | None:
    """libc's prctl, resolved once in the parent: the forked child must not dlopen or import anything."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()
PDEATHSIG_AVAILABLE = _PRCTL is not None


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A `preexec_fn` that makes the child receive SIGKILL when the process that forked it dies.

    It runs in the forked child before exec, after `start_new_session` made it a session leader,
    so it only calls async-signal-tolerant things resolved beforehand (no imports, no allocation
    worth mentioning). If the parent died between fork and prctl, the signal will never come:
    getppid() then differs from `parent_pid` and the child exits instead of running unsupervised.
    If prctl itself fails the child refuses to run too: a CTI server that could outlive its node
    is worse than none (R9).
    """
    prctl = _PRCTL
    sigkill = int(signal.SIGKILL)

    def setup() -> None:
        if prctl is not None and prctl(PR_SET_PDEATHSIG, sigkill, 0, 0, 0) != 0:
            os.write(2, b"hotstandby: prctl(PR_SET_PDEATHSIG) failed; refusing to start\n")
            os._exit(126)
        if os.getppid() != parent_pid:
            os._exit(1)

    return setup


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a whole process group; False when nothing is left in it."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        # PermissionError: the group is gone and its id now belongs to someone else's group.
        return False
    return True


def describe_exit(returncode: int) -> str:
    """Operator words for a wait status as asyncio reports it (negative: killed by that signal)."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = str(-returncode)
    return f"killed by signal {name}"

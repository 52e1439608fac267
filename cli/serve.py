"""`hotstandby node|arbiter|monitor`: run a service, without the client CLI's libraries.

A node runs for months; typer, rich and click (and pygments, which httpx's optional command line
pulls in whenever rich and click are installed) are only for the client commands, and cost a node
several megabytes of resident memory it never uses (issue 6 counts every megabyte of a node).
"""

from __future__ import annotations

import asyncio
import os
import sys

SERVICES = {"node": (True, True), "arbiter": (True, False), "monitor": (False, True)}


def _runner() -> asyncio.Runner:
    """uvloop's event loop when it is installed (uvicorn[standard]): every wake-up, timer and socket
    of a node costs less CPU there; the standard loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def run(with_arbiter: bool, with_monitor: bool) -> int:
    """Run the service(s) until stopped; the exit code (2: refused to start, the reason on stderr)."""
    # httpx imports its command line (rich, click, pygments) only if it can: tell it it cannot.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from cli.logsetup import setup_logging
    from hotstandby.settings import SettingsError, cluster_from_env, node_from_env
    from services.node import StartupError, serve

    setup_logging(os.environ.get("HS_LOG_LEVEL", "INFO"))
    try:
        node = node_from_env()
        cluster = cluster_from_env()
        with _runner() as runner:
            return runner.run(serve(node, cluster, with_arbiter=with_arbiter, with_monitor=with_monitor))
    except SettingsError as exc:
        print(f"hotstandby: refusing to start: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"hotstandby: {exc}", file=sys.stderr)
        return exc.status

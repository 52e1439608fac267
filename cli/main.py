"""The `hotstandby` command: the typer app (cli.app), except that a bare service word
(`node`, `arbiter`, `monitor`) runs the service without loading the client CLI (see serve.py)."""
from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if len(args) == 1 and args[0] in ("node", "arbiter", "monitor"):
        from cli.serve import SERVICES, run

        raise SystemExit(run(*SERVICES[args[0]]))
    from cli.app import app

    app()

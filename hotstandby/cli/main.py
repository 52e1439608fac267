"""Entry point placeholder; the typer app is assembled in hotstandby.cli.app."""
from __future__ import annotations


def main() -> None:
    from hotstandby.cli.app import app

    app()

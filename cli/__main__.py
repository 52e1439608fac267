"""``python -m cli``: the ``hotstandby`` command without the console script (tests and the demo use it)."""

from cli.main import main

main()

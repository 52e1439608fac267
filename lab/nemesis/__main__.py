"""python -m lab.nemesis: see lab/nemesis/README.md."""

from __future__ import annotations

import sys

from lab.nemesis.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench`` (``make bench``): see bench/run.py."""

from __future__ import annotations

import sys
from pathlib import Path

# The bench reuses the fault lab (tests/lab): make the repository importable whatever the working directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run import main

raise SystemExit(main())

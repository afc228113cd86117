"""ML tests need the optional extra (`.[ml]`). Without torch they are not collected;
tests/test_extras.py then skips with the reason (and fails in CI, which installs it)."""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("torch") is None:
    collect_ignore_glob = ["test_*.py", "*/test_*.py"]

"""What several test modules share: the bad labels that every engine must refuse exactly as
``bl.group`` does, and the modules a fresh interpreter has imported after a statement."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

import polars as pl

BAD_LABELS = [
    ("ints", pl.Series([0, 1, 2, 1], dtype=pl.Int64), {}),
    ("floats", pl.Series([0.0, 0.5, 1.0, 1.0]), {}),
    ("nan", pl.Series([0.0, float("nan"), 1.0, 1.0]), {}),
    ("two strings", pl.Series(["no", "yes", "no", "no"]), {}),
    ("three strings", pl.Series(["a", "b", "c", "a"]), {"positive": "a"}),
    ("wrong positive", pl.Series(["no", "yes", "no", "no"]), {"positive": "Yes"}),
    ("nulls", pl.Series([1, None, 0, None], dtype=pl.Int64), {}),
    ("all null", pl.Series([None] * 4, dtype=pl.Int64), {"drop_null_labels": True}),
]
"""``(case, label column, bl.group keyword arguments)``: labels ``bl.group`` refuses on the
features ``f = a, a, b, b``; the database and Spark paths must raise the same error."""

BAD_LABEL_IDS = [case for case, _, _ in BAD_LABELS]


def imported_modules(statement: str, modules: Sequence[str]) -> list[str]:
    """Those of ``modules`` that a fresh Python process has imported after running
    ``statement`` (for example ``"import binomlab"``), in the order given."""
    found = f"[m for m in {list(modules)!r} if m in sys.modules]"
    code = f"import json, sys; {statement}; print(json.dumps({found}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])

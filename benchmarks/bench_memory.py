"""Benchmark memory at scale: ``bl.group`` of 50M raw rows from parquet, then one epoch of an
MLP with embeddings on the groups, in a process whose peak RSS is measured.

The data: ``--rows`` (default 50,000,000) synthetic rows of ad impressions, written in chunks
of ``CHUNK_ROWS`` to one parquet file per chunk in a temporary directory by a *separate*
subprocess (so that generating them does not count):

* ``site``: 20,000 levels, Zipf-like frequencies (weight ∝ 1 / rank^1.2);
* ``app``: 5,000 levels, each site's apps concentrated on a few (its own offset plus a Zipf
  draw with exponent 2 over the 5,000 apps);
* ``region``: 200 levels, Zipf exponent 1.2;
* ``price``: a number, log-normal around a level set by the app (σ 0.35), binned in 10
  quantile bins by ``bl.group``;
* ``age``: a number, normal around a mean set by the region (σ 8), binned in 10 quantile bins;
* ``clicked``: 0/1, ``logit = -2 + site effect (σ 0.6) + app effect (σ 0.4) + region effect
  (σ 0.3) + 0.4 · standardised log price - 0.01 · (age - 40)``; a base rate of about 15%.

Then a fresh subprocess (imports, then the stages, each timed and its peak RSS taken from
``/proc/self/status`` ``VmHWM``, the high-water mark reset before each stage through
``/proc/self/clear_refs``):

1. ``groups = bl.group(dir, ["site", "app", "region", "price", "age"], "clicked",
   bins={"price": 10, "age": 10})``, streaming from the files;
2. the index-form encoding alone (``Encoder.fit(groups, form="index").transform(groups)``),
   to report its size and time (then dropped);
3. ``bl.fit(groups, model=bl.MLP((64, 32), embed="auto"), backend="lightning", epochs=1,
   batch_size=--batch-size)`` (integer codes, ``inputs="auto"``; its own encoding included),
   with the time to its first mini-batch, of its mini-batches, and of its epoch end (the
   exact train NLL over all groups) from its callbacks.

Target: the process's peak RSS ≤ 4 GiB at 50M rows. Reported: per stage its seconds, its
peak RSS and that peak's increment over the RSS at the stage's start, the number of groups,
and the bytes of the encoded training matrix against those the one-hot matrix would take
(groups × Σ levels × 4 bytes).

Usage::

    python benchmarks/bench_memory.py                 # 50M rows, a few minutes
    python benchmarks/bench_memory.py --rows 5000000  # measure first at 5M rows
    python benchmarks/bench_memory.py --quick         # 5M rows
    python benchmarks/bench_memory.py --markdown benchmarks/RESULTS.md --append
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import load_average, machine_line, now_line, verdict, write_markdown

ROWS = 50_000_000
QUICK_ROWS = 5_000_000
CHUNK_ROWS = 5_000_000
LEVELS = {"site": 20_000, "app": 5_000, "region": 200}
BINS = {"price": 10, "age": 10}
FEATURES = [*LEVELS, *BINS]
LABEL = "clicked"
HIDDEN = (64, 32)
BATCH = 16_384  # groups per mini-batch: one epoch over ~10M groups in a few minutes
TARGET_GIB = 4.0
GIB = 2**30
HERE = Path(__file__).resolve()


# -- the data (its own subprocess) -----------------------------------------------------------


def _zipf(rng: Any, levels: int, exponent: float, size: int) -> Any:
    import numpy as np

    weights = 1.0 / np.arange(1, levels + 1) ** exponent
    cdf = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(size)), levels - 1)


def generate(directory: Path, rows: int, seed: int = 0) -> dict[str, Any]:
    """Write ``rows`` rows to ``directory/part-*.parquet`` in chunks of ``CHUNK_ROWS``."""
    import numpy as np
    import polars as pl

    t0 = time.perf_counter()
    effects = np.random.default_rng(seed)  # per-level effects, fixed whatever the chunking
    site_effect = effects.normal(0, 0.6, LEVELS["site"])
    app_effect = effects.normal(0, 0.4, LEVELS["app"])
    region_effect = effects.normal(0, 0.3, LEVELS["region"])
    site_app = effects.integers(0, LEVELS["app"], LEVELS["site"])  # each site's first app
    app_price = effects.normal(3.0, 0.8, LEVELS["app"])  # log price level of each app
    region_age = effects.normal(40, 6, LEVELS["region"])
    names = {f: pl.Series([f"{f}_{i:05d}" for i in range(m)]) for f, m in LEVELS.items()}
    directory.mkdir(parents=True, exist_ok=True)
    clicks = 0
    for part, start in enumerate(range(0, rows, CHUNK_ROWS)):
        size = min(CHUNK_ROWS, rows - start)
        rng = np.random.default_rng([seed, part])
        site = _zipf(rng, LEVELS["site"], 1.2, size)
        app = (site_app[site] + _zipf(rng, LEVELS["app"], 2.0, size)) % LEVELS["app"]
        region = _zipf(rng, LEVELS["region"], 1.2, size)
        log_price = app_price[app] + rng.normal(0, 0.35, size)
        age = region_age[region] + rng.normal(0, 8, size)
        logit = (
            -2.0
            + site_effect[site]
            + app_effect[app]
            + region_effect[region]
            + 0.4 * (log_price - 3.0) / 0.87
            - 0.01 * (age - 40)
        )
        clicked = rng.random(size) < 1 / (1 + np.exp(-logit))
        clicks += int(clicked.sum())
        frame = pl.DataFrame(
            {
                "site": names["site"].gather(site),
                "app": names["app"].gather(app),
                "region": names["region"].gather(region),
                "price": np.exp(log_price).astype(np.float32),
                "age": age.astype(np.float32),
                LABEL: clicked,
            }
        )
        frame.write_parquet(directory / f"part-{part:03d}.parquet")
        del frame, site, app, region, log_price, age, logit, clicked
    files = sorted(directory.glob("*.parquet"))
    return {
        "rows": rows,
        "files": len(files),
        "bytes": sum(f.stat().st_size for f in files),
        "rate": clicks / rows,
        "seconds": time.perf_counter() - t0,
        "peak_rss": _peak_rss(),
    }


# -- the measured process --------------------------------------------------------------------


def _status(field: str) -> int:
    """``VmHWM`` or ``VmRSS`` of this process, bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _peak_rss() -> int:
    """The process's peak RSS so far (ru_maxrss, which a reset of VmHWM leaves alone), bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Stages:
    """Each stage's wall seconds, RSS at its start, peak RSS during it and RSS at its end."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.resettable = _reset_peak()

    def run(self, name: str, work: Any) -> Any:
        import gc

        gc.collect()
        self.resettable = _reset_peak() and self.resettable
        start_rss = _status("VmRSS")
        t0 = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - t0
        self.rows.append(
            {
                "stage": name,
                "seconds": seconds,
                "start_rss": start_rss,
                "peak_rss": _status("VmHWM"),
                "end_rss": _status("VmRSS"),
            }
        )
        print(f"  {name}: {seconds:.1f} s, peak RSS {self.rows[-1]['peak_rss'] / GIB:.2f} GiB")
        return result


def measure(directory: Path, batch_size: int) -> dict[str, Any]:
    """The stages on the files of ``directory`` (this process's figures, as a dict)."""
    stages = Stages()
    imported = stages.run("import binomlab, torch, the Lightning plugin", _imports)
    bl, Encoder = imported
    torch = sys.modules["torch"]
    torch.set_num_threads(1)
    files = str(directory)
    groups = stages.run(
        "bl.group (parquet, streaming)", lambda: bl.group(files, FEATURES, LABEL, bins=BINS)
    )

    def encode() -> dict[str, Any]:
        encoder = Encoder.fit(groups, design="one-hot", form="index")
        X = encoder.transform(groups)
        return {"bytes": X.nbytes, "shape": list(X.shape), "dtype": str(X.dtype)}

    encoded = stages.run("encode, index form (alone, then dropped)", encode)
    marks: dict[str, float] = {}

    def on_batch(epoch: int, batch: int, batches: int) -> None:
        now = time.perf_counter()
        marks.setdefault("first_batch", now)
        marks["last_batch"] = now
        marks["batches"] = batches

    def on_epoch(epoch: int, metrics: Any) -> None:
        marks["epoch_end"] = time.perf_counter()
        marks["train_nll"] = float(metrics["train_nll"])

    def fit() -> Any:
        marks["call"] = time.perf_counter()
        fitted = bl.fit(
            groups,
            model=bl.MLP(HIDDEN, embed="auto"),
            backend="lightning",
            epochs=1,
            batch_size=batch_size,
            seed=0,
            callbacks=[on_epoch],
            batch_callbacks=[on_batch],
        )
        marks["returned"] = time.perf_counter()
        return fitted

    fitted = stages.run("bl.fit, MLP (64, 32), embed='auto', one epoch", fit)
    layout = fitted.encoder.layout
    levels = int(sum(layout.levels)) if layout is not None else int(fitted.encoder.n_outputs)
    return {
        "stages": stages.rows,
        "resettable": stages.resettable,
        # VmHWM is reset before each stage, and with it what ru_maxrss reports: the
        # process's peak is the highest stage peak
        "peak_rss": max(max(s["peak_rss"] for s in stages.rows), _peak_rss()),
        "groups": len(groups),
        "trials": int(groups.trials),
        "levels": levels,
        "encoded": encoded,
        "width": int(fitted.encoder.n_outputs),
        "embed": list(_embedding_dims(fitted)),
        "parameters": int(fitted.n_params_),
        "batches": int(marks.get("batches", 0)),
        "fit_marks": {
            "to_first_batch": marks["first_batch"] - marks["call"],
            "batches": marks["last_batch"] - marks["first_batch"],
            "epoch_end": marks["epoch_end"] - marks["last_batch"],
            "after": marks["returned"] - marks["epoch_end"],
        },
        "train_nll": marks["train_nll"],
    }


def _imports() -> tuple[Any, Any]:
    # the plugin and its framework too, so that the fit stage's figures hold none of them
    import lightning  # noqa: F401
    import torch  # noqa: F401

    import binomlab as bl
    import binomlab_lightning  # noqa: F401
    from binomlab.encoding import Encoder

    return bl, Encoder


def _embedding_dims(fitted: Any) -> tuple[int, ...]:
    from binomlab.layout import embedding_dims

    layout = fitted.encoder.layout
    return embedding_dims("auto", layout) if layout is not None else ()


# -- the report ------------------------------------------------------------------------------


def _subprocess(*args: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    try:
        subprocess.run([sys.executable, str(HERE), *args, "--json", str(out)], check=True)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def _gib(b: float) -> str:
    return f"{b / GIB:.2f} GiB"


def _size(b: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20)):
        if b >= scale:
            return f"{b / scale:,.1f} {unit}"
    return f"{b / 1024:,.1f} KiB"


def report(made: dict[str, Any], run: dict[str, Any], rows: int, batch_size: int) -> str:
    table = [
        "| stage | seconds | RSS at start | peak RSS in the stage | peak − start | RSS at end |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in run["stages"]:
        table.append(
            f"| {s['stage']} | {s['seconds']:.1f} | {_gib(s['start_rss'])} | "
            f"{_gib(s['peak_rss'])} | {_gib(s['peak_rss'] - s['start_rss'])} | "
            f"{_gib(s['end_rss'])} |"
        )
    groups, levels = run["groups"], run["levels"]
    one_hot = groups * levels * 4
    m = run["fit_marks"]
    encoded = run["encoded"]
    peak = run["peak_rss"]
    label = f"{rows / 1e6:g}M rows"
    lines = [
        f"#### Memory at scale: {rows:,} rows → {groups:,} groups",
        "",
        f"- data: {rows:,} synthetic rows in {made['files']} parquet files "
        f"({_size(made['bytes'])}), written by a separate process in {made['seconds']:.0f} s; "
        f"features site / app / region of {' / '.join(f'{v:,}' for v in LEVELS.values())} "
        "levels (Zipf-like frequencies, apps concentrated per site), price and age binned in 10 "
        f"quantile bins each; label rate {made['rate']:.3f}",
        f"- grouped: {groups:,} groups, rows / groups = **{rows / groups:.2f}**",
        f"- model: MLP {HIDDEN}, embed='auto' (embedding dims {run['embed']}), "
        f"{run['parameters']:,} parameters; Adam, batch {batch_size:,} groups "
        f"({run['batches']:,} steps), one epoch, one torch thread; train NLL "
        f"{run['train_nll']:.4f}",
        f"- bl.fit's {sum(m.values()):.1f} s: {m['to_first_batch']:.1f} s to its first "
        f"mini-batch (encoding, set-up), {m['batches']:.1f} s of mini-batches, "
        f"{m['epoch_end']:.1f} s to the epoch's end (the exact train NLL over all groups), "
        f"{m['after']:.1f} s to return",
        f"- encoded training matrix, index form: {encoded['shape'][0]:,} × {encoded['shape'][1]} "
        f"{encoded['dtype']} = {_size(encoded['bytes'])}; the one-hot matrix would take "
        f"{groups:,} × {levels:,} × 4 bytes = {_size(one_hot)} "
        f"({one_hot / max(encoded['bytes'], 1):,.0f}×)",
        "",
        *table,
        "",
        f"- process peak RSS (the highest stage peak): {_gib(peak)}"
        + ("" if run["resettable"] else " (VmHWM could not be reset: stage peaks are cumulative)"),
        "",
    ]
    target = [
        f"- peak RSS, {label} (group + one epoch with embeddings): {peak / GIB:.2f} GiB "
        f"(target ≤ {TARGET_GIB:g} GiB) **{verdict(peak <= TARGET_GIB * GIB)}**"
    ]
    return "\n".join(lines), target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=None, help=f"raw rows (default {ROWS:,})")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows")
    p.add_argument("--batch-size", type=int, default=BATCH, help="groups per mini-batch")
    p.add_argument("--markdown", default=None, help="write the summary block here")
    p.add_argument("--append", action="store_true", help="append to --markdown")
    p.add_argument("--generate", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    rows = args.rows or (QUICK_ROWS if args.quick else ROWS)
    if args.generate is not None:  # the first subprocess
        args.json.write_text(json.dumps(generate(args.generate, rows)))
        return 0
    if args.measure is not None:  # the second
        args.json.write_text(json.dumps(measure(args.measure, args.batch_size)))
        return 0

    load_at_start = load_average()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        directory = Path(tmp) / "rows"
        print(f"generating {rows:,} rows in {directory} (separate process)", flush=True)
        made = _subprocess("--generate", str(directory), "--rows", str(rows))
        print(f"  {made}", flush=True)
        print("grouping and training (fresh process)", flush=True)
        run = _subprocess(
            "--measure", str(directory), "--rows", str(rows), "--batch-size", str(args.batch_size)
        )
    section, targets = report(made, run, rows, args.batch_size)
    title = "### bench_memory" + (" (--quick)" if args.quick else "")
    block = "\n".join(
        [
            title,
            "",
            now_line(),
            machine_line(),
            f"- 1-min load average: {load_at_start} at start, {load_average()} at the end; "
            f"total {time.perf_counter() - t0:.0f} s",
            "",
            section,
            "Targets:",
            "",
            *targets,
            "",
        ]
    )
    print("\n" + block)
    write_markdown(block, args.markdown, append=args.append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

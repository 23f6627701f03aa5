"""Benchmark ``binomlab.group`` against the same GROUP BY in DuckDB, pandas and raw Polars.

Three workloads, all contenders on the same data, timed alternately in one process (best of
``--repeat`` runs, ``time.perf_counter``):

1. In memory: ``--rows`` synthetic rows (default 50M) held as one Polars DataFrame. DuckDB
   scans the same buffers through Arrow (zero copy); pandas gets a copy made before timing.
2. Parquet: a ``--parquet-rows`` file (default 100M) written here in row groups under
   ``benchmarks/_data/`` and deleted at the end (unless ``--keep``). pandas is skipped there.
   The peak RSS of ``bl.group(path)``, DuckDB and raw Polars is then measured, each in a
   fresh subprocess of its own.
3. High cardinality, in memory: ``--hc-rows`` rows (default 20M) per case, in the shapes of
   db-benchmark's q2/q10: two string id columns like ``"id000123"`` with 100 levels each
   (10k groups) and 1,000 each (1M groups), and two Int32 id columns with 1,000 levels each
   (1M groups). pandas is skipped there (minutes on 20M strings).

Every contender's counts are checked equal (sorted) before anything is timed. The script
prints a table of seconds, the ratios of each contender's time to ``bl.group``'s with the
targets and PASS/MISS, and a Markdown summary (``--markdown PATH`` writes it to a file).

Usage::

    python benchmarks/bench_grouping.py                 # 50M in memory + 100M-row parquet + 20M hc
    python benchmarks/bench_grouping.py --quick         # 2M / 4M / 3M rows, smoke run
    python benchmarks/bench_grouping.py --hc-only       # the high-cardinality cases alone
    python benchmarks/bench_grouping.py --markdown benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from _common import (  # benchmarks/ is on sys.path when a script runs
    load_average,
    machine_line,
    now_line,
    verdict,
    write_markdown,
)

import binomlab as bl
from binomlab.grouping import dense_keys

SEED = 20_240_601
KEYS = ["a", "b", "c", "d"]
LABEL = "y"
# Four low-cardinality integer keys in compact dtypes and a 0/1 UInt8 label:
# 20 * 12 * 7 * 24 = 40,320 possible groups.
CARDINALITY = {"a": 20, "b": 12, "c": 7, "d": 24}
KEY_DTYPES = {"a": np.uint8, "b": np.uint8, "c": np.uint8, "d": np.int16}
SCHEMA = pa.schema(
    [
        ("a", pa.uint8()),
        ("b", pa.uint8()),
        ("c", pa.uint8()),
        ("d", pa.int16()),
        ("y", pa.uint8()),
    ]
)
DATA_DIR = Path(__file__).resolve().parent / "_data"
GIB = 1024**3
MIB = 1024**2

# Targets: (contender, minimum of contender_seconds / bl.group_seconds).
TARGETS = {"duckdb": 1.5, "pandas": 10.0, "polars": 0.9}
RSS_TARGET = 1 * GIB

SQL = "select a, b, c, d, count(*) as n, sum(y) as k from {source} group by all"

# The high-cardinality cases: name -> (key dtype, levels per key, targets as TARGETS).
HC_KEYS = ["id1", "id2"]
HC_CASES: dict[str, tuple[str, int, dict[str, float]]] = {
    "strings, 10k groups": ("str", 100, {"duckdb": 2.5}),
    "strings, 1M groups": ("str", 1000, {"duckdb": 1.2, "polars": 1.0}),
    "integers, 1M groups": ("int", 1000, {}),
}
HC_SQL = "select id1, id2, count(*) as n, sum(y) as k from {source} group by all"


# -- data ------------------------------------------------------------------------------------


def _effects() -> dict[str, np.ndarray]:
    """Fixed per-level logit effects, so the success rate depends on every key."""
    rng = np.random.default_rng(SEED)
    return {k: rng.normal(0.0, 0.6, size=c).astype(np.float32) for k, c in CARDINALITY.items()}


def chunks(rows: int, chunk_rows: int, stream: int) -> Any:
    """Yield Arrow tables of at most ``chunk_rows`` rows, ``rows`` in all, reproducibly.

    ``stream`` picks an independent random stream (in-memory data and parquet file differ).
    """
    effects = _effects()
    rng = np.random.default_rng([SEED, stream])
    left = rows
    while left > 0:
        n = min(chunk_rows, left)
        cols = {k: rng.integers(0, c, size=n, dtype=KEY_DTYPES[k]) for k, c in CARDINALITY.items()}
        logit = np.full(n, -1.2, dtype=np.float32)
        for k in KEYS:
            logit += effects[k][cols[k]]
        p = 1.0 / (1.0 + np.exp(-logit))
        y = (rng.random(n, dtype=np.float32) < p).astype(np.uint8)
        del logit, p
        yield pa.table({**cols, LABEL: y}, schema=SCHEMA)
        left -= n


def make_frame(rows: int, chunk_rows: int) -> pl.DataFrame:
    """The in-memory data set: one Polars DataFrame with contiguous columns."""
    return pl.concat([pl.from_arrow(t) for t in chunks(rows, chunk_rows, stream=1)], rechunk=True)


def make_hc_frame(rows: int, kind: str, levels: int) -> pl.DataFrame:
    """Two id keys with ``levels`` values each, uniform, and a 0/1 UInt8 label whose rate
    depends on both: Int32 ids, or strings ``"id000123"`` (db-benchmark's ``id1``/``id2``)."""
    rng = np.random.default_rng([SEED, levels])
    ids = {k: rng.integers(0, levels, size=rows, dtype=np.int32) for k in HC_KEYS}
    effect = rng.normal(0.0, 0.6, size=levels).astype(np.float32)
    p = 1.0 / (1.0 + np.exp(1.0 - effect[ids["id1"]] - effect[ids["id2"]]))
    y = (rng.random(rows, dtype=np.float32) < p).astype(np.uint8)
    del p
    frame = pl.DataFrame({**ids, LABEL: y})
    if kind == "str":
        frame = frame.with_columns(
            pl.format("id{}", pl.col(k).cast(pl.String).str.zfill(6)).alias(k) for k in HC_KEYS
        )
    return frame


def write_parquet(path: Path, rows: int, chunk_rows: int) -> None:
    """Write ``rows`` rows chunk by chunk (one row group per chunk); never the whole table."""
    with pq.ParquetWriter(path, SCHEMA, compression="snappy") as writer:
        for table in chunks(rows, chunk_rows, stream=2):
            writer.write_table(table, row_group_size=chunk_rows)


# -- contenders ------------------------------------------------------------------------------
# Each contender is (run, normalise): ``run`` is what is timed and returns the library's own
# result; ``normalise`` (untimed) turns it into a sorted Polars frame a, b, c, d, n, k for the
# equality check.


CASTS = {"a": pl.UInt8, "b": pl.UInt8, "c": pl.UInt8, "d": pl.Int16}


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    keys = [k for k in (*KEYS, *HC_KEYS) if k in frame.columns]  # the workload's keys
    return (
        frame.select(*keys, "n", "k")
        .with_columns(
            *(pl.col(k).cast(t) for k, t in CASTS.items() if k in keys),
            pl.col("n").cast(pl.Int64),
            pl.col("k").cast(pl.Int64),
        )
        .sort(keys)
    )


def bl_group(source: Any, keys: list[str] = KEYS) -> Callable[[], Any]:
    return lambda: bl.group(source, keys, LABEL)


def norm_bl(result: Any) -> pl.DataFrame:
    return _sorted(result.frame)


def duckdb_query(con: duckdb.DuckDBPyConnection, source: str, sql: str = SQL) -> Callable[[], Any]:
    sql = sql.format(source=source)
    return lambda: con.sql(sql).to_arrow_table()


def norm_duckdb(result: pa.Table) -> pl.DataFrame:
    return _sorted(pl.from_arrow(result))


def pandas_groupby(pdf: pd.DataFrame) -> Callable[[], Any]:
    return lambda: pdf.groupby(KEYS, observed=True, sort=False)[LABEL].agg(["size", "sum"])


def norm_pandas(result: pd.DataFrame) -> pl.DataFrame:
    return _sorted(pl.from_pandas(result.reset_index()).rename({"size": "n", "sum": "k"}))


def polars_streaming(lf: pl.LazyFrame, keys: list[str] = KEYS) -> Callable[[], Any]:
    query = lf.group_by(keys).agg(pl.len().alias("n"), pl.col(LABEL).sum().alias("k"))
    return lambda: query.collect(engine="streaming")


def bl_group_hashed(source: Any, keys: list[str] = KEYS) -> Callable[[], Any]:
    """Diagnostic: bl.group with its dense-key path turned off (a hash group-by, as before)."""

    def run() -> Any:
        saved = dense_keys.MAX_BINS
        dense_keys.MAX_BINS = 0
        try:
            return bl.group(source, keys, LABEL)
        finally:
            dense_keys.MAX_BINS = saved

    return run


def norm_polars(result: pl.DataFrame) -> pl.DataFrame:
    return _sorted(result)


Contender = tuple[str, Callable[[], Any], Callable[[Any], pl.DataFrame]]


def check_equal(contenders: list[Contender]) -> int:
    """Run each contender once, assert identical sorted counts; return the number of groups."""
    reference: pl.DataFrame | None = None
    ref_name = ""
    for name, run, normalise in contenders:
        got = normalise(run())
        if reference is None:
            reference, ref_name = got, name
            continue
        if not got.equals(reference):
            msg = f"{name} disagrees with {ref_name}:\n{got}\nvs\n{reference}"
            raise AssertionError(msg)
    assert reference is not None
    return reference.height


Runs = dict[str, list[float]]


def time_alternately(contenders: list[Contender], repeat: int) -> tuple[Runs, Runs]:
    """``repeat`` timings per contender, rounds interleaved (and rotated) so drift hits all
    alike.

    Returns wall-clock seconds and CPU seconds (user + system of this whole process, all
    threads: DuckDB and Polars run in-process). CPU time is what the query cost in work; it
    barely moves when another process competes for the cores, while wall time does.
    """
    walls: Runs = {name: [] for name, *_ in contenders}
    cpus: Runs = {name: [] for name, *_ in contenders}
    for r in range(repeat):
        # Each round starts one contender later: in trials, whichever contender ran first
        # in every round ran 10-20% slower than when it ran second, so none keeps that place.
        shift = r % len(contenders)
        for name, run, _ in contenders[shift:] + contenders[:shift]:
            gc.collect()
            c0, t0 = time.process_time(), time.perf_counter()
            result = run()
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            del result
            walls[name].append(seconds)
            cpus[name].append(cpu)
            print(
                f"  round {r + 1}/{repeat}  {name:<32} {seconds:7.3f} s wall {cpu:7.3f} s CPU",
                flush=True,
            )
    return walls, cpus


# -- peak RSS in fresh subprocesses -----------------------------------------------------------

_CHILD = r"""
import json, resource, sys, time
import psutil
which, path, keys, label = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
import polars as pl
if which == "bl.group":
    import binomlab as bl
    run = lambda: bl.group(path, keys, label)
elif which == "duckdb":
    import duckdb
    con = duckdb.connect()
    source = "read_parquet('{}')".format(path.replace("'", "''"))
    sql = sys.argv[5].format(source=source)
    run = lambda: con.sql(sql).to_arrow_table()
else:
    lf = pl.scan_parquet(path).group_by(keys).agg(pl.len(), pl.col(label).sum())
    run = lambda: lf.collect(engine="streaming")
base = psutil.Process().memory_info().rss
t0 = time.perf_counter()
out = run()
seconds = time.perf_counter() - t0
try:  # VmHWM: this process image's own high-water mark (Linux)
    with open("/proc/self/status") as fh:
        peak = next(int(x.split()[1]) for x in fh if x.startswith("VmHWM:")) * 1024
except OSError:  # elsewhere ru_maxrss (bytes on macOS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base": base, "peak": peak, "seconds": seconds}))
"""


def peak_rss(which: str, path: Path) -> dict[str, float]:
    """Peak RSS (bytes) of a fresh interpreter that imports the library and runs one query.

    ``base`` is the RSS after the imports, before the query; ``peak`` is the child's VmHWM
    at the end, so it covers the interpreter, the imports and the query. Not ``ru_maxrss``:
    on Linux that survives ``exec`` and so starts at the RSS the forked child inherited from
    this (much larger) benchmark process.
    """
    cmd = [sys.executable, "-c", _CHILD, which, str(path), ",".join(KEYS), LABEL, SQL]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f"RSS child for {which} failed ({done.returncode}):\n{done.stderr}"
        raise RuntimeError(msg)
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- reporting -------------------------------------------------------------------------------


def best_of(runs: dict[str, list[float]]) -> dict[str, float]:
    return {name: min(seconds) for name, seconds in runs.items()}


def seconds_table(
    timings: tuple[Runs, Runs],
    reference: str,
    rows: int,
    targets: dict[str, float] = TARGETS,
) -> list[str]:
    """Markdown rows: best and median wall seconds, the best-time ratio to ``reference`` with
    the target and verdict, then the least CPU seconds and their ratio."""
    walls, cpus = timings
    lines = [
        "| contender | best s | median s | Mrows/s | time / bl.group time | target | | "
        "CPU s | CPU / bl.group CPU |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    times, cpu = best_of(walls), best_of(cpus)
    for name, seconds in times.items():
        ratio = seconds / times[reference]
        target = targets.get(name)
        tgt = f"≥ {target:g}×" if target is not None else ""
        mark = verdict(ratio >= target) if target is not None else ""
        ref = name == reference
        shown = "1 (reference)" if ref else f"{ratio:.2f}×"
        cpu_shown = "1" if ref else f"{cpu[name] / cpu[reference]:.2f}×"
        lines.append(
            f"| {name} | {seconds:.3f} | {statistics.median(walls[name]):.3f} | "
            f"{rows / seconds / 1e6:.0f} | {shown} | {tgt} | {mark} | {cpu[name]:.3f} | "
            f"{cpu_shown} |"
        )
    return lines


def environment() -> list[str]:
    duck_threads = duckdb.connect().sql("select current_setting('threads')").fetchall()[0]
    return [
        now_line(),
        machine_line(),
        f"- python {platform.python_version()}, polars {pl.__version__} "
        f"(thread pool {pl.thread_pool_size()}), duckdb {duckdb.__version__} "
        f"(threads {duck_threads[0] if duck_threads else '?'}), pandas {pd.__version__}, "
        f"pyarrow {pa.__version__}, numpy {np.__version__}, binomlab {bl.__version__}",
    ]


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=None, help="in-memory rows (default 50M)")
    p.add_argument("--parquet-rows", type=int, default=None, help="parquet rows (default 100M)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per contender (best of)")
    p.add_argument("--quick", action="store_true", help="2M / 4M rows: a smoke run")
    p.add_argument("--chunk-rows", type=int, default=5_000_000, help="rows per parquet row group")
    p.add_argument("--keep", action="store_true", help="keep the parquet file under _data/")
    p.add_argument("--hc-rows", type=int, default=None, help="rows per high-cardinality case")
    p.add_argument("--hc-only", action="store_true", help="only the high-cardinality cases")
    p.add_argument("--markdown", type=Path, default=None, help="write the summary block here")
    p.add_argument("--append", action="store_true", help="append to --markdown, not overwrite")
    args = p.parse_args(argv)
    if args.rows is None:
        args.rows = 2_000_000 if args.quick else 50_000_000
    if args.parquet_rows is None:
        args.parquet_rows = 4_000_000 if args.quick else 100_000_000
    if args.hc_rows is None:
        args.hc_rows = 3_000_000 if args.quick else 20_000_000
    return args


def bench_memory(args: argparse.Namespace) -> tuple[list[str], dict[str, float], int]:
    print(f"\n== In memory: {args.rows:,} rows ==", flush=True)
    t0 = time.perf_counter()
    df = make_frame(args.rows, args.chunk_rows)
    print(f"generated in {time.perf_counter() - t0:.1f} s; {df.estimated_size() / MIB:.0f} MiB")
    arrow = df.to_arrow()  # zero copy: one chunk per column, no nulls
    pdf = df.to_pandas()  # the copy pandas works on, made before timing
    con = duckdb.connect()
    con.register("t", arrow)

    contenders: list[Contender] = [
        ("bl.group", bl_group(df), norm_bl),
        ("duckdb", duckdb_query(con, "t"), norm_duckdb),
        ("pandas", pandas_groupby(pdf), norm_pandas),
        ("polars", polars_streaming(df.lazy()), norm_polars),
        ("bl.group (LazyFrame)", bl_group(df.lazy()), norm_bl),
        ("bl.group (hash path, dense keys off)", bl_group_hashed(df), norm_bl),
    ]
    groups = check_equal(contenders)
    print(f"all contenders agree: {groups:,} groups, {df[LABEL].sum():,} successes", flush=True)
    times = time_alternately(contenders, args.repeat)
    con.close()
    del df, arrow, pdf, con, contenders
    gc.collect()
    return seconds_table(times, "bl.group", args.rows), best_of(times[0]), groups


def bench_parquet(
    args: argparse.Namespace, path: Path
) -> tuple[list[str], dict[str, float], dict[str, dict[str, float]]]:
    print(f"\n== Parquet: {args.parquet_rows:,} rows ==", flush=True)
    t0 = time.perf_counter()
    write_parquet(path, args.parquet_rows, args.chunk_rows)
    meta = pq.ParquetFile(path).metadata
    print(
        f"wrote {path} in {time.perf_counter() - t0:.1f} s: {path.stat().st_size / MIB:.0f} MiB, "
        f"{meta.num_row_groups} row groups",
        flush=True,
    )
    con = duckdb.connect()
    source = "read_parquet('{}')".format(str(path).replace("'", "''"))
    contenders: list[Contender] = [
        ("bl.group", bl_group(str(path)), norm_bl),
        ("duckdb", duckdb_query(con, source), norm_duckdb),
        ("polars", polars_streaming(pl.scan_parquet(path)), norm_polars),
        ("bl.group (hash path, dense keys off)", bl_group_hashed(str(path)), norm_bl),
    ]
    groups = check_equal(contenders)
    print(f"all contenders agree: {groups:,} groups", flush=True)
    times = time_alternately(contenders, args.repeat)
    con.close()

    print("\npeak RSS, each in a fresh subprocess:", flush=True)
    rss = {}
    for which in ("bl.group", "duckdb", "polars"):
        rss[which] = peak_rss(which, path)
        r = rss[which]
        print(
            f"  {which:<10} peak {r['peak'] / MIB:7.0f} MiB  (after imports {r['base'] / MIB:.0f}"
            f" MiB; query {r['seconds']:.2f} s)",
            flush=True,
        )
    return seconds_table(times, "bl.group", args.parquet_rows), best_of(times[0]), rss


HighCardinality = dict[str, tuple[list[str], dict[str, float], int]]


def bench_high_cardinality(args: argparse.Namespace) -> HighCardinality:
    """Each case of :data:`HC_CASES` on ``--hc-rows`` rows: its table, best times, groups."""
    out: HighCardinality = {}
    for case, (kind, levels, targets) in HC_CASES.items():
        print(f"\n== High cardinality, {case}: {args.hc_rows:,} rows ==", flush=True)
        t0 = time.perf_counter()
        df = make_hc_frame(args.hc_rows, kind, levels)
        print(f"generated in {time.perf_counter() - t0:.1f} s; {df.estimated_size() / MIB:.0f} MiB")
        con = duckdb.connect()
        con.register("t", df.to_arrow())
        contenders: list[Contender] = [
            ("bl.group", bl_group(df, HC_KEYS), norm_bl),
            ("duckdb", duckdb_query(con, "t", HC_SQL), norm_duckdb),
            ("polars", polars_streaming(df.lazy(), HC_KEYS), norm_polars),
            ("bl.group (hash path, dense keys off)", bl_group_hashed(df, HC_KEYS), norm_bl),
        ]
        groups = check_equal(contenders)
        print(f"all contenders agree: {groups:,} groups", flush=True)
        times = time_alternately(contenders, args.repeat)
        con.close()
        del df, con, contenders
        gc.collect()
        table = seconds_table(times, "bl.group", args.hc_rows, targets)
        print("\n" + "\n".join(table), flush=True)
        out[case] = (table, best_of(times[0]), groups)
    return out


def hc_lines(args: argparse.Namespace, hc: HighCardinality) -> tuple[list[str], list[str]]:
    """The high-cardinality section of the summary, and its lines for the Targets list."""
    lines = [
        f"High cardinality ({args.hc_rows:,} rows per case in memory, label y UInt8 0/1 whose "
        "rate depends on both keys; pandas skipped):",
        "",
    ]
    checks = []
    for case, (table, times, groups) in hc.items():
        kind, levels, targets = HC_CASES[case]
        keys = "strings 'id000000'…" if kind == "str" else "Int32"
        lines += [f"{case}: keys id1, id2 ({keys}, {levels:,} levels each), {groups:,} groups:"]
        lines += ["", *table, ""]
        infos = []
        for other in ("duckdb", "polars"):
            ratio = times[other] / times["bl.group"]
            if other in targets:
                checks.append(
                    f"- {case}: bl.group vs {other}: {ratio:.2f}× (target ≥ {targets[other]:g}×) "
                    f"**{verdict(ratio >= targets[other])}**"
                )
            else:  # reported without a target
                infos.append(f"- {case}: {other} s / bl.group s = **{ratio:.2f}×**")
        if infos:
            lines += [*infos, ""]
    return lines, checks


def summary(
    args: argparse.Namespace,
    mem: tuple[list[str], dict[str, float], int] | None,
    par: tuple[list[str], dict[str, float], dict[str, dict[str, float]]] | None,
    hc: HighCardinality,
) -> str:
    hc_section, hc_checks = hc_lines(args, hc) if hc else ([], [])
    if mem is None or par is None:  # --hc-only
        return "\n".join(
            [
                f"### bench_grouping: high cardinality, {args.hc_rows:,} rows per case",
                "",
                *environment(),
                f"- 1-min load average: {args.load_at_start} at start, {load_average()} at the end",
                f"- seed {SEED}; {args.repeat} timed runs each",
                "",
                *hc_section,
                "Targets:",
                "",
                *hc_checks,
                "",
                "Ratios are contender seconds / bl.group seconds (above 1: bl.group is faster).",
                "",
            ]
        )
    mem_table, mem_times, groups = mem
    par_table, par_times, rss = par
    rss_lines = [
        "| process | peak RSS | RSS after imports | query s | target | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for which, r in rss.items():
        tgt, mark = "", ""
        if which == "bl.group":
            tgt, mark = "≤ 1 GiB", verdict(r["peak"] <= RSS_TARGET)
        rss_lines.append(
            f"| {which} | {r['peak'] / MIB:.0f} MiB | {r['base'] / MIB:.0f} MiB | "
            f"{r['seconds']:.2f} | {tgt} | {mark} |"
        )
    checks = []
    for label, times in (("in memory", mem_times), ("parquet", par_times)):
        for other, target in TARGETS.items():
            if other in times:
                ratio = times[other] / times["bl.group"]
                checks.append(
                    f"- {label}: bl.group vs {other}: {ratio:.2f}× (target ≥ {target:g}×) "
                    f"**{verdict(ratio >= target)}**"
                )
    peak = rss["bl.group"]["peak"]
    checks.append(
        f"- parquet: bl.group peak RSS {peak / MIB:.0f} MiB (target ≤ 1024 MiB) "
        f"**{verdict(peak <= RSS_TARGET)}**"
    )
    checks += hc_checks
    load = f"- 1-min load average: {args.load_at_start} at start, {load_average()} at the end"
    lines = [
        f"### bench_grouping: {args.rows:,} rows in memory, {args.parquet_rows:,}-row parquet",
        "",
        *environment(),
        load,
        f"- data: keys a UInt8 (20 levels), b UInt8 (12), c UInt8 (7), d Int16 (24), label y "
        f"UInt8 0/1; {groups:,} groups; seed {SEED}; {args.repeat} timed runs each",
        "",
        "In memory (one Polars DataFrame; DuckDB scans it via Arrow, pandas has its own copy):",
        "",
        *mem_table,
        "",
        f"Parquet (one snappy file, row groups of {args.chunk_rows:,} rows, warm page cache; "
        "pandas skipped: it would have to load all rows into memory first):",
        "",
        *par_table,
        "",
        "Peak RSS on the parquet file (fresh interpreter per row, imports included):",
        "",
        *rss_lines,
        "",
        *hc_section,
        "Targets:",
        "",
        *checks,
        "",
        "Ratios are contender seconds / bl.group seconds (above 1: bl.group is faster); targets "
        "are judged on the best wall-clock times. CPU s is the least user + system time of the "
        "process over the runs (all threads), a cross-check that is less sensitive than wall time "
        "to other load on the machine. Rows in parentheses are diagnostics, not targets.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_at_start = load_average()
    print("\n".join(environment()), flush=True)
    print(f"1-min load average: {args.load_at_start}", flush=True)
    t_start = time.perf_counter()
    mem = par = None
    if not args.hc_only:
        mem = bench_memory(args)
        print("\n" + "\n".join(mem[0]), flush=True)

        DATA_DIR.mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="bench_grouping_", dir=DATA_DIR))
        try:
            par = bench_parquet(args, tmp / f"rows_{args.parquet_rows}.parquet")
        finally:
            if args.keep:
                print(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    hc = bench_high_cardinality(args) if args.hc_rows > 0 else {}

    block = summary(args, mem, par, hc)
    print("\n" + block)
    print(f"total {time.perf_counter() - t_start:.0f} s")
    write_markdown(block, args.markdown, append=args.append)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark ``bl.group_sql`` (group in PostgreSQL, move the groups) against reading every row.

A throwaway PostgreSQL cluster is started on a free loopback port (``tests/pg_cluster.py``:
initdb into a temp folder, deleted at the end) and ``--rows`` synthetic click rows (default
20M) are loaded into it with COPY (ADBC bulk ingest), then ``VACUUM ANALYZE``d. Two ways to get
the same ``Grouped``, timed alternately in one process, best of ``--repeat`` runs:

1. ``group_sql``: ``bl.group_sql("events", uri, features, label)``; the GROUP BY runs in
   PostgreSQL and only its result travels.
2. ``read all + bl.group``: ``pl.read_database_uri("select <columns> from events", uri,
   engine="adbc")``, every row into Polars over the same ADBC driver, then ``bl.group``.

Bytes moved are measured two ways for each: the bytes that crossed the loopback interface
during the call (``/proc/net/dev`` via psutil: the PostgreSQL wire protocol, both directions;
nothing else runs on loopback meanwhile), and the in-memory Arrow size of the frame that
reached Python. Both results are checked equal before anything is timed. The script prints a
table and a Markdown summary (``--markdown PATH`` writes it to a file).

Usage::

    python benchmarks/bench_sql.py                 # 20M rows
    python benchmarks/bench_sql.py --quick         # 2M rows, smoke run
    python benchmarks/bench_sql.py --markdown benchmarks/RESULTS.md --append
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as pg_dbapi
import numpy as np
import polars as pl
import psutil
import pyarrow as pa
from _common import (  # benchmarks/ is on sys.path when a script runs
    load_average,
    machine_line,
    now_line,
    write_markdown,
)

import binomlab as bl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pg_cluster import PostgresCluster

SEED = 20_240_601
FEATURES = ["country", "device", "hour"]
LABEL = "clicked"
COUNTRIES = np.array([f"c{i:02d}" for i in range(20)])
DEVICES = np.array(["desktop", "mobile", "tablet"])
CHUNK_ROWS = 5_000_000
MIB = 1024**2


# -- data ------------------------------------------------------------------------------------


def make_chunk(rows: int, rng: np.random.Generator) -> pa.Table:
    country = rng.integers(0, len(COUNTRIES), rows)
    device = rng.integers(0, len(DEVICES), rows)
    hour = rng.integers(0, 24, rows).astype(np.int16)
    p = 0.02 + 0.002 * country + 0.03 * (device == 1) + 0.001 * hour
    return pa.table(
        {
            "country": pa.array(COUNTRIES[country], pa.string()),
            "device": pa.array(DEVICES[device], pa.string()),
            "hour": hour,
            "clicked": rng.random(rows) < p,
        }
    )


def load(uri: str, rows: int) -> float:
    """COPY ``rows`` rows into the table ``events`` in chunks; return the seconds it took."""
    rng = np.random.default_rng(SEED)
    start = time.perf_counter()
    with pg_dbapi.connect(uri) as conn:
        done = 0
        while done < rows:
            size = min(CHUNK_ROWS, rows - done)
            with conn.cursor() as cur:
                cur.adbc_ingest(
                    "events", make_chunk(size, rng), mode="create" if not done else "append"
                )
            done += size
            print(f"  loaded {done:,} rows", flush=True)
        conn.commit()
    seconds = time.perf_counter() - start
    with pg_dbapi.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("vacuum analyze events")
    return seconds


def server_facts(uri: str) -> dict[str, str]:
    sql = (
        "select version() as version, pg_size_pretty(pg_total_relation_size('events')) as size, "
        "current_setting('max_parallel_workers_per_gather') as workers, "
        "current_setting('shared_buffers') as shared_buffers"
    )
    return pl.read_database_uri(sql, uri, engine="adbc").row(0, named=True)


# -- the two contenders ----------------------------------------------------------------------


def loopback_bytes() -> int:
    lo = psutil.net_io_counters(pernic=True).get("lo")
    return lo.bytes_recv if lo is not None else 0


def via_group_sql(uri: str) -> tuple[bl.Grouped, dict[str, float]]:
    g = bl.group_sql("events", uri, FEATURES, LABEL)
    return g, {}


def via_read_all(uri: str) -> tuple[bl.Grouped, dict[str, float]]:
    start = time.perf_counter()
    cols = ", ".join(f'"{c}"' for c in (*FEATURES, LABEL))
    rows = pl.read_database_uri(f"select {cols} from events", uri, engine="adbc")
    read = time.perf_counter() - start
    g = bl.group(rows, FEATURES, LABEL)
    return g, {"read_s": read, "group_s": time.perf_counter() - start - read}


def arrow_bytes(uri: str) -> dict[str, int]:
    """In-memory size of what each contender pulls into Python (run once, untimed)."""
    keys = ", ".join(f'"{c}"' for c in (*FEATURES, LABEL))
    grouped = f'select {keys}, count(*) as "__binomlab_rows" from events group by {keys}'
    small = pl.read_database_uri(grouped, uri, engine="adbc")
    probe = pl.read_database_uri("select * from events where 1 = 0", uri, engine="adbc")
    rows = pl.read_database_uri(f"select {keys} from events", uri, engine="adbc")
    return {
        "group_sql": small.to_arrow().nbytes + probe.to_arrow().nbytes,
        "read all + bl.group": rows.to_arrow().nbytes,
        "group_sql rows": small.height,
        "read all rows": rows.height,
    }


Contender = Callable[[str], tuple[bl.Grouped, dict[str, float]]]


def time_alternately(
    uri: str, contenders: dict[str, Contender], repeat: int
) -> dict[str, dict[str, float]]:
    best: dict[str, dict[str, float]] = {name: {"seconds": float("inf")} for name in contenders}
    for r in range(repeat):
        for name, run in contenders.items():
            gc.collect()
            before = loopback_bytes()
            start = time.perf_counter()
            _, parts = run(uri)
            seconds = time.perf_counter() - start
            wire = loopback_bytes() - before
            print(f"  run {r + 1}: {name}: {seconds:.3f} s, {wire / MIB:,.1f} MiB on loopback")
            if seconds < best[name]["seconds"]:
                best[name] = {"seconds": seconds, "wire": wire, **parts}
    return best


# -- report ----------------------------------------------------------------------------------


def fmt_bytes(n: float) -> str:
    return f"{n / MIB:,.1f} MiB" if n >= MIB / 10 else f"{n / 1024:,.1f} KiB"


def summary(
    args: argparse.Namespace,
    facts: dict[str, str],
    load_s: float,
    best: dict[str, dict[str, float]],
    sizes: dict[str, int],
    groups: int,
) -> str:
    ref, other = "group_sql", "read all + bl.group"
    a, b = best[ref], best[other]
    table = [
        "| path | best s | Mrows/s | bytes on loopback | Arrow bytes into Python "
        "| rows into Python |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {ref} | {a['seconds']:.3f} | {args.rows / a['seconds'] / 1e6:.1f} | "
        f"{fmt_bytes(a['wire'])} | {fmt_bytes(sizes[ref])} | {sizes['group_sql rows']:,} |",
        f"| {other} | {b['seconds']:.3f} | {args.rows / b['seconds'] / 1e6:.1f} | "
        f"{fmt_bytes(b['wire'])} | {fmt_bytes(sizes[other])} | {sizes['read all rows']:,} |",
        f"| ({other}: read) | {b['read_s']:.3f} | | | | |",
        f"| ({other}: bl.group) | {b['group_s']:.3f} | | | | |",
    ]
    ratios = [
        f"- time: read all + bl.group / group_sql = **{b['seconds'] / a['seconds']:.1f}×**",
        f"- bytes on loopback: read all / group_sql = **{b['wire'] / max(a['wire'], 1):,.0f}×**",
        f"- Arrow bytes into Python: read all / group_sql = "
        f"**{sizes[other] / max(sizes[ref], 1):,.0f}×**",
    ]
    lines = [
        f"### bench_sql: {args.rows:,} rows in PostgreSQL",
        "",
        now_line(),
        machine_line(),
        f"- {facts['version'].split(' on ')[0]} on 127.0.0.1, throwaway cluster (fsync off), "
        f"shared_buffers {facts['shared_buffers']}, max_parallel_workers_per_gather "
        f"{facts['workers']}; table {facts['size']} after VACUUM ANALYZE",
        f"- python {platform.python_version()}, polars {pl.__version__}, adbc-driver-postgresql "
        f"{_version('adbc-driver-postgresql')}, binomlab {bl.__version__}",
        f"- data: country (20 strings), device (3 strings), hour (int2, 24), clicked (bool); "
        f"{groups:,} groups; seed {SEED}; loaded with COPY in {load_s:.1f} s; best of "
        f"{args.repeat}, alternating",
        f"- 1-min load average: {args.load_at_start} at start, {load_average()} at the end",
        "",
        *table,
        "",
        *ratios,
        "",
        "Both paths read through the same ADBC driver, warm (table in shared buffers and page "
        "cache). Loopback bytes are both directions of the PostgreSQL protocol during the call; "
        "group_sql's include its zero-row column probe. Rows in parentheses split the read-all "
        "time into its two steps.",
        "",
    ]
    return "\n".join(lines)


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=None, help="rows in PostgreSQL (default 20M)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per path (best of)")
    p.add_argument("--quick", action="store_true", help="2M rows, 2 runs: a smoke run")
    p.add_argument("--markdown", type=Path, default=None, help="write the summary block here")
    p.add_argument("--append", action="store_true", help="append to --markdown, not overwrite")
    args = p.parse_args(argv)
    if args.rows is None:
        args.rows = 2_000_000 if args.quick else 20_000_000
    if args.quick:
        args.repeat = min(args.repeat, 2)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_at_start = load_average()
    t_start = time.perf_counter()
    with PostgresCluster.start() as pg:
        print(f"PostgreSQL at {pg.uri}; loading {args.rows:,} rows", flush=True)
        load_s = load(pg.uri, args.rows)
        facts = server_facts(pg.uri)
        print(f"loaded in {load_s:.1f} s; table {facts['size']}", flush=True)

        contenders: dict[str, Any] = {
            "group_sql": via_group_sql,
            "read all + bl.group": via_read_all,
        }
        results = {name: run(pg.uri)[0] for name, run in contenders.items()}
        g = results["group_sql"]
        if not g.equals(results["read all + bl.group"]) or g.trials != args.rows:
            print("MISMATCH: group_sql and read all + bl.group disagree", file=sys.stderr)
            return 1
        print(f"both give {len(g):,} groups, {g.trials:,} trials, {g.successes:,} successes")
        sizes = arrow_bytes(pg.uri)
        best = time_alternately(pg.uri, contenders, args.repeat)

    block = summary(args, facts, load_s, best, sizes, len(g))
    print("\n" + block)
    print(f"total {time.perf_counter() - t_start:.0f} s")
    write_markdown(block, args.markdown, append=args.append)
    return 0


if __name__ == "__main__":
    sys.exit(main())

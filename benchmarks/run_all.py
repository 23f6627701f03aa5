"""Run every ``benchmarks/bench_*.py`` and assemble the performance report ``RESULTS.md``.

Each script runs in its own subprocess (``python bench_X.py --markdown <temp file>``, plus
``--quick`` with ``run_all.py --quick``), one after the other, its output streamed to the
terminal. The report holds a header (date, ``os.cpu_count()``, CPU model, RAM, Python and
package versions, the git commit, the load average before and after), a headline table of
every figure each script printed against a target (ratios against a peer measured in the
same run, PASS/MISS) and the informational ratios, then each script's own block verbatim.

A script that fails, times out or writes no block is recorded as such in the report (with
the tail of its output), and the other scripts still run.

Usage::

    python benchmarks/run_all.py                      # everything -> benchmarks/RESULTS.md
    python benchmarks/run_all.py --quick              # -> benchmarks/_data/RESULTS-quick.md
    python benchmarks/run_all.py --skip grouping,sql  # leave scripts out (named in the report)
    python benchmarks/run_all.py --only training --output /tmp/r.md  # the five training parts
    python benchmarks/run_all.py --only race_lightning,loss_kernel

Scripts are named without ``bench_`` and ``.py``; ``training`` stands for the five training
parts (``TRAINING``). They run in the order of ``ORDER``; a ``bench_*.py`` not listed there
runs after those, in name order.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import cpu_model, load_average, total_ram_gib, versions  # benchmarks/ on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGES = [
    "binomlab",
    "binomlab-lightning",
    "binomlab-keras",
    "binomlab-lightgbm",
    "lightgbm",
    "polars",
    "numpy",
    "pandas",
    "pyarrow",
    "duckdb",
    "torch",
    "lightning",
    "keras",
    "tensorflow",
    "onnxruntime",
    "adbc-driver-postgresql",
    "ipywidgets",
]
TRAINING = [
    "race_lightning",  # part 1: time to a good model, Lightning
    "loss_kernel",  # part 2
    "overhead_lightning",  # part 3
    "race_keras",  # part 4: time to a good model, Keras
    "overhead_keras",  # part 5
]
ORDER = [
    "grouping",
    "sql",
    *TRAINING,
    "race_lightgbm",  # boosted trees on the groups against the raw rows and the MLPs
    "index_inputs",
    "memory",  # 50M rows: bl.group then one epoch with embeddings, peak RSS
    "glm",
    "inference",
    "lab_open",
]
ALIASES = {"training": TRAINING}  # one name for several scripts in --only / --skip
TAIL_LINES = 40

# "- label: 1.23× (target ≥ 1.5×) **PASS**": a figure against its target ("Targets:" lists)
TARGET_LINE = re.compile(
    r"^- (?P<label>.+): (?P<value>[^:]+?) \(target (?P<target>[^)]*)\)"
    r"(?P<rest>.*?)\*\*(?P<verdict>PASS|MISS)\*\*(?P<after>.*)$"
)
# "- label: what = **1.23×**": a ratio reported without a target
INFO_LINE = re.compile(r"^- (?P<label>[^:]+): (?P<what>.+) = \*\*(?P<value>[^*]+)\*\*\s*$")


@dataclass
class Outcome:
    """One script's run."""

    name: str
    command: list[str]
    seconds: float = 0.0
    returncode: int | None = None
    timed_out: bool = False
    block: str = ""
    tail: list[str] = field(default_factory=list)

    @property
    def shown(self) -> str:
        """The command as run, with the temporary file's path left out."""
        flags = [a if not a.endswith(".md") else "<temp file>" for a in self.command[2:]]
        return " ".join(["python", f"benchmarks/{Path(self.command[1]).name}", *flags])

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and bool(self.block.strip())


def scripts() -> list[Path]:
    """Every ``bench_*.py``: those of ``ORDER`` in its order, then any others by name."""
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(HERE.glob("bench_*.py"), key=lambda p: (rank.get(short(p), len(rank)), p.name))


def short(path: Path) -> str:
    """``bench_grouping.py`` -> ``grouping``."""
    return path.stem.removeprefix("bench_")


def run_script(path: Path, args: argparse.Namespace) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="run_all_") as tmp:
        markdown = Path(tmp) / f"{path.stem}.md"
        command = [sys.executable, str(path), "--markdown", str(markdown)]
        if args.quick:
            command.append("--quick")
        outcome = Outcome(path.stem, command)
        print(f"\n===== {path.name}: {' '.join(command[1:])}", flush=True)
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        t0 = time.perf_counter()
        with subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ) as proc:
            assert proc.stdout is not None

            def kill() -> None:  # also ends a script that hangs without printing
                outcome.timed_out = True
                proc.kill()

            watchdog = threading.Timer(args.timeout, kill)
            watchdog.start()
            try:
                for line in proc.stdout:
                    print(f"[{short(path)}] {line}", end="", flush=True)
                    tail.append(line.rstrip("\n"))
                outcome.returncode = proc.wait()
            finally:
                watchdog.cancel()
        outcome.seconds = time.perf_counter() - t0
        outcome.tail = list(tail)
        if markdown.is_file():
            outcome.block = markdown.read_text(encoding="utf-8")
    status = "ok" if outcome.ok else f"FAILED (exit {outcome.returncode})"
    print(f"===== {path.name}: {status} in {outcome.seconds:.0f} s", flush=True)
    return outcome


# -- the report ------------------------------------------------------------------------------


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes" if dirty else "")


def figures(block: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The target lines of a block's ``Targets:`` lists, and its informational ratio lines."""
    targets, infos = [], []
    in_targets = False
    for line in block.splitlines():
        if line.strip() == "Targets:":
            in_targets = True
            continue
        if in_targets and line.strip() and not line.startswith("- "):
            in_targets = False
        if in_targets:
            m = TARGET_LINE.match(line)
            if m:
                targets.append(m.groupdict())
            continue
        m = INFO_LINE.match(line)
        if m:
            infos.append(m.groupdict())
    return targets, infos


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("**", "").strip()


def headline(outcomes: list[Outcome], skipped: list[str]) -> list[str]:
    rows = [
        "| benchmark | figure | measured | target | verdict |",
        "|---|---|---:|---:|---|",
    ]
    passed = missed = 0
    for o in outcomes:
        name = o.name.removeprefix("bench_")
        if not o.ok:
            why = "timed out" if o.timed_out else f"exit code {o.returncode}"
            if o.returncode == 0:
                why = "no --markdown block written"
            rows.append(f"| {name} | **did not complete** ({why}; see below) | | | |")
            continue
        targets, infos = figures(o.block)
        for t in targets:
            measured = _cell(t["value"])
            extra = _cell(t["after"].lstrip("; "))
            if extra:
                measured += f" ({extra})"
            rows.append(
                f"| {name} | {_cell(t['label'])} | {measured} | {_cell(t['target'])} | "
                f"**{t['verdict']}** |"
            )
            passed += t["verdict"] == "PASS"
            missed += t["verdict"] == "MISS"
        for i in infos:
            rows.append(
                f"| {name} | {_cell(i['label'])}: {_cell(i['what'])} | {_cell(i['value'])} | "
                "— | (no target) |"
            )
        if not targets and not infos:
            rows.append(f"| {name} | (no ratio lines found in its block; see below) | | | |")
    for name in skipped:
        rows.append(f"| {name.removeprefix('bench_')} | skipped (--skip / --only) | | | |")
    summary = f"{passed} targets met, {missed} missed"
    failed = [o.name for o in outcomes if not o.ok]
    if failed:
        summary += f"; did not complete: {', '.join(failed)}"
    if skipped:
        summary += f"; skipped: {', '.join(skipped)}"
    return [*rows, "", f"**{summary}.**"]


def report(
    outcomes: list[Outcome],
    skipped: list[str],
    args: argparse.Namespace,
    started: dt.datetime,
    load_start: str,
    total_s: float,
) -> str:
    mode = "`python benchmarks/run_all.py" + (" --quick`" if args.quick else "`")
    lines = [
        "# binomlab benchmark results" + (" (--quick smoke run)" if args.quick else ""),
        "",
        "Generated by `benchmarks/run_all.py` (`make bench`); do not edit by hand. Every ratio "
        "compares two contenders measured side by side in the same process and the same run; "
        "see `benchmarks/README.md` for the method and the analysis of each figure.",
        "",
        f"- date: {started.isoformat(timespec='seconds')} (run took {total_s / 60:.1f} min)",
        f"- command: {mode}; git commit {_git()}",
        f"- machine: {platform.machine()} {platform.system()} {platform.release()}, "
        f"os.cpu_count() = {os.cpu_count()}, CPU {cpu_model()}, RAM {total_ram_gib():.1f} GiB",
        f"- python {platform.python_version()} ({sys.executable}); {versions(PACKAGES)}",
        f"- load average (1 / 5 / 15 min): {load_start} at the start, "
        f"{load_average('all')} at the end "
        "(other processes may share the cores: each script also records CPU time)",
        "",
        "## Headline: every figure against its target",
        "",
        *headline(outcomes, skipped),
        "",
        "Per script: "
        + ", ".join(f"{o.name} {o.seconds:.0f} s" + ("" if o.ok else " (failed)") for o in outcomes)
        + ".",
        "",
    ]
    for o in outcomes:
        lines += [f"## {o.name}", ""]
        if o.ok:
            block = o.block.rstrip("\n")
            lines += [block, ""]
            continue
        why = "timed out" if o.timed_out else f"exited with code {o.returncode}"
        if o.returncode == 0 and not o.block.strip():
            why = "exited 0 but wrote no `--markdown` block"
        lines += [
            f"**Did not complete**: `{o.shown}` "
            f"{why} after {o.seconds:.0f} s. Last lines of its output:",
            "",
            "```text",
            *o.tail,
            "```",
            "",
        ]
        if o.block.strip():
            lines += ["Partial block it wrote:", "", o.block.rstrip("\n"), ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="pass --quick to every script")
    p.add_argument(
        "--skip", default="", help="comma-separated scripts to leave out, e.g. grouping,sql"
    )
    p.add_argument(
        "--only",
        default="",
        help="comma-separated scripts to run, e.g. race_lightning,loss_kernel (training: all "
        "five training parts)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="the report (default benchmarks/RESULTS.md; with --quick "
        "benchmarks/_data/RESULTS-quick.md, so a smoke run never replaces the report)",
    )
    p.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds per script before it is killed"
    )
    args = p.parse_args(argv)
    if args.output is None:
        args.output = HERE / ("_data/RESULTS-quick.md" if args.quick else "RESULTS.md")
    return args


def _names(text: str) -> set[str]:
    names = {x.strip().removeprefix("bench_").removesuffix(".py") for x in text.split(",") if x}
    return {part for name in names for part in ALIASES.get(name, [name])}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skip, only = _names(args.skip), _names(args.only)
    available = {short(p) for p in scripts()}
    unknown = (skip | only) - available
    if unknown:
        print(
            f"unknown script(s) {sorted(unknown)}; expected some of {sorted(available)} "
            f"or {sorted(ALIASES)}"
        )
        return 2
    chosen = [p for p in scripts() if short(p) not in skip and (not only or short(p) in only)]
    skipped = [p.stem for p in scripts() if p not in chosen]
    started = dt.datetime.now().astimezone()
    load_start = load_average("all")
    t0 = time.perf_counter()
    outcomes = [run_script(p, args) for p in chosen]
    text = report(outcomes, skipped, args, started, load_start, time.perf_counter() - t0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n", encoding="utf-8")
    print(f"\nwrote {args.output}")
    print("\n".join(headline(outcomes, skipped)))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())

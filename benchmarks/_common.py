"""What every benchmark script reports the same way: the machine, the load, the verdicts.

The scripts run as ``python benchmarks/bench_*.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib.metadata import version
from pathlib import Path

__all__ = [
    "cpu_model",
    "load_average",
    "machine_line",
    "now_line",
    "total_ram_gib",
    "verdict",
    "versions",
    "write_markdown",
]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def load_average(minutes: str = "1") -> str:
    """The 1-minute load average (``"all"``: 1 / 5 / 15): well above 0 means other processes
    competed for the cores."""
    try:
        loads = os.getloadavg()
    except OSError:
        return "n/a"
    if minutes == "all":
        return " / ".join(f"{x:.2f}" for x in loads)
    return f"{loads[0]:.2f}"


def total_ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError):
        return float("nan")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def now_line() -> str:
    return f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}"


def machine_line(extra: str = "") -> str:
    """``- machine: x86_64 Linux …, os.cpu_count() = 2, RAM 23.5 GiB`` plus ``extra``."""
    return (
        f"- machine: {platform.machine()} {platform.system()} {platform.release()}, "
        f"os.cpu_count() = {os.cpu_count()}, RAM {total_ram_gib():.1f} GiB{extra}"
    )


def versions(names: list[str]) -> str:
    """``name version`` of each distribution (``name-cpu`` too, for tensorflow-cpu)."""
    out = []
    for name in names:
        for dist in (name, f"{name}-cpu"):
            try:
                out.append(f"{dist} {version(dist)}")
                break
            except Exception:  # not installed under that name
                continue
        else:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def write_markdown(block: str, path: str | None, *, append: bool) -> None:
    """Write (or append) a script's summary block for ``--markdown PATH``."""
    if path is None:
        return
    with open(path, "a" if append else "w", encoding="utf-8") as fh:
        fh.write(block)
    print(f"wrote the summary to {path}")

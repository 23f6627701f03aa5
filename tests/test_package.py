"""Package-level promises: no framework import, the README runs, the demo runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import imported_modules

import binomlab as bl

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "lightning", "pytorch_lightning", "tensorflow", "keras", "jax")


def test_import_binomlab_imports_no_framework() -> None:
    statement = "import binomlab, binomlab.grouping, binomlab.metrics, binomlab.calibration"
    assert imported_modules(statement, FRAMEWORKS) == []


def test_listing_backends_and_opening_the_lab_import_no_framework() -> None:
    """The plugins' entry points are import-light: listing (and loading) every backend class,
    and opening the Lab with its backend dropdown, leave every framework unimported."""
    listing = (
        "import binomlab as bl; names = bl.backends.available(check=True); "
        "assert {'lightning', 'keras'} <= set(names), names; "
        "[bl.backends.get(n) for n in names]"
    )
    assert imported_modules(listing, FRAMEWORKS) == []
    lab = (
        "import binomlab as bl; from binomlab.testing import synthetic_rows; "
        "train, val = bl.group(synthetic_rows(), ['colour', 'size'], 'y').split(0.2, seed=0); "
        "lab = bl.widgets.Lab(train, val=val); "
        "assert set(lab.train_panel.backend.options) >= {'lightning', 'keras'}"
    )
    assert imported_modules(lab, FRAMEWORKS) == []


def test_public_names() -> None:
    for name in bl.__all__:
        assert hasattr(bl, name), name
    assert issubclass(bl.ColumnNotFoundError, bl.BinomlabError)
    assert issubclass(bl.BinomlabError, ValueError)
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", bl.__version__)


def test_readme_quick_start_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n\n```python\n(.*?)```", readme, re.S)
    assert block is not None
    code = "import matplotlib\nmatplotlib.use('Agg')\n" + block.group(1)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "Grouped:" in out.stdout
    assert "'nll':" in out.stdout


@pytest.mark.slow
def test_demo_command(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "binomlab.cli", "demo", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )
    assert out.returncode == 0, out.stderr
    assert "336,776 rows" in out.stdout
    assert "327,346 trials" in out.stdout  # 9,430 flights without an arrival delay left out
    assert "exact split of the trials: train 261,877, test 65,469" in out.stdout
    header = next(line for line in out.stdout.splitlines() if line.startswith("│ model"))
    columns = [c.strip() for c in header.strip("│ ").split("┆")]
    rows = [
        dict(zip(columns, (c.strip() for c in line.strip("│ ").split("┆")), strict=True))
        for line in out.stdout.splitlines()
        if line.startswith("│ logistic/")
    ]
    board = {row["model"]: row for row in rows}
    assert "logistic/reference" in board
    assert "logistic/statsmodels" in board
    # every backend and statsmodels reach the same penalised GLM, with the same dispersion on
    # the held-out groups (4 decimals printed)
    for metric in ("nll", "dispersion"):
        assert len({row[metric] for row in rows}) == 1, (metric, board)
    assert (tmp_path / "calibration.png").stat().st_size > 10_000
    exported = list((tmp_path / "models").iterdir())
    assert len(exported) == out.stdout.count("max |Δp| = ") >= 1
    for model in exported:
        assert (model / "model.onnx").is_file()


def test_cli_reports_bad_arguments_in_one_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "binomlab.cli", "nonsense"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "invalid choice: 'nonsense'" in out.stderr

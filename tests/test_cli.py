"""The binomlab command line, run as a user runs it: subprocesses on real files."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

import binomlab as bl
from binomlab import datasets


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "binomlab.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )


@pytest.fixture(scope="module")
def flight_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flights")
    rows = datasets.flights().select("carrier", "origin", "distance", "delayed").head(60_000)
    rows[:30_000].write_parquet(folder / "part-0.parquet")
    rows[30_000:].write_parquet(folder / "part-1.parquet")
    rows.write_csv(folder / "rows.csv")
    return folder, rows


def test_group_files_with_bins(flight_files) -> None:
    folder, rows = flight_files
    out = run("group", str(folder / "part-*.parquet"), "--features", "carrier,origin,distance",
              "--label", "delayed", "--drop-null-labels", "--bins", "distance=5",
              "-o", str(folder / "g.parquet"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    expected = bl.group(rows, ["carrier", "origin", "distance"], "delayed",
                        bins={"distance": 5}, drop_null_labels=True)  # fmt: skip
    got = bl.read_grouped(folder / "g.parquet")
    assert got.equals(expected)
    assert f"compression ratio {expected.compression:,.1f}×" in out.stdout


def test_group_csv_with_explicit_edges_and_positive(flight_files, tmp_path) -> None:
    _, rows = flight_files
    labelled = rows.drop_nulls("delayed").with_columns(
        status=pl.when(pl.col("delayed")).then(pl.lit("late")).otherwise(pl.lit("on time"))
    )
    labelled.write_ndjson(tmp_path / "rows.ndjson")
    out = run("group", str(tmp_path / "rows.ndjson"), "--features", "origin,distance",
              "--label", "status", "--positive", "late", "--bins", "distance=0,1000,5000",
              "-q", "-o", str(tmp_path / "g.parquet"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    got = bl.read_grouped(tmp_path / "g.parquet")
    assert got.successes == int(labelled["delayed"].sum())
    assert got.bins == {"distance": (0.0, 1000.0, 5000.0)}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--features", "carrier,nope", "--label", "delayed"], "Feature 'nope' not found"),
        (["--features", "carrier", "--label", "delayed"], "Label 'delayed' is null in"),
        (["--features", "carrier", "--label", "delayed", "--bins", "distance"], "--bins expects"),
    ],
)
def test_group_errors_are_one_line(flight_files, tmp_path, args, message) -> None:
    folder, _ = flight_files
    out = run("group", str(folder / "rows.csv"), *args, "-o", str(tmp_path / "x.parquet"))
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_bad_arguments_exit_2_with_usage() -> None:
    out = run("train")
    assert out.returncode == 2
    assert "the following arguments are required: data" in out.stderr


def test_train_then_evaluate(flight_files, tmp_path) -> None:
    folder, rows = flight_files
    grouped = bl.group(rows, ["carrier", "origin"], "delayed", drop_null_labels=True)
    grouped.write_parquet(tmp_path / "g.parquet")
    out = run("train", str(tmp_path / "g.parquet"), "--backend", "reference", "--val", "0",
              "-o", str(tmp_path / "model"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Fitted(logistic, backend='reference'" in out.stdout
    assert "epoch" in out.stderr  # the progress bar
    served = bl.load(tmp_path / "model")
    expected = bl.evaluate(grouped, served)

    out = run("evaluate", str(tmp_path / "model"), str(tmp_path / "g.parquet"),
              "--calibration", str(tmp_path / "cal.png"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    nll = float(re.search(r"│ nll\s+┆ ([0-9.]+)", out.stdout).group(1))
    assert nll == pytest.approx(expected["nll"], abs=1e-6)
    assert (tmp_path / "cal.png").stat().st_size > 10_000

    # raw rows, grouped on the model's features by the label
    out = run("evaluate", str(tmp_path / "model"), str(folder / "rows.csv"), "--label", "delayed",
              "--drop-null-labels")  # fmt: skip
    assert out.returncode == 0, out.stderr
    nll = float(re.search(r"│ nll\s+┆ ([0-9.]+)", out.stdout).group(1))
    assert nll == pytest.approx(expected["nll"], abs=1e-6)


def test_train_mlp_on_lightning_with_validation(flight_files, tmp_path) -> None:
    pytest.importorskip("binomlab_lightning")
    _, rows = flight_files
    grouped = bl.group(rows, ["carrier", "origin"], "delayed", drop_null_labels=True)
    grouped.write_parquet(tmp_path / "g.parquet")
    out = run("train", str(tmp_path / "g.parquet"), "--model", "mlp:8", "--epochs", "3",
              "--lr", "0.01", "-o", str(tmp_path / "mlp"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert re.search(r"Fitted\(mlp:8, backend='lightning', epochs=3, .*val_nll=", out.stdout)
    served = bl.load(tmp_path / "mlp")
    p = served.predict_proba(grouped)
    assert np.all((p > 0) & (p < 1))


def test_evaluate_missing_model_is_one_line(tmp_path) -> None:
    out = run("evaluate", str(tmp_path), str(tmp_path / "g.parquet"))
    assert out.returncode == 2
    assert "manifest.json is missing" in out.stderr

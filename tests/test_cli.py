"""The binomlab command line, run as a user runs it: subprocesses on real files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest

import binomlab as bl
from binomlab import datasets
from binomlab.testing import synthetic_rows

ENV = {"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin", "HOME": "/tmp"}


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "binomlab.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=ENV,
    )


def run_code(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` (which calls ``binomlab.cli.main``) in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=ENV
    )


def assert_one_line_error(out: subprocess.CompletedProcess, prefix: str, message: str) -> None:
    """Exit code 2, nothing on stdout, and one line on stderr: ``prefix`` then ``message``."""
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"{prefix}: error: "), lines[0]
    assert message in lines[0]


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


def test_bad_arguments_exit_2_with_one_line() -> None:
    out = run("train")
    assert_one_line_error(out, "binomlab train", "the following arguments are required: data")
    assert "see 'binomlab train --help'" in out.stderr


def test_version() -> None:
    out = run("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"binomlab {bl.__version__}\n"


def test_train_then_evaluate(flight_files, tmp_path) -> None:
    folder, rows = flight_files
    grouped = bl.group(rows, ["carrier", "origin"], "delayed", drop_null_labels=True)
    grouped.write_parquet(tmp_path / "g.parquet")
    out = run("train", str(tmp_path / "g.parquet"), "--backend", "reference", "--val", "0",
              "-o", str(tmp_path / "model"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Fitted(logistic, backend='reference'" in out.stdout
    assert "iteration" in out.stderr  # the progress bar: Newton's iterations
    served = bl.load(tmp_path / "model")
    expected = bl.evaluate(grouped, served)

    out = run("evaluate", str(tmp_path / "model"), str(tmp_path / "g.parquet"),
              "--calibration", str(tmp_path / "cal.png"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    nll = float(re.search(r"│ nll\s+┆ ([0-9.]+)", out.stdout).group(1))
    assert nll == pytest.approx(expected["nll"], abs=1e-6)
    assert (tmp_path / "cal.png").stat().st_size > 10_000
    low, high = map(float, re.search(r"│ nll\s+┆ [0-9.]+\s+┆ \[([0-9.]+), ([0-9.]+)\]",
                                     out.stdout).groups())  # fmt: skip
    interval = bl.metric_intervals(grouped, served).row(0, named=True)
    assert (low, high) == pytest.approx((interval["lower"], interval["upper"]), rel=1e-5)

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


# -- every error is one line, with nothing before it ------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A grouped parquet file, a corrupt one, a reference model folder, a plain file and a
    non-empty folder that is no model."""
    folder = tmp_path_factory.mktemp("doors")
    grouped = bl.group(synthetic_rows(), ["colour", "size", "flag"], "y")
    grouped.write_parquet(folder / "g.parquet")
    good = (folder / "g.parquet").read_bytes()
    (folder / "bad.parquet").write_bytes(good[: len(good) // 2])  # cut short: no footer
    bl.fit(grouped, backend="reference").export(folder / "model")
    (folder / "file.txt").write_text("not a folder")
    (folder / "full").mkdir()
    (folder / "full" / "notes.txt").write_text("keep me")
    names = {"grouped": "g.parquet", "bad": "bad.parquet", "model": "model", "file": "file.txt"}
    return {key: str(folder / name) for key, name in names.items()} | {"dir": folder}


ERRORS = {
    # a corrupt parquet file at each door that reads one (a polars error, not a traceback)
    "group corrupt": (["group", "{bad}", "--features", "colour", "--label", "y",
                       "-o", "{dir}/x.parquet"], "binomlab group", "parquet"),
    "train corrupt": (["train", "{bad}", "--backend", "reference", "-o", "{dir}/m"],
                      "binomlab train", "parquet"),
    "evaluate corrupt": (["evaluate", "{model}", "{bad}"], "binomlab evaluate", "parquet"),
    "missing file": (["split", "{dir}/nope.parquet", "-o", "{dir}/a.parquet", "{dir}/b.parquet"],
                     "binomlab split", "nope.parquet"),
    # an output format matplotlib cannot write, refused before any metric is printed
    "figure format": (["evaluate", "{model}", "{grouped}", "--calibration", "{dir}/x.jpeg2"],
                      "binomlab evaluate", "--calibration"),
    "figure folder": (["evaluate", "{model}", "{grouped}", "--calibration",
                       "{dir}/nowhere/x.png"], "binomlab evaluate", "does not exist"),
    "val range": (["train", "{grouped}", "--backend", "reference", "--val", "1.5",
                   "-o", "{dir}/m"], "binomlab train", "argument --val: expected a fraction"),
    "val empties a part": (["train", "{grouped}", "--backend", "reference", "--val", "1e-6",
                            "-o", "{dir}/m"], "binomlab train", "--val 1e-06 of 4,000 trials"),
    "test range": (["split", "{grouped}", "--test", "0", "-o", "{dir}/a.parquet",
                    "{dir}/b.parquet"], "binomlab split", "argument --test"),
    # the output checked before any work
    "output is a file": (["train", "{grouped}", "--backend", "reference", "-o", "{file}"],
                         "binomlab train", "is a file"),
    "output not empty": (["train", "{grouped}", "--backend", "reference", "-o", "{model}"],
                         "binomlab train", "is not empty: pass --overwrite"),
    "overwrite no model": (["train", "{grouped}", "--backend", "reference", "-o", "{dir}/full",
                            "--overwrite"], "binomlab train", "is not a model folder"),
    # an error in bl.fit before the first epoch: no progress bar before it
    "fit error": (["train", "{grouped}", "--backend", "reference", "--reference",
                   "colour=purple", "-o", "{dir}/m"], "binomlab train", "is not a level"),
    "option refused": (["train", "{grouped}", "--backend", "reference", "--weight-decay", "-1",
                        "-o", "{dir}/m"], "binomlab train", "Received: weight_decay=-1"),
    "loss refused": (["train", "{grouped}", "--backend", "reference", "--loss",
                      "beta-binomial", "-o", "{dir}/m"], "binomlab train", "expects loss"),
    # typos get a "did you mean"
    "option typo": (["train", "{grouped}", "--weight-decays", "0.1", "-o", "{dir}/m"],
                    "binomlab train", "--weight-decays 0.1 (did you mean --weight-decay?)"),
    "choice typo": (["train", "{grouped}", "--loss", "binomal", "-o", "{dir}/m"],
                    "binomlab train", "(did you mean 'binomial'?)"),
    "command typo": (["trian"], "binomlab", "(did you mean 'train'?)"),
    # a backend's own options: NAME=VALUE, checked by the backend before training
    "option form": (["train", "{grouped}", "--option", "jit_compile", "-o", "{dir}/m"],
                    "binomlab train", "--option expects NAME=VALUE"),
    "option not taken": (["train", "{grouped}", "--backend", "reference", "--option",
                          "jit_compile=true", "-o", "{dir}/m"], "binomlab train",
                         "does not take the option(s) ['jit_compile']"),
    "option has a flag": (["train", "{grouped}", "--option", "batch_size=8", "-o", "{dir}/m"],
                          "binomlab train", "pass it as --batch-size"),
    "option is bl.fit's": (["train", "{grouped}", "--option", "inputs=one-hot", "-o",
                            "{dir}/m"], "binomlab train", "is bl.fit's own argument"),
    "option twice": (["train", "{grouped}", "--option", "a=1", "--option", "a=2", "-o",
                      "{dir}/m"], "binomlab train", "--option a is given twice ('1' and '2')"),
}  # fmt: skip


@pytest.mark.parametrize(("args", "prefix", "message"), ERRORS.values(), ids=ERRORS)
def test_every_error_is_one_line_with_nothing_before_it(files, args, prefix, message) -> None:
    out = run(*(a.format(**files) for a in args))
    assert_one_line_error(out, prefix, message)
    assert "Traceback" not in out.stderr
    assert not (files["dir"] / "m").exists()  # nothing was trained and written
    assert not list(files["dir"].glob("x.*"))  # no half-written output
    assert (files["dir"] / "full" / "notes.txt").exists()  # --overwrite removed nothing


def test_ctrl_c_exits_130_with_one_line(files) -> None:
    out = run_code(f"""
        import sys
        import binomlab.cli as cli

        def interrupted(args):
            raise KeyboardInterrupt

        cli._split = interrupted
        sys.exit(cli.main(["split", {files["grouped"]!r}, "-o", "a.parquet", "b.parquet"]))
    """)
    assert out.returncode == 130
    assert out.stderr == "binomlab split: interrupted (Ctrl-C)\n"


def test_warnings_are_one_line_each(files, tmp_path) -> None:
    out = run("train", files["grouped"], "--backend", "reference", "--epochs", "1", "--val",
              "0", "-q", "-o", str(tmp_path / "m"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("binomlab train: warning: Newton stopped at its cap of 1 iteration ")
    assert "ConvergenceWarning" not in out.stderr


def test_keras_deprecation_noise_is_not_shown() -> None:
    out = run_code("""
        import sys, warnings
        import binomlab.cli as cli

        def noisy(args):
            warnings.simplefilter("always")  # as a library resetting the filters would
            warnings.warn_explicit("__array__ implementation doesn't accept a copy keyword, "
                                   "so passing copy=False failed.", DeprecationWarning,
                                   "/site/numpy/core.py", 1, module="__main__")
            warnings.warn_explicit("old API", DeprecationWarning,
                                   "/site/keras/src/saving/file.py", 1, module="keras.src")
            warnings.warn("this one is for you,\\n  on two lines", UserWarning)
            return 0

        cli._split = noisy
        sys.exit(cli.main(["split", "g.parquet", "-o", "a.parquet", "b.parquet"]))
    """)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "binomlab split: warning: this one is for you, on two lines\n"


# -- split, the bl.fit options, --overwrite ----------------------------------------------------


def test_split_is_exact_and_seeded(files, tmp_path) -> None:
    grouped = bl.read_grouped(files["grouped"])
    paths = [str(tmp_path / name) for name in ("a.parquet", "b.parquet", "c.parquet", "d.parquet")]
    out = run("split", files["grouped"], "--test", "0.25", "--seed", "7", "-o", *paths[:2])
    assert out.returncode == 0, out.stderr
    train, test = (bl.read_grouped(p) for p in paths[:2])
    assert (train.trials, test.trials) == (3000, 1000)
    assert train.trials + test.trials == grouped.trials
    assert train.successes + test.successes == grouped.successes
    expected_train, expected_test = grouped.split(0.25, seed=7)
    assert train.equals(expected_train) and test.equals(expected_test)
    assert out.stdout.splitlines() == [
        f"train: 3,000 trials in {len(train)} groups · wrote {paths[0]}",
        f"test: 1,000 trials in {len(test)} groups · wrote {paths[1]}",
    ]
    again = run("split", files["grouped"], "--test", "0.25", "--seed", "7", "-q", "-o",
                *paths[2:])  # fmt: skip
    assert again.returncode == 0 and again.stdout == ""
    assert bl.read_grouped(paths[2]).equals(train) and bl.read_grouped(paths[3]).equals(test)


def manifest_config(folder) -> dict:
    return json.loads((folder / "manifest.json").read_text())["training"]["config"]


def test_train_flags_reach_the_config_and_overwrite_replaces(files, tmp_path) -> None:
    folder = tmp_path / "m"
    out = run("train", files["grouped"], "--backend", "reference", "--optimizer", "lbfgs",
              "--weight-decay", "0.5", "--tolerance", "1e-6", "--epochs", "300", "--loss",
              "binomial", "--phi", "scalar", "--val", "0", "-o", str(folder))  # fmt: skip
    assert out.returncode == 0, out.stderr
    config = manifest_config(folder)
    assert config["optimizer"] == "lbfgs" and config["epochs"] == 300
    assert config["weight_decay"] == 0.5 and config["tolerance"] == 1e-6
    assert (config["loss"], config["phi"]) == ("binomial", "scalar")
    out = run("train", files["grouped"], "--backend", "reference", "--weight-decay", "0.25",
              "--val", "0", "-q", "--overwrite", "-o", str(folder))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert manifest_config(folder)["weight_decay"] == 0.25
    assert manifest_config(folder)["optimizer"] == "newton"


def test_train_beta_binomial_flags_on_lightning(files, tmp_path) -> None:
    pytest.importorskip("binomlab_lightning")
    out = run("train", files["grouped"], "--backend", "lightning", "--loss", "beta-binomial",
              "--phi", "network", "--optimizer", "lbfgs", "--epochs", "30", "-q",
              "-o", str(tmp_path / "m"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    config = manifest_config(tmp_path / "m")
    assert (config["loss"], config["phi"], config["epochs"]) == ("beta-binomial", "network", 30)


def test_train_passes_a_backends_own_options(files, tmp_path) -> None:
    pytest.importorskip("binomlab_keras")
    out = run("train", files["grouped"], "--backend", "keras", "--model", "mlp:4", "--epochs",
              "2", "--option", "steps_per_execution=3", "--option", "jit_compile=true", "-q",
              "-o", str(tmp_path / "m"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    options = manifest_config(tmp_path / "m")["options"]
    assert options == {"steps_per_execution": 3, "jit_compile": True}
    # Python's spelling of a literal is read too
    out = run("train", files["grouped"], "--backend", "keras", "--model", "mlp:4", "--epochs",
              "1", "--option", "jit_compile=True", "-q", "-o", str(tmp_path / "py"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert manifest_config(tmp_path / "py")["options"]["jit_compile"] is True
    # a value of the wrong kind is the backend's one-line error
    out = run("train", files["grouped"], "--backend", "keras", "--model", "mlp:4", "--option",
              "steps_per_execution=three", "-o", str(tmp_path / "m2"))  # fmt: skip
    assert_one_line_error(out, "binomlab train", "steps_per_execution='three'")

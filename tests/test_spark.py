"""bl.group on a Spark DataFrame: Spark groups, only the groups come back, equal to bl.group.

Runs Spark in local mode on two cores (the ``spark`` fixture in conftest.py).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from helpers import BAD_LABEL_IDS, BAD_LABELS

import binomlab as bl

pytestmark = pytest.mark.slow

ROWS = 2_000_000
FEATURES = ["country", "hour", "mobile"]


def make_events(rows: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    hour = rng.integers(0, 24, rows).astype(np.int16)
    mobile = rng.random(rows) < 0.4
    clicked = rng.random(rows) < 0.05 + 0.1 * mobile + 0.004 * hour
    country = pl.Series(rng.choice(np.array(["de", "fr", "it", "nl"]), rows))
    return pl.DataFrame(
        {
            "country": country.set(pl.Series(rng.random(rows) < 0.01), None),
            "hour": hour,
            "mobile": mobile,
            "clicked": clicked,
            "outcome": np.where(clicked, "buy", "browse"),
            "rank": rng.integers(0, 1000, rows),
        }
    )


def to_spark(spark, frame: pl.DataFrame):
    return spark.createDataFrame(frame.to_arrow().cast(_plain_strings(frame.to_arrow().schema)))


def _plain_strings(schema: pa.Schema) -> pa.Schema:
    """Polars exports string views; Spark takes plain (large) strings."""
    return pa.schema(
        [
            pa.field(f.name, pa.large_string()) if pa.types.is_string_view(f.type) else f
            for f in schema
        ]
    )


def test_spark_group_equals_group_on_the_same_parquet(spark, tmp_path) -> None:
    events = make_events(ROWS)
    path = tmp_path / "events.parquet"
    events.write_parquet(path)
    sdf = spark.read.parquet(str(path))
    g = bl.group(sdf, FEATURES, "clicked")
    assert g.equals(bl.group(path, FEATURES, "clicked"))
    assert len(g) == 5 * 24 * 2  # 4 countries and null, 24 hours, mobile or not
    assert g.trials == ROWS
    assert g.successes == int(events["clicked"].sum())
    assert g.frame.schema == pl.Schema(
        {"country": pl.String, "hour": pl.Int16, "mobile": pl.Boolean, "n": pl.Int64, "k": pl.Int64}
    )
    # A filtered DataFrame, a string label with positive=, and an int feature.
    late = sdf.where("hour >= 18")
    g2 = bl.group(late, ["rank"], "outcome", positive="buy")
    expected = bl.group(events.filter(pl.col("hour") >= 18), ["rank"], "outcome", positive="buy")
    assert g2.equals(expected)
    assert len(g2) == 1000
    assert g2.successes == int(events.filter(pl.col("hour") >= 18)["clicked"].sum())


@pytest.mark.parametrize(("case", "label", "kwargs"), BAD_LABELS, ids=BAD_LABEL_IDS)
def test_spark_label_errors_match_group(spark, case, label, kwargs) -> None:
    frame = pl.DataFrame({"f": ["a", "a", "b", "b"], "y": label})
    sdf = to_spark(spark, frame)
    with pytest.raises(bl.BinomlabError) as expected:
        bl.group(frame, "f", "y", **kwargs)
    with pytest.raises(type(expected.value)) as got:
        bl.group(sdf, "f", "y", **kwargs)
    assert str(got.value) == str(expected.value)


def test_spark_labels_nulls_and_names(spark) -> None:
    frame = pl.DataFrame(
        {
            "a.b": ["x", "x", None, "y", "y"],
            "odd`name": [1, 1, 2, 2, 2],
            "y": [True, None, False, True, True],
        }
    )
    sdf = to_spark(spark, frame)
    # Dots and backticks in names are column names, not struct paths or SQL.
    g = bl.group(sdf, ["a.b", "odd`name"], "y", drop_null_labels=True)
    assert g.frame.rows() == [(None, 2, 1, 0), ("x", 1, 1, 1), ("y", 2, 2, 2)]
    assert g.equals(bl.group(frame, ["a.b", "odd`name"], "y", drop_null_labels=True))


def test_spark_argument_errors(spark) -> None:
    sdf = to_spark(spark, pl.DataFrame({"colour": ["a"], "size": [1], "y": [1]}))
    with pytest.raises(
        bl.ColumnNotFoundError,
        match=r"Feature 'sise' not found.*\['colour', 'size', 'y'\].*'sise' -> 'size'",
    ):
        bl.group(sdf, ["colour", "sise"], "y")
    with pytest.raises(bl.BinomlabError, match=r"bins=\{'size': 3\} is not supported"):
        bl.group(sdf, "size", "y", bins={"size": 3})
    with pytest.raises(bl.EmptyDataError, match="no rows"):
        bl.group(sdf.where("y > 1"), "colour", "y")
    nested = spark.createDataFrame([([1, 2], 1)], "f array<int>, y int")
    with pytest.raises(bl.BinomlabError, match=r"Feature 'f' has dtype List\(Int32\)"):
        bl.group(nested, "f", "y")

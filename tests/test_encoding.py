"""The Encoder: one-hot with an unknown bucket, trial-weighted standardisation, bins, JSON."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

import binomlab as bl
from binomlab.encoding import Encoder


@pytest.fixture
def grouped() -> bl.Grouped:
    df = pl.DataFrame(
        {
            "colour": ["red", "blue", None, "red", "blue", "red"],
            "size": [1.0, 2.0, 3.0, None, 2.0, 1.0],
            "flag": [True, False, True, True, False, False],
            "dist": [10.0, 600.0, 1200.0, 50.0, 700.0, 20.0],
            "y": [1, 0, 1, 0, 1, 1],
        }
    )
    return bl.group(df, ["colour", "size", "flag", "dist"], "y", bins={"dist": [0, 500, 5000]})


def test_output_columns(grouped) -> None:
    enc = Encoder.fit(grouped)
    assert enc.output_names == [
        "colour=<null>", "colour=blue", "colour=red", "colour=<unknown>",
        "size", "size=<null>",
        "flag=False", "flag=True", "flag=<unknown>",
        "dist=[0, 500)", "dist=[500, 5000]", "dist=<unknown>",
    ]  # fmt: skip
    X = enc.transform(grouped)
    assert X.dtype == np.float32
    assert X.shape == (len(grouped), 12)
    one_hot = [slice(0, 4), slice(6, 9), slice(9, 12)]
    for block in one_hot:
        assert (X[:, block].sum(axis=1) == 1).all()


def test_standardisation_equals_raw_rows(grouped) -> None:
    enc = Encoder.fit(grouped)
    rows = grouped.expand()["size"].drop_nulls().to_numpy()
    mean, scale = enc.standardisation()["size"]
    assert mean == pytest.approx(rows.mean(), rel=1e-12)
    assert scale == pytest.approx(rows.std(), rel=1e-12)
    raw = pl.DataFrame({"colour": ["red"], "size": [4.0], "flag": [True], "dist": [1.0]})
    assert enc.transform(raw)[0, 4] == pytest.approx((4.0 - mean) / scale, rel=1e-6)


def test_new_frame_with_raw_numbers_unseen_values_and_nulls(grouped) -> None:
    enc = Encoder.fit(grouped)
    new = pl.DataFrame(
        {"colour": ["green", None], "size": [None, 2.0], "flag": [True, False],
         "dist": [499.0, 5000.0]}
    )  # fmt: skip
    X = enc.transform(new)
    names = enc.output_names
    hot = [[names[j] for j in np.flatnonzero(row)] for row in X]
    assert [h for h in hot[0] if h != "size"] == [
        "colour=<unknown>",
        "size=<null>",
        "flag=True",
        "dist=[0, 500)",
    ]
    assert hot[1][0] == "colour=<null>"
    assert "dist=[500, 5000]" in hot[1]


def test_the_grouped_frame_and_its_raw_rows_encode_alike(grouped) -> None:
    enc = Encoder.fit(grouped)
    raw = bl.group(
        pl.DataFrame({"colour": ["red"], "size": [1.0], "flag": [True], "dist": [30.0], "y": [1]}),
        ["colour", "size", "flag", "dist"], "y", bins={"dist": [0, 500, 5000]},
    )  # fmt: skip
    from_raw = enc.transform(pl.DataFrame({"colour": ["red"], "size": [1.0], "flag": [True],
                                           "dist": [30.0]}))  # fmt: skip
    assert np.array_equal(enc.transform(raw), from_raw)


def test_json_round_trip(grouped) -> None:
    enc = Encoder.fit(grouped)
    back = Encoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert back == enc
    assert np.array_equal(back.transform(grouped), enc.transform(grouped))


def test_errors(grouped) -> None:
    enc = Encoder.fit(grouped)
    with pytest.raises(bl.ColumnNotFoundError, match=r"Feature 'flag' not found"):
        enc.transform(grouped.frame.drop("flag"))
    no_null_size = bl.group(pl.DataFrame({"size": [1.0, 2.0], "y": [0, 1]}), "size", "y")
    with pytest.raises(bl.BinomlabError, match=r"'size' is null or NaN at row 1 \(1 rows\)"):
        Encoder.fit(no_null_size).transform(pl.DataFrame({"size": [1.0, None]}))
    with pytest.raises(bl.BinomlabError, match=r"outside its bin edges \[0, 5000\]"):
        enc.transform(grouped.frame.drop("dist").with_columns(dist=pl.lit(9999.0)))
    import datetime as dt

    dates = bl.group(pl.DataFrame({"d": [dt.date(2024, 1, 1)] * 2, "y": [0, 1]}), "d", "y")
    with pytest.raises(bl.BinomlabError, match=r"Cannot encode feature 'd' of dtype Date"):
        Encoder.fit(dates)

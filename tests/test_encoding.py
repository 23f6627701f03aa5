"""The Encoder: treatment and one-hot designs, unseen values refused or pooled, trial-weighted
standardisation, bins, JSON."""

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


def test_treatment_columns_leave_out_each_reference_level(grouped) -> None:
    enc = Encoder.fit(grouped)
    assert enc.output_names == [
        "colour=blue", "colour=red",  # <null> sorts first: the reference
        "size", "size=<null>",
        "flag=True",
        "dist=[500, 5000]",
    ]  # fmt: skip
    assert enc.references() == {"colour": "<null>", "flag": "False", "dist": "[0, 500)"}
    X = enc.transform(grouped)
    assert X.dtype == np.float32
    assert X.shape == (len(grouped), 6)
    frame = grouped.frame
    # a reference row has no 1 in its feature's block; any other row exactly one
    for block, column, reference in ((slice(0, 2), "colour", None), (slice(4, 5), "flag", False)):
        hot = X[:, block].sum(axis=1)
        is_reference = (
            frame[column].is_null() if reference is None else frame[column] == reference
        ).to_numpy()
        assert np.array_equal(hot, np.where(is_reference, 0.0, 1.0))


def test_one_hot_design_keeps_every_level(grouped) -> None:
    enc = Encoder.fit(grouped, design="one-hot")
    assert enc.output_names == [
        "colour=<null>", "colour=blue", "colour=red",
        "size", "size=<null>",
        "flag=False", "flag=True",
        "dist=[0, 500)", "dist=[500, 5000]",
    ]  # fmt: skip
    X = enc.transform(grouped)
    for block in (slice(0, 3), slice(5, 7), slice(7, 9)):
        assert (X[:, block].sum(axis=1) == 1).all()


def test_reference_is_chosen_per_feature(grouped) -> None:
    enc = Encoder.fit(grouped, reference={"colour": "red", "flag": True, "dist": "[500, 5000]"})
    assert enc.references() == {"colour": "red", "flag": "True", "dist": "[500, 5000]"}
    assert enc.output_names[:2] == ["colour=<null>", "colour=blue"]
    with pytest.raises(bl.BinomlabError, match=r"'green'\} is not a level of 'colour'"):
        Encoder.fit(grouped, reference={"colour": "green"})
    with pytest.raises(bl.BinomlabError, match=r"'shade', which is not a feature"):
        Encoder.fit(grouped, reference={"shade": "red"})
    with pytest.raises(bl.BinomlabError, match=r"reference applies to features with levels"):
        Encoder.fit(grouped, reference={"size": 1.0})


def test_standardisation_equals_raw_rows(grouped) -> None:
    enc = Encoder.fit(grouped)
    rows = grouped.expand()["size"].drop_nulls().to_numpy()
    mean, scale = enc.standardisation()["size"]
    assert mean == pytest.approx(rows.mean(), rel=1e-12)
    assert scale == pytest.approx(rows.std(), rel=1e-12)
    raw = pl.DataFrame({"colour": ["red"], "size": [4.0], "flag": [True], "dist": [1.0]})
    j = enc.output_names.index("size")
    assert enc.transform(raw)[0, j] == pytest.approx((4.0 - mean) / scale, rel=1e-6)


def test_new_frame_with_raw_numbers_and_nulls(grouped) -> None:
    enc = Encoder.fit(grouped)
    new = pl.DataFrame(
        {"colour": ["blue", None], "size": [None, 2.0], "flag": [True, False],
         "dist": [499.0, 5000.0]}
    )  # fmt: skip
    X = enc.transform(new)
    names = enc.output_names
    hot = [[names[j] for j in np.flatnonzero(row)] for row in X]
    assert [h for h in hot[0] if h != "size"] == ["colour=blue", "size=<null>", "flag=True"]
    assert "dist=[500, 5000]" in hot[1] and not any(h.startswith("colour") for h in hot[1])


UNSEEN_CASES = [
    (
        {"colour": ["green"]},
        r"'colour' holds 1 value\(s\) the model never saw .*'green' \(1 rows\)",
    ),
    ({"colour": ["Red"]}, r"'colour' .* never saw .*'Red'"),  # case matters
    ({"flag": pl.Series([None], dtype=pl.Boolean)}, r"'flag' .* never saw .*<null>"),
    ({"dist": ["[5000, 9000)"]}, r"'dist' .* never saw .*'\[5000, 9000\)'"),
]


@pytest.mark.parametrize(("change", "match"), UNSEEN_CASES)
def test_values_never_seen_in_training_are_refused(grouped, change, match) -> None:
    row = {"colour": ["red"], "size": [1.0], "flag": [True], "dist": [10.0]}
    frame = pl.DataFrame({**row, **change})
    for design in ("treatment", "one-hot"):
        enc = Encoder.fit(grouped, design=design)
        with pytest.raises(bl.UnseenValueError, match=match):
            enc.transform(frame)


def test_the_unseen_message_counts_values_and_trials() -> None:
    train = bl.from_counts(pl.DataFrame({"c": ["a", "b"], "n": [10, 20], "k": [3, 4]}), ["c"])
    test = bl.from_counts(
        pl.DataFrame({"c": ["a", "x", "y", "x2"], "n": [5, 7, 2, 1], "k": [1, 1, 0, 0]}), ["c"]
    )
    with pytest.raises(bl.UnseenValueError, match=r"3 value\(s\) .*'x', 'y', 'x2' \(10 trials\)"):
        Encoder.fit(train).transform(test)


def test_a_column_of_another_type_is_refused(grouped) -> None:
    enc = Encoder.fit(grouped)
    row = {"colour": ["red"], "size": [1.0], "flag": [True], "dist": [10.0]}
    for change, match in (
        ({"colour": [1]}, r"'colour' was a string in training but is Int64"),
        ({"flag": [1]}, r"'flag' was bool in training but is Int64"),
        ({"flag": ["true"]}, r"'flag' was bool in training but is String"),
        ({"size": ["1.0"]}, r"'size' was numeric in training but is String"),
    ):
        with pytest.raises(bl.BinomlabError, match=match):
            enc.transform(pl.DataFrame({**row, **change}))


def test_rare_levels_are_pooled_into_a_trained_other_level() -> None:
    frame = pl.DataFrame(
        {"c": ["a", "b", "c", "d", None], "n": [50, 40, 3, 2, 1], "k": [10, 8, 1, 0, 1]}
    )
    train = bl.from_counts(frame, ["c"])
    enc = Encoder.fit(train, min_frequency=5)
    assert enc.levels() == {"c": ["a", "b", "<other>"]}  # c, d and the null pooled
    assert enc.output_names == ["c=b", "c=<other>"]
    X = enc.transform(train)
    pooled = train.frame["c"].is_in(["c", "d"]) | train.frame["c"].is_null()
    assert X[:, 1].tolist() == pooled.cast(pl.Float32).to_list()
    new = pl.DataFrame({"c": ["zzz"]})
    with pytest.raises(bl.UnseenValueError, match=r"unseen='other' to send them there"):
        enc.transform(new)
    other = Encoder.fit(train, min_frequency=5, unseen="other")
    assert other.transform(new).tolist() == [[0.0, 1.0]]
    none_rare = Encoder.fit(train, min_frequency=1, unseen="other")
    with pytest.raises(bl.UnseenValueError, match=r"has no <other> level"):
        none_rare.transform(new)
    with pytest.raises(bl.BinomlabError, match=r"min_frequency to be a whole number"):
        Encoder.fit(train, min_frequency=0)
    with pytest.raises(bl.BinomlabError, match=r"unseen to be one of"):
        Encoder.fit(train, unseen="ignore")


def test_a_grouped_binned_with_other_edges_is_refused(grouped) -> None:
    enc = Encoder.fit(grouped)
    rows = pl.DataFrame({"colour": ["red"] * 4, "size": [1.0] * 4, "flag": [True] * 4,
                         "dist": [10.0, 20.0, 800.0, 900.0], "y": [1, 0, 1, 0]})  # fmt: skip
    features = ["colour", "size", "flag", "dist"]
    other = bl.group(rows, features, "y", bins={"dist": 2})  # quantile edges of its own
    with pytest.raises(
        bl.BinsMismatchError, match=r"binned with the edges \[-inf, .*model's are \[0, 500, 5000\]"
    ):
        enc.transform(other)
    same = bl.group(rows, features, "y", bins=grouped)  # edges reused from the Grouped
    assert same.bins == grouped.bins
    assert np.array_equal(enc.transform(same), enc.transform(same.frame))


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

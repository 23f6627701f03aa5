"""Grouped.split / kfold: distributed exactly as shuffling the raw rows and cutting them."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import binomlab as bl


def grouped_from(n: list[int], k: list[int]) -> bl.Grouped:
    return bl.from_counts(pl.DataFrame({"g": list(range(len(n))), "n": n, "k": k}), "g")


def per_group(part: bl.Grouped, size: int, column: str) -> np.ndarray:
    """Counts of ``column`` per original group id (0 where the group was dropped)."""
    out = np.zeros(size, dtype=np.int64)
    out[part.frame["g"].to_numpy()] = part.frame[column].to_numpy()
    return out


counts_strategy = st.lists(
    st.tuples(st.integers(1, 40), st.floats(0, 1)), min_size=1, max_size=25
).map(lambda pairs: ([n for n, _ in pairs], [round(n * f) for n, f in pairs]))


@settings(max_examples=80, deadline=None)
@given(counts_strategy, st.floats(0.05, 0.95), st.integers(0, 2**32 - 1))
def test_split_conserves_counts(counts, test, seed) -> None:
    n, k = counts
    g = grouped_from(n, k)
    m = int(np.floor(test * sum(n) + 0.5))
    if m in (0, sum(n)):
        with pytest.raises(bl.BinomlabError, match=r"leaves the (test|train) part empty"):
            g.split(test, seed=seed)
        return
    train, held = g.split(test, seed=seed)
    assert held.trials == m
    assert train.trials == sum(n) - m
    size = len(n)
    assert (per_group(train, size, "n") + per_group(held, size, "n") == n).all()
    assert (per_group(train, size, "k") + per_group(held, size, "k") == k).all()
    assert (train.frame["n"] > 0).all()
    assert (held.frame["n"] > 0).all()


def test_split_matches_hypergeometric_moments() -> None:
    """Mean and variance of every group's test trials and test successes over many seeds."""
    n = np.array([1, 5, 40, 120, 9, 300])
    k = np.array([1, 0, 13, 60, 9, 30])
    g = grouped_from(n.tolist(), k.tolist())
    total, test = int(n.sum()), 0.3
    m = int(np.floor(test * total + 0.5))
    draws = 4000
    test_n = np.empty((draws, n.size))
    test_k = np.empty((draws, n.size))
    for seed in range(draws):
        _, held = g.split(test, seed=seed)
        test_n[seed] = per_group(held, n.size, "n")
        test_k[seed] = per_group(held, n.size, "k")
    fpc = (total - m) / (total - 1)
    for observed, colour in ((test_n, n), (test_k, k)):
        frac = colour / total
        mean = m * frac
        var = m * frac * (1 - frac) * fpc
        se_mean = np.sqrt(var / draws)
        assert np.all(np.abs(observed.mean(axis=0) - mean) <= 4 * se_mean + 1e-12)
        # the sample variance of a draw count has relative s.e. about sqrt(2 / draws) ~ 2.2%
        nonzero = var > 0
        assert np.allclose(observed.var(axis=0, ddof=1)[nonzero], var[nonzero], rtol=0.1)
        assert np.all(observed.var(axis=0)[~nonzero] == 0)


def test_split_within_group_is_hypergeometric() -> None:
    """Given the test trials of one group, its test successes follow Hypergeom(k, n - k, t)."""
    g = grouped_from([50, 50], [20, 35])
    seen: dict[int, list[int]] = {}
    for seed in range(3000):
        _, held = g.split(0.5, seed=seed)
        row = held.frame.filter(pl.col("g") == 0)
        if row.height:
            seen.setdefault(row["n"].item(), []).append(row["k"].item())
    t, ks = max(seen.items(), key=lambda item: len(item[1]))
    ks_arr = np.array(ks)
    mean = t * 20 / 50
    var = t * (20 / 50) * (30 / 50) * (50 - t) / 49
    assert abs(ks_arr.mean() - mean) <= 4 * np.sqrt(var / ks_arr.size)
    assert ks_arr.var(ddof=1) == pytest.approx(var, rel=0.25)


def test_split_is_deterministic_under_the_seed() -> None:
    g = grouped_from([10, 20, 30], [1, 2, 3])
    a_train, a_test = g.split(0.25, seed=7)
    b_train, b_test = g.split(0.25, seed=7)
    assert a_train.equals(b_train)
    assert a_test.equals(b_test)
    seeded = g.split(0.25, seed=np.random.default_rng(7))
    assert seeded[1].equals(a_test)
    assert not all(g.split(0.25, seed=s)[1].equals(a_test) for s in range(8, 20))


@pytest.mark.parametrize("test", [0, 1, -0.1, 1.5, "0.2", True])
def test_split_rejects_bad_fractions(test) -> None:
    with pytest.raises(bl.BinomlabError, match="test must be a fraction strictly between 0 and 1"):
        grouped_from([10], [3]).split(test)


def test_split_keeps_bins() -> None:
    df = pl.DataFrame({"x": np.linspace(0, 1, 100), "y": np.arange(100) % 2})
    g = bl.group(df, "x", "y", bins={"x": 3})
    train, test = g.split(0.5, seed=0)
    assert train.bins == test.bins == g.bins


@settings(max_examples=50, deadline=None)
@given(counts_strategy, st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_kfold_partitions_the_trials(counts, folds, seed) -> None:
    n, k = counts
    g = grouped_from(n, k)
    total = sum(n)
    if folds > total:
        with pytest.raises(bl.BinomlabError, match=f"kfold k={folds} exceeds the {total} trials"):
            g.kfold(folds, seed=seed)
        return
    pairs = g.kfold(folds, seed=seed)
    size = len(n)
    sum_n = np.zeros(size, dtype=np.int64)
    sum_k = np.zeros(size, dtype=np.int64)
    sizes = []
    for train, test in pairs:
        sum_n += per_group(test, size, "n")
        sum_k += per_group(test, size, "k")
        sizes.append(test.trials)
        assert (per_group(train, size, "n") + per_group(test, size, "n") == n).all()
        assert (per_group(train, size, "k") + per_group(test, size, "k") == k).all()
    assert (sum_n == n).all()
    assert (sum_k == k).all()
    base, extra = divmod(total, folds)
    assert sizes == [base + 1] * extra + [base] * (folds - extra)


def test_kfold_folds_are_exchangeable() -> None:
    """Every fold of every group has the same expected trials, m_j · n_i / N."""
    n = np.array([3, 17, 80])
    g = grouped_from(n.tolist(), [1, 5, 40])
    folds, draws = 3, 1500
    acc = np.zeros((folds, n.size))
    for seed in range(draws):
        for j, (_, test) in enumerate(g.kfold(folds, seed=seed)):
            acc[j] += per_group(test, n.size, "n")
    expected = np.outer([34, 33, 33], n / n.sum())
    assert np.allclose(acc / draws, expected, rtol=0.05, atol=0.05)


def test_kfold_rejects_bad_k() -> None:
    with pytest.raises(bl.BinomlabError, match=r"kfold needs an int k >= 2. Received: k=1"):
        grouped_from([10], [3]).kfold(1)

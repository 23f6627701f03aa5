"""Exact random splits of grouped counts, as if the raw rows had been shuffled and cut.

Shuffling the ``N = Σn`` raw rows and cutting off ``m`` of them draws ``m`` rows without
replacement. Counted per group and per outcome, that is one multivariate hypergeometric draw
over the ``2·groups`` "colours" (successes and failures of every group): the number of test
rows per group follows the multivariate hypergeometric over the groups, and the test
successes within a group, given its test rows, the hypergeometric over its ``k`` and ``n − k``.
No row is ever materialised.
"""

from __future__ import annotations

import numpy as np

from binomlab._checks import check_fraction
from binomlab.errors import BinomlabError

__all__ = ["draw_rows", "fold_sizes", "test_size"]

# numpy's multivariate hypergeometric ("marginals") needs fewer than 10**9 items in the urn.
MAX_TRIALS = 10**9 - 1


def test_size(test: float, trials: int) -> int:
    """Number of trials ``round(test · trials)`` (halves rounded up) that go to the test part.

    Raises
    ------
    BinomlabError
        ``test`` is not a number strictly between 0 and 1 (Python or NumPy), or it leaves one
        part empty.
    """
    test = check_fraction(test, name="test")
    m = int(np.floor(test * trials + 0.5))
    if m == 0 or m == trials:
        part = "test" if m == 0 else "train"
        msg = (
            f"test={test} of {trials} trials leaves the {part} part empty; "
            "use more data or another fraction."
        )
        raise BinomlabError(msg)
    return m


def fold_sizes(folds: int, trials: int) -> list[int]:
    """Sizes of ``folds`` folds of ``trials`` rows; the first ``trials % folds`` get one more.

    Raises
    ------
    BinomlabError
        ``folds`` is not an int of at least 2, or exceeds the number of trials.
    """
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        msg = f"kfold needs an int k >= 2. Received: k={folds!r}"
        raise BinomlabError(msg)
    if folds > trials:
        msg = f"kfold k={folds} exceeds the {trials} trials; every fold needs at least one trial."
        raise BinomlabError(msg)
    base, extra = divmod(trials, int(folds))
    return [base + 1 if i < extra else base for i in range(int(folds))]


def draw_rows(
    n: np.ndarray, k: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``size`` raw rows without replacement from groups with ``n`` trials, ``k`` successes.

    Parameters
    ----------
    n, k
        int64 arrays ``[groups]``, ``0 <= k <= n``.
    size
        Rows to draw, ``0 <= size <= n.sum()``.
    rng
        The generator to draw from.

    Returns
    -------
    (n_drawn, k_drawn)
        int64 arrays ``[groups]``: trials and successes of the drawn rows per group.

    Raises
    ------
    BinomlabError
        More than ``MAX_TRIALS`` trials in all, beyond what the sampler supports exactly.
    """
    total = int(n.sum())
    if total > MAX_TRIALS:
        msg = (
            f"An exact split supports at most {MAX_TRIALS:,} trials; this data has {total:,}. "
            "Split a sample of the groups, or split upstream before grouping."
        )
        raise BinomlabError(msg)
    colours = np.empty(2 * n.size, dtype=np.int64)
    colours[0::2] = k
    colours[1::2] = n - k
    drawn = rng.multivariate_hypergeometric(colours, size, method="marginals")
    k_drawn = drawn[0::2].astype(np.int64)
    return k_drawn + drawn[1::2], k_drawn

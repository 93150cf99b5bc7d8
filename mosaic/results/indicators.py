"""The three run indicators (README.md, "Commands"; config/README.md), computed from the train and test loss histories.

T, V = train and test loss per epoch, n epochs, k = max(1, n // 10):
    overfit      = |V[n-1] - T[n-1]| / (max(T ∪ V) - min(T ∪ V)), 0 when the range is 0
    trainability = mean(V)
    slope        = (T[n-1] - T[n-1-k]) / k, undefined when n < 2
An indicator that cannot be computed (no epochs, too few epochs, a nan or inf among the values it
reads) is None: never nan, never an exception.
"""

import math


def indicators(train, test):
    """{'overfit', 'trainability', 'slope'} of one run; each a float or None."""
    return {
        "overfit": overfit(train, test),
        "trainability": trainability(test),
        "slope": slope(train),
    }


def _all_finite(values):
    return all(map(math.isfinite, values))


def overfit(train, test):
    values = list(train) + list(test)
    if not train or not test or not _all_finite(values):
        return None
    spread = max(values) - min(values)
    if spread == 0:
        return 0.0
    return abs(test[-1] - train[-1]) / spread


def trainability(test):
    if not test or not _all_finite(test):
        return None
    return math.fsum(test) / len(test)


def slope(train):
    n = len(train)
    if n < 2:
        return None
    k = max(1, n // 10)
    last, earlier = train[n - 1], train[n - 1 - k]
    if not _all_finite((last, earlier)):
        return None
    return (last - earlier) / k

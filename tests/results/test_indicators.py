import math

import pytest

from mosaic.results.indicators import indicators

NAN, INF = math.nan, math.inf


def test_short_history_by_hand():
    # n = 4, k = 1; T ∪ V spans 1..5
    result = indicators([4, 3, 2, 1], [5, 4, 3, 2])
    assert result == {"overfit": 0.25, "trainability": 3.5, "slope": -1.0}


def test_k_is_a_tenth_of_the_epochs():
    train = [20 - i for i in range(20)]  # 20 .. 1
    test = [t + 1 for t in train]  # 21 .. 2
    result = indicators(train, test)
    assert result["overfit"] == pytest.approx(1 / 20)  # |2 - 1| / (21 - 1)
    assert result["trainability"] == pytest.approx(11.5)
    assert result["slope"] == pytest.approx((1 - 3) / 2)  # k = 2: (T[19] - T[17]) / 2


def test_slope_over_the_last_tenth():
    train = [i * i for i in range(35)]  # k = 3
    assert indicators(train, train)["slope"] == pytest.approx((34**2 - 31**2) / 3)


@pytest.mark.parametrize("n", [2, 5, 9, 10, 11, 19])
def test_fewer_than_twenty_epochs_use_k_1(n):
    train = [float(i * i) for i in range(n)]
    assert indicators(train, train)["slope"] == pytest.approx((n - 1) ** 2 - (n - 2) ** 2)


def test_single_epoch():
    assert indicators([2.0], [3.0]) == {"overfit": 1.0, "trainability": 3.0, "slope": None}


def test_no_epochs():
    assert indicators([], []) == {"overfit": None, "trainability": None, "slope": None}


def test_zero_range_gives_zero_overfit():
    assert indicators([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]) == {"overfit": 0.0, "trainability": 1.0, "slope": 0.0}


def test_nan_in_train_only_affects_what_reads_it():
    result = indicators([3.0, NAN, 1.0], [3.0, 2.0, 1.0])
    assert result == {"overfit": None, "trainability": 2.0, "slope": None}  # slope reads T[2] - T[1]
    result = indicators([NAN, 2.0, 1.0], [3.0, 2.0, 1.0])
    assert result == {"overfit": None, "trainability": 2.0, "slope": -1.0}


def test_inf_in_test():
    assert indicators([2.0, 1.0], [INF, 1.0]) == {"overfit": None, "trainability": None, "slope": -1.0}
    assert indicators([2.0, 1.0], [1.0, -INF])["trainability"] is None


def test_never_nan_nor_raises():
    bad_values = (NAN, INF, -INF)
    for n in range(1, 25):
        for position in range(n):
            for bad in bad_values:
                train = [1.0 / (i + 1) for i in range(n)]
                test = list(train)
                train[position] = bad
                test[n - 1 - position] = bad
                for value in indicators(train, test).values():
                    assert value is None or math.isfinite(value)

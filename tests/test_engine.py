"""The epoch loop's own pieces."""

import numpy as np

from fastgd.engine import BACKGROUND_SHUFFLE_MIN_SAMPLES, EpochOrders


def test_background_shuffles_equal_in_place_shuffles():
    n = BACKGROUND_SHUFFLE_MIN_SAMPLES + 17
    reference_state = np.random.RandomState(3)
    reference = np.arange(n, dtype=np.int64)
    orders = EpochOrders(n, np.random.RandomState(3))
    for _ in range(4):
        reference_state.shuffle(reference)
        order = orders.next()
        np.testing.assert_array_equal(order, reference)
        orders.prepare_next()  # started, and for the last epoch never used
    # the state after the fit is that of the shuffles actually handed out
    np.testing.assert_array_equal(orders.random_state.randint(0, 2**31, size=5),
                                  reference_state.randint(0, 2**31, size=5))


def test_small_or_unshuffled_orders():
    orders = EpochOrders(5, None)
    np.testing.assert_array_equal(orders.next(), np.arange(5))
    small = EpochOrders(10, np.random.RandomState(0))
    first = small.next().copy()
    small.prepare_next()
    assert sorted(small.next()) == list(range(10)) and sorted(first) == list(range(10))

"""Streaming over chunks of data that stay on disk."""

import numpy as np
import pytest
from sklearn.datasets import make_classification

from fastgd import LinearClassifier, MLPClassifier
from fastgd.stream import chunk_bounds, fit_chunks

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def on_disk(tmp_path_factory):
    X, y = make_classification(n_samples=3000, n_features=10, random_state=0)
    path = tmp_path_factory.mktemp("data") / "X.dat"
    X_map = np.memmap(path, dtype=np.float32, mode="w+", shape=X.shape)
    X_map[:] = X
    X_map.flush()
    return np.memmap(path, dtype=np.float32, mode="r", shape=X.shape), y


def test_chunk_bounds_cover_every_row_once():
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_bounds(10, 0)


@pytest.mark.parametrize("estimator", [LinearClassifier(loss="log_loss", random_state=0),
                                       MLPClassifier((8,), learning_rate_init=0.01, random_state=0)])
def test_fit_chunks_trains_from_a_memmap(on_disk, estimator):
    X, y = on_disk
    fit_chunks(estimator, X, y, chunk_size=700, epochs=3, random_state=0)
    assert estimator.t_ >= 3 * len(y)
    assert estimator.score(np.asarray(X), y) > 0.85
    coef = estimator.coef_ if hasattr(estimator, "coef_") else estimator.coefs_[0]
    assert coef.dtype == np.float32


def test_fit_chunks_is_reproducible(on_disk):
    X, y = on_disk
    a = fit_chunks(LinearClassifier(random_state=0), X, y, chunk_size=500, epochs=2, random_state=1)
    b = fit_chunks(LinearClassifier(random_state=0), X, y, chunk_size=500, epochs=2, random_state=1)
    np.testing.assert_array_equal(a.coef_, b.coef_)

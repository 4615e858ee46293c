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


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_full_batch_over_chunks_equals_in_memory_full_batch(tmp_path, solver, dtype):
    from fastgd import LinearRegressor
    from fastgd.stream import fit_full_batch

    X, y = make_classification(n_samples=1000, n_features=8, n_classes=3, n_informative=5, random_state=0)
    path = tmp_path / "X.dat"
    X_map = np.memmap(path, dtype=dtype, mode="w+", shape=X.shape)
    X_map[:] = X
    X_map.flush()
    X_map = np.memmap(path, dtype=dtype, mode="r", shape=X.shape)
    params = {"loss": "log_loss", "solver": solver, "batch_size": None, "learning_rate": "constant",
              "learning_rate_init": 0.1, "max_iter": 15, "tol": None, "shuffle": False, "alpha": 1e-3}
    in_memory = LinearClassifier(**params).fit(X.astype(dtype), y)
    chunked = fit_full_batch(LinearClassifier(**params), X_map, y, chunk_size=128)
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(chunked.coef_, in_memory.coef_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(chunked.intercept_, in_memory.intercept_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(chunked.loss_curve_, in_memory.loss_curve_, rtol=rtol)
    assert chunked.t_ == in_memory.t_ == 15 and chunked.coef_.dtype == dtype

    y_reg = X @ np.arange(8.0) / 10
    reg_params = {"batch_size": None, "learning_rate": "constant", "learning_rate_init": 0.05, "max_iter": 10,
                  "tol": None, "shuffle": False, "solver": solver}
    a = LinearRegressor(**reg_params).fit(X.astype(dtype), y_reg)
    b = fit_full_batch(LinearRegressor(**reg_params), X_map, y_reg, chunk_size=300)
    np.testing.assert_allclose(b.coef_, a.coef_, rtol=rtol, atol=rtol)


def test_full_batch_rejects_per_update_schedules(on_disk):
    from fastgd.stream import fit_full_batch

    X, y = on_disk
    with pytest.raises(ValueError, match="epoch-level schedule"):
        fit_full_batch(LinearClassifier(learning_rate="optimal"), X, y)
    with pytest.raises(TypeError, match="linear estimators"):
        fit_full_batch(MLPClassifier(), X, y)

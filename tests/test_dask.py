"""Scaling out with Dask on a local 2-process cluster.

Data-parallel full-batch fits, dask-ml's Incremental and joblib's dask backend.
"""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")

from sklearn.datasets import make_classification  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from fastgd import LinearClassifier, LinearRegressor, MLPClassifier  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       host="127.0.0.1")
    with cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=3000, n_features=20, class_sep=2.0, random_state=0)
    X = X.astype(np.float32)
    # Compile the kernels here first: the worker processes then load them from Numba's cache instead
    # of compiling them at the same time (the cache has no lock).
    LinearClassifier(loss="log_loss", max_iter=1).partial_fit(X[:50], y[:50], classes=[0, 1])
    MLPClassifier((16,), max_iter=1).partial_fit(X[:50], y[:50], classes=[0, 1])
    LinearClassifier(loss="log_loss", max_iter=1, batch_size=32).fit(X[:50], y[:50])
    return X, y, da.from_array(X, chunks=500), da.from_array(y, chunks=500)


@pytest.mark.parametrize("estimator", [
    LinearClassifier(loss="log_loss", random_state=0),
    MLPClassifier((16,), learning_rate_init=0.01, random_state=0),
])
def test_incremental_trains_on_a_chunked_dask_array(client, data, estimator):
    X, y, X_dask, y_dask = data
    model = dask_ml_wrappers.Incremental(estimator, scoring="accuracy")
    model.fit(X_dask, y_dask, classes=[0, 1])
    trained = model.estimator_
    assert trained.t_ >= 3000  # every block went through partial_fit
    assert trained.score(X, y) > 0.8
    assert float(model.score(X_dask, y_dask)) == pytest.approx(trained.score(X, y))


def test_grid_search_runs_on_the_cluster(client, data):
    from joblib import parallel_backend

    X, y, _, _ = data
    search = GridSearchCV(LinearClassifier(loss="log_loss", max_iter=5, random_state=0),
                          {"alpha": [1e-4, 1e-2], "batch_size": [1, 32]}, cv=2)
    with parallel_backend("dask"):
        search.fit(X, y)
    assert search.best_score_ > 0.8
    workers = client.run(lambda: __import__("fastgd").__version__)
    assert len(workers) == 2


# --- data-parallel full-batch training: each block's sums computed where the block lies ---


def _blocks(*arrays, chunks=700):
    return [da.from_array(a, chunks=(chunks, *a.shape[1:])) for a in arrays]


def test_full_batch_gd_on_the_cluster_is_the_in_memory_fit(client):
    """Full-batch GD on row blocks equals it in memory to round-off: the gradient of every block summed on the
    client in block order, then the same fused update (adam with balanced class weights and sample weights;
    momentum with elasticnet and clipping by norm on two targets)."""
    from sklearn.datasets import make_regression

    X, y = make_classification(n_samples=2000, n_features=12, n_informative=5, n_classes=3, random_state=0)
    weight = np.random.default_rng(0).uniform(0.5, 2.0, size=y.size)
    kw = dict(loss="log_loss", solver="adam", batch_size=None, learning_rate="constant", learning_rate_init=0.05,
              max_iter=15, tol=None, shuffle=False, class_weight="balanced")
    memory = LinearClassifier(**kw).fit(X, y, sample_weight=weight)
    cluster = LinearClassifier(**kw).fit(*_blocks(X, y, weight)[:2], sample_weight=_blocks(weight)[0])
    np.testing.assert_allclose(cluster.coef_, memory.coef_, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(cluster.loss_curve_, memory.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(cluster.gradient_norms_, memory.gradient_norms_, rtol=1e-9)
    assert cluster.n_iter_ == cluster.t_ == 15
    np.testing.assert_array_equal(cluster.classes_, memory.classes_)

    X, Y = make_regression(n_samples=1500, n_features=8, n_targets=2, noise=1.0, random_state=0)
    Y = Y / Y.std(axis=0)
    kw = dict(solver="sgd", momentum=0.9, penalty="elasticnet", alpha=1e-3, batch_size="full", clip_norm=0.5,
              learning_rate="constant", learning_rate_init=0.1, max_iter=10, tol=None, shuffle=False)
    memory = LinearRegressor(**kw).fit(X, Y)
    cluster = LinearRegressor(**kw).fit(*_blocks(X, Y, chunks=400))
    np.testing.assert_allclose(cluster.coef_, memory.coef_, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(cluster.intercept_, memory.intercept_, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lbfgs_on_the_cluster_is_the_in_memory_fit(client, dtype):
    """L-BFGS over row blocks reaches the in-memory optimum (multinomial log_loss; huber regression), in the
    data's dtype; predictions on dask arrays are dask arrays, computed block by block, equal to in memory."""
    X, y = make_classification(n_samples=2000, n_features=12, n_informative=5, n_classes=3, random_state=1)
    X = X.astype(dtype)
    tol = 1e-8 if dtype == np.float64 else 2e-3
    memory = LinearClassifier(loss="log_loss", solver="lbfgs", tol=1e-7).fit(X, y)
    X_dask, y_dask = _blocks(X, y)
    cluster = LinearClassifier(loss="log_loss", solver="lbfgs", tol=1e-7).fit(X_dask, y_dask)
    assert cluster.coef_.dtype == dtype
    np.testing.assert_allclose(cluster.coef_, memory.coef_, rtol=tol, atol=tol)
    proba = cluster.predict_proba(X_dask)
    assert isinstance(proba, da.Array) and proba.chunks[0] == X_dask.chunks[0]
    np.testing.assert_allclose(proba.compute(), cluster.predict_proba(X), rtol=1e-12)
    np.testing.assert_array_equal(cluster.predict(X_dask).compute(), cluster.predict(X))
    np.testing.assert_array_equal(cluster.decision_function(X_dask).compute(), cluster.decision_function(X))

    target = X[:, 0] * 2.0 - X[:, 1]
    memory = LinearRegressor(loss="huber", solver="lbfgs", tol=1e-7).fit(X, target)
    cluster = LinearRegressor(loss="huber", solver="lbfgs", tol=1e-7).fit(X_dask, da.from_array(target, chunks=700))
    np.testing.assert_allclose(cluster.coef_, memory.coef_, rtol=tol, atol=tol)
    assert isinstance(cluster.predict(X_dask), da.Array)


def test_cluster_fits_refuse_what_they_cannot_do(client):
    """Blocks split by columns, rows of unknown or mismatched blocks, the drop-in's one-vs-rest problems and
    averaged SGD get a clear error."""
    X, y = make_classification(n_samples=300, n_features=6, random_state=0)
    full = LinearClassifier(loss="log_loss", batch_size=None, learning_rate="constant", max_iter=2)
    with pytest.raises(ValueError, match="chunked by columns"):
        full.fit(da.from_array(X, chunks=(100, 3)), da.from_array(y, chunks=100))
    with pytest.raises(ValueError, match="do not match"):
        full.fit(da.from_array(X, chunks=100), da.from_array(y, chunks=150))
    unknown = da.from_array(X, chunks=100)[da.from_array(y, chunks=100) >= 0]
    with pytest.raises(ValueError, match="unknown size"):
        full.fit(unknown, da.from_array(y, chunks=100))
    from fastgd import SGDClassifier

    y3 = np.arange(300) % 3
    with pytest.raises(ValueError, match="trains its one-vs-rest problems in memory"):
        SGDClassifier().fit(da.from_array(X, chunks=100), da.from_array(y3, chunks=100))
    with pytest.raises(ValueError, match="averaged SGD is not available"):
        SGDClassifier(average=True).fit(da.from_array(X, chunks=100), da.from_array(y, chunks=100))


def test_local_sgd_on_the_cluster_averages_the_blocks_epochs(client):
    """Per-sample SGD on row blocks: each block trains an epoch from the same start on its worker and the client
    averages them (by rows): one epoch equals the mean of the in-memory fits of the blocks; a fit is the same for
    the same seed and chunking; it trains as well as in memory."""
    X, y = make_classification(n_samples=3000, n_features=20, n_informative=8, class_sep=1.0, random_state=0)
    kw = dict(loss="hinge", alpha=1e-3, learning_rate="constant", learning_rate_init=0.01, tol=None)
    X_dask, y_dask = _blocks(X, y, chunks=1000)
    one = LinearClassifier(max_iter=1, shuffle=False, **kw).fit(X_dask, y_dask)
    parts = [LinearClassifier(max_iter=1, shuffle=False, **kw).fit(X[s:s + 1000], y[s:s + 1000])
             for s in range(0, 3000, 1000)]
    np.testing.assert_allclose(one.coef_, np.mean([p.coef_ for p in parts], axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(one.intercept_, np.mean([p.intercept_ for p in parts], axis=0), rtol=1e-12)
    assert one.t_ == 1000 and one.n_iter_ == 1

    fits = [LinearClassifier(max_iter=8, random_state=3, **kw).fit(X_dask, y_dask) for _ in range(2)]
    np.testing.assert_array_equal(fits[0].coef_, fits[1].coef_)
    assert fits[0].t_ == 8 * 1000
    memory = LinearClassifier(max_iter=8, random_state=3, **kw).fit(X, y)
    assert fits[0].score(X, y) >= memory.score(X, y) - 0.005  # (here 93.67 % against 93.00 % in memory)
    batches = LinearClassifier(max_iter=8, random_state=3, solver="adam", batch_size=16, loss="log_loss",
                               learning_rate="constant", learning_rate_init=0.01, tol=None).fit(X_dask, y_dask)
    assert batches.score(X, y) >= memory.score(X, y) - 0.005

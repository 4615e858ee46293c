"""Scaling out with Dask: dask-ml's Incremental and joblib's dask backend on a local 2-process cluster."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")

from sklearn.datasets import make_classification  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from fastgd import LinearClassifier, MLPClassifier  # noqa: E402

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

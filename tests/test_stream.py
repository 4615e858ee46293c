"""Streaming over chunks of data that stay on disk."""

import os

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


def test_chunk_reader_reads_what_the_memmap_holds(on_disk, tmp_path):
    from fastgd.stream import ChunkReader

    X, _ = on_disk
    for view in (X, X[100:], X[7:2000]):
        reader = ChunkReader(view, 300)
        assert reader.direct
        np.testing.assert_array_equal(reader.read(5, 305), view[5:305])
    copy_on_write = np.memmap(X.filename, dtype=np.float32, mode="c", shape=X.shape)
    copy_on_write[0] = -1.0                                 # private to the mapping, not in the file
    reader = ChunkReader(copy_on_write, 10)
    assert not reader.direct
    np.testing.assert_array_equal(reader.read(0, 2), copy_on_write[:2])
    assert not ChunkReader(np.asarray(X)[:, :3], 10).direct  # not a memmap: sliced


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


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"chunk_size": 2.5}, TypeError, "chunk_size"),
    ({"chunk_size": 0}, ValueError, "chunk_size"),
    ({"chunk_size": True}, TypeError, "chunk_size"),
    ({"chunk_size": "100"}, TypeError, "chunk_size"),
    ({"epochs": 0}, ValueError, "epochs"),
    ({"epochs": -1}, ValueError, "epochs"),
    ({"epochs": 1.5}, TypeError, "epochs"),
    ({"sample_weight": np.ones(5)}, ValueError, "sample_weight"),
    ({"y": np.zeros(5)}, ValueError, "y has 5"),
    ({"y": None}, TypeError, "y must be"),
    ({"X": np.zeros(50)}, TypeError, "X must be a 2-D"),
    ({"X": [[0.0]] * 50}, TypeError, "X must be a 2-D"),
])
@pytest.mark.parametrize("function", ["fit_chunks", "fit_full_batch"])
def test_stream_arguments_are_checked_by_name(function, kwargs, error, name):
    from fastgd import stream

    rng = np.random.default_rng(0)
    arguments = {"X": rng.normal(size=(50, 3)), "y": np.arange(50) % 2, "chunk_size": 10, "epochs": 2}
    arguments.update(kwargs)
    estimator = LinearClassifier(loss="log_loss", learning_rate="constant")
    with pytest.raises(error, match=name):
        getattr(stream, function)(estimator, arguments.pop("X"), arguments.pop("y"), **arguments)


def test_fit_chunks_checks_its_own_arguments_by_name():
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    with pytest.raises(TypeError, match="shuffle"):
        fit_chunks(LinearClassifier(), X, y, shuffle="yes")
    with pytest.raises(ValueError, match="random_state"):
        fit_chunks(LinearClassifier(), X, y, random_state="seed")
    with pytest.raises(TypeError, match="partial_fit"):
        fit_chunks(object(), X, y)
    with pytest.raises(TypeError, match="chunk_size"):
        chunk_bounds(10, 2.5)


def test_full_batch_epochs_default_to_max_iter():
    from fastgd.stream import fit_full_batch

    X = np.random.default_rng(0).normal(size=(40, 3))
    est = fit_full_batch(LinearClassifier(learning_rate="constant", max_iter=4, tol=None), X, np.arange(40) % 2,
                         chunk_size=16)
    assert est.n_iter_ == 4


def _peak_rss_reset() -> bool:
    """Reset this process's peak resident set size (Linux: /proc/self/clear_refs); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc peak-RSS reset")
def test_fit_chunks_keeps_resident_memory_bounded_on_a_memmap(tmp_path):
    from fastgd.stream import ChunkReader

    n_rows, n_features = 500_000, 100                     # a 200 MB file
    path = tmp_path / "X.f32"
    rng = np.random.default_rng(0)
    w = rng.normal(size=n_features).astype(np.float32)
    y = np.empty(n_rows, dtype=np.int8)
    with open(path, "wb") as f:                          # written by blocks: nothing of it is mapped here
        for start in range(0, n_rows, 50_000):
            block = rng.normal(size=(50_000, n_features)).astype(np.float32)
            y[start:start + 50_000] = block @ w > 0
            block.tofile(f)
    X = np.memmap(path, dtype=np.float32, mode="r", shape=(n_rows, n_features))
    assert ChunkReader(X, 10).direct and ChunkReader(X[1000:], 10).direct
    np.testing.assert_array_equal(ChunkReader(X[1000:], 10).read(5, 9), X[1005:1009])   # offsets of a slice
    file_bytes = n_rows * n_features * 4

    model = LinearClassifier(loss="log_loss", random_state=0)
    fit_chunks(model, X[:20_000], y[:20_000], chunk_size=10_000, random_state=0)  # compile outside the measure
    if not _peak_rss_reset():
        pytest.skip("the peak resident set size cannot be reset here")
    baseline = _rss_bytes()
    fit_chunks(model, X, y, chunk_size=20_000, epochs=1, random_state=0)
    grown = _peak_rss_bytes() - baseline
    assert grown < file_bytes / 8, f"resident memory grew by {grown / 1e6:.0f} MB for a {file_bytes / 1e6:.0f} MB file"
    assert model.score(np.asarray(X[:20_000]), y[:20_000]) > 0.9

    # the measure can see growth: slicing the mapping brings the file's pages into the resident set
    _peak_rss_reset()
    baseline = _rss_bytes()
    total = 0.0
    for start in range(0, n_rows, 20_000):
        total += float(np.asarray(X[start:start + 20_000]).sum())
    assert _peak_rss_bytes() - baseline > file_bytes / 2


def _dispatchers():
    """Every compiled kernel of fastgd, by name."""
    import importlib
    import pkgutil

    from numba.core.dispatcher import Dispatcher

    import fastgd.kernels
    import fastgd.optim

    found = {}
    for package in (fastgd.kernels, fastgd.optim):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for name, value in vars(module).items():
                if isinstance(value, Dispatcher):
                    found[f"{module.__name__}.{name}"] = value
    return found


@pytest.mark.parametrize("make", [lambda: LinearClassifier(loss="log_loss", solver="adam", random_state=0),
                                  lambda: LinearClassifier(batch_size=4, random_state=0),
                                  lambda: MLPClassifier((8,), batch_size=4, random_state=0)])
def test_partial_fit_trains_in_place_and_compiles_nothing_new(make):
    import pickle

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    model = make()
    model.partial_fit(X[:10], y[:10], classes=[0, 1])
    model.partial_fit(X[10:20], y[10:20])
    copied = pickle.loads(pickle.dumps(model))  # the same model, without the trained buffers' identity
    kernels = _dispatchers()
    signatures = {name: len(d.signatures) for name, d in kernels.items()}
    linear = hasattr(model, "coef_")
    params, slots = model._params, model._optimizer_state.slots
    arrays = [model.coef_, model.intercept_] if linear else [*model.coefs_, *model.intercepts_]
    before = [a.copy() for a in arrays]

    model.partial_fit(X[20:33], y[20:33])                # another batch size, same dtype
    copied.partial_fit(X[20:33], y[20:33])

    assert {name: len(d.signatures) for name, d in kernels.items()} == signatures, "a kernel was compiled again"
    assert model._params is params and model._optimizer_state.slots is slots
    after = [model.coef_, model.intercept_] if linear else [*model.coefs_, *model.intercepts_]
    for old, new, value in zip(arrays, after, before, strict=True):
        assert np.shares_memory(new, params) and np.shares_memory(old, new)  # the arrays were trained in place
        assert not np.array_equal(new, value)
    reference = [copied.coef_, copied.intercept_] if linear else [*copied.coefs_, *copied.intercepts_]
    for new, ref in zip(after, reference, strict=True):
        np.testing.assert_array_equal(new, ref)  # in place gives the bits of training a copy

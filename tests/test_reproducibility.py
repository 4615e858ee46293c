"""Same seed, same bits: across fits, processes, thread counts; persistence; concurrent fits."""

import hashlib
import os
import pickle
import pickletools
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from fastgd import LinearClassifier, MLPClassifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Fits whose parameters are hashed in a fresh interpreter. The wide regressor has more parameters than
# fastgd._config.PARALLEL_MIN_SIZE, so its optimizer updates run on Numba's threads; the classifiers on
# 4,000 x 100 samples have batches large enough (fastgd.backends.cpu.block_partition) for their gradients to
# be computed in blocks of rows on Numba's threads, with the default n_threads and with n_threads=1.
_FIT_AND_HASH = textwrap.dedent("""
    import hashlib, warnings
    import numpy as np
    from sklearn.datasets import load_digits
    from fastgd import LinearClassifier, LinearRegressor, MLPClassifier
    warnings.simplefilter("ignore")
    X, y = load_digits(return_X_y=True)
    X = (X[:500] / 16).astype(np.float32)
    y = y[:500]
    rng = np.random.default_rng(0)
    W = rng.normal(size=(300, 450)).astype(np.float32)
    Xw = rng.normal(size=(64, 300)).astype(np.float32)
    models = [
        MLPClassifier((32, 16), max_iter=3, random_state=0).fit(X, y),
        LinearClassifier(loss="log_loss", solver="adam", batch_size=16, max_iter=3, random_state=0).fit(X, y),
        LinearRegressor(solver="adam", learning_rate="constant", batch_size=8, max_iter=2, random_state=0,
                        tol=None).fit(Xw, Xw @ W),
    ]
    Xb = rng.normal(size=(4000, 100)).astype(np.float32)
    yb = (Xb[:, :10].sum(axis=1) > 0).astype(int)
    for n_threads in (None, 1):
        models.append(LinearClassifier(loss="log_loss", solver="adam", batch_size=1500, learning_rate="constant",
                                       max_iter=3, tol=None, random_state=0, n_threads=n_threads).fit(Xb, yb))
        models.append(LinearClassifier(loss="hinge", batch_size=None, learning_rate="constant", max_iter=3,
                                       tol=None, random_state=0, n_threads=n_threads).fit(Xb.astype(float), yb))
    assert np.array_equal(models[3].coef_, models[5].coef_) and np.array_equal(models[4].coef_, models[6].coef_)
    digest = hashlib.sha256()
    for m in models:
        for a in getattr(m, "coefs_", []) + getattr(m, "intercepts_", []) + [getattr(m, "coef_", np.zeros(0))]:
            digest.update(np.ascontiguousarray(a).tobytes())
    print(digest.hexdigest())
""")


def _hash_in_fresh_process(**env) -> str:
    result = subprocess.run([sys.executable, "-c", _FIT_AND_HASH], capture_output=True, text=True, check=True,
                            env={**os.environ, **env}, timeout=600)
    return result.stdout.strip()


@pytest.mark.slow
def test_bitwise_identical_across_processes_and_thread_counts():
    one = _hash_in_fresh_process(NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    two = _hash_in_fresh_process(NUMBA_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    again = _hash_in_fresh_process(NUMBA_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    assert len(one) == 64
    assert one == two == again


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:400] / 16).astype(np.float32), y[:400]


def _fitted_models(X, y):
    return [MLPClassifier((16,), max_iter=5, random_state=0).fit(X, y),
            LinearClassifier(loss="log_loss", max_iter=5, random_state=0).fit(X, y)]


def test_pickle_and_joblib_round_trips_in_a_fresh_process(tmp_path, digits):
    X, y = digits
    for i, model in enumerate(_fitted_models(X, y)):
        pickle_path, joblib_path, data_path = tmp_path / f"m{i}.pkl", tmp_path / f"m{i}.joblib", tmp_path / "X.npy"
        blob = pickle.dumps(model)
        modules = {arg for op, arg, _ in pickletools.genops(blob) if op.name in ("GLOBAL", "STACK_GLOBAL")
                   and isinstance(arg, str)} | {
            arg for op, arg, _ in pickletools.genops(blob) if op.name in ("SHORT_BINUNICODE", "BINUNICODE")
            and isinstance(arg, str) and arg.startswith("numba")}
        assert not any("numba" in str(m) for m in modules), "the pickle must hold no compiled functions"
        pickle_path.write_bytes(blob)
        joblib.dump(model, joblib_path)
        np.save(data_path, X)
        script = textwrap.dedent(f"""
            import pickle, joblib, numpy as np
            X = np.load({str(data_path)!r})
            a = pickle.loads(open({str(pickle_path)!r}, "rb").read()).predict_proba(X)
            b = joblib.load({str(joblib_path)!r}).predict_proba(X)
            np.save({str(tmp_path / f"p{i}.npy")!r}, np.stack([a, b]))
        """)
        subprocess.run([sys.executable, "-c", script], check=True, timeout=600)
        loaded = np.load(tmp_path / f"p{i}.npy")
        expected = model.predict_proba(X)
        np.testing.assert_array_equal(loaded[0], expected)
        np.testing.assert_array_equal(loaded[1], expected)


def test_concurrent_fits_in_threads_equal_sequential_fits(digits):
    X, y = digits

    def fit(seed):
        model = MLPClassifier((16,), max_iter=4, random_state=seed).fit(X, y)
        return hashlib.sha256(b"".join(c.tobytes() for c in model.coefs_)).hexdigest()

    sequential = [fit(s) for s in (0, 1, 2, 3)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        concurrent = list(pool.map(fit, (0, 1, 2, 3)))
    assert concurrent == sequential


def test_grid_search_with_two_jobs(digits):
    X, y = digits
    for batch_size in (1, 32):  # compile here once; the two job processes then load from the cache
        LinearClassifier(loss="log_loss", max_iter=1, batch_size=batch_size).fit(X, y)
    search = GridSearchCV(LinearClassifier(loss="log_loss", max_iter=5, random_state=0),
                          {"alpha": [1e-4, 1e-2], "batch_size": [1, 32]}, cv=2, n_jobs=2).fit(X, y)
    serial = GridSearchCV(LinearClassifier(loss="log_loss", max_iter=5, random_state=0),
                          {"alpha": [1e-4, 1e-2], "batch_size": [1, 32]}, cv=2, n_jobs=1).fit(X, y)
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"])
    assert search.best_score_ > 0.85


#: Three programs run one after the other on one Numba cache: the optimizers alone, then an MLP fit (which
#: compiles the MLP epoch while the optimizer kernels it calls could come from the cache), then the same fit
#: again, loaded from the cache. Numba caches a caller compiled against a cached callee with a dangling
#: reference to it: the third process crashed before fastgd stopped caching inner kernels on their own.
_OPTIMIZERS_ALONE = """
import numpy as np
from fastgd.optim import OPTIMIZERS
for cls in OPTIMIZERS.values():
    for dtype in (np.float32, np.float64):
        params, grads = np.ones(10, dtype), np.ones(10, dtype)
        optimizer = cls()
        optimizer.step(params, grads, optimizer.init(params))
print("steps done")
"""
_MLP_FIT = """
import warnings
import numpy as np
from fastgd import MLPClassifier
warnings.simplefilter("ignore")
rng = np.random.RandomState(0)
X, y = rng.normal(size=(30, 4)).astype(np.float32), rng.randint(0, 3, size=30)
model = MLPClassifier((5,), solver="adam", batch_size=10, max_iter=2, random_state=0).fit(X, y)
print(repr(model.coefs_[0].tobytes().hex()))
"""


@pytest.mark.slow
def test_kernels_loaded_from_the_cache_in_any_order_of_first_use(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}

    def run(code: str) -> str:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-2000:]}"
        return done.stdout

    assert "steps done" in run(_OPTIMIZERS_ALONE)
    compiled = run(_MLP_FIT)
    assert run(_MLP_FIT) == compiled  # loaded from the cache: runs, and trains the same bits

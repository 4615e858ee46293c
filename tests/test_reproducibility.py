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

#: Fits whose parameters are hashed in a child process, every estimator and solver on batches that are split:
#: MLP batches of 48 rows (6 parts) and full batches (8 parts, in pieces), the linear models' batches of 1,500
#: rows x 101 parameters (blocks of rows) and a linear model of 135,450 parameters (its updates on Numba's
#: threads). Each is fitted with n_threads None (the default, from the machine's idle CPUs), 1, 2, 4 and 64,
#: which must all give the same bits; the child prints one digest per model. The data come from the parent as
#: a file: regression targets made with BLAS would themselves change with OPENBLAS_NUM_THREADS.
_FIT_AND_HASH = textwrap.dedent("""
    import hashlib, sys, warnings
    import numpy as np
    import scipy.sparse as sp
    from fastgd import LinearClassifier, LinearRegressor, MLPClassifier, MLPRegressor
    warnings.simplefilter("ignore")
    data = np.load(sys.argv[1])
    X, y, Xr, yr, Xb, yb, Xw, Yw = (data[k] for k in ("X", "y", "Xr", "yr", "Xb", "yb", "Xw", "Yw"))
    mlp = dict(hidden_layer_sizes=(16, 8), max_iter=2, random_state=0, tol=0)
    cases = [(MLPClassifier(solver=s, batch_size=48, **mlp), X, y)
             for s in ("sgd", "adam", "rmsprop", "adamw", "adagrad")]
    cases += [
        (MLPClassifier(solver="lbfgs", **mlp), X, y),
        (MLPClassifier(solver="adam", batch_size=None, clip_norm=0.5, **mlp), X, y),
        (MLPClassifier(solver="sgd", batch_size=64, early_stopping=True, **mlp), X.astype(np.float64), y),
        (MLPClassifier(solver="adam", batch_size=40, **mlp), sp.csr_matrix(np.where(X > 0.5, X, 0)), y),
        (MLPRegressor(solver="adam", batch_size=48, **mlp), Xr, yr),
        (MLPRegressor(solver="lbfgs", **mlp), Xr, yr),
    ]
    lin = dict(learning_rate="constant", max_iter=2, tol=None, random_state=0)
    cases += [(LinearClassifier(loss="log_loss", solver=s, batch_size=1500, **lin), Xb, yb)
              for s in ("sgd", "adam", "rmsprop", "adamw", "adagrad")]
    cases += [
        (LinearClassifier(loss="hinge", batch_size=None, **lin), Xb.astype(np.float64), yb),
        (LinearRegressor(solver="adam", batch_size=1500, **lin), Xb, Xb[:, 0] - Xb[:, 1]),
        (LinearRegressor(solver="adam", batch_size=8, **lin), Xw, Yw),
    ]
    for estimator, features, target in cases:
        digests = set()
        for n_threads in (None, 1, 2, 4, 64):
            model = estimator.set_params(n_threads=n_threads).fit(features, target)
            digest = hashlib.sha256()
            for a in getattr(model, "coefs_", []) + getattr(model, "intercepts_", []) + [
                    getattr(model, "coef_", np.zeros(0)), np.asarray(getattr(model, "loss_curve_", [model.loss_]))]:
                digest.update(np.ascontiguousarray(a).tobytes())
            digests.add(digest.hexdigest())
        assert len(digests) == 1, f"{estimator!r}: {len(digests)} different models for 5 thread counts"
        print(type(estimator).__name__, estimator.solver, digests.pop())
""")


@pytest.fixture(scope="module")
def hash_inputs(tmp_path_factory):
    """The children's data, made once (without BLAS) and saved."""
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    W = rng.normal(size=(300, 450)).astype(np.float32)
    Xw = rng.normal(size=(64, 300)).astype(np.float32)
    Xb = rng.normal(size=(2000, 100)).astype(np.float32)
    path = tmp_path_factory.mktemp("hash-inputs") / "data.npz"
    np.savez(path, X=(X[:400] / 16).astype(np.float32), y=y[:400], Xr=(X[:400] / 16).astype(np.float32),
             yr=np.c_[X[:400, 10] - X[:400, 20], X[:400, 30]] / 16, Xb=Xb, yb=(Xb[:, :10].sum(axis=1) > 0).astype(int),
             Xw=Xw, Yw=(Xw[:, :, None] * W[None]).sum(axis=1))
    return path


def _hashes_in_child(data_path, **env) -> list[str]:
    result = subprocess.run([sys.executable, "-c", _FIT_AND_HASH, str(data_path)], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.split("\n")
    lines = [line for line in lines if line]
    assert len(lines) == 19 and all(len(line.split()[-1]) == 64 for line in lines), result.stdout
    return lines


def _threading_layers() -> list[str]:
    """The threading layers Numba can load here (tbb only where the tbb package is installed)."""
    layers = []
    for layer in ("omp", "tbb", "workqueue"):
        probe = ("import numba, numpy as np\n@numba.njit(parallel=True)\ndef f(a):\n"
                 "    for i in numba.prange(a.size): a[i] += 1\nf(np.zeros(4)); print(numba.threading_layer())")
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "NUMBA_THREADING_LAYER": layer})
        if done.returncode == 0 and done.stdout.strip() == layer:
            layers.append(layer)
    return layers


@pytest.mark.slow
def test_same_bits_on_any_thread_count_threading_layer_and_load(hash_inputs):
    """Every estimator and solver trains the same bits whatever the threads and the machine's load.

    Children with 1, 2 and 4 of Numba's threads (and 4 BLAS threads), under each threading layer, and one
    while two busy-loop processes compete for the cores; each fits every model with n_threads None, 1, 2, 4
    and 64 (capped at Numba's pool) and checks those agree.
    """
    reference = _hashes_in_child(hash_inputs, NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    runs = {"NUMBA_NUM_THREADS=4": {"NUMBA_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "4"}}
    for layer in _threading_layers():  # and 2 threads
        runs[f"layer {layer}"] = {"NUMBA_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "NUMBA_THREADING_LAYER": layer}
    for name, env in runs.items():
        assert _hashes_in_child(hash_inputs, **env) == reference, name
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        assert _hashes_in_child(hash_inputs) == reference, "under load"
    finally:
        for process in busy:
            process.kill()
            process.wait()


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

"""Concurrent cold compiles on one Numba cache leave it sound (fastgd._config.cache_lock).

Numba's cache has no lock of its own: two processes that save different signatures of one kernel at once
can map a signature to the other's machine code, and a later process that loads it crashes or computes
garbage. These tests compile in several processes at once on an empty shared cache, with the window
between reading and writing the cache index widened to 0.3 s in every process (so that, without fastgd's
lock, the saves of two processes overlap every time instead of by chance), then load everything in a
further process and compare its models, bit for bit, with models trained on a cache of their own.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]

#: Put before a child's script: the cache index's read-modify-write made slow (see the module docstring).
_SLOW_INDEX = textwrap.dedent("""
    import time
    from numba.core import caching
    _save_index = caching.IndexDataCacheFile._save_index
    def _slow_save_index(self, overloads):
        time.sleep(0.3)
        _save_index(self, overloads)
    caching.IndexDataCacheFile._save_index = _slow_save_index
""")

#: Fits float32 and float64 models in the order given by argv[1] and prints their parameters' digests: two
#: such processes, in opposite orders, save the two signatures of the same kernels at the same moments.
_FIT = textwrap.dedent("""
    import hashlib, sys, warnings
    import numpy as np
    from fastgd import LinearClassifier
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    dtypes = ["float32", "float64"] if sys.argv[1] == "32" else ["float64", "float32"]
    digests = {}
    for dtype in dtypes:
        model = LinearClassifier(loss="log_loss", batch_size=1, max_iter=3, tol=None, random_state=0)
        digests[dtype] = hashlib.sha256(model.fit(X.astype(dtype), y).coef_.tobytes()).hexdigest()
    print(digests["float32"], digests["float64"])
""")

#: The same fits run by a grid search whose two worker processes start on the empty cache at once.
_GRID_SEARCH = textwrap.dedent("""
    import hashlib, warnings
    import numpy as np
    from sklearn.model_selection import GridSearchCV
    from fastgd import LinearClassifier
    warnings.simplefilter("ignore")
    if __name__ == "__main__":
        rng = np.random.default_rng(0)
        X = rng.normal(size=(300, 6))
        y = (X[:, 0] - X[:, 1] > 0).astype(int)
        grid = {"loss": ["log_loss", "hinge"], "batch_size": [1, 16]}
        search = GridSearchCV(LinearClassifier(max_iter=3, tol=None, random_state=0), grid, cv=2, n_jobs=2)
        print(hashlib.sha256(search.fit(X.astype(np.float32), y).cv_results_["mean_test_score"].tobytes())
              .hexdigest())
""")


def _start(script: str, cache, *args: str) -> subprocess.Popen:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "FASTGD_COMPILE_NOTICE": "0"}
    return subprocess.Popen([sys.executable, "-c", _SLOW_INDEX + script, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, f"exit status {process.returncode}: {err[-3000:]}"
    return out.strip()


def test_two_processes_compiling_at_once_leave_a_sound_cache(tmp_path):
    reference = _result(_start(_FIT, tmp_path / "own-cache", "32"))
    assert len(reference.split()) == 2
    shared = tmp_path / "shared"
    first, second = _start(_FIT, shared, "32"), _start(_FIT, shared, "64")
    assert _result(first) == reference
    assert _result(second) == reference
    # a third process loads both signatures from what the two left
    assert _result(_start(_FIT, shared, "32")) == reference
    assert _result(_start(_FIT, shared, "64")) == reference


def test_grid_search_workers_compiling_at_once_leave_a_sound_cache(tmp_path):
    reference = _result(_start(_GRID_SEARCH, tmp_path / "own-cache"))
    shared = tmp_path / "shared"
    assert _result(_start(_GRID_SEARCH, shared)) == reference
    assert _result(_start(_GRID_SEARCH, shared)) == reference


#: The fits of ``_FIT`` run as tasks on the two worker processes of a Dask cluster, in opposite dtype orders, at
#: once on the empty cache; each worker widens the index window as the other processes do.
_DASK_WORKERS = textwrap.dedent("""
    import warnings

    def fit_both(order):
        exec(SLOW_INDEX, {})
        import hashlib
        import numpy as np
        from fastgd import LinearClassifier
        warnings.simplefilter("ignore")
        rng = np.random.default_rng(0)
        X = rng.normal(size=(300, 6))
        y = (X[:, 0] - X[:, 1] > 0).astype(int)
        digests = {}
        for dtype in order:
            model = LinearClassifier(loss="log_loss", batch_size=1, max_iter=3, tol=None, random_state=0)
            digests[dtype] = hashlib.sha256(model.fit(X.astype(dtype), y).coef_.tobytes()).hexdigest()
        return digests["float32"] + " " + digests["float64"]

    if __name__ == "__main__":
        from distributed import Client, LocalCluster
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \\
                Client(cluster) as client:
            workers = sorted(client.scheduler_info()["workers"])
            assert len(workers) == 2, workers
            orders = (["float32", "float64"], ["float64", "float32"])
            futures = [client.submit(fit_both, order, workers=[worker], pure=False)
                       for order, worker in zip(orders, workers)]
            for result in client.gather(futures):
                print(result)
""")


def test_dask_workers_compiling_at_once_leave_a_sound_cache(tmp_path):
    pytest.importorskip("distributed")
    reference = _result(_start(_FIT, tmp_path / "own-cache", "32"))
    shared = tmp_path / "shared"
    script = f"SLOW_INDEX = {_SLOW_INDEX!r}\n" + _DASK_WORKERS
    env = {**os.environ, "NUMBA_CACHE_DIR": str(shared), "FASTGD_COMPILE_NOTICE": "0"}
    cluster = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert _result(cluster).splitlines() == [reference, reference]
    assert _result(_start(_FIT, shared, "64")) == reference  # a third process loads what the workers left


#: Saves one entry into the cache of a fastgd kernel at the moment argv[1] (time.time()), under the name argv[2].
_SAVE_AT = textwrap.dedent("""
    import sys, time
    from fastgd.kernels.linear import linear_epoch
    cache_file = linear_epoch._cache._cache_file
    time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
    cache_file.save(("entry", sys.argv[2]), ("data", sys.argv[2]))
""")


def test_two_saves_at_the_same_moment_both_land(tmp_path):
    """Two processes save an entry each into one kernel's cache at the same moment; both must be there.

    Without the lock both read the empty index during the 0.3 s window, pick the same data file, and the
    index keeps one entry, pointing at a file that may hold the other's data (checked: the test fails so
    with ``fastgd._config.cache_lock`` replaced by a no-op).
    """
    import time

    at = time.time() + 15  # both processes are up and have imported fastgd by then
    savers = [_start(_SAVE_AT, tmp_path / "cache", str(at), name) for name in ("a", "b")]
    for saver in savers:
        _result(saver)
    reader = textwrap.dedent("""
        from fastgd.kernels.linear import linear_epoch
        cache_file = linear_epoch._cache._cache_file
        print(cache_file.load(("entry", "a")), cache_file.load(("entry", "b")))
    """)
    assert _result(_start(reader, tmp_path / "cache")) == "('data', 'a') ('data', 'b')"


def test_the_lock_serialises_writers(tmp_path):
    """Two holders of the exclusive lock never overlap: each appends start/end marks under it."""
    script = textwrap.dedent("""
        import sys, time
        from fastgd._config import cache_lock
        for _ in range(5):
            with cache_lock(sys.argv[1], exclusive=True):
                with open(sys.argv[2], "a") as log:
                    log.write("start\\n")
                time.sleep(0.05)
                with open(sys.argv[2], "a") as log:
                    log.write("end\\n")
    """)
    log = tmp_path / "log.txt"
    processes = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(log)]) for _ in range(2)]
    for process in processes:
        assert process.wait(timeout=300) == 0
    marks = log.read_text().split()
    assert marks == ["start", "end"] * 10

"""Compile every kernel ahead of time: ``python -m fastgd --warm-up``.

Numba compiles fastgd's kernels on their first use on a machine and keeps them in its cache; a first fit
then takes tens of seconds on two cores. Building a container image or starting the workers of a cluster is
the time to pay for that once: :func:`warm_up` trains a tiny model through every route of every estimator,
for each floating-point type and input format asked for, so that the fits that follow load their kernels
from the cache. Run it where the cache will be used (the same ``NUMBA_CACHE_DIR``, or the installed package's
folder, the same CPU model).
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

#: The floating-point types training keeps (float32 input trains in float32, anything else in float64).
DTYPES = ("float32", "float64")


def _routes(X: np.ndarray | sp.csr_matrix, y: np.ndarray, Y: np.ndarray) -> list:
    """One short fit per compiled route: per-sample, mini-batch, split batches and L-BFGS for MLPs;
    per-sample, mini-batch and blocked (full-batch) epochs for linear models, and on CSR input the
    mini-batches of wide models and the other optimizers' sparse steps (the batch's nonzeros only);
    then their predictions."""
    from . import LinearClassifier, LinearRegressor, MLPClassifier, MLPRegressor

    wide = sp.hstack([X, sp.csr_matrix((X.shape[0], 2**14), dtype=X.dtype)], format="csr") if sp.issparse(X) else X
    mlp = {"hidden_layer_sizes": (8,), "max_iter": 1, "random_state": 0}
    lin = {"max_iter": 1, "random_state": 0, "tol": None}
    return [
        (MLPClassifier(batch_size=1, **mlp), X, y),
        (MLPClassifier(batch_size=32, **mlp), X, y),
        (MLPClassifier(solver="lbfgs", **mlp), X, y),
        (MLPRegressor(batch_size=4, **mlp), X, Y),
        (LinearClassifier(batch_size=1, **lin), X, y),
        (LinearClassifier(loss="log_loss", solver="adam", batch_size=16, **lin), X, y),
        (LinearClassifier(loss="log_loss", batch_size=None, **lin), X, y),
        (LinearRegressor(batch_size=1, **lin), X, Y),
    ] + ([(LinearClassifier(batch_size=8, **lin), wide, y),
          (LinearClassifier(loss="log_loss", solver="adam", lazy_updates=True, **lin), wide, y)]
         if sp.issparse(X) else [])


def warm_up(dtypes: Sequence[str] = DTYPES, sparse: Sequence[bool] = (False, True), verbose: bool = True) -> float:
    """Compile (or load from Numba's cache) the kernels of every estimator and route.

    Parameters
    ----------
    dtypes : sequence of {"float32", "float64"}, default=("float32", "float64")
        Floating-point types to compile for.
    sparse : sequence of bool, default=(False, True)
        Input formats to compile for: dense arrays (False) and CSR matrices (True).
    verbose : bool, default=True
        Print one line per type and format on stderr.

    Returns
    -------
    float
        Seconds it took.
    """
    from .optim import OPTIMIZERS

    for dtype in dtypes:
        if dtype not in DTYPES:
            raise ValueError(f"dtypes must be among {DTYPES}; got {dtype!r}.")
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    # 2,000 rows x 100 columns: a full batch is large enough to be computed in blocks of rows on threads
    dense = rng.normal(size=(2000, 100))
    y = (dense[:, 0] > 0).astype(int)
    Y = dense[:, :2].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dtype in dtypes:
            for csr in sparse:
                t0 = time.perf_counter()
                X = dense.astype(dtype)
                if csr:
                    X = sp.csr_matrix(np.where(np.abs(X) > 1, X, 0))
                for estimator, features, target in _routes(X, y, Y.astype(dtype)):
                    estimator.fit(features, target).predict(features[:10])
                if verbose:
                    print(f"fastgd: {dtype} kernels for {'CSR' if csr else 'dense'} input ready in "
                          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
            params = np.zeros(8, dtype=dtype)
            for cls in OPTIMIZERS.values():  # fastgd.optim used on its own
                optimizer = cls()
                optimizer.step(params, np.ones_like(params), optimizer.init(params))
    return time.perf_counter() - started

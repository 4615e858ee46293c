"""asv suites: training throughput and peak memory of ``fastgd.LinearClassifier``.

Parametrised by solver x batch size (1: per-sample SGD, 32: mini-batches,
"full": full-batch GD) x dtype. ``setup`` compiles the kernels (or loads them
from Numba's cache) with a tiny fit of the same configuration once per process,
so the timings exclude compilation.
"""

from __future__ import annotations

import time
import warnings
from functools import lru_cache

import numpy as np
from sklearn.datasets import make_classification

try:
    from fastgd import LinearClassifier
except ImportError:  # a commit without the estimators: every benchmark is skipped
    LinearClassifier = None

SOLVERS = ["sgd", "adam"]
BATCH_SIZES = [1, 32, "full"]
DTYPES = ["float32", "float64"]

#: Size of the throughput data set and number of epochs per fit.
N_SAMPLES, N_FEATURES, EPOCHS = 20_000, 50, 5
#: Size of the peak-memory data set (float64: 80 MB of X).
PEAKMEM_SAMPLES, PEAKMEM_FEATURES = 100_000, 100

_WARMED: set[tuple[str, object, str]] = set()


@lru_cache(maxsize=4)
def classification_data(n_samples: int, n_features: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """``make_classification`` data, C-contiguous in ``dtype``, made once per process."""
    X, y = make_classification(n_samples=n_samples, n_features=n_features, n_informative=n_features // 2,
                               random_state=0)
    return np.ascontiguousarray(X, dtype=dtype), y


def make_estimator(solver, batch_size, max_iter=EPOCHS):
    """The benchmarked classifier; raises NotImplementedError when fastgd lacks it."""
    if LinearClassifier is None:
        raise NotImplementedError("fastgd.LinearClassifier is not available in this commit")
    kwargs = {} if solver == "sgd" else {"learning_rate": "constant", "learning_rate_init": 1e-3}
    return LinearClassifier(solver=solver, batch_size=batch_size, max_iter=max_iter, tol=None,
                            random_state=0, **kwargs)


def warm_up(solver, batch_size, dtype) -> None:
    """Compile (or load) the kernels of this configuration with a tiny fit, once per process."""
    key = (solver, batch_size, dtype)
    if key in _WARMED:
        return
    X, y = classification_data(200, 10, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_estimator(solver, batch_size, max_iter=2).fit(X, y)
    _WARMED.add(key)


class LinearClassifierFit:
    """``LinearClassifier.fit``: 5 epochs over 20,000 x 50 samples, no early stop."""

    params = (SOLVERS, BATCH_SIZES, DTYPES)
    param_names = ["solver", "batch_size", "dtype"]
    timeout = 180

    def setup(self, solver, batch_size, dtype):
        warm_up(solver, batch_size, dtype)
        self.X, self.y = classification_data(N_SAMPLES, N_FEATURES, dtype)
        self.est = make_estimator(solver, batch_size)

    def time_fit(self, solver, batch_size, dtype):
        self.est.fit(self.X, self.y)

    def track_samples_per_s(self, solver, batch_size, dtype):
        """Samples processed per second: n_samples * epochs / median fit time of 3."""
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            self.est.fit(self.X, self.y)
            times.append(time.perf_counter() - t0)
        return self.X.shape[0] * self.est.n_iter_ / float(np.median(times))

    track_samples_per_s.unit = "samples/s"


class LinearClassifierPeakMem:
    """Peak resident memory of a process that fits on 100,000 x 100 samples (X included)."""

    params = (BATCH_SIZES, DTYPES)
    param_names = ["batch_size", "dtype"]
    timeout = 180

    def setup(self, batch_size, dtype):
        warm_up("sgd", batch_size, dtype)
        self.X, self.y = classification_data(PEAKMEM_SAMPLES, PEAKMEM_FEATURES, dtype)
        self.est = make_estimator("sgd", batch_size, max_iter=2)

    def peakmem_fit(self, batch_size, dtype):
        self.est.fit(self.X, self.y)


# -- hashed text: per-sample SGD on CSR rows, by width ------------------------------------------
#: Vocabulary of the synthetic text: token ids 0 .. TEXT_VOCAB - 1, token k drawn with probability ~ 1 / (k + 1)**1.07.
TEXT_VOCAB, TEXT_ZIPF = 200_000, 1.07
#: Tokens drawn per row (Poisson mean): after repeats and l2 normalisation, about 85 nonzeros per row.
TEXT_TOKENS_PER_ROW = 115
#: Hidden model by number of classes: (share of a row's tokens drawn from its topic's keywords, keywords per class).
#: Tuned so that per-sample SGD scores about 85 % on held-out rows at 2**20 columns, binary and 20 classes.
TEXT_TOPICS = {2: (0.03, 500), 20: (0.06, 200)}
#: Share of labels replaced by a uniformly drawn class (label noise).
TEXT_LABEL_NOISE = 0.08
#: The width sweep: columns, rows, epochs per fit (per-sample SGD, hinge).
TEXT_WIDTHS = [2**12, 2**14, 2**16, 2**18, 2**20, 2**22]
TEXT_ROWS, TEXT_EPOCHS = 20_000, 1
_HASH_MULTIPLIER = np.uint64(2654435761)  # Knuth's multiplicative hash, modulo 2**32


def _l2_normalise_rows(X) -> None:
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    norms = np.sqrt(np.bincount(rows, weights=X.data**2, minlength=X.shape[0]))
    X.data /= norms[rows]


@lru_cache(maxsize=2)
def text_tokens(n_rows: int, n_classes: int = 2, seed: int = 0):
    """Synthetic text as token counts: ``(T, y)``, ``T`` CSR of ``n_rows`` x ``TEXT_VOCAB``, rows l2-normalised.

    Each row has a hidden topic (its class) and ``TEXT_TOKENS_PER_ROW`` tokens on
    average (Poisson), drawn from a Zipfian distribution over the vocabulary
    except for a share (``TEXT_TOPICS``) drawn, Zipf-like too, from the topic's
    own keywords (disjoint sets among token ranks 100-20,000). Values are
    ``1 + log(count)``, rows l2-normalised. The label is the hidden sparse linear
    model's: the class whose keywords (weights uniform in [0.5, 1.5]) score the
    row highest, a keyword drawn in the background counting as much as a topic's;
    then ``TEXT_LABEL_NOISE`` of the labels are replaced by a random class.
    """
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    topic_share, n_keywords = TEXT_TOPICS.get(n_classes, TEXT_TOPICS[20])
    cdf = np.cumsum(1.0 / np.arange(1, TEXT_VOCAB + 1) ** TEXT_ZIPF)
    cdf /= cdf[-1]
    topic = rng.integers(0, n_classes, n_rows)
    lengths = rng.poisson(TEXT_TOKENS_PER_ROW, n_rows)
    row = np.repeat(np.arange(n_rows), lengths)
    tokens = np.searchsorted(cdf, rng.random(row.size))
    keywords = 100 + rng.permutation(20_000 - 100)[:n_classes * n_keywords].reshape(n_classes, n_keywords)
    keywords.sort(axis=1)
    keyword_cdf = np.cumsum(1.0 / np.arange(1, n_keywords + 1))
    keyword_cdf /= keyword_cdf[-1]
    from_topic = rng.random(row.size) < topic_share
    tokens[from_topic] = keywords[topic[row[from_topic]],
                                  np.searchsorted(keyword_cdf, rng.random(int(from_topic.sum())))]
    T = sp.csr_matrix((np.ones(row.size), (row, tokens)), shape=(n_rows, TEXT_VOCAB))
    T.sum_duplicates()
    T.data = 1.0 + np.log(T.data)
    _l2_normalise_rows(T)
    W = np.zeros((TEXT_VOCAB, n_classes))
    for c in range(n_classes):
        W[keywords[c], c] = rng.uniform(0.5, 1.5, n_keywords)
    scores = np.asarray(T @ W) + 1e-9 * rng.random((n_rows, n_classes))  # breaks ties at random
    y = np.argmax(scores, axis=1)
    noisy = rng.random(n_rows) < TEXT_LABEL_NOISE
    y[noisy] = rng.integers(0, n_classes, int(noisy.sum()))
    return T, y


def hash_columns(T, n_features: int):
    """``T``'s tokens hashed to ``n_features`` columns (a power of two): float64 CSR, sorted, rows l2-normalised.

    Column of token k: the top log2(n_features) bits of ``(k * 2654435761) mod 2**32``;
    tokens of a row that share a column are summed.
    """
    import scipy.sparse as sp

    bits = int(n_features).bit_length() - 1
    if n_features != 1 << bits or not 0 < bits <= 32:
        raise ValueError(f"n_features must be a power of two up to 2**32, got {n_features}")
    columns = ((T.indices.astype(np.uint64) * _HASH_MULTIPLIER) & np.uint64(0xFFFFFFFF)) >> np.uint64(32 - bits)
    X = sp.csr_matrix((T.data.copy(), columns.astype(np.int32 if bits < 31 else np.int64), T.indptr.copy()),
                      shape=(T.shape[0], n_features))
    X.sum_duplicates()
    _l2_normalise_rows(X)
    return X


@lru_cache(maxsize=2)
def hashed_text(n_rows: int, n_features: int, n_classes: int = 2, seed: int = 0):
    """``(X, y)``: ``text_tokens(n_rows, n_classes, seed)`` hashed to ``n_features`` columns, made once per process."""
    T, y = text_tokens(n_rows, n_classes, seed)
    return hash_columns(T, n_features), y


def make_text_estimator(lib: str, max_iter: int = TEXT_EPOCHS, loss: str = "hinge"):
    """Per-sample SGD as text users run it: fastgd's ``LinearClassifier(batch_size=1)`` or scikit-learn's."""
    if lib == "sklearn":
        from sklearn.linear_model import SGDClassifier

        return SGDClassifier(loss=loss, alpha=1e-4, max_iter=max_iter, tol=None, random_state=0)
    if LinearClassifier is None:
        raise NotImplementedError("fastgd.LinearClassifier is not available in this commit")
    return LinearClassifier(loss=loss, batch_size=1, learning_rate="optimal", alpha=1e-4, max_iter=max_iter,
                            tol=None, random_state=0)


def _fit_quietly(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning at max_iter
        return est.fit(X, y)


def _median_speedup(run_fastgd, run_sklearn, rounds: int = 3) -> float:
    """scikit-learn's median time over fastgd's, the two runs alternating ``rounds`` times (a load that comes
    and goes then weighs on both)."""
    times: dict[str, list[float]] = {"fastgd": [], "sklearn": []}
    for _ in range(rounds):
        for lib, run in (("fastgd", run_fastgd), ("sklearn", run_sklearn)):
            t0 = time.perf_counter()
            run()
            times[lib].append(time.perf_counter() - t0)
    return float(np.median(times["sklearn"]) / np.median(times["fastgd"]))


class SparseTextFitByWidth:
    """Per-sample SGD (hinge, one epoch) on 20,000 rows of hashed text, ~85 nonzeros per row, by width.

    The same token stream hashed to each width, so the work per sample is the
    same; a step should cost the row's nonzeros, whatever the number of columns.
    scikit-learn's ``SGDClassifier`` with the same arguments is the peer.
    """

    params = (TEXT_WIDTHS,)
    param_names = ["n_features"]
    timeout = 180

    def setup(self, n_features):
        self.X, self.y = hashed_text(TEXT_ROWS, n_features)
        key = ("text", n_features, "float64")
        if key not in _WARMED:  # compiles (or loads) the CSR kernels at this width: the route depends on it
            _fit_quietly(make_text_estimator("fastgd"), self.X[:200], self.y[:200])
            _WARMED.add(key)
        self.fastgd = make_text_estimator("fastgd")
        self.sklearn = make_text_estimator("sklearn")

    def time_fastgd_fit(self, n_features):
        self.fastgd.fit(self.X, self.y)

    def time_sklearn_fit(self, n_features):
        _fit_quietly(self.sklearn, self.X, self.y)

    def track_speedup_vs_sklearn(self, n_features):
        """scikit-learn's fit time over fastgd's, medians of 3 fits each, run alternately."""
        return _median_speedup(lambda: _fit_quietly(self.fastgd, self.X, self.y),
                               lambda: _fit_quietly(self.sklearn, self.X, self.y))

    track_speedup_vs_sklearn.unit = "x"


class SparseTextMiniBatchByWidth:
    """Mini-batch plain SGD (batch 32, hinge, one epoch) on the hashed text of :class:`SparseTextFitByWidth`.

    From 2**14 columns a batch costs its rows' nonzeros (the CSR batch route of
    ``fastgd.kernels.linear.linear_epoch_csr_batches``): the time should stay
    flat with the width. At 2**12 columns (fewer than 2 columns per nonzero of
    a batch) the dense passes serve, by design. scikit-learn has no mini-batch
    SGD to compare with: the per-sample fit of :class:`SparseTextFitByWidth`
    is the reference.
    """

    params = (TEXT_WIDTHS,)
    param_names = ["n_features"]
    timeout = 180

    def setup(self, n_features):
        if LinearClassifier is None:
            raise NotImplementedError("fastgd.LinearClassifier is not available in this commit")
        self.X, self.y = hashed_text(TEXT_ROWS, n_features)
        self.fastgd = LinearClassifier(loss="hinge", batch_size=32, learning_rate="constant", learning_rate_init=0.1,
                                       alpha=1e-4, max_iter=TEXT_EPOCHS, tol=None, random_state=0)
        key = ("text-batches", n_features, "float64")
        if key not in _WARMED:  # the route depends on the width: compile (or load) it first
            _fit_quietly(self.fastgd, self.X[:200], self.y[:200])
            _WARMED.add(key)

    def time_fastgd_fit(self, n_features):
        _fit_quietly(self.fastgd, self.X, self.y)


class SparseTextSolversByWidth:
    """Per-sample Adagrad (no penalty: the exact rule) and lazy Adam on the hashed text, by width.

    Both step only the coordinates of each row's nonzero features
    (``fastgd.kernels.linear.linear_epoch_csr_sparse_updates``): the time
    should grow with the width only through the cache misses of a larger
    model, not by a pass over it per sample (exact Adam on CSR rows: 142 us
    per sample at 2**16 columns against 1.5 lazily).
    """

    params = (TEXT_WIDTHS, ["adagrad", "lazy_adam"])
    param_names = ["n_features", "solver"]
    timeout = 180

    def setup(self, n_features, solver):
        if LinearClassifier is None:
            raise NotImplementedError("fastgd.LinearClassifier is not available in this commit")
        try:
            options = {"adagrad": {"solver": "adagrad", "alpha": 0.0},
                       "lazy_adam": {"solver": "adam", "lazy_updates": True}}[solver]
            self.fastgd = LinearClassifier(loss="log_loss", learning_rate="constant", learning_rate_init=0.01,
                                           max_iter=TEXT_EPOCHS, tol=None, random_state=0, **options)
        except TypeError:
            raise NotImplementedError("lazy_updates is not available in this commit") from None
        self.X, self.y = hashed_text(TEXT_ROWS, n_features)
        key = ("text-solvers", n_features, solver)
        if key not in _WARMED:
            _fit_quietly(self.fastgd, self.X[:200], self.y[:200])
            _WARMED.add(key)

    def time_fastgd_fit(self, n_features, solver):
        _fit_quietly(self.fastgd, self.X, self.y)


class SparseTextPartialFit:
    """``partial_fit`` calls of 1,000 rows of hashed text on a 2**20-column model, against scikit-learn.

    Each call pays passes over all the weights (their norm, the weight scale
    folded back, a snapshot for the non-finite guard); on small calls they
    cost more than the rows' steps. ``fastgd.SGDClassifier`` against
    ``sklearn.linear_model.SGDClassifier``, ten calls each.
    """

    timeout = 180

    def setup(self):
        self.X, self.y = hashed_text(10_000, 2**20)
        if ("text-partial", 2**20, "float64") not in _WARMED:
            self._calls(fastgd_sgd_classifier())
            _WARMED.add(("text-partial", 2**20, "float64"))

    def _calls(self, est):
        for start in range(0, self.X.shape[0], 1_000):
            est.partial_fit(self.X[start:start + 1_000], self.y[start:start + 1_000], classes=[0, 1])

    def time_fastgd_partial_fit(self):
        self._calls(fastgd_sgd_classifier())

    def time_sklearn_partial_fit(self):
        from sklearn.linear_model import SGDClassifier

        self._calls(SGDClassifier(random_state=0))

    def track_speedup_vs_sklearn(self):
        """scikit-learn's time for the ten calls over fastgd's, medians of 3 rounds run alternately."""
        from sklearn.linear_model import SGDClassifier

        return _median_speedup(lambda: self._calls(fastgd_sgd_classifier()),
                               lambda: self._calls(SGDClassifier(random_state=0)))

    track_speedup_vs_sklearn.unit = "x"


class LbfgsVsLogisticRegression:
    """Full-batch L-BFGS on log_loss + L2: ``LinearClassifier(solver="lbfgs")`` against ``LogisticRegression``.

    The same objective (``C = 1 / (n_samples * alpha)``) and tolerance, so both
    take the same iterations; dense 50,000 x 100 with 2 and 10 classes, and
    hashed text (50,000 rows, 2**18 columns).
    """

    params = (["dense-2", "dense-10", "text-2"],)
    param_names = ["data"]
    timeout = 300

    def setup(self, data):
        if LinearClassifier is None:
            raise NotImplementedError("fastgd.LinearClassifier is not available in this commit")
        if data == "text-2":
            self.X, self.y = hashed_text(50_000, 2**18)
        else:
            self.X, self.y = make_classification(n_samples=50_000, n_features=100, n_informative=30,
                                                 n_classes=int(data.split("-")[1]), random_state=0)
        alpha = 1e-4
        try:
            self.fastgd = LinearClassifier(loss="log_loss", solver="lbfgs", alpha=alpha, tol=1e-4, max_iter=100)
            _fit_quietly(self.fastgd, self.X[:500], self.y[:500])  # compiles (or loads) the kernels
        except ValueError:
            raise NotImplementedError("solver='lbfgs' is not available in this commit") from None
        from sklearn.linear_model import LogisticRegression

        self.sklearn = LogisticRegression(C=1.0 / (self.X.shape[0] * alpha), tol=1e-4, max_iter=100)

    def time_fastgd_fit(self, data):
        _fit_quietly(self.fastgd, self.X, self.y)

    def time_sklearn_fit(self, data):
        _fit_quietly(self.sklearn, self.X, self.y)

    def track_speedup_vs_sklearn(self, data):
        """LogisticRegression's fit time over fastgd's, medians of 3 fits each, run alternately."""
        return _median_speedup(lambda: _fit_quietly(self.fastgd, self.X, self.y),
                               lambda: _fit_quietly(self.sklearn, self.X, self.y))

    track_speedup_vs_sklearn.unit = "x"


def fastgd_sgd_classifier():
    """``fastgd.SGDClassifier(random_state=0)``, where this commit has it."""
    import fastgd

    if not hasattr(fastgd, "SGDClassifier"):
        raise NotImplementedError("fastgd.SGDClassifier is not available in this commit")
    return fastgd.SGDClassifier(random_state=0)

"""LinearClassifier and LinearRegressor against independent references."""

import _reference as ref
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fastgd import LinearClassifier, LinearRegressor, NonFiniteTrainingError, NonFiniteTrainingWarning
from fastgd.backends.cpu import LinearTrainer
from fastgd.estimators._base import unique_labels_and_index
from fastgd.kernels.penalty import weight_sums
from fastgd.optim._base import OptimizerState

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _ridge_closed_form(X, y, alpha):
    """Minimiser of mean((Xw + b - y)^2) / 2 + alpha / 2 ||w||^2, intercept unpenalised."""
    x_mean, y_mean = X.mean(axis=0), y.mean()
    Xc, yc = X - x_mean, y - y_mean
    n = X.shape[0]
    w = np.linalg.solve(Xc.T @ Xc / n + alpha * np.eye(X.shape[1]), Xc.T @ yc / n)
    return w, y_mean - x_mean @ w


@pytest.fixture(scope="module")
def regression_data():
    X, y = make_regression(n_samples=120, n_features=5, noise=5.0, random_state=0)
    return StandardScaler().fit_transform(X), y / 50.0


def test_full_batch_gd_reaches_ridge_closed_form(regression_data):
    X, y = regression_data
    alpha = 0.1
    reg = LinearRegressor(alpha=alpha, batch_size=None, learning_rate="constant", learning_rate_init=0.5,
                          max_iter=3000, tol=None, shuffle=False).fit(X, y)
    w, b = _ridge_closed_form(X, y, alpha)
    np.testing.assert_allclose(reg.coef_, w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(reg.intercept_, [b], rtol=1e-9, atol=1e-12)
    assert reg.n_iter_ == 3000 and reg.t_ == 3000


@pytest.mark.parametrize("n_classes", [2, 3])
def test_log_loss_l2_matches_logistic_regression(n_classes):
    """LogisticRegression(C) minimises C sum(loss) + ||w||^2 / 2: mean(loss) + alpha/2 ||w||^2 with alpha = 1/(C n)."""
    X, y = make_classification(n_samples=150, n_features=4, n_informative=3, n_redundant=0,
                               n_classes=n_classes, n_clusters_per_class=1, random_state=1)
    X = StandardScaler().fit_transform(X)
    C = 1.0
    ref = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, y)
    clf = LinearClassifier(loss="log_loss", alpha=1.0 / (C * X.shape[0]), batch_size="full",
                           learning_rate="constant", learning_rate_init=1.0, max_iter=4000, tol=None).fit(X, y)
    # Stated tolerance: 1e-6 absolute on coefficients of order 1 (both solvers converged far below it).
    np.testing.assert_allclose(clf.coef_, ref.coef_, atol=1e-6)
    np.testing.assert_allclose(clf.intercept_, ref.intercept_, atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize(("batch_size", "updates_per_epoch"), [(1, 50), (8, 7), (50, 1), (None, 1), ("full", 1),
                                                               (1000, 1)])
def test_gd_variants_count_updates(batch_size, updates_per_epoch):
    X, y = make_regression(n_samples=50, n_features=3, random_state=0)
    reg = LinearRegressor(batch_size=batch_size, max_iter=4, tol=None, random_state=0).fit(X / 100, y / 100)
    assert reg.n_iter_ == 4
    assert reg.t_ == 4 * updates_per_epoch
    assert len(reg.loss_curve_) == 4
    assert reg.gradient_norms_.shape == (4, 1)


def test_per_sample_sgd_follows_the_textbook_update():
    """One epoch of per-sample SGD, unshuffled, against the update written out in NumPy."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    y = rng.normal(size=30)
    alpha, lr = 0.01, 0.05
    reg = LinearRegressor(alpha=alpha, learning_rate="constant", learning_rate_init=lr, max_iter=1, tol=None,
                          shuffle=False).fit(X, y)
    w, b = np.zeros(4), 0.0
    for xi, yi in zip(X, y, strict=True):
        r = xi @ w + b - yi
        w, b = w - lr * (r * xi + alpha * w), b - lr * r
    np.testing.assert_allclose(reg.coef_, w, rtol=1e-12)
    np.testing.assert_allclose(reg.intercept_, [b], rtol=1e-12)


def _optimal_rate(alpha):
    """scikit-learn's ``optimal`` schedule: 1 / (alpha * (t0 + t - 1)) with its heuristic t0."""
    t0 = 1.0 / (np.sqrt(1.0 / np.sqrt(alpha)) * alpha)
    return lambda t: 1.0 / (alpha * (t0 + t - 1))


def _textbook_targets(y, n_classes: int, multinomial: bool) -> np.ndarray:
    """The targets of :mod:`_reference`: +-1 per class (one column for two classes), or the class index."""
    if multinomial:
        return y[:, None].astype(float)
    Y = np.where(y[:, None] == np.arange(n_classes), 1.0, -1.0)
    return Y[:, 1:] if n_classes == 2 else Y


def _textbook_rate(kwargs: dict, alpha: float):
    """The learning rate of update ``t`` for the estimator kwargs of these tests (0.05 unless ``optimal``)."""
    return _optimal_rate(alpha) if kwargs.get("learning_rate", "optimal") == "optimal" else (lambda t: 0.05)


# (estimator kwargs, reference kwargs): plain SGD takes the one-pass path (update fused with the next decision),
# weight decay, clipping or L1 the general one; both against the textbook.
PER_SAMPLE_CASES = {
    "hinge-optimal": ({"loss": "hinge", "alpha": 1e-3}, {}),
    "log_loss-constant": ({"loss": "log_loss", "alpha": 1e-3, "learning_rate": "constant"}, {}),
    "modified_huber-3-outputs": ({"loss": "modified_huber", "alpha": 1e-3, "learning_rate": "constant",
                                  "n_classes": 3}, {}),
    "multinomial": ({"loss": "log_loss", "alpha": 1e-3, "learning_rate": "constant", "n_classes": 3},
                    {"loss": "multinomial"}),
    "elasticnet-decay-clip_value": ({"loss": "squared_hinge", "alpha": 1e-2, "penalty": "elasticnet",
                                     "l1_ratio": 0.5, "weight_decay": 0.01, "clip_value": 0.3,
                                     "learning_rate": "constant"}, {}),
    "clip_norm-no-intercept": ({"loss": "perceptron", "alpha": 1e-3, "clip_norm": 0.5, "fit_intercept": False,
                                "learning_rate": "constant"}, {}),
    # CSR rows keep the weights as scale * params: a decay of 0.75 per step folds the scale back (below 1e-9)
    # several times in 120 steps, and a decay of 0 takes the general path
    "strong-l2": ({"loss": "hinge", "alpha": 5.0, "learning_rate": "constant"}, {}),
    "l2-decay-to-zero": ({"loss": "log_loss", "alpha": 20.0, "learning_rate": "constant"}, {}),
}


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("case", PER_SAMPLE_CASES)
def test_per_sample_sgd_matches_the_textbook(case, sparse):
    """Two unshuffled epochs of per-sample SGD with sample weights against :func:`_reference.per_sample_sgd`."""
    kwargs, ref_kwargs = (dict(d) for d in PER_SAMPLE_CASES[case])
    n_classes = kwargs.pop("n_classes", 2)
    X, y = make_classification(n_samples=60, n_features=7, n_informative=4, n_classes=n_classes, random_state=3)
    X = StandardScaler().fit_transform(X)
    if sparse:
        X[np.abs(X) < 0.6] = 0.0
    sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, size=y.size)
    clf = LinearClassifier(max_iter=2, tol=None, shuffle=False, learning_rate_init=0.05, **kwargs)
    clf.fit(sp.csr_matrix(X) if sparse else X, y, sample_weight=sample_weight)

    alpha, l1_ratio = kwargs["alpha"], kwargs.get("l1_ratio", 0.0) if "penalty" in kwargs else 0.0
    Y = _textbook_targets(y, n_classes, ref_kwargs.get("loss") == "multinomial")
    lr_at = _textbook_rate(kwargs, alpha)
    W, b = ref.per_sample_sgd(X, Y, sample_weight, loss=ref_kwargs.get("loss", kwargs["loss"]), epochs=2,
                              lr_at=lr_at, l2=alpha * (1 - l1_ratio), l1=alpha * l1_ratio,
                              weight_decay=kwargs.get("weight_decay", 0.0), clip_value=kwargs.get("clip_value"),
                              clip_norm=kwargs.get("clip_norm"), fit_intercept=kwargs.get("fit_intercept", True))
    assert clf.t_ == 2 * y.size
    # Round-off only: fused multiply-adds and vectorised sums against NumPy's order.
    np.testing.assert_allclose(clf.coef_.reshape(W.shape), W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_per_sample_cumulative_l1_on_csr_penalises_the_row_s_weights(n_classes):
    """Per-sample plain SGD with L1 on CSR rows: the cumulative penalty on the weights each step moved."""
    X, y = make_classification(n_samples=60, n_features=7, n_informative=4, n_classes=n_classes, random_state=3)
    X = StandardScaler().fit_transform(X)
    X[np.abs(X) < 0.6] = 0.0
    kwargs = dict(penalty="elasticnet", alpha=0.05, l1_ratio=0.6, learning_rate="constant", learning_rate_init=0.05)
    clf = LinearClassifier(max_iter=2, tol=None, shuffle=False, **kwargs).fit(sp.csr_matrix(X), y)
    Y = np.where(y[:, None] == np.arange(n_classes), 1.0, -1.0)
    if n_classes == 2:
        Y = Y[:, 1:]
    W, b = ref.per_sample_sgd(X, Y, np.ones(y.size), loss="hinge", epochs=2, lr_at=lambda t: 0.05, l2=0.05 * 0.4,
                              l1=0.05 * 0.6, l1_on_nonzeros=True)
    assert (W == 0).sum() > 0  # the penalty zeroed weights: the test sees the rule, not only the shrinkage
    np.testing.assert_allclose(clf.coef_.reshape(W.shape), W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_, b, rtol=1e-10, atol=1e-12)
    dense = LinearClassifier(max_iter=2, tol=None, shuffle=False, **kwargs).fit(X, y)  # every weight, every step
    W_all, _ = ref.per_sample_sgd(X, Y, np.ones(y.size), loss="hinge", epochs=2, lr_at=lambda t: 0.05,
                                  l2=0.05 * 0.4, l1=0.05 * 0.6)
    np.testing.assert_allclose(dense.coef_.reshape(W.shape), W_all, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_per_sample_sgd_on_wide_csr_costs_the_nonzeros(n_classes, monkeypatch):
    """A model wide enough for the threaded update (2**17 columns) trained per sample on CSR rows.

    Each step must touch the row's nonzeros only (the scaled weights of the
    one-pass step), never pass over all weights per sample: hashed text at
    2**20 columns took 1,100 us per sample that way. The model is the
    textbook's on the seven columns in use, and exactly zero elsewhere.
    """
    import fastgd.backends.cpu as cpu

    def threaded_update(*args):
        raise AssertionError("per-sample CSR training passed over every weight for every sample")

    monkeypatch.setattr(cpu, "linear_epoch_threaded", threaded_update)
    X, y = make_classification(n_samples=60, n_features=7, n_informative=4, n_classes=n_classes, random_state=3)
    X = StandardScaler().fit_transform(X)
    X[np.abs(X) < 0.6] = 0.0
    width = 2**17
    columns = np.array([5, 900, 20_000, 65_536, 100_001, 131_000, width - 1])
    wide = sp.csr_matrix((X[X != 0], (np.nonzero(X)[0], columns[np.nonzero(X)[1]])), shape=(60, width))
    sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, size=y.size)
    alpha = 5.0 if n_classes == 2 else 1e-3  # 5.0 folds the weight scale back several times
    clf = LinearClassifier(loss="hinge", alpha=alpha, learning_rate="constant", learning_rate_init=0.05,
                           max_iter=2, tol=None, shuffle=False).fit(wide, y, sample_weight=sample_weight)

    Y = _textbook_targets(y, n_classes, multinomial=False)
    W, b = ref.per_sample_sgd(X, Y, sample_weight, loss="hinge", epochs=2, lr_at=lambda t: 0.05, l2=alpha, l1=0.0,
                              weight_decay=0.0, clip_value=None, clip_norm=None, fit_intercept=True)
    coef = clf.coef_.reshape(-1, width)
    np.testing.assert_allclose(coef[:, columns], W.reshape(coef.shape[0], -1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_, b, rtol=1e-10, atol=1e-12)
    assert not np.delete(coef, columns, axis=1).any()


def _wide_csr(X, width):
    """``X``'s nonzeros spread over ``width`` columns (its columns go to ``WIDE_COLUMNS``), as CSR."""
    columns = WIDE_COLUMNS[WIDE_COLUMNS < width][-X.shape[1]:]
    rows, cols = np.nonzero(X)
    return sp.csr_matrix((X[rows, cols], (rows, columns[cols])), shape=(X.shape[0], width)), columns


WIDE_COLUMNS = np.array([5, 900, 2_000, 3_333, 4_000, 4_095, 20_000, 65_536, 100_001, 131_000, 2**17 - 1])

# (estimator kwargs, reference kwargs) of mini-batch plain SGD on wide CSR rows
CSR_BATCH_CASES = {
    "hinge-optimal": ({"loss": "hinge", "alpha": 1e-3}, {}),
    "multinomial-clip_norm": ({"loss": "log_loss", "alpha": 1e-2, "learning_rate": "constant", "n_classes": 3,
                               "clip_norm": 0.2}, {"loss": "multinomial"}),
    "modified_huber-3-outputs-decay": ({"loss": "modified_huber", "alpha": 1e-3, "learning_rate": "constant",
                                        "n_classes": 3, "weight_decay": 0.05}, {}),
    # a decay of 0.75 per step folds the weight scale back into the weights (below 1e-9) several times
    "strong-l2-no-intercept": ({"loss": "squared_hinge", "alpha": 5.0, "learning_rate": "constant",
                                "fit_intercept": False}, {}),
    "intercept-decay": ({"loss": "log_loss", "alpha": 1e-3, "learning_rate": "constant",
                         "intercept_decay": 0.01}, {}),
}


@pytest.mark.parametrize("width", [2**12, 2**17])
@pytest.mark.parametrize("case", CSR_BATCH_CASES)
def test_csr_mini_batches_cost_the_nonzeros_and_match_the_textbook(case, width, monkeypatch):
    """Mini-batch plain SGD on wide CSR rows touches only the batch's weights, on the textbook's rule.

    Three unshuffled epochs of batches of 7 (the last one shorter) with sample
    weights against :func:`_reference.mini_batch_sgd`, on the columns in use,
    and exactly zero elsewhere. The dense epochs are patched to fail: a batch
    on hashed text (2**20 columns) passed over every weight and cost 46 us per
    sample.
    """
    import fastgd.backends.cpu as cpu

    def dense_epoch(*args):
        raise AssertionError("a CSR mini-batch passed over every weight")

    for name in ("linear_epoch", "linear_epoch_threaded", "linear_epoch_blocked"):
        monkeypatch.setattr(cpu, name, dense_epoch)
    kwargs, ref_kwargs = (dict(d) for d in CSR_BATCH_CASES[case])
    n_classes = kwargs.pop("n_classes", 2)
    intercept_decay = kwargs.pop("intercept_decay", 1.0)
    X, y = make_classification(n_samples=60, n_features=6, n_informative=4, n_classes=n_classes, random_state=3)
    X = StandardScaler().fit_transform(X)
    X[np.abs(X) < 0.6] = 0.0
    wide, columns = _wide_csr(X, width)
    sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, size=y.size)
    clf = LinearClassifier(batch_size=7, max_iter=3, tol=None, shuffle=False, learning_rate_init=0.05, **kwargs)
    clf._sparse_intercept_decay = intercept_decay  # SGDClassifier's 0.01 on sparse input
    clf.fit(wide, y, sample_weight=sample_weight)

    alpha = kwargs["alpha"]
    Y = _textbook_targets(y, n_classes, ref_kwargs.get("loss") == "multinomial")
    lr_at = _textbook_rate(kwargs, alpha)
    W, b = ref.mini_batch_sgd(X, Y, sample_weight, loss=ref_kwargs.get("loss", kwargs["loss"]), epochs=3,
                              batch_size=7, lr_at=lr_at, l2=alpha, weight_decay=kwargs.get("weight_decay", 0.0),
                              clip_norm=kwargs.get("clip_norm"), fit_intercept=kwargs.get("fit_intercept", True),
                              intercept_decay=intercept_decay)
    assert clf.t_ == 3 * 9  # nine batches per epoch
    coef = clf.coef_.reshape(-1, width)
    np.testing.assert_allclose(coef[:, columns], W.reshape(coef.shape[0], -1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_, b, rtol=1e-10, atol=1e-12)
    assert not np.delete(coef, columns, axis=1).any()


def _assert_float32_follows_and_the_guard_keeps(make, X, y) -> None:
    """``make(**kw)``'s fit in float32 follows float64, and a fit that diverges keeps the last good weights."""
    fits = {dtype: make().fit(X.astype(dtype), y) for dtype in (np.float32, np.float64)}
    assert fits[np.float32].coef_.dtype == np.float32
    np.testing.assert_allclose(fits[np.float32].coef_, fits[np.float64].coef_, rtol=2e-4, atol=2e-5)

    clf = make(warm_start=True).set_params(max_iter=1).fit(X, y)
    good = clf.coef_.copy()
    with pytest.warns(NonFiniteTrainingWarning):
        clf.set_params(learning_rate_init=1e300, max_iter=3).fit(X, y)
    np.testing.assert_array_equal(clf.coef_, good)


def _refuse_dense_epochs(monkeypatch, what: str) -> None:
    """Make the epochs that pass over every weight fail, so that a test knows the sparse route was taken."""
    import fastgd.backends.cpu as cpu

    def dense_epoch(*args):
        raise AssertionError(f"{what} passed over every weight")

    for name in ("linear_epoch", "linear_epoch_threaded", "linear_epoch_blocked"):
        monkeypatch.setattr(cpu, name, dense_epoch)


# (estimator kwargs): solvers and settings where stepping only a batch's nonzero features is the exact rule
EXACT_SPARSE_CASES = {
    "adagrad-per-sample": {"solver": "adagrad", "loss": "log_loss", "batch_size": 1},
    "adagrad-batches-clip_norm-3-outputs": {"solver": "adagrad", "loss": "modified_huber", "batch_size": 5,
                                           "clip_norm": 0.2, "n_classes": 3,
                                           "solver_options": {"lr_decay": 0.1, "initial_accumulator_value": 0.5}},
    "sgd-clip_value": {"solver": "sgd", "loss": "hinge", "batch_size": 1, "clip_value": 0.3},
    "sgd-clip_value-batches-no-intercept": {"solver": "sgd", "loss": "squared_hinge", "batch_size": 4,
                                            "clip_value": 0.2, "fit_intercept": False},
}


@pytest.mark.parametrize("case", EXACT_SPARSE_CASES)
def test_sparse_steps_are_the_exact_rule_where_a_zero_gradient_moves_nothing(case, monkeypatch):
    """Without a penalty, Adagrad and SGD with clip_value step only a batch's nonzero features on wide CSR rows,
    and get the model dense rows get: the same data dense, three unshuffled epochs with sample weights."""
    kwargs = dict(EXACT_SPARSE_CASES[case])
    n_classes = kwargs.pop("n_classes", 2)
    X, y = make_classification(n_samples=60, n_features=6, n_informative=4, n_classes=n_classes, random_state=3)
    X = StandardScaler().fit_transform(X)
    X[np.abs(X) < 0.6] = 0.0
    wide, columns = _wide_csr(X, 2**12)
    sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, size=y.size)

    def make():
        return LinearClassifier(alpha=0.0, learning_rate="constant", learning_rate_init=0.05, max_iter=3, tol=None,
                                shuffle=False, **kwargs)

    dense = make().fit(wide.toarray(), y, sample_weight=sample_weight)
    _refuse_dense_epochs(monkeypatch, "a step on CSR rows")
    sparse = make().fit(wide, y, sample_weight=sample_weight)
    assert sparse.t_ == dense.t_
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(sparse.gradient_norms_, dense.gradient_norms_, rtol=1e-9)
    assert not np.delete(sparse.coef_.reshape(-1, 2**12), columns, axis=1).any()


# (estimator kwargs, reference optimizer kwargs beyond the estimator's): the lazy rule for every solver
LAZY_CASES = {
    "adam-per-sample-l2": ({"solver": "adam", "loss": "log_loss", "alpha": 1e-2}, {}),
    "adam-batches-amsgrad-clip_norm-3-outputs": ({"solver": "adam", "loss": "hinge", "alpha": 1e-3,
                                                  "batch_size": 4, "clip_norm": 0.3, "n_classes": 3,
                                                  "solver_options": {"amsgrad": True}}, {}),
    "adamw-multinomial-l1": ({"solver": "adamw", "loss": "log_loss", "alpha": 1e-2, "penalty": "elasticnet",
                              "l1_ratio": 0.5, "n_classes": 3}, {"loss": "multinomial"}),
    "rmsprop-centered-momentum-batches": ({"solver": "rmsprop", "loss": "squared_hinge", "alpha": 1e-3,
                                           "batch_size": 3,
                                           "solver_options": {"centered": True, "momentum": 0.5}}, {}),
    "adagrad-weight_decay-clip_value": ({"solver": "adagrad", "loss": "modified_huber", "alpha": 1e-3,
                                         "weight_decay": 0.01, "clip_value": 0.2}, {}),
    "sgd-nesterov-l1-batches": ({"solver": "sgd", "loss": "hinge", "alpha": 1e-3, "penalty": "l1",
                                 "momentum": 0.9, "batch_size": 5}, {}),
}


@pytest.mark.parametrize("case", LAZY_CASES)
def test_lazy_updates_follow_the_sparse_adam_rule(case, monkeypatch):
    """``lazy_updates=True`` on CSR rows against :func:`_reference.sparse_step_training` (PyTorch's SparseAdam
    semantics with each solver's published rule): three unshuffled epochs with sample weights, the columns not in
    use exactly 0; dense rows (where every feature is present) ignore the option."""
    from fastgd.estimators._base import make_optimizer

    kwargs, ref_kwargs = (dict(d) for d in LAZY_CASES[case])
    n_classes = kwargs.pop("n_classes", 2)
    X, y = make_classification(n_samples=40, n_features=6, n_informative=4, n_classes=n_classes, random_state=3)
    X = StandardScaler().fit_transform(X)
    X[np.abs(X) < 0.6] = 0.0
    wide, columns = _wide_csr(X, 2**12)
    sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, size=y.size)

    def make(**kw):
        return LinearClassifier(learning_rate="constant", learning_rate_init=0.05, max_iter=3, tol=None,
                                shuffle=False, **kwargs, **kw)

    dense = make(lazy_updates=True).fit(X, y, sample_weight=sample_weight)
    np.testing.assert_array_equal(dense.coef_, make().fit(X, y, sample_weight=sample_weight).coef_)
    _refuse_dense_epochs(monkeypatch, "a lazy step")
    clf = make(lazy_updates=True).fit(wide, y, sample_weight=sample_weight)

    alpha, l1_ratio = kwargs["alpha"], kwargs.get("l1_ratio", 0.15)
    penalty = kwargs.get("penalty", "l2")
    l1 = {"l2": 0.0, "l1": alpha, "elasticnet": alpha * l1_ratio}[penalty]
    hyper = make_optimizer(clf).get_params()
    hyper.pop("lr")
    W, b = ref.sparse_step_training(
        X, _textbook_targets(y, n_classes, ref_kwargs.get("loss") == "multinomial"), sample_weight,
        loss=ref_kwargs.get("loss", kwargs["loss"]), epochs=3, batch_size=kwargs.get("batch_size", 1),
        lr_at=lambda t: 0.05, optimizer=getattr(ref, kwargs["solver"]), l2=alpha - l1, l1=l1,
        clip_value=kwargs.get("clip_value"), clip_norm=kwargs.get("clip_norm"), **hyper)
    coef = clf.coef_.reshape(-1, 2**12)
    np.testing.assert_allclose(coef[:, columns], W, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_, b, rtol=1e-9, atol=1e-12)
    assert not np.delete(coef, columns, axis=1).any()
    assert not np.allclose(coef[:, columns], dense.coef_.reshape(coef.shape[0], -1), atol=1e-6)  # the rule differs


def test_sparse_steps_guard_float32_and_partial_fit():
    """The sparse-step route in float32 follows float64, its non-finite guard keeps the last good weights and
    optimizer state, and partial_fit continues the state (the same model as one fit of the same epochs)."""
    X, y = make_classification(n_samples=300, n_features=11, n_informative=6, random_state=0)
    X[np.abs(X) < 0.5] = 0.0
    wide, _ = _wide_csr(X, 2**17)

    def make(**kw):
        return LinearClassifier(loss="log_loss", solver="adam", lazy_updates=True, batch_size=8, alpha=1e-3,
                                learning_rate="constant", learning_rate_init=0.01, max_iter=3, tol=None,
                                random_state=0, **kw)

    _assert_float32_follows_and_the_guard_keeps(make, wide, y)

    once = make(shuffle=False).set_params(max_iter=2).fit(wide, y)
    twice = make(shuffle=False)
    for _ in range(2):
        twice.partial_fit(wide, y, classes=np.unique(y))
    np.testing.assert_array_equal(twice.coef_, once.coef_)


def test_csr_mini_batches_guard_float32_and_the_dense_route():
    """The sparse mini-batch route in float32 follows float64, its non-finite guard keeps the last good
    weights, and narrow CSR input (few columns per nonzero) takes the dense route to the same model."""
    X, y = make_classification(n_samples=300, n_features=11, n_informative=6, random_state=0)
    X[np.abs(X) < 0.5] = 0.0
    wide, _ = _wide_csr(X, 2**17)

    def make(**kw):
        return LinearClassifier(loss="log_loss", batch_size=16, alpha=1e-3, learning_rate="constant",
                                learning_rate_init=0.05, max_iter=3, tol=None, random_state=0, **kw)

    _assert_float32_follows_and_the_guard_keeps(make, wide, y)

    dense = make().fit(X, y)
    narrow = make().fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(narrow.coef_, dense.coef_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", ["hinge", "log_loss"])
def test_per_sample_sgd_float32_follows_float64(loss):
    """float32 training of the one-pass path stays within float32 round-off of the float64 one."""
    X, y = make_classification(n_samples=300, n_features=20, random_state=0)
    fits = {dtype: LinearClassifier(loss=loss, alpha=1e-3, learning_rate="constant", learning_rate_init=0.01,
                                    max_iter=3, tol=None, random_state=0).fit(X.astype(dtype), y)
            for dtype in (np.float32, np.float64)}
    assert fits[np.float32].coef_.dtype == np.float32
    np.testing.assert_allclose(fits[np.float32].coef_, fits[np.float64].coef_, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("y", [np.array([3, -2, 3, 7, -2]), np.array([5, 5, 200], dtype=np.uint8),
                               np.array([2**63 + 7, 2**63 + 1], dtype=np.uint64), np.array([-2**63, 2**63 - 1]),
                               np.array([1.5, -1.0, 1.5]), np.array(["b", "a", "b"])])
def test_unique_labels_and_index_is_numpy_unique(y):
    labels, index = unique_labels_and_index(y)
    expected_labels, expected_index = np.unique(y, return_inverse=True)
    np.testing.assert_array_equal(labels, expected_labels)
    assert labels.dtype == expected_labels.dtype
    np.testing.assert_array_equal(index, expected_index.reshape(-1))


def test_mini_batch_uses_mean_gradient_and_partial_last_batch():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(10, 3))
    y = rng.normal(size=10)
    lr = 0.1
    reg = LinearRegressor(alpha=0.0, batch_size=4, learning_rate="constant", learning_rate_init=lr, max_iter=1,
                          tol=None, shuffle=False).fit(X, y)
    w, b = np.zeros(3), 0.0
    for start in range(0, 10, 4):
        xb, yb = X[start:start + 4], y[start:start + 4]
        r = xb @ w + b - yb
        w, b = w - lr * xb.T @ r / len(yb), b - lr * r.mean()
    np.testing.assert_allclose(reg.coef_, w, rtol=1e-12)
    np.testing.assert_allclose(reg.intercept_, [b], rtol=1e-12)
    assert reg.t_ == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    X, y = load_digits(return_X_y=True)
    clf = LinearClassifier(loss="log_loss", max_iter=3, random_state=0).fit((X / 16).astype(dtype), y)
    assert clf.coef_.dtype == dtype and clf.intercept_.dtype == dtype
    assert clf.score(X / 16, y) > 0.85


@pytest.mark.parametrize("loss", ["hinge", "log_loss", "modified_huber"])
def test_sparse_and_dense_agree(loss):
    X, y = make_classification(n_samples=80, n_features=6, n_classes=3, n_informative=4, random_state=0)
    X[np.abs(X) < 0.5] = 0.0
    kwargs = {"loss": loss, "max_iter": 5, "tol": None, "random_state": 0, "batch_size": 4}
    dense = LinearClassifier(**kwargs).fit(X, y)
    sparse = LinearClassifier(**kwargs).fit(sp.csr_matrix(X), y)
    # Same arithmetic in another summation order (vectorised dense dot products): round-off only.
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("solver", ["sgd", "adam", "rmsprop", "adamw", "adagrad"])
@pytest.mark.parametrize("batch_size", [1, 32, None])
def test_every_solver_and_variant_learns_digits(solver, batch_size):
    X, y = load_digits(return_X_y=True)
    X = X / 16
    lr = {"sgd": 0.1, "adam": 0.01, "rmsprop": 0.01, "adamw": 0.01, "adagrad": 0.1}[solver]
    if batch_size == 1 and solver != "adagrad":  # adagrad's own decay already damps per-sample noise
        lr /= 10
    clf = LinearClassifier(loss="log_loss", solver=solver, learning_rate="constant", learning_rate_init=lr,
                           batch_size=batch_size, momentum=0.9, max_iter=40 if batch_size is None else 5,
                           random_state=0).fit(X, y)
    assert clf.score(X, y) > (0.85 if batch_size is None else 0.93)


def test_multi_output_regression_matches_separate_fits(regression_data):
    X, y = regression_data
    Y = np.column_stack([y, -2 * y + 1])
    kwargs = {"batch_size": None, "learning_rate": "constant", "learning_rate_init": 0.5, "max_iter": 2000,
              "tol": None, "alpha": 0.1}
    joint = LinearRegressor(**kwargs).fit(X, Y)
    assert joint.coef_.shape == (2, 5) and joint.predict(X).shape == (120, 2)
    for k in range(2):
        w, b = _ridge_closed_form(X, Y[:, k], 0.1)
        np.testing.assert_allclose(joint.coef_[k], w, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(joint.intercept_[k], b, rtol=1e-8, atol=1e-10)


def test_l1_gives_sparse_coefficients():
    X, y = make_regression(n_samples=200, n_features=20, n_informative=3, noise=1.0, random_state=0)
    X = StandardScaler().fit_transform(X)
    reg = LinearRegressor(penalty="l1", alpha=0.5, batch_size=None, learning_rate="constant",
                          learning_rate_init=0.1, max_iter=500, tol=None).fit(X, y / y.std())
    assert np.sum(reg.coef_ == 0) >= 15


def test_predict_proba_is_a_distribution():
    X, y = load_digits(return_X_y=True)
    for loss in ["log_loss", "modified_huber"]:
        clf = LinearClassifier(loss=loss, max_iter=3, random_state=0).fit(X / 16, y)
        proba = clf.predict_proba(X / 16)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert (proba >= 0).all()
    assert not hasattr(LinearClassifier(loss="hinge"), "predict_proba")


def test_same_random_state_gives_identical_parameters():
    X, y = load_digits(return_X_y=True)
    a = LinearClassifier(max_iter=3, random_state=7).fit(X / 16, y)
    b = LinearClassifier(max_iter=3, random_state=7).fit(X / 16, y)
    c = LinearClassifier(max_iter=3, random_state=8).fit(X / 16, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert not np.array_equal(a.coef_, c.coef_)


def test_partial_fit_streams_and_checks_labels():
    X, y = load_digits(return_X_y=True)
    X = X / 16
    clf = LinearClassifier(loss="log_loss", random_state=0)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X[:100], y[:100])  # the first call must name every class
    clf = LinearClassifier(loss="log_loss", random_state=0)
    for start in range(0, len(y), 300):
        clf.partial_fit(X[start:start + 300], y[start:start + 300], classes=np.arange(10))
    assert clf.n_iter_ == 6 and clf.t_ == len(y)
    assert clf.score(X, y) > 0.85
    with pytest.raises(ValueError, match="not in classes_"):
        LinearClassifier().partial_fit(X[:20], y[:20] + 100, classes=np.arange(10))
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:10, :5], y[:10])


def test_warm_start_continues():
    X, y = make_regression(n_samples=100, n_features=4, random_state=0)
    reg = LinearRegressor(max_iter=3, tol=None, warm_start=True, random_state=0)
    reg.fit(X / 100, y / 100)
    first = reg.coef_.copy()
    reg.fit(X / 100, y / 100)
    assert reg.n_iter_ == 6 and len(reg.loss_curve_) == 6
    assert not np.array_equal(first, reg.coef_)


def test_nonfinite_guard_restores_last_good_epoch():
    X, y = make_regression(n_samples=60, n_features=3, random_state=0)
    epochs = []
    params_seen = []

    def remember(record):
        epochs.append(record.epoch)

    reg = LinearRegressor(learning_rate="constant", learning_rate_init=0.5, alpha=0.0, max_iter=1, tol=None,
                          random_state=0)
    # A first short fit that stays finite...
    reg.set_params(learning_rate_init=1e-5, warm_start=True, callbacks=[remember]).fit(X, y)
    params_seen.append(reg.coef_.copy())
    # ... then a learning rate that explodes in its first epoch.
    with pytest.warns(NonFiniteTrainingWarning, match="epoch 2"):
        reg.set_params(learning_rate_init=1e6, max_iter=5).fit(X, y)
    np.testing.assert_array_equal(reg.coef_, params_seen[0])
    assert np.isfinite(reg.predict(X)).all()
    with pytest.raises(NonFiniteTrainingError, match="clip_norm"):
        LinearRegressor(learning_rate="constant", learning_rate_init=1e6, on_nonfinite="raise").fit(X, y)


def test_clip_norm_bounds_every_update():
    X, y = make_regression(n_samples=40, n_features=3, random_state=0)
    lr, clip = 0.01, 0.5
    reg = LinearRegressor(alpha=0.0, learning_rate="constant", learning_rate_init=lr, clip_norm=clip, max_iter=1,
                          tol=None, shuffle=False, batch_size=1).fit(X, y)
    w, b = np.zeros(3), 0.0
    for xi, yi in zip(X, y, strict=True):
        r = xi @ w + b - yi
        g = np.append(r * xi, r)
        g *= min(1.0, clip / (np.linalg.norm(g) + 1e-6))
        assert np.linalg.norm(g) <= clip + 1e-12
        w, b = w - lr * g[:3], b - lr * g[3]
    np.testing.assert_allclose(reg.coef_, w, rtol=1e-12)


def test_early_stopping_keeps_best_validation_score():
    X, y = load_digits(return_X_y=True)
    clf = LinearClassifier(loss="log_loss", early_stopping=True, n_iter_no_change=3, max_iter=50,
                           random_state=0).fit(X / 16, y)
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)


def test_convergence_warning_when_max_iter_reached():
    X, y = make_regression(n_samples=30, n_features=2, random_state=0)
    with pytest.warns(ConvergenceWarning):
        LinearRegressor(max_iter=1, random_state=0).fit(X / 100, y / 100)


def test_class_weight_balanced_equals_explicit_weights():
    X, y = make_classification(n_samples=100, weights=[0.8], random_state=0)
    balanced = LinearClassifier(class_weight="balanced", max_iter=3, tol=None, random_state=0).fit(X, y)
    counts = np.bincount(y)
    weights = {k: len(y) / (2 * counts[k]) for k in range(2)}
    explicit = LinearClassifier(class_weight=weights, max_iter=3, tol=None, random_state=0).fit(X, y)
    np.testing.assert_allclose(balanced.coef_, explicit.coef_)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weight_sums_match_numpy_and_see_every_nonfinite_parameter(dtype):
    rng = np.random.default_rng(0)
    params = rng.normal(size=1003).astype(dtype)
    n_coefs = 1000  # the last three are intercepts: in the finiteness check, not in the sums
    squares, absolutes, finite = weight_sums(params, n_coefs)
    coefs = params[:n_coefs].astype(np.float64)
    assert finite
    np.testing.assert_allclose(squares, np.sum(coefs ** 2), rtol=1e-12)
    np.testing.assert_allclose(absolutes, np.sum(np.abs(coefs)), rtol=1e-12)
    for where, value in [(5, np.nan), (999, np.inf), (1001, -np.inf), (1002, np.nan)]:
        bad = params.copy()
        bad[where] = value
        assert not weight_sums(bad, n_coefs)[2]


def test_fallback_snapshot_is_refreshed_in_place_and_restores_the_last_finite_epoch():
    trainer = LinearTrainer.__new__(LinearTrainer)  # snapshot() needs only the parameters and the state
    trainer.params = np.zeros(5)
    trainer.state = OptimizerState(slots=np.zeros((0, 5)), step=3)
    first = trainer.snapshot()
    trainer.params[:] = 1.0
    again = trainer.snapshot(reuse=first)
    assert again[0] is first[0] and again[1] is first[1]  # written into the old arrays
    np.testing.assert_array_equal(again[0], 1.0)
    assert trainer.snapshot(reuse=(np.zeros(4), np.zeros((0, 4)), 0))[0].shape == (5,)  # another model's: not reused
    # full-batch GD at a rate 1e30 too large grows the weights by about 1e30 an epoch: a few epochs are finite,
    # then the guard must give back the end of the last of them, through copies refreshed every epoch
    X, y = make_regression(n_samples=40, n_features=3, random_state=0)
    kwargs = dict(batch_size=None, learning_rate="constant", learning_rate_init=1e30, alpha=0.0, tol=None,
                  shuffle=False)
    with pytest.warns(NonFiniteTrainingWarning):
        diverged = LinearRegressor(max_iter=50, **kwargs).fit(X, y)
    assert 2 <= diverged.n_iter_ < 50
    last_finite = LinearRegressor(max_iter=diverged.n_iter_, **kwargs).fit(X, y)
    np.testing.assert_array_equal(diverged.coef_, last_finite.coef_)
    np.testing.assert_array_equal(diverged.intercept_, last_finite.intercept_)


# --- solver="lbfgs" ---


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_lbfgs_is_logistic_regression(n_classes, sparse):
    """L-BFGS on log_loss + L2 reaches scikit-learn's LogisticRegression optimum (C = 1 / (n * alpha)), with
    sample weights and class weights, binary and multinomial, dense and CSR."""
    X, y = make_classification(n_samples=120, n_features=6, n_informative=4, n_classes=n_classes, random_state=0)
    X = StandardScaler().fit_transform(X)
    sample_weight = np.random.default_rng(1).uniform(0.5, 2.0, size=y.size)
    alpha = 0.02
    class_weight = {0: 2.0, 1: 0.5}  # a dict: "balanced" counts sample weights in LogisticRegression only
    fitted = LinearClassifier(loss="log_loss", solver="lbfgs", alpha=alpha, tol=1e-10, class_weight=class_weight).fit(
        sp.csr_matrix(X) if sparse else X, y, sample_weight=sample_weight)
    reference = LogisticRegression(C=1.0 / (X.shape[0] * alpha), tol=1e-12, max_iter=10_000,
                                   class_weight=class_weight).fit(X, y, sample_weight=sample_weight)
    np.testing.assert_allclose(fitted.coef_, reference.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fitted.intercept_, reference.intercept_, rtol=1e-7, atol=1e-9)
    assert fitted.n_iter_ == fitted.t_ == len(fitted.loss_curve_) == fitted.gradient_norms_.shape[0]
    assert np.all(np.diff(fitted.loss_curve_) <= 1e-12)  # L-BFGS-B's line search only accepts decreases
    assert fitted.gradient_norms_[-1, 0] < 1e-6


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_lbfgs_regressor_is_ridge(fit_intercept):
    """squared_error + L2 by L-BFGS against Ridge's closed form (alpha_ridge = n * alpha), two targets, float32
    data trained in float32 to the same optimum within its round-off."""
    X, Y = make_regression(n_samples=80, n_features=5, n_targets=2, noise=5.0, random_state=0)
    X = StandardScaler().fit_transform(X)
    Y = Y / Y.std(axis=0)
    alpha = 0.05
    from sklearn.linear_model import Ridge

    reference = Ridge(alpha=alpha * X.shape[0], fit_intercept=fit_intercept).fit(X, Y)
    for dtype, tol in ((np.float64, 1e-7), (np.float32, 1e-3)):
        fitted = LinearRegressor(solver="lbfgs", alpha=alpha, tol=1e-10, fit_intercept=fit_intercept).fit(
            X.astype(dtype), Y.astype(dtype))
        assert fitted.coef_.dtype == dtype
        np.testing.assert_allclose(fitted.coef_, reference.coef_, rtol=tol, atol=tol)
        np.testing.assert_allclose(fitted.intercept_, reference.intercept_ if fit_intercept else 0.0, atol=tol)


@pytest.mark.parametrize(("estimator", "loss", "n_classes"), [
    (LinearClassifier, "squared_hinge", 2), (LinearClassifier, "modified_huber", 3),
    (LinearClassifier, "log_loss", 4), (LinearRegressor, "huber", 0), (LinearRegressor, "squared_error", 0)])
def test_lbfgs_objective_gradient_is_the_finite_difference(estimator, loss, n_classes):
    """The gradient L-BFGS is given is the central difference of the objective it is given (CSR rows, sample
    weights, L2), at a random point."""
    from fastgd.backends.cpu import LinearGradientSums, LinearObjective
    from fastgd.kernels.losses import LOSS_CODES, Loss

    rng = np.random.default_rng(0)
    X = sp.random(30, 7, density=0.5, format="csr", random_state=2)
    sample_weight = rng.uniform(0.5, 2.0, size=30)
    if n_classes:
        y = rng.integers(0, n_classes, size=30)
        est = estimator(loss=loss)
        Y, n_outputs, code = est._encode(y, True, None, False)
    else:
        Y, n_outputs, code = rng.normal(size=(30, 1)), 1, LOSS_CODES[loss]
    assert (code == Loss.MULTINOMIAL) == (loss == "log_loss" and n_classes > 2)
    sums = LinearGradientSums(X, np.asarray(Y, dtype=np.float64), sample_weight, loss_code=code, loss_epsilon=0.3,
                              n_outputs=n_outputs, fit_intercept=True)
    objective = LinearObjective(sums, n_samples=30, n_outputs=n_outputs, l2=0.1)
    point = rng.normal(size=n_outputs * 8)
    _, gradient = objective(point)
    step = 1e-6
    numeric = np.array([(objective(point + step * e)[0] - objective(point - step * e)[0]) / (2 * step)
                        for e in np.eye(point.size)])
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"loss": "hinge"}, "differentiable loss"),
    ({"loss": "log_loss", "penalty": "elasticnet"}, "differentiable objective"),
    ({"loss": "log_loss", "device": "cuda"}, "runs on the CPU")])
def test_lbfgs_refuses_what_it_cannot_do(kwargs, match):
    """A kink in the objective and the GPU get a clear error before any work; partial_fit does not exist."""
    X, y = make_classification(n_samples=40, n_features=4, random_state=0)
    with pytest.raises(ValueError, match=match):
        LinearClassifier(solver="lbfgs", **kwargs).fit(X, y)
    with pytest.raises(AttributeError, match="no attribute 'partial_fit'") as info:
        LinearClassifier(loss="log_loss", solver="lbfgs").partial_fit(X, y, classes=[0, 1])
    assert "only available for the gradient solvers" in str(info.value.__cause__)


def test_a_dirty_gradient_workspace_does_not_reach_mini_batches_without_intercept(monkeypatch):
    """The gradient workspace is allocated uninitialised: without intercepts, the first sample of a dense
    mini-batch writes their gradient as 0, so whatever the memory held never reaches the recorded norm or
    clip_norm (it once did, and changed the norm under a busy test suite)."""
    import fastgd.backends.cpu as cpu

    X, y = make_classification(n_samples=40, n_features=5, random_state=0)

    def fit():
        return LinearClassifier(loss="squared_hinge", batch_size=4, fit_intercept=False, clip_norm=0.5,
                                learning_rate="constant", max_iter=2, tol=None, shuffle=False).fit(X, y)

    clean = fit()
    monkeypatch.setattr(cpu.np, "empty_like", lambda a, *args, **kw: np.full_like(a, np.nan, *args, **kw))
    dirty = fit()
    np.testing.assert_array_equal(dirty.gradient_norms_, clean.gradient_norms_)
    np.testing.assert_array_equal(dirty.coef_, clean.coef_)

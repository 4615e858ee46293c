"""fastgd.SGDClassifier and fastgd.SGDRegressor against scikit-learn's estimators of the same names.

scikit-learn is the independent reference: started from the same state with
``shuffle=False``, an epoch of each must give the same model to float64
round-off. One epoch: with ``learning_rate="optimal"`` the first steps are
large (``eta = 10`` at ``alpha = 1e-4``) and scikit-learn's own result moves by
1e-4 relative after five epochs when its input moves by 1e-15, so longer runs
compare round-off, not rules.
"""

from __future__ import annotations

import inspect
import warnings

import _reference as ref
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import linear_model as sk
from sklearn.exceptions import ConvergenceWarning

import fastgd

CLASSIFIER_LOSSES = ["hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron", "squared_error",
                     "huber", "epsilon_insensitive", "squared_epsilon_insensitive"]
REGRESSOR_LOSSES = ["squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive"]


def _data(sparse: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 10)) * 0.3
    X[:, :5] *= rng.random((120, 5)) < 0.4  # zeros, so that CSR rows differ in length
    y2 = (X[:, 0] - X[:, 1] + 0.1 * rng.normal(size=120) > 0).astype(int)
    y3 = np.digitize(X[:, 2] + X[:, 3], [-0.2, 0.2])
    yr = X @ rng.normal(size=10) + 0.5
    return (sp.csr_matrix(X) if sparse else X), y2, y3, yr


def _same_model(ours, theirs, rtol=1e-9):
    scale = max(np.abs(theirs.coef_).max(), np.abs(theirs.intercept_).max(), 1.0)
    np.testing.assert_allclose(np.asarray(ours.coef_).reshape(np.shape(theirs.coef_)), theirs.coef_,
                               rtol=0, atol=rtol * scale)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=0, atol=rtol * scale)
    assert ours.t_ == theirs.t_
    assert ours.n_iter_ == theirs.n_iter_


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("loss", CLASSIFIER_LOSSES)
def test_classifier_epoch_equals_scikit_learn(sparse, n_classes, loss):
    X, y2, y3, _ = _data(sparse)
    y = y2 if n_classes == 2 else y3
    # alpha=0.1: the first rates of "optimal" (1.8 and falling) do not make the squared losses diverge
    for penalty, learning_rate in [("l2", "optimal"), (None, "invscaling"), ("elasticnet", "constant"),
                                   ("l1", "optimal")]:
        kwargs = dict(loss=loss, penalty=penalty, alpha=0.1, learning_rate=learning_rate, eta0=0.05, max_iter=1,
                      tol=None, shuffle=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            theirs = sk.SGDClassifier(**kwargs).fit(X, y)
            ours = fastgd.SGDClassifier(**kwargs).fit(X, y)
        _same_model(ours, theirs)
        np.testing.assert_array_equal(ours.classes_, theirs.classes_)
        if loss in ("log_loss", "modified_huber"):
            np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-9)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("loss", REGRESSOR_LOSSES)
def test_regressor_epoch_equals_scikit_learn(sparse, loss):
    X, _, _, y = _data(sparse)
    for learning_rate, penalty in [("invscaling", "l2"), ("constant", "elasticnet"), ("adaptive", "l1")]:
        kwargs = dict(loss=loss, learning_rate=learning_rate, penalty=penalty, alpha=0.01, max_iter=1, tol=None,
                      shuffle=False, epsilon=0.05)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            theirs = sk.SGDRegressor(**kwargs).fit(X, y)
            ours = fastgd.SGDRegressor(**kwargs).fit(X, y)
        _same_model(ours, theirs)
        assert ours.coef_.shape == theirs.coef_.shape


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_weights_intercept_and_start_as_scikit_learn(sparse):
    X, y2, y3, _ = _data(sparse, seed=1)
    weights = np.random.default_rng(2).uniform(0.2, 2.0, size=X.shape[0])
    cases = [
        (dict(class_weight={0: 2.0, 1: 0.5}), y2, {}),
        (dict(fit_intercept=False, loss="log_loss"), y3, {}),
        (dict(alpha=1e-2, loss="modified_huber"), y3, {"sample_weight": weights}),
        (dict(), y3, {"coef_init": np.full((3, X.shape[1]), 0.1), "intercept_init": [0.3, -0.2, 0.1]}),
        # one-vs-rest: problem k weights only its positive samples by class k's weight
        (dict(class_weight={0: 3.0, 1: 0.5, 2: 1.5}, loss="log_loss"), y3, {}),
        (dict(class_weight="balanced", penalty="elasticnet"), y3[20:], {"sample_weight": weights[20:]}),
    ]
    for kwargs, y, fit_kwargs in cases:
        X_case = X[X.shape[0] - y.shape[0]:]
        kwargs = dict(kwargs, max_iter=1, tol=None, shuffle=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # copies: scikit-learn trains the coef_init array it is given in place
            theirs = sk.SGDClassifier(**kwargs).fit(X_case, y, **{k: np.array(v) for k, v in fit_kwargs.items()})
            ours = fastgd.SGDClassifier(**kwargs).fit(X_case, y, **fit_kwargs)
        _same_model(ours, theirs)
    np.testing.assert_array_equal(cases[3][2]["coef_init"], 0.1)  # fastgd leaves it as it was


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_multiclass_is_one_binary_fit_per_class_with_scikit_learn_seeds(sparse):
    """Row k of a multiclass fit is the binary fit of class k against the rest, shuffled and stopped on its own.

    The seeds are drawn as scikit-learn's ``_fit_multiclass`` draws them;
    each binary fit is an independent run of the two-class estimator. The
    number of threads (``n_jobs``) must not change a bit.
    """
    X, _, y3, _ = _data(sparse, seed=3)
    weights = np.random.default_rng(4).uniform(0.5, 1.5, size=X.shape[0])
    class_weight = {0: 2.0, 1: 1.0, 2: 0.5}
    kwargs = dict(loss="modified_huber", max_iter=40, tol=1e-2, n_iter_no_change=2, random_state=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = fastgd.SGDClassifier(**kwargs, n_jobs=1, class_weight=class_weight).fit(X, y3, sample_weight=weights)
        two = fastgd.SGDClassifier(**kwargs, n_jobs=2, class_weight=class_weight).fit(X, y3, sample_weight=weights)
        seeds = np.random.RandomState(7).randint(np.iinfo(np.int32).max, size=3)
        binary = [fastgd.SGDClassifier(**dict(kwargs, random_state=seeds[k])).fit(
            X, y3 == k, sample_weight=weights * np.where(y3 == k, class_weight[k], 1.0)) for k in range(3)]
    np.testing.assert_array_equal(one.coef_, two.coef_)
    np.testing.assert_array_equal(one.intercept_, two.intercept_)
    np.testing.assert_array_equal(one.coef_, np.vstack([b.coef_ for b in binary]))
    np.testing.assert_array_equal(one.intercept_, [b.intercept_[0] for b in binary])
    epochs = [b.n_iter_ for b in binary]
    assert len(set(epochs)) > 1, "the test needs problems that stop at different epochs"
    assert one.n_iter_ == max(epochs)
    assert one.t_ == max(b.t_ for b in binary)
    assert len(one.loss_curve_) == max(epochs)
    # the last epoch's loss sums each problem's last loss
    np.testing.assert_allclose(one.loss_curve_[-1], sum(b.loss_curve_[-1] for b in binary), rtol=1e-12)
    # partial_fit continues each problem: one more epoch of each
    one.partial_fit(X, y3, sample_weight=weights)
    for k, b in enumerate(binary):
        b.partial_fit(X, y3 == k, sample_weight=weights * np.where(y3 == k, class_weight[k], 1.0))
        np.testing.assert_array_equal(one.coef_[k], b.coef_[0])
    assert one.n_iter_ == 1


def test_multiclass_early_stopping_stops_each_problem():
    X, _, y3, _ = _data(False, seed=5)
    clf = fastgd.SGDClassifier(early_stopping=True, n_iter_no_change=2, max_iter=200, random_state=0).fit(X, y3)
    assert 2 < clf.n_iter_ < 200
    assert len(clf.validation_scores_) == clf.n_iter_
    assert all(0.0 <= v <= 1.0 for v in clf.validation_scores_)
    assert clf.score(X, y3) > 0.6


def test_sparse_input_moves_intercepts_at_a_hundredth_of_the_rate():
    X, y2, _, _ = _data(False)
    dense = fastgd.SGDClassifier(max_iter=1, tol=None, shuffle=False).fit(X, y2)
    sparse = fastgd.SGDClassifier(max_iter=1, tol=None, shuffle=False).fit(sp.csr_matrix(X), y2)
    assert not np.allclose(dense.intercept_, sparse.intercept_)
    # LinearClassifier keeps the full rate on CSR input: its intercept is the dense one
    full = fastgd.LinearClassifier(max_iter=1, tol=None, shuffle=False).fit(sp.csr_matrix(X), y2)
    np.testing.assert_allclose(full.intercept_, dense.intercept_, rtol=1e-9)


def test_partial_fit_and_warm_start_count_as_scikit_learn():
    X, _, y3, _ = _data(False)
    ours, theirs = fastgd.SGDClassifier(shuffle=False), sk.SGDClassifier(shuffle=False)
    for _ in range(2):
        ours.partial_fit(X, y3, classes=[0, 1, 2])
        theirs.partial_fit(X, y3, classes=[0, 1, 2])
        _same_model(ours, theirs, rtol=1e-6)
    kwargs = dict(max_iter=3, tol=None, shuffle=False, warm_start=True, penalty=None, loss="hinge")
    ours, theirs = fastgd.SGDClassifier(**kwargs), sk.SGDClassifier(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(2):  # the second fit restarts the schedule (t_ back to 1) from the fitted weights
            ours.fit(X, y3)
            theirs.fit(X, y3)
            assert (ours.n_iter_, ours.t_) == (theirs.n_iter_, theirs.t_) == (3, 3 * X.shape[0] + 1)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("average", [True, 100, 10**6])
def test_averaged_sgd_equals_scikit_learn(sparse, average):
    """Averaged SGD (L2) against scikit-learn: binary and one-vs-rest classifiers and the regressor, three
    epochs, and a warm-started fit (which starts from the averaged weights); ``average=10**6`` never
    starts averaging. On CSR rows the average is kept lazily; the weight scale is folded back several
    times (``alpha=0.3`` at a constant rate of 0.1), which is where the two round differently (1e-8)."""
    X, y2, y3, yr = _data(sparse)
    for estimator, y, kwargs in [("SGDClassifier", y2, {}), ("SGDClassifier", y3, {"loss": "log_loss"}),
                                 ("SGDClassifier", y3, {"alpha": 0.3, "learning_rate": "constant", "eta0": 0.1}),
                                 ("SGDRegressor", yr, {"learning_rate": "constant", "eta0": 0.02})]:
        kwargs = dict(average=average, max_iter=3, tol=None, shuffle=False, warm_start=True, **kwargs)
        theirs, ours = getattr(sk, estimator)(**kwargs), getattr(fastgd, estimator)(**kwargs)
        for fit in range(2):
            theirs.fit(X, y)
            ours.fit(X, y)
            if fit == 1 and estimator == "SGDRegressor" and average != 10**6:
                # warm-started, scikit-learn's regressor counts its previous average as one more iterate (its
                # lazy average is not cleared when averaging starts again); the weights of SGD still agree
                np.testing.assert_allclose(ours._standard_coef, theirs._standard_coef, rtol=1e-9)
                continue
            _same_model(ours, theirs, rtol=1e-7)
            if average is True:
                assert not np.allclose(ours._standard_coef, np.reshape(ours.coef_, ours._standard_coef.shape))


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_averaged_sgd_is_the_mean_of_the_iterates(sparse, n_classes):
    """Averaged SGD against the textbook (the mean of the weights after each update): two epochs with an
    L1 penalty, and three ``partial_fit`` calls that continue it.

    scikit-learn is not the reference here: its L1 step runs after the average is updated, so each step's
    penalty reaches the average at full weight (its averages shrink far more), and its ``partial_fit``
    with averaging restarts the SGD intercept at 0 (binary) or stores the SGD intercepts over the averaged
    ones (multiclass) from the second call on.
    """
    X, y2, y3, _ = _data(sparse, seed=1)
    y = y2 if n_classes == 2 else y3
    Xd = X.toarray() if sparse else X
    Y = np.where(y[:, None] == np.arange(n_classes), 1.0, -1.0)
    Y = Y[:, 1:] if n_classes == 2 else Y  # binary: one output, for the positive class
    textbook = dict(loss="hinge", lr_at=lambda t: 0.05, intercept_decay=0.01 if sparse else 1.0, average_from=10)
    kwargs = dict(alpha=0.01, learning_rate="constant", eta0=0.05, average=10, shuffle=False)

    ours = fastgd.SGDClassifier(penalty="elasticnet", l1_ratio=0.5, max_iter=2, tol=None, **kwargs).fit(X, y)
    W, b, W_mean, b_mean = ref.per_sample_sgd(Xd, Y, np.ones(y.size), epochs=2, l2=0.005, l1=0.005,
                                              l1_on_nonzeros=sparse, **textbook)
    assert (W == 0).any()  # the penalty zeroed weights
    for got, expected in [(ours.coef_, W_mean), (ours.intercept_, b_mean), (ours._standard_coef, W),
                          (ours._standard_intercept, b)]:
        np.testing.assert_allclose(np.reshape(got, np.shape(expected)), expected, rtol=1e-9, atol=1e-12)

    ours = fastgd.SGDClassifier(**kwargs)
    for rows in (slice(0, 50), slice(50, 120), slice(0, 120)):
        ours.partial_fit(X[rows], y[rows], classes=np.unique(y))
    order = np.r_[0:120, 0:120]
    W, b, W_mean, b_mean = ref.per_sample_sgd(Xd[order], Y[order], np.ones(order.size), epochs=1, l2=0.01,
                                              **textbook)
    assert ours.t_ == order.size + 1
    for got, expected in [(ours.coef_, W_mean), (ours.intercept_, b_mean), (ours._standard_coef, W),
                          (ours._standard_intercept, b)]:
        np.testing.assert_allclose(np.reshape(got, np.shape(expected)), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("ours, theirs", [(fastgd.SGDClassifier, sk.SGDClassifier),
                                          (fastgd.SGDRegressor, sk.SGDRegressor)])
def test_same_parameters_and_defaults(ours, theirs):
    ours_params = inspect.signature(ours).parameters
    theirs_params = inspect.signature(theirs).parameters
    assert list(ours_params) == list(theirs_params)
    assert {k: p.default for k, p in ours_params.items()} == {k: p.default for k, p in theirs_params.items()}


def test_sparsify_densify_and_dtype():
    X, _, y3, yr = _data(True)
    clf = fastgd.SGDClassifier(random_state=0, max_iter=5, tol=None).fit(X, y3)
    before = clf.decision_function(X)
    assert sp.issparse(clf.sparsify().coef_)
    np.testing.assert_allclose(clf.decision_function(X), before)
    clf.partial_fit(X, y3)  # continues from the sparse coefficients
    assert not sp.issparse(clf.densify().coef_)
    reg = fastgd.SGDRegressor(random_state=0, max_iter=5, tol=None).fit(X.astype(np.float32), yr)
    assert reg.coef_.dtype == np.float32 and reg.coef_.shape == (X.shape[1],)
    np.testing.assert_allclose(reg.sparsify().predict(X), reg.densify().predict(X), rtol=1e-6)


def test_clear_errors():
    X, y2, _, _ = _data(False)
    with pytest.raises(ValueError, match="l1_ratio must be set"):
        fastgd.SGDClassifier(penalty="elasticnet", l1_ratio=None).fit(X, y2)
    with pytest.raises(ValueError, match="early_stopping should be False with partial_fit"):
        fastgd.SGDClassifier(early_stopping=True).partial_fit(X, y2, classes=[0, 1])
    with pytest.raises(ValueError, match="coef_init does not match"):
        fastgd.SGDClassifier().fit(X, y2, coef_init=np.zeros((2, X.shape[1])))
    with pytest.raises(ValueError, match="intercept_init does not match"):
        fastgd.SGDRegressor().fit(X, X[:, 0], intercept_init=[0.0, 1.0])
    with pytest.raises(ValueError, match="learning_rate"):
        fastgd.SGDClassifier(learning_rate="pa1").fit(X, y2)

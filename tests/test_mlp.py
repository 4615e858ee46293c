"""MLPClassifier and MLPRegressor against scikit-learn's published rules and finite differences."""

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastgd import MLPClassifier, MLPRegressor
from fastgd.backends.cpu_mlp import MLPTrainer
from fastgd.kernels.activations import ACTIVATION_CODES
from fastgd.kernels.losses import OutputLoss
from fastgd.optim import SGD

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize(("batch_size", "n_threads"), [(1, 1), (32, 1), (32, 2), (300, 1), (300, 2)])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_one_epoch_agrees_with_scikit_learn(digits, solver, batch_size, n_threads, activation):
    """Same weights in, one unshuffled epoch each: the weights out agree to float64 round-off.

    With two threads each batch is split into two parts (``fastgd.kernels.dense.mlp_epoch_split``).
    """
    X, y = digits
    params = {"hidden_layer_sizes": (16, 8), "activation": activation, "solver": solver, "batch_size": batch_size,
              "max_iter": 1, "shuffle": False, "warm_start": True, "random_state": 0, "alpha": 1e-3,
              "learning_rate_init": 0.01}
    reference = SkMLPClassifier(**params).fit(X, y)  # random start, one epoch
    ours = MLPClassifier.from_sklearn(reference).set_params(n_threads=n_threads)
    for a, b in zip(ours.coefs_, reference.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    reference.fit(X, y)
    ours.fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, reference.coefs_ + reference.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert ours.loss_ == pytest.approx(reference.loss_, rel=1e-10)
    assert ours.t_ == reference.t_


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_regressor_epoch_agrees_with_scikit_learn(solver, n_threads):
    X, y = make_regression(n_samples=120, n_features=6, n_targets=2, random_state=0)
    X = StandardScaler().fit_transform(X)
    y = y / 100
    params = {"hidden_layer_sizes": (10,), "solver": solver, "batch_size": 16, "max_iter": 1, "shuffle": False,
              "warm_start": True, "random_state": 0, "learning_rate": "invscaling"}
    reference = SkMLPRegressor(**params).fit(X, y)
    ours = MLPRegressor.from_sklearn(reference).set_params(n_threads=n_threads)
    for _ in range(2):
        reference.fit(X, y)
        ours.fit(X, y)
    for a, b in zip(ours.coefs_, reference.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_whole_fit_with_shuffling_matches_scikit_learn(digits):
    """Same random_state: same initialisation, same shuffles, same numbers."""
    X, y = digits
    params = {"hidden_layer_sizes": (20,), "max_iter": 5, "random_state": 3, "batch_size": 50}
    ours = MLPClassifier(**params).fit(X, y)
    reference = SkMLPClassifier(**params).fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, reference.loss_curve_, rtol=1e-10)
    np.testing.assert_array_equal(ours.predict(X), reference.predict(X))


def _numeric_gradient(f, params, coords, h=1e-6):
    out = []
    for j in coords:
        up, down = params.copy(), params.copy()
        up[j] += h
        down[j] -= h
        out.append((f(up)[0] - f(down)[0]) / (2 * h))
    return np.array(out)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize(("out", "loss_kind", "n_out"), [("identity", OutputLoss.SQUARED_ERROR, 1),
                                                          ("logistic", OutputLoss.BINARY_LOG_LOSS, 1),
                                                          ("softmax", OutputLoss.LOG_LOSS, 3)])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_gradient_matches_finite_differences(activation, out, loss_kind, n_out, depth):
    check_gradient_against_finite_differences(activation, out, loss_kind, n_out, depth)


def check_gradient_against_finite_differences(activation, out, loss_kind, n_out, depth, alpha=0.1, n_threads=1, n=12):
    """The trainer's full-batch gradient against central differences; returns the trainer."""
    rng = np.random.default_rng(depth)
    n_in = 4
    X = rng.normal(size=(n, n_in))
    if out == "softmax":
        Y = np.eye(n_out)[rng.integers(n_out, size=n)]
    elif out == "logistic":
        Y = rng.integers(2, size=(n, 1)).astype(float)
    else:
        Y = rng.normal(size=(n, n_out))
    units = np.array([n_in, *[5] * depth, n_out])
    n_params = int(((units[:-1] + 1) * units[1:]).sum())
    params = rng.normal(scale=0.5, size=n_params)
    sw = rng.uniform(0.5, 2.0, size=n)
    optimizer = SGD()
    from fastgd.backends.cpu import make_update_rule
    from fastgd.optim.schedules import Schedule

    rule = make_update_rule(optimizer, Schedule("constant", 0.1, 1), n_params, None, None)
    trainer = MLPTrainer(X, Y, sw, params.copy(), optimizer.init(params), rule, units=units,
                         hidden_code=ACTIVATION_CODES[activation], out_code=ACTIVATION_CODES[out],
                         loss_kind=loss_kind, alpha=alpha, batch_size=n, n_threads=n_threads)
    _, grad = trainer.loss_and_gradient(params)
    coords = rng.choice(n_params, size=min(25, n_params), replace=False)
    numeric = _numeric_gradient(trainer.loss_and_gradient, params, coords)
    if loss_kind == OutputLoss.SQUARED_ERROR:
        # scikit-learn's convention, kept for drop-in agreement: the reported loss averages over the outputs
        # (half the mean squared error) while the gradient is that of the loss summed over the outputs.
        numeric *= n_out
    np.testing.assert_allclose(grad[coords], numeric, rtol=1e-5, atol=1e-7)
    return trainer


@pytest.mark.parametrize(("activation", "out", "loss_kind", "n_out", "depth"),
                         [("relu", "softmax", OutputLoss.LOG_LOSS, 3, 2),
                          ("tanh", "identity", OutputLoss.SQUARED_ERROR, 1, 3),
                          ("logistic", "logistic", OutputLoss.BINARY_LOG_LOSS, 1, 1)])
def test_split_gradient_matches_finite_differences(activation, out, loss_kind, n_out, depth):
    """L-BFGS's full-batch evaluation of 37 rows is split into parts of 19 and 18 (on any thread count)."""
    trainer = check_gradient_against_finite_differences(activation, out, loss_kind, n_out, depth, n_threads=2, n=37)
    assert trainer.n_parts == 2 and trainer.part_grads is not None  # the split evaluation ran


def test_multi_output_squared_error_gradient_sums_over_outputs():
    check_gradient_against_finite_differences("tanh", "identity", OutputLoss.SQUARED_ERROR, 3, 2, alpha=0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_trains_in_float32(digits, dtype):
    X, y = digits
    clf = MLPClassifier((16,), max_iter=30, learning_rate_init=0.01, random_state=0).fit(X.astype(dtype), y)
    assert all(c.dtype == dtype for c in clf.coefs_ + clf.intercepts_)
    assert clf.predict_proba(X.astype(dtype)).dtype == dtype
    assert clf.score(X, y) > 0.9


@pytest.mark.parametrize("solver", ["rmsprop", "adamw", "adagrad"])
@pytest.mark.parametrize("batch_size", [1, 32, None])
def test_added_solvers_and_variants_learn(digits, solver, batch_size):
    X, y = digits
    lr = {"rmsprop": 1e-3, "adamw": 1e-2, "adagrad": 5e-2}[solver]
    clf = MLPClassifier((32,), solver=solver, batch_size=batch_size, learning_rate_init=lr,
                        max_iter=100 if batch_size is None else 15, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.9


def test_multilabel_and_multi_output():
    X, Y = make_classification(n_samples=100, n_features=5, random_state=0)[0], None
    rng = np.random.default_rng(0)
    Y = (X[:, :3] + 0.1 * rng.normal(size=(100, 3)) > 0).astype(int)
    clf = MLPClassifier((20,), max_iter=300, random_state=0).fit(X, Y)
    assert clf.predict(X).shape == (100, 3)
    assert clf.score(X, Y) > 0.8
    Xr, yr = make_regression(n_samples=100, n_features=4, n_targets=3, random_state=0)
    reg = MLPRegressor((20,), max_iter=500, learning_rate_init=0.01, random_state=0).fit(Xr, yr / 100)
    assert reg.predict(Xr).shape == (100, 3)


def test_to_and_from_sklearn_predict_identically(digits):
    X, y = digits
    ours = MLPClassifier((16,), max_iter=10, random_state=0).fit(X, y)
    theirs = ours.to_sklearn()
    np.testing.assert_array_equal(theirs.predict(X), ours.predict(X))
    np.testing.assert_allclose(theirs.predict_proba(X), ours.predict_proba(X), rtol=1e-12)
    back = MLPClassifier.from_sklearn(SkMLPClassifier((8,), max_iter=5, random_state=0).fit(X, y))
    np.testing.assert_array_equal(back.predict(X), back.to_sklearn().predict(X))
    with pytest.raises(ValueError, match="no scikit-learn equivalent"):
        MLPClassifier((4,), activation="leaky_relu", max_iter=2).fit(X, y).to_sklearn()


def test_pipeline_grid_search_and_pickle(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=30, learning_rate_init=0.01,
                                                         random_state=0))
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2]}, cv=2).fit(X, y)
    assert search.best_score_ > 0.8
    model = search.best_estimator_
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))


def test_partial_fit_and_warm_start(digits):
    X, y = digits
    clf = MLPClassifier((16,), random_state=0)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y)
    for _ in range(5):
        clf.partial_fit(X, y, classes=np.arange(10))
    assert len(clf.loss_curve_) == 5 and clf.t_ == 5 * len(y)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")


def test_nonfinite_guard_keeps_a_usable_model(digits):
    X, y = digits
    from fastgd import NonFiniteTrainingWarning

    with pytest.warns(NonFiniteTrainingWarning, match="epoch"):
        reg = MLPRegressor((16,), solver="sgd", learning_rate_init=10.0, max_iter=20,
                           random_state=0).fit(X.astype(np.float32), y * 1e3)  # explodes past float32's range
    assert all(np.isfinite(c).all() for c in reg.coefs_)
    assert np.isfinite(reg.predict(X)).all()


def test_gradient_norms_are_recorded_per_layer(digits):
    X, y = digits
    clf = MLPClassifier((16, 8), max_iter=4, random_state=0).fit(X, y)
    assert clf.gradient_norms_.shape == (4, 3)
    assert (clf.gradient_norms_ > 0).all()


def test_predict_proba_is_the_softmax_limit_when_logits_overflow():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(30, 3)).astype(np.float32)
    # one hidden unit: each logit is one product h * w_k (+ b_k), so float32 overflows exactly where float64 says
    clf = MLPClassifier((1,), activation="identity", max_iter=5, random_state=0).fit(X, rng.randint(0, 3, 30))
    clf.coefs_[-1] *= np.float32(1e36)  # float32 logits of about 1e36 * |x|: large x overflow to +-inf
    X *= np.float32(1e3)
    logits = (X.astype(np.float64) @ clf.coefs_[0] + clf.intercepts_[0]) @ clf.coefs_[1] + clf.intercepts_[1]
    big = np.finfo(np.float32).max
    infinite = logits > big  # +inf in float32
    # rows that overflow, none of whose logits lies within 1 % of the float32 limit (round-off cannot flip them)
    clear = infinite.any(axis=1) & ~(np.abs(np.abs(logits) / big - 1) < 0.01).any(axis=1)
    assert clear.any()
    proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # the limit of the softmax as the largest logits grow without bound: they share the mass equally
    expected = infinite[clear] / infinite[clear].sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(proba[clear], expected)

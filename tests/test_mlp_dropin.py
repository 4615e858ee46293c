"""MLPClassifier and MLPRegressor against the scikit-learn installed, wherever a user can tell them apart.

Each test runs scikit-learn's estimator on the same input and compares what a
user sees: the warnings (class and message), the exceptions (type and message),
the fitted attributes (values and types). Messages are read from scikit-learn
as it runs, never copied here, so the tests follow the installed version.
"""

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import sklearn
from sklearn.datasets import load_digits, make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.utils.fixes import parse_version

from fastgd import LinearClassifier, MLPClassifier, MLPRegressor, NonFiniteTrainingError, NonFiniteTrainingWarning
from fastgd.engine import DIVERGENCE_FACTOR, DivergingTrainingWarning

PAIRS = {"classifier": (SkMLPClassifier, MLPClassifier), "regressor": (SkMLPRegressor, MLPRegressor)}
#: fastgd's own warnings, which scikit-learn does not emit (documented in README's drop-in section).
FASTGD_WARNINGS = (NonFiniteTrainingWarning, DivergingTrainingWarning)


@dataclass
class Outcome:
    """What one call did: its result or exception, the warnings it emitted, what it printed."""

    result: Any = None
    error: BaseException | None = None
    warnings: list = field(default_factory=list)
    out: str = ""


def outcome(call, capsys=None) -> Outcome:
    """Run ``call()`` with every warning recorded (none filtered out)."""
    got = Outcome()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            got.result = call()
        except Exception as exc:  # compared with scikit-learn's
            got.error = exc
    got.warnings = [(w.category, str(w.message)) for w in caught]
    if capsys is not None:
        got.out = capsys.readouterr().out
    return got


def user_warnings(o: Outcome, *, drop=FASTGD_WARNINGS) -> list:
    """The warnings a scikit-learn user would compare, fastgd's own classes left out."""
    return [(c, m) for c, m in o.warnings if not issubclass(c, drop)]


def assert_same_error(ours: Outcome, theirs: Outcome, *, extended: bool = False) -> None:
    """The same exception type; the same message, or (``extended``) scikit-learn's message within ours."""
    assert theirs.error is not None, "scikit-learn did not raise"
    assert ours.error is not None, f"fastgd did not raise; scikit-learn raised {theirs.error!r}"
    assert isinstance(ours.error, type(theirs.error)), (ours.error, theirs.error)
    if extended:
        assert re.search(re.escape(str(theirs.error)), str(ours.error)), (str(ours.error), str(theirs.error))
    else:
        assert str(ours.error) == str(theirs.error)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:240] / 16.0, y[:240]


@pytest.fixture(scope="module")
def binary():
    return make_classification(n_samples=200, n_features=6, random_state=0)


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=200, n_features=6, noise=1.0, random_state=0)
    return (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()


# --- 1. multilabel partial_fit --------------------------------------------------------------------------------


def test_multilabel_partial_fit_trains_on_its_first_call_as_scikit_learn_does():
    X, Y = make_multilabel_classification(n_samples=120, n_classes=5, random_state=0)
    params = {"hidden_layer_sizes": (10,), "solver": "sgd", "random_state": 0, "learning_rate_init": 0.05}
    theirs, ours = SkMLPClassifier(**params), MLPClassifier(**params)
    for _ in range(3):
        theirs.partial_fit(X, Y, classes=[0, 1, 2, 3, 4])
        ours.partial_fit(X, Y, classes=[0, 1, 2, 3, 4])
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.out_activation_ == theirs.out_activation_ == "logistic"
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


# --- 2. feature names and early stopping ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_dataframe_with_early_stopping_warns_what_scikit_learn_warns(kind):
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    y = (X["a"] > 0).astype(int) if kind == "classifier" else X["a"] + X["b"]
    params = {"hidden_layer_sizes": (5,), "early_stopping": True, "validation_fraction": 0.2, "max_iter": 5,
              "random_state": 0}
    Sk, Ours = PAIRS[kind]
    theirs, ours = outcome(lambda: Sk(**params).fit(X, y)), outcome(lambda: Ours(**params).fit(X, y))
    assert ours.error is None and theirs.error is None
    assert not any("feature names" in m for _, m in ours.warnings)
    assert user_warnings(ours) == user_warnings(theirs)
    np.testing.assert_array_equal(ours.result.feature_names_in_, theirs.result.feature_names_in_)


# --- 3. partial_fit from fitted attributes set by hand ---------------------------------------------------------


def test_partial_fit_trains_from_attributes_set_by_hand(binary):
    X, y = binary
    reference = SkMLPClassifier((6,), solver="sgd", max_iter=2, random_state=0)
    outcome(lambda: reference.fit(X, y))
    by_hand = {"coefs_": reference.coefs_, "intercepts_": reference.intercepts_, "n_outputs_": 1, "n_layers_": 3,
               "out_activation_": "logistic", "t_": 0, "loss_curve_": [], "best_loss_": np.inf}
    models = []
    for Estimator in (SkMLPClassifier, MLPClassifier):
        model = Estimator((6,), solver="sgd", random_state=0)
        for name, value in by_hand.items():
            setattr(model, name, [a.copy() for a in value] if isinstance(value, list) else value)
        model._no_improvement_count = 0  # scikit-learn's private counter, which its partial_fit reads
        model.partial_fit(X, y, classes=[0, 1])
        models.append(model)
    theirs, ours = models
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert ours.t_ == theirs.t_ and ours.loss_ == pytest.approx(theirs.loss_, rel=1e-10)
    # fastgd also continues from the weights alone (scikit-learn needs t_, loss_curve_ and best_loss_ as well)
    bare = MLPClassifier((6,), solver="sgd", random_state=0)
    bare.coefs_, bare.intercepts_ = [a.copy() for a in reference.coefs_], [a.copy() for a in reference.intercepts_]
    bare.n_outputs_, bare.n_layers_, bare.out_activation_ = 1, 3, "logistic"
    bare.partial_fit(X, y, classes=[0, 1])
    for a, b in zip(bare.coefs_, ours.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


# --- 4. L-BFGS's warnings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "limits"), [("classifier", {"max_fun": 10}), ("regressor", {"max_fun": 10}),
                                              ("classifier", {"max_iter": 3})])
def test_lbfgs_warns_what_scikit_learn_warns(digits, regression, kind, limits):
    X, y = digits if kind == "classifier" else regression
    params = {"hidden_layer_sizes": (12,), "solver": "lbfgs", "random_state": 1, "tol": 0.0, **limits}
    Sk, Ours = PAIRS[kind]
    theirs, ours = outcome(lambda: Sk(**params).fit(X, y)), outcome(lambda: Ours(**params).fit(X, y))
    assert [c for c, _ in ours.warnings] == [c for c, _ in theirs.warnings] == [ConvergenceWarning]
    assert not any(issubclass(c, DeprecationWarning) for c, _ in ours.warnings)  # SciPy's iprint/disp
    assert ours.warnings == theirs.warnings  # same message: same iterations, same status
    assert ours.result.n_iter_ == theirs.result.n_iter_ and type(ours.result.n_iter_) is type(theirs.result.n_iter_)
    assert ours.result.loss_ == pytest.approx(theirs.result.loss_, rel=1e-8)
    for name in ("best_loss_", "validation_scores_", "best_validation_score_", "t_"):
        assert hasattr(ours.result, name) == hasattr(theirs.result, name), name
    assert ours.result.loss_curve_ == [] and not hasattr(theirs.result, "loss_curve_")  # fastgd's addition


def test_lbfgs_verbose_prints_what_scikit_learn_prints(binary, capsys):
    X, y = binary
    params = {"hidden_layer_sizes": (4,), "solver": "lbfgs", "max_iter": 5, "random_state": 0, "verbose": True}
    capsys.readouterr()
    theirs = outcome(lambda: SkMLPClassifier(**params).fit(X, y), capsys)
    ours = outcome(lambda: MLPClassifier(**params).fit(X, y), capsys)
    assert ours.out == theirs.out
    assert [c for c, _ in ours.warnings] == [c for c, _ in theirs.warnings]


# --- 5. non-finite training ------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_no_finite_epoch_raises_scikit_learns_value_error_with_the_cures(solver):
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    y = rng.standard_normal(size=10)
    params = {"hidden_layer_sizes": (4,), "solver": solver, "random_state": 0}
    # scikit-learn's L-BFGS returns the initial weights with a NaN loss and a ConvergenceWarning here; fastgd
    # raises for every solver (README): the message is that of scikit-learn's stochastic solvers
    theirs = outcome(lambda: SkMLPRegressor(**{**params, "solver": "adam"}).fit(X, y))
    model = MLPRegressor(**params)
    ours = outcome(lambda: model.fit(X, y))
    assert_same_error(ours, theirs, extended=True)
    assert str(ours.error).startswith(str(theirs.error))
    assert isinstance(ours.error, NonFiniteTrainingError) and "StandardScaler" in str(ours.error)
    assert not hasattr(model, "coefs_")  # nothing half-fitted is left behind


@pytest.mark.filterwarnings("ignore::fastgd.engine.DivergingTrainingWarning")
def test_on_nonfinite_raise_is_a_value_error_and_the_guard_stays_after_finite_epochs(digits):
    X, y = digits
    y = y.astype(np.float32)
    params = {"hidden_layer_sizes": (8,), "activation": "identity", "solver": "sgd", "momentum": 0.0,
              "learning_rate_init": 1e-4, "max_iter": 2, "warm_start": True, "random_state": 0}
    model = MLPRegressor(**params)
    outcome(lambda: model.fit(X, y))
    model.set_params(learning_rate_init=50.0)
    with pytest.warns(NonFiniteTrainingWarning, match="restored"):  # fastgd's documented guard
        model.fit(X, y * 1e6)
    assert 0 < model.n_iter_ < 2 and len(model.loss_curve_) == 2 + model.n_iter_  # an epoch finished, finite
    assert all(np.isfinite(a).all() for a in model.coefs_ + model.intercepts_)
    model.set_params(on_nonfinite="raise")
    try:
        model.fit(X, y * 1e6)
    except ValueError as exc:  # what scikit-learn users catch
        assert isinstance(exc, NonFiniteTrainingError)
    else:
        pytest.fail("on_nonfinite='raise' did not raise")


# --- 6. warm_start with other classes --------------------------------------------------------------------------


@pytest.mark.parametrize("classes", [[0, 1], [0, 1, 2, 3], [0, 1, 3]])
@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_warm_start_with_other_classes_raises_scikit_learns_error(classes, solver):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    y = np.arange(60) % 3
    y_other = np.asarray(classes)[np.arange(60) % len(classes)]
    params = {"hidden_layer_sizes": (3,), "solver": solver, "warm_start": True, "max_iter": 3, "random_state": 0}
    got = []
    for Estimator in (SkMLPClassifier, MLPClassifier):
        model = Estimator(**params)
        outcome(lambda model=model: model.fit(X, y))
        got.append(outcome(lambda model=model: model.fit(X, y_other)))
    theirs, ours = got
    assert_same_error(ours, theirs)


def test_partial_fit_with_unseen_or_other_classes_raises_scikit_learns_errors(binary):
    X, y = binary
    for first, second in [({"classes": [0, 1]}, {"classes": [1, 2]}), ({"classes": [2]}, None)]:
        got = []
        for Estimator in (SkMLPClassifier, MLPClassifier):
            model = Estimator(hidden_layer_sizes=(3,), solver="sgd", random_state=0)
            if second is None:
                got.append(outcome(lambda model=model, kw=first: model.partial_fit(X, y, **kw)))
            else:
                model.partial_fit(X, y, **first)
                got.append(outcome(lambda model=model, kw=second: model.partial_fit(X, y, **kw)))
        assert_same_error(got[1], got[0])
    # the first call without classes
    assert_same_error(outcome(lambda: MLPClassifier(solver="sgd").partial_fit(X, y)),
                      outcome(lambda: SkMLPClassifier(solver="sgd").partial_fit(X, y)))


# --- 7. partial_fit and early stopping -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("fitted", [False, True])
def test_partial_fit_refuses_early_stopping_as_scikit_learn_does(binary, kind, fitted):
    X, y = binary
    Sk, Ours = PAIRS[kind]
    extra = {"classes": [0, 1]} if kind == "classifier" and not fitted else {}
    got = []
    for Estimator in (Sk, Ours):
        model = Estimator(hidden_layer_sizes=(3,), early_stopping=True, max_iter=3, random_state=0)
        if fitted:
            outcome(lambda model=model: model.fit(X, y))
        got.append(outcome(lambda model=model: model.partial_fit(X, y, **extra)))
    assert_same_error(got[1], got[0])


# --- 8. a validation set too small -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_a_validation_set_too_small_raises_scikit_learns_error(kind):
    X, y = make_regression(n_samples=2, n_features=5, random_state=0)
    if kind == "classifier":  # three classes: not stratified (scikit-learn stratifies one output only)
        X, y = np.random.RandomState(0).normal(size=(10, 5)), np.arange(10) % 3
    Sk, Ours = PAIRS[kind]
    params = {"early_stopping": True, "random_state": 0}
    got = [outcome(lambda Estimator=Estimator: Estimator(**params).fit(X, y)) for Estimator in (Sk, Ours)]
    assert_same_error(got[1], got[0])


# --- 9. one class ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", [0, "yes"])
def test_a_single_class_fits_as_in_scikit_learn(binary, label):
    X, _ = binary
    y = np.full(X.shape[0], label)
    params = {"hidden_layer_sizes": (4,), "max_iter": 5, "random_state": 0}
    theirs = outcome(lambda: SkMLPClassifier(**params).fit(X, y))
    ours = outcome(lambda: MLPClassifier(**params).fit(X, y))
    assert ours.error is None and theirs.error is None
    theirs, ours = theirs.result, ours.result
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.out_activation_ == theirs.out_activation_ and ours.n_outputs_ == theirs.n_outputs_
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-9)


# --- 10. verbose -----------------------------------------------------------------------------------------------

_ITERATION = re.compile(r"^Iteration (\d+), loss = ([0-9.]+)")


@pytest.mark.parametrize(("solver", "learning_rate", "early_stopping"), [
    ("sgd", "constant", False), ("adam", "constant", True), ("sgd", "adaptive", False)])
def test_verbose_prints_scikit_learns_lines(digits, capsys, solver, learning_rate, early_stopping):
    X, y = digits
    params = {"hidden_layer_sizes": (8,), "solver": solver, "learning_rate": learning_rate, "max_iter": 40,
              "tol": 0.05, "n_iter_no_change": 2, "early_stopping": early_stopping, "verbose": True,
              "random_state": 0, "learning_rate_init": 0.01}
    capsys.readouterr()
    theirs = outcome(lambda: SkMLPClassifier(**params).fit(X, y), capsys).out.splitlines()
    ours = outcome(lambda: MLPClassifier(**params).fit(X, y), capsys).out.splitlines()
    assert len(ours) == len(theirs)
    for mine, reference in zip(ours, theirs, strict=True):
        match = _ITERATION.match(reference)
        if match:  # scikit-learn's start, then fastgd's extras
            (n, loss), (our_n, our_loss) = match.groups(), _ITERATION.match(mine).groups()
            assert our_n == n and float(our_loss) == pytest.approx(float(loss), abs=2e-8)
            assert mine[_ITERATION.match(mine).end():].startswith(", lr = ")
        elif reference.startswith("Validation score: "):
            assert mine.startswith("Validation score: ")
            assert float(mine.split(": ")[1]) == pytest.approx(float(reference.split(": ")[1]), abs=1e-6)
        else:  # the stopping and learning-rate lines
            assert mine == reference


@pytest.mark.parametrize("learning_rate", ["constant", "adaptive"])
def test_partial_fit_counts_epochs_without_improvement_and_prints_as_scikit_learn_does(binary, capsys,
                                                                                      learning_rate):
    """Each call prints ``Iteration 1``; the count of epochs without improvement carries over the calls (the
    adaptive rate is divided, a constant one says ``Stopping.``), as in scikit-learn."""
    X, y = binary
    params = {"hidden_layer_sizes": (3,), "solver": "sgd", "learning_rate": learning_rate, "tol": 1.0,
              "n_iter_no_change": 2, "verbose": 10, "random_state": 0}
    lines, models = [], []
    for Estimator in (SkMLPClassifier, MLPClassifier):
        model = Estimator(**params)
        capsys.readouterr()
        for _ in range(8):
            model.partial_fit(X, y, classes=[0, 1])
        lines.append(capsys.readouterr().out.splitlines())
        models.append(model)
    theirs, ours = lines
    assert len(ours) == len(theirs) and sum(line.startswith("Iteration 1, loss = ") for line in ours) == 8
    for mine, reference in zip(ours, theirs, strict=True):
        if reference.startswith("Iteration"):
            assert mine.startswith(reference[:len("Iteration 1, loss = ")])
        else:
            assert mine == reference
    np.testing.assert_allclose(models[1].loss_curve_, models[0].loss_curve_, rtol=1e-9)


def test_warm_starts_after_convergence_stop_as_scikit_learn_does(digits):
    X, y = digits
    params = {"hidden_layer_sizes": (8,), "solver": "sgd", "learning_rate_init": 0.05, "tol": 0.05,
              "n_iter_no_change": 2, "max_iter": 30, "warm_start": True, "random_state": 0}
    counts = []
    for Estimator in (SkMLPClassifier, MLPClassifier):
        model = Estimator(**params)
        counts.append([outcome(lambda model=model: model.fit(X, y)).result.n_iter_ for _ in range(3)])
    assert counts[1] == counts[0]


# --- 11. the stratified split's error --------------------------------------------------------------------------


def test_the_stratified_split_error_names_classes_as_scikit_learn_does():
    X = [[1, 2], [2, 3], [3, 4], [4, 5]]
    y = [0, 0, 0, 1]
    got = [outcome(lambda E=E: E(early_stopping=True).fit(X, y)) for E in (SkMLPClassifier, MLPClassifier)]
    assert_same_error(got[1], got[0], extended=True)
    assert "['True']" in str(got[1].error)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_early_stopping_holds_out_scikit_learns_rows_and_weights_its_scores(digits, kind):
    """Same split (stratified for one output only, as scikit-learn), same sample-weighted scores."""
    X, y = digits
    if kind == "binary":
        y = y % 2
    elif kind == "multilabel":
        y = np.column_stack([y % 2, y > 4, y % 3 == 0]).astype(int)
    sample_weight = np.random.RandomState(0).uniform(0.2, 3.0, size=len(y))
    params = {"hidden_layer_sizes": (8,), "early_stopping": True, "validation_fraction": 0.3, "max_iter": 6,
              "n_iter_no_change": 100, "learning_rate_init": 0.01, "batch_size": 32, "random_state": 0}
    theirs = outcome(lambda: SkMLPClassifier(**params).fit(X, y, sample_weight=sample_weight)).result
    ours = outcome(lambda: MLPClassifier(**params).fit(X, y, sample_weight=sample_weight)).result
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=1e-12)
    for a, b in zip(ours.coefs_, theirs.coefs_, strict=True):  # the best epoch's parameters
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


# --- 12. the Poisson loss --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def counts():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(150, 3))
    y = rng.poisson(np.exp(0.5 + X @ [0.6, -0.4, 0.2]))
    return X, y


@pytest.mark.parametrize(("solver", "batch_size"), [("sgd", 16), ("adam", 150), ("sgd", 1)])
def test_poisson_epochs_agree_with_scikit_learn(counts, solver, batch_size):
    X, y = counts
    params = {"loss": "poisson", "hidden_layer_sizes": (6,), "activation": "tanh", "solver": solver,
              "batch_size": batch_size, "max_iter": 2, "warm_start": True, "random_state": 0,
              "learning_rate_init": 0.01, "alpha": 1e-3}
    theirs = SkMLPRegressor(**params)
    outcome(lambda: theirs.fit(X, y))
    ours = MLPRegressor.from_sklearn(theirs)
    assert ours.out_activation_ == "exp" and ours.loss == "poisson"
    outcome(lambda: theirs.fit(X, y))
    outcome(lambda: ours.fit(X, y))
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-10)
    np.testing.assert_allclose(ours.to_sklearn().predict(X), theirs.predict(X), rtol=1e-10)


def test_poisson_from_scratch_and_lbfgs_agree_with_scikit_learn(counts):
    X, y = counts
    for params in ({"solver": "adam", "max_iter": 5}, {"solver": "lbfgs", "max_iter": 50}):
        params = {"loss": "poisson", "hidden_layer_sizes": (1,), "activation": "identity", "alpha": 0.0,
                  "random_state": 1, **params}
        theirs = outcome(lambda params=params: SkMLPRegressor(**params).fit(X, y))
        ours = outcome(lambda params=params: MLPRegressor(**params).fit(X, y))
        assert user_warnings(ours) == user_warnings(theirs)
        assert ours.result.out_activation_ == theirs.result.out_activation_ == "exp"
        assert ours.result.loss_ == pytest.approx(theirs.result.loss_, rel=1e-6)
        np.testing.assert_allclose(ours.result.predict(X), theirs.result.predict(X), rtol=1e-5)


def test_poisson_refuses_negative_targets(counts):
    X, y = counts
    with pytest.raises(ValueError, match="non-negative"):
        MLPRegressor(loss="poisson", max_iter=2).fit(X, y - 1.0)


@pytest.mark.cuda
def test_poisson_on_the_device_matches_the_cpu(counts):
    X, y = counts[0][:18], counts[1][:18]

    def make(device):
        return MLPRegressor(loss="poisson", hidden_layer_sizes=(4,), solver="sgd", batch_size=6, max_iter=2,
                            shuffle=False, learning_rate_init=0.01, random_state=0, device=device)

    cpu = outcome(lambda: make("cpu").fit(X, y)).result
    gpu = outcome(lambda: make("cuda").fit(X, y)).result
    for a, b in zip(cpu.coefs_ + cpu.intercepts_, gpu.coefs_ + gpu.intercepts_, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-9)


# --- 13. types of the fitted attributes ------------------------------------------------------------------------

_ATTRIBUTES = ("loss_", "best_loss_", "loss_curve_", "validation_scores_", "best_validation_score_", "t_", "n_iter_",
               "n_layers_", "n_outputs_", "out_activation_", "classes_", "n_features_in_")


def _type_of(value):
    if isinstance(value, list):
        return list, {type(v) for v in value}
    if isinstance(value, np.ndarray):
        return np.ndarray, value.dtype
    return type(value)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [{"solver": "adam"}, {"solver": "sgd", "early_stopping": True},
                                     {"solver": "lbfgs"}])
def test_fitted_attributes_have_scikit_learns_values_and_types(binary, kind, dtype, options):
    X, y = binary
    X = X.astype(dtype)
    params = {"hidden_layer_sizes": (5,), "max_iter": 4, "random_state": 0, **options}
    Sk, Ours = PAIRS[kind]
    theirs, ours = outcome(lambda: Sk(**params).fit(X, y)).result, outcome(lambda: Ours(**params).fit(X, y)).result
    for name in _ATTRIBUTES:
        if name == "loss_curve_" and options["solver"] == "lbfgs":  # fastgd's addition: an empty curve
            assert ours.loss_curve_ == [] and not hasattr(theirs, name)
            continue
        assert hasattr(ours, name) == hasattr(theirs, name), name
        if not hasattr(theirs, name):
            continue
        mine, reference = getattr(ours, name), getattr(theirs, name)
        assert _type_of(mine) == _type_of(reference), name
        if name in ("loss_", "best_loss_", "loss_curve_", "validation_scores_", "best_validation_score_"):
            if reference is None:
                assert mine is None, name
            else:
                rtol = 1e-8 if dtype == np.float64 else 1e-4
                np.testing.assert_allclose(np.asarray(mine, float), np.asarray(reference, float), rtol=rtol,
                                           err_msg=name)
        elif isinstance(reference, np.ndarray):
            np.testing.assert_array_equal(mine, reference)
        else:
            assert mine == reference, name


# --- beyond the numbered items ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_parameters_defaults_and_method_signatures_are_scikit_learns(kind):
    import inspect

    Sk, Ours = PAIRS[kind]
    theirs, ours = Sk().get_params(), Ours().get_params()
    assert {name: ours[name] for name in theirs} == theirs  # every parameter, same default
    assert set(ours) - set(theirs) == {"clip_value", "clip_norm", "progress", "on_nonfinite", "callbacks",
                                       "n_threads", "device"}  # fastgd's additions (README)
    for method in ("fit", "partial_fit", "predict", "predict_proba", "predict_log_proba", "score"):
        if hasattr(Sk, method):
            assert (list(inspect.signature(getattr(Ours, method)).parameters)
                    == list(inspect.signature(getattr(Sk, method)).parameters)), method


def test_partial_fit_exists_where_scikit_learns_does():
    for kind in ("classifier", "regressor"):
        Sk, Ours = PAIRS[kind]
        for solver in ("lbfgs", "sgd", "adam"):
            assert hasattr(Ours(solver=solver), "partial_fit") == hasattr(Sk(solver=solver), "partial_fit"), \
                (kind, solver)
    got = [outcome(lambda E=E: E(solver="lbfgs").partial_fit) for E in (SkMLPClassifier, MLPClassifier)]
    assert_same_error(got[1], got[0])


def test_regressor_partial_fit_with_lbfgs_runs_lbfgs_as_scikit_learns_does(regression):
    X, y = regression
    params = {"hidden_layer_sizes": (4,), "solver": "lbfgs", "max_iter": 20, "random_state": 0}
    theirs = outcome(lambda: SkMLPRegressor(**params).partial_fit(X, y))
    ours = outcome(lambda: MLPRegressor(**params).partial_fit(X, y))
    assert ours.result.n_iter_ == theirs.result.n_iter_
    assert ours.result.loss_ == pytest.approx(theirs.result.loss_, rel=1e-8)
    assert user_warnings(ours) == user_warnings(theirs)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_convergence_warning_and_stopping_match_scikit_learn(binary, kind):
    X, y = binary
    Sk, Ours = PAIRS[kind]
    # the last: a loss that stays exactly the same, which scikit-learn counts as improving by tol=0
    for params in ({"max_iter": 3}, {"max_iter": 300, "tol": 0.05, "n_iter_no_change": 2},
                   {"max_iter": 12, "tol": 0.0, "n_iter_no_change": 2, "learning_rate_init": 1e-30,
                    "shuffle": False}):
        params = {"hidden_layer_sizes": (4,), "solver": "sgd", "random_state": 0, **params}
        theirs, ours = outcome(lambda p=params: Sk(**p).fit(X, y)), outcome(lambda p=params: Ours(**p).fit(X, y))
        assert user_warnings(ours) == user_warnings(theirs)
        assert ours.result.n_iter_ == theirs.result.n_iter_


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_warm_start_and_partial_fit_shuffle_as_scikit_learn_does(digits, solver):
    """Each call draws from check_random_state(random_state) afresh, as in scikit-learn: same numbers."""
    X, y = digits
    params = {"hidden_layer_sizes": (8,), "solver": solver, "max_iter": 2, "batch_size": 50, "random_state": 3,
              "learning_rate": "invscaling", "learning_rate_init": 0.05}
    for method in ("warm_start", "partial_fit"):
        models = []
        for Estimator in (SkMLPClassifier, MLPClassifier):
            model = Estimator(**params, warm_start=method == "warm_start")
            for _ in range(3):
                if method == "warm_start":
                    outcome(lambda model=model: model.fit(X, y))
                else:
                    model.partial_fit(X, y, classes=np.unique(y))
            models.append(model)
        theirs, ours = models
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9, err_msg=method)
        for a, b in zip(ours.coefs_, theirs.coefs_, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10, err_msg=method)


def test_hidden_layer_sizes_of_zero_are_refused_with_scikit_learns_message(binary):
    X, y = binary
    got = [outcome(lambda E=E: E(hidden_layer_sizes=(3, 0)).fit(X, y)) for E in (SkMLPClassifier, MLPClassifier)]
    assert_same_error(got[1], got[0])


def test_interrupted_training_keeps_the_model_as_scikit_learn_does(binary, monkeypatch):
    X, y = binary
    params = {"hidden_layer_sizes": (4,), "solver": "sgd", "max_iter": 20, "random_state": 0}
    calls = []
    original = SkMLPClassifier._update_no_improvement_count

    def interrupt_at_the_third(self, *args):
        original(self, *args)
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(SkMLPClassifier, "_update_no_improvement_count", interrupt_at_the_third)
    theirs = outcome(lambda: SkMLPClassifier(**params).fit(X, y))

    def interrupt(record):
        if record.epoch == 3:
            raise KeyboardInterrupt

    ours = outcome(lambda: MLPClassifier(**params, callbacks=[interrupt]).fit(X, y))
    assert user_warnings(ours) == user_warnings(theirs)
    assert ours.result.n_iter_ == theirs.result.n_iter_ == 3
    np.testing.assert_allclose(ours.result.loss_curve_, theirs.result.loss_curve_, rtol=1e-10)


def test_predict_log_proba_warns_as_scikit_learn_on_zero_probabilities(binary):
    X, y = binary
    models = [E((3,), max_iter=2, random_state=0) for E in (SkMLPClassifier, MLPClassifier)]
    for model in models:
        outcome(lambda model=model: model.fit(X, y))
        model.coefs_[-1][:] = 1e4  # saturated logistic output: probabilities of exactly 0 and 1
    got = [outcome(lambda model=model: model.predict_log_proba(X * 100)) for model in models]
    assert [c for c, _ in got[1].warnings] == [c for c, _ in got[0].warnings] == [RuntimeWarning]
    np.testing.assert_allclose(got[1].result, got[0].result, rtol=1e-9)


def test_the_drop_in_follows_the_installed_scikit_learn_version():
    """README names the scikit-learn version the drop-in follows; the installed one is no older."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### MLPClassifier and MLPRegressor: change the import")[1].split("\n### ")[0]
    followed = re.search(r"follows scikit-learn (\d+\.\d+)", section).group(1)
    assert parse_version(sklearn.__version__) >= parse_version(followed)


# --- fastgd's divergence warning -------------------------------------------------------------------------------


def test_a_finite_divergence_is_flagged_once_naming_the_epoch():
    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]  # raw pixels up to 16: ReLU units at a huge learning rate blow the loss up
    params = {"hidden_layer_sizes": (32,), "solver": "sgd", "learning_rate_init": 10.0, "max_iter": 6, "tol": 0.0,
              "random_state": 0}
    theirs = outcome(lambda: SkMLPClassifier(**params).fit(X, y))
    ours = outcome(lambda: MLPClassifier(**params).fit(X, y))
    flagged = [m for c, m in ours.warnings if c is DivergingTrainingWarning]
    assert len(flagged) == 1 and issubclass(DivergingTrainingWarning, RuntimeWarning)
    curve = ours.result.loss_curve_
    first = next(i for i in range(1, len(curve)) if curve[i] > DIVERGENCE_FACTOR * min(curve[:i]))
    assert f"epoch {first + 1} " in flagged[0] and "learning_rate_init" in flagged[0] and "clip_norm" in flagged[0]
    np.testing.assert_allclose(curve, theirs.result.loss_curve_, rtol=1e-8)  # scikit-learn runs on, finite
    assert user_warnings(ours) == user_warnings(theirs)
    # a run that trains normally is not flagged
    calm = outcome(lambda: MLPClassifier(**{**params, "learning_rate_init": 0.01}).fit(X / 16, y))
    assert not any(c is DivergingTrainingWarning for c, _ in calm.warnings)


# --- optimizer state on partial_fit and warm_start (review of fastgd.optim's state check) -----------------------


def test_partial_fit_after_a_solver_change_starts_a_fresh_optimizer_state(binary):
    X, y = binary
    model = MLPClassifier((4,), solver="adam", random_state=0)
    for _ in range(3):
        model.partial_fit(X, y, classes=[0, 1])
    state = model._optimizer_state
    assert state.made_by.optimizer == "FoldedAdam" and state.step == 3
    model.partial_fit(X, y)  # the same solver continues its moments
    assert model._optimizer_state is state and state.step == 4
    model.set_params(solver="adamw").partial_fit(X, y)  # as many state rows, other moments: a fresh state
    assert model._optimizer_state is not state
    assert model._optimizer_state.made_by.optimizer == "AdamW" and model._optimizer_state.step == 1


def test_linear_warm_start_keeps_the_state_maker_and_refuses_another_solvers_state(binary):
    X, y = binary
    model = LinearClassifier(loss="log_loss", solver="adam", max_iter=2, tol=None, warm_start=True,
                             random_state=0).fit(X, y)
    state = model._optimizer_state
    assert state.made_by is not None and state.made_by.optimizer == "Adam" and state.step > 0
    model.fit(X, y)  # continued on a copy that keeps made_by
    assert model._optimizer_state is not state and model._optimizer_state.made_by == state.made_by
    assert model._optimizer_state.step > state.step
    updates = model.t_
    model.set_params(solver="adamw").fit(X, y)  # as many state rows as Adam's, other moments: a fresh state
    assert model._optimizer_state.made_by.optimizer == "AdamW"
    assert model._optimizer_state.step == model.t_ - updates
    updates = model.t_
    model.set_params(solver="adam").partial_fit(X, y)
    assert model._optimizer_state.made_by.optimizer == "Adam" and model._optimizer_state.step == model.t_ - updates

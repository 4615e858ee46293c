"""Hypothesis fuzzing of every estimator and of every optimizer in :data:`fastgd.optim.OPTIMIZERS`.

The contract, for any input:

* ``fit`` / ``partial_fit`` either give a fitted model whose parameters
  (``coef_``/``intercept_`` or ``coefs_``/``intercepts_``) are finite, or raise
  a ``ValueError`` or ``TypeError`` whose message says what is wrong: not
  empty, and not a Numba typing traceback;
* a fitted model predicts on its own training data, with finite predictions,
  and rejects data with another number of features;
* an optimizer's constructor and ``step`` either work or raise such a clean
  error, and a rejected ``step`` leaves the parameters and the state untouched;
* nothing crashes, hangs or raises another exception type.

Diverging training (huge magnitudes or learning rates) is an acceptable
outcome: fastgd warns and restores the last finite parameters, which are
finite. ``on_nonfinite="raise"`` may raise :class:`fastgd.NonFiniteTrainingError`.

The number of examples comes from the Hypothesis profiles of ``tests/conftest.py``
(``--hypothesis-profile=long`` for a deeper search). Networks are tiny and
``max_iter <= 5`` so that each example takes milliseconds.
"""

from __future__ import annotations

import faulthandler
import inspect
import math
import warnings
from contextlib import contextmanager
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import assume, given, note
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import ClassifierMixin

from fastgd import LinearClassifier, LinearRegressor, MLPClassifier, MLPRegressor, NonFiniteTrainingError
from fastgd.estimators.linear import CLASSIFIER_LOSSES, REGRESSOR_LOSSES
from fastgd.estimators.mlp import HIDDEN_ACTIVATIONS, MLP_SOLVERS
from fastgd.optim import OPTIMIZERS, SOLVERS, OptimizerState

ESTIMATORS = [LinearClassifier, LinearRegressor, MLPClassifier, MLPRegressor]
OPTIMIZER_NAMES = sorted(OPTIMIZERS)

#: A single call running longer than this is a hang (see :func:`watchdog`). Generous, because the first
#: call of a kernel specialisation compiles it (seconds, more on a loaded machine).
HANG_SECONDS = 300

#: Words that betray a Numba typing or lowering error leaking through validation.
NUMBA_WORDS = ("numba", "typingerror", "no implementation of function", "lowering", "traceback",
               "invalid use of", "cannot determine")


# --- the contract --------------------------------------------------------------------------------------------


def assert_clear_error(exc: BaseException) -> None:
    """``exc`` says what is wrong: a non-empty message, no Numba internals."""
    assert not type(exc).__module__.startswith("numba"), f"Numba error leaked: {type(exc).__name__}: {exc}"
    message = str(exc)
    assert message.strip(), f"{type(exc).__name__} without a message"
    lowered = message.lower()
    for word in NUMBA_WORDS:
        assert word not in lowered, f"{type(exc).__name__} message looks like a Numba error: {message}"
    cause = exc.__cause__
    while cause is not None:
        assert not type(cause).__module__.startswith("numba"), f"wraps a Numba error: {cause!r}"
        cause = cause.__cause__


@contextmanager
def watchdog():
    """A call running longer than :data:`HANG_SECONDS` is a hang: dump every thread's stack and exit."""
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def attempt(call, *, allowed: tuple[type[BaseException], ...] = ()) -> tuple[bool, Any]:
    """Run ``call()``: ``(True, result)``, or ``(False, exc)`` for a clean ValueError/TypeError.

    Any other exception (except ``allowed`` ones) propagates and fails the
    test, as does a hang (:func:`watchdog`). Warnings (convergence,
    non-finite training, data conversion) are expected.
    """
    try:
        with watchdog(), warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return True, call()
    except (ValueError, TypeError) as exc:
        assert_clear_error(exc)
        note(f"{type(exc).__name__}: {exc}")
        return False, exc
    except allowed as exc:
        note(f"{type(exc).__name__}: {exc}")
        return False, exc


def is_classifier(estimator) -> bool:
    """Whether an estimator, or an estimator class, is a classifier."""
    cls = estimator if isinstance(estimator, type) else type(estimator)
    return issubclass(cls, ClassifierMixin)


def model_parameters(est) -> list[np.ndarray]:
    if hasattr(est, "coefs_"):
        return [*est.coefs_, *est.intercepts_]
    return [np.asarray(est.coef_), np.asarray(est.intercept_)]


def assert_finite_model(est) -> None:
    """A fitted model: floating, finite parameters shaped for ``n_features_in_`` inputs."""
    for p in model_parameters(est):
        assert p.dtype.kind == "f", f"parameters of dtype {p.dtype}"
        assert np.all(np.isfinite(p)), f"non-finite parameters after fit: {p}"
    first = est.coefs_[0] if hasattr(est, "coefs_") else np.atleast_2d(est.coef_)
    n_in = first.shape[0] if hasattr(est, "coefs_") else first.shape[1]
    assert n_in == est.n_features_in_


def n_rows(X) -> int:
    if hasattr(X, "shape"):
        return X.shape[0]
    return len(X)


def largest_magnitude(X) -> float:
    """Largest absolute input value (sparse, DataFrame or list alike)."""
    data = X.data if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    return float(np.max(np.abs(data), initial=0.0))


def assert_finite_predictions(est, X) -> None:
    """``est`` predicts finite values of the right shape on ``X``, which it must accept.

    Finite parameters applied to inputs far from unit scale (|x| up to 1e30 here) may overflow in the
    prediction itself, and one last large update can take them there after the epoch's loss was
    checked: that is arithmetic on unscaled data, which scikit-learn's estimators share, so outputs
    must be finite for inputs below 1e4 in magnitude in float32 models and below 1e15 in float64 ones.
    """
    with watchdog(), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        limit = 1e4 if model_parameters(est)[0].dtype == np.float32 else 1e15
        sane_inputs = largest_magnitude(X) < limit
        pred = est.predict(X)
        n = n_rows(X)
        assert pred.shape[0] == n
        if not is_classifier(est):
            assert not sane_inputs or np.all(np.isfinite(pred)), f"non-finite predictions: {pred}"
            return
        if hasattr(est, "decision_function"):
            scores = est.decision_function(X)
            assert scores.shape[0] == n
            assert not sane_inputs or np.all(np.isfinite(scores)), f"non-finite decision values: {scores}"
        if hasattr(est, "predict_proba"):
            proba = est.predict_proba(X)
            assert proba.shape[0] == n
            assert np.all(np.isfinite(proba)), f"non-finite probabilities: {proba}"
            assert np.all((proba >= 0) & (proba <= 1)), f"probabilities outside [0, 1]: {proba}"
            multilabel = isinstance(est, MLPClassifier) and est._label_binarizer.y_type_ == "multilabel-indicator"
            if not multilabel:
                np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-3)
        if pred.ndim == 1:
            assert np.all(np.isin(pred, est.classes_)), f"predicted labels {pred} not in {est.classes_}"


def assert_rejects_other_feature_counts(est) -> None:
    n_features = est.n_features_in_
    for other in {0, n_features + 1, max(n_features - 1, 0)} - {n_features}:
        with pytest.raises(ValueError) as info:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.predict(np.ones((2, other)))
        assert_clear_error(info.value)


def check_fitted(est, X) -> None:
    assert_finite_model(est)
    assert_finite_predictions(est, X)


# --- data --------------------------------------------------------------------------------------------------------

MAGNITUDES = (1e-30, 1e-10, 1e-3, 1.0, 1e3, 1e10, 1e30)
SPECIALS = (np.nan, np.inf, -np.inf)
DTYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.bool_, object,
          np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128)
LAYOUTS = ("C", "F", "strided", "readonly")
CONTAINERS = ("ndarray", "list", "dataframe", "csr", "csc", "coo", "csr_array")


@st.composite
def real_values(draw, shape: tuple[int, ...], *, specials: bool = True, magnitudes=MAGNITUDES) -> np.ndarray:
    """float64 values of the given shape: per-column magnitudes, constant columns, NaN/Inf."""
    values = draw(arrays(np.float64, shape, elements=st.floats(-4, 4, allow_nan=False, allow_infinity=False)))
    values = np.array(values, dtype=np.float64)
    if values.size == 0:
        return values
    n_columns = shape[-1]
    if draw(st.booleans()):  # one magnitude for all columns
        values *= draw(st.sampled_from(magnitudes))
    else:
        values *= np.array(draw(st.lists(st.sampled_from(magnitudes), min_size=n_columns, max_size=n_columns)))
    if values.ndim >= 2 and draw(st.integers(0, 3)) == 0:  # a constant feature
        column = draw(st.integers(0, n_columns - 1))
        values[..., column] = draw(st.sampled_from([0.0, 1.0, -2.5, 1e-30, 1e30]))
    if specials and draw(st.integers(0, 3)) == 0:
        flat = values.reshape(-1)
        for index in draw(st.lists(st.integers(0, flat.size - 1), min_size=1, max_size=3)):
            flat[index] = draw(st.sampled_from(SPECIALS))
    return values


def as_dtype(values: np.ndarray, dtype, draw) -> np.ndarray:
    """``values`` converted to ``dtype`` (integers saturate, object arrays may hold None or strings)."""
    dtype = np.dtype(dtype)
    with np.errstate(all="ignore"):
        if dtype.kind == "b":
            return values > 0
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            clean = np.nan_to_num(values, nan=0.0, posinf=float(info.max), neginf=float(info.min))
            return np.clip(np.rint(clean), float(info.min), float(info.max)).astype(dtype)
        if dtype.kind == "O":
            result = values.astype(object)
            if result.size and draw(st.integers(0, 4)) == 0:
                result.reshape(-1)[draw(st.integers(0, result.size - 1))] = draw(st.sampled_from([None, "a", "1.5"]))
            return result
        if dtype.kind == "c":
            imaginary = draw(st.sampled_from([0.0, 1.0]))
            return (values + 1j * imaginary * values).astype(dtype)
        return values.astype(dtype)


def with_layout(a: np.ndarray, layout: str) -> np.ndarray:
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided" and a.ndim >= 1:
        wide = np.empty((a.shape[0] * 2, *a.shape[1:]), dtype=a.dtype)
        wide[::2] = a
        return wide[::2]
    if layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
    return a


def in_container(a: np.ndarray, container: str, draw):
    """``a`` as a list, a DataFrame (integer, string or mixed column names) or a scipy sparse matrix."""
    if container == "list":
        return a.tolist()
    if a.ndim != 2 or container == "ndarray":
        return a
    if container == "dataframe":
        names = draw(st.sampled_from(["default", "str", "mixed"]))
        columns = None
        if names == "str":
            columns = [f"x{i}" for i in range(a.shape[1])]
        elif names == "mixed":
            columns = [i if i % 2 else f"x{i}" for i in range(a.shape[1])]
        return pd.DataFrame(a, columns=columns)
    build = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "coo": sp.coo_matrix, "csr_array": sp.csr_array}[container]
    try:
        return build(a)
    except (TypeError, ValueError):  # a dtype scipy.sparse does not hold (object, float16, ...)
        return a


@st.composite
def any_X(draw, n_samples=None, n_features=None) -> tuple[Any, np.ndarray]:
    """(X in any dtype, layout, container and shape, its float64 values)."""
    n = draw(st.integers(0, 8)) if n_samples is None else n_samples
    m = draw(st.integers(0, 4)) if n_features is None else n_features
    ndim = draw(st.sampled_from([2] * 8 + [1, 3]))
    shape = {1: (n,), 2: (n, m), 3: (n, m, 2)}[ndim]
    values = draw(real_values(shape))
    dtype = draw(st.sampled_from(DTYPES))
    a = with_layout(as_dtype(values, dtype, draw), draw(st.sampled_from(LAYOUTS)))
    X = in_container(a, draw(st.sampled_from(CONTAINERS)), draw)
    note(f"X: {type(X).__name__} dtype={dtype} shape={shape}")
    return X, values


@st.composite
def clean_X(draw, n_samples: int, n_features: int, *, magnitudes=MAGNITUDES) -> np.ndarray:
    """A finite float32 or float64 C array."""
    values = draw(real_values((n_samples, n_features), specials=False, magnitudes=magnitudes))
    return values.astype(draw(st.sampled_from([np.float64, np.float32])))


LABEL_SETS = (
    [0, 1, 2, 3],
    [-1, 1, 7, 9],
    ["a", "b", "c", "d"],
    [False, True],
    [1.0, 2.0, 3.0, 4.5e30],
    [np.int8(1), np.int8(2), np.int8(3), np.int8(4)],
)


@st.composite
def labels(draw, n: int, *, n_classes=None, label_set=None) -> np.ndarray:
    label_set = draw(st.sampled_from(LABEL_SETS)) if label_set is None else label_set
    k = draw(st.integers(1, len(label_set))) if n_classes is None else min(n_classes, len(label_set))
    return np.array(draw(st.lists(st.sampled_from(label_set[:k]), min_size=n, max_size=n)))


@st.composite
def balanced_labels(draw, n: int) -> np.ndarray:
    """Labels of 2 to 3 classes, each present at least twice (n >= 6)."""
    label_set = draw(st.sampled_from(LABEL_SETS))
    k = draw(st.integers(2, min(3, len(label_set))))
    y = np.array([label_set[i % k] for i in range(n)])
    return y[np.array(draw(st.permutations(range(n))))]


@st.composite
def targets_for(draw, Estimator, n: int):
    """Valid targets for ``n`` samples (maybe one class, for classifiers)."""
    if is_classifier(Estimator):
        if Estimator is MLPClassifier and draw(st.integers(0, 4)) == 0:
            k = draw(st.integers(1, 3))
            return np.array(draw(arrays(np.int64, (n, k), elements=st.integers(0, 1))))
        return draw(labels(n))
    n_targets = draw(st.sampled_from([None, None, 1, 2]))
    shape = (n,) if n_targets is None else (n, n_targets)
    return draw(real_values(shape, specials=False))


# --- hyperparameters -----------------------------------------------------------------------------------------


def fast_params(Estimator) -> dict[str, Any]:
    params: dict[str, Any] = {"max_iter": 3, "random_state": 0}
    if Estimator in (MLPClassifier, MLPRegressor):
        params["hidden_layer_sizes"] = (3,)
    return params


#: name: (valid values at and near the bounds, invalid values)
COMMON_PARAMS: dict[str, tuple[list, list]] = {
    "learning_rate_init": ([1e-300, 1e-12, 1e-3, 0.1, 1.0, 1e3, 1e30], [0.0, -1.0, math.inf, math.nan, "0.1", None]),
    "alpha": ([0.0, 1e-4, 1.0, 1e6, 1e30], [-1e-4, math.nan, "1"]),
    "batch_size": ([1, 2, 3, 1000, None, "full"], [0, -1, 2.5, "all"]),
    "max_iter": ([1, 2, 5], [0, -1, 2.0, None]),
    "n_iter_no_change": ([1, 2, 100], [0, -1, 1.5]),
    "early_stopping": ([False, True], ["yes"]),
    "validation_fraction": ([1e-3, 0.1, 0.5, 0.9], [1.0, -0.1, 1.5]),
    "momentum": ([0.0, 0.5, 0.9, 1 - 1e-12], [-0.1, 1.0001, math.nan]),
    "nesterovs_momentum": ([True, False], [None]),
    "beta_1": ([0.0, 0.9, 1 - 1e-12], [1.0, -0.1]),
    "beta_2": ([0.0, 0.999, 1 - 1e-12], [1.0, -0.1]),
    "epsilon": ([1e-300, 1e-8, 1.0, 1e10], [0.0, -1e-8]),
    "clip_value": ([None, 1e-300, 1e-12, 1.0, 1e30], [0.0, -1.0, math.nan]),
    "clip_norm": ([None, 1e-300, 1e-12, 1.0, 1e30], [0.0, -1.0, math.nan]),
    "power_t": ([0.0, 0.5, 1e3], [-0.5]),
    "shuffle": ([True, False], [None]),
    "warm_start": ([False, True], [2]),
    "on_nonfinite": (["warn", "raise"], ["ignore"]),
    "verbose": ([0, 1, 2, True], [-1, "loud"]),
}

LINEAR_PARAMS: dict[str, tuple[list, list]] = {
    "momentum": ([0.0, 0.5, 0.9, 1 - 1e-12], [-0.1, 1.0, 1.0001, math.nan]),  # 1.0 diverges: refused
    "solver": (list(SOLVERS), ["newton", "folded_adam"]),
    "learning_rate": (["constant", "invscaling", "optimal", "adaptive", "step", "cosine"], ["linear"]),
    "tol": ([None, 0.0, 1e-3, 1e10], [-1.0, math.nan]),
    "penalty": (["l2", "l1", "elasticnet", None], ["l3"]),
    "l1_ratio": ([0.0, 0.5, 1.0], [1.5, -0.5]),
    "fit_intercept": ([True, False], ["no"]),
    "weight_decay": ([None, 0.0, 0.1, 1e30], [-1.0]),
}

MLP_PARAMS: dict[str, tuple[list, list]] = {
    "momentum": ([0.0, 0.5, 0.9, 1.0], [-0.1, 1.0001, math.nan]),  # 1.0: scikit-learn's range (fastgd warns)
    "solver": (list(MLP_SOLVERS), ["folded_adam", "newton"]),
    "learning_rate": (["constant", "invscaling", "adaptive", "step", "cosine"], ["optimal"]),
    "tol": ([0.0, 1e-4, 1e10], [None, -1.0]),
    "hidden_layer_sizes": ([(1,), (4,), (2, 2), [3], 3, np.array([2])], [(0,), (-1,), 0, (2.5,), "4"]),
    "activation": (list(HIDDEN_ACTIVATIONS), ["softmax", "gelu"]),
    "batch_size": ([1, 2, 3, 1000, None, "full", "auto"], [0, -1, 2.5, "all"]),
    "validation_fraction": ([0.0, 1e-3, 0.1, 0.5, 0.9], [1.0, -0.1]),
    "max_fun": ([1, 15000], [0]),
    "n_iter_no_change": ([1, 2, 100, np.inf], [0, -1, 1.5]),
}


def solver_options(solver: str) -> list:
    valid = {"sgd": [{"dampening": 0.5}, {"nesterov": False}], "adam": [{"amsgrad": True}],
             "adamw": [{"amsgrad": True, "weight_decay": 0.0}], "rmsprop": [{"centered": True, "momentum": 0.9}],
             "adagrad": [{"lr_decay": 0.1, "initial_accumulator_value": 0.1}]}
    return [None, {}, *valid.get(solver, [])]


#: Errors that valid hyperparameters may still give on small data, by the words of their message.
EXPECTED_ERRORS = (
    "learning_rate='optimal' needs alpha > 0",
    "early_stopping could not split off a validation set",
    "The validation set is too small. Increase 'validation_fraction'",  # the MLPs' words, scikit-learn's
    "nesterov=True requires momentum > 0 and dampening == 0",
    "needs samples of at least 2 classes",
)


@st.composite
def hyperparameters(draw, Estimator, *, allow_invalid: bool = True) -> tuple[dict[str, Any], str | None]:
    """(estimator keyword arguments at and beyond their bounds, the name of the invalid one or None)."""
    mlp = Estimator in (MLPClassifier, MLPRegressor)
    table = {**COMMON_PARAMS, **(MLP_PARAMS if mlp else LINEAR_PARAMS)}
    if Estimator is LinearClassifier:
        table["loss"] = (list(CLASSIFIER_LOSSES), ["squared_error"])
        table["class_weight"] = ([None, "balanced"], ["heavy"])
    elif Estimator is LinearRegressor:
        table["loss"] = (list(REGRESSOR_LOSSES), ["hinge"])
        table["loss_epsilon"] = ([0.0, 0.1, 1e30], [-1.0])
    names = sorted(table)
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    invalid = draw(st.sampled_from(names)) if allow_invalid and draw(st.integers(0, 3)) == 0 else None
    params = fast_params(Estimator)
    params["max_iter"] = draw(st.integers(1, 5))
    for name in sorted({*chosen, *([invalid] if invalid else [])}):
        valid, bad = table[name]
        params[name] = draw(st.sampled_from(bad if name == invalid else valid))
    if mlp and "hidden_layer_sizes" not in chosen and invalid != "hidden_layer_sizes":
        params["hidden_layer_sizes"] = draw(st.sampled_from([(1,), (3,), (4,), (2, 2)]))
    if not mlp and draw(st.integers(0, 3)) == 0:
        params["solver_options"] = draw(st.sampled_from(solver_options(params.get("solver", "sgd"))))
    note(f"params: {params} (invalid: {invalid})")
    return params, invalid


# --- estimators ----------------------------------------------------------------------------------------------


def estimator_ids(Estimator) -> str:
    return Estimator.__name__


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=estimator_ids)
@given(data=st.data())
def test_fit_on_any_X(Estimator, data):
    """Any dtype, layout, container, shape, magnitude, NaN/Inf, constant columns."""
    X, _ = data.draw(any_X())
    n = n_rows(X)
    y = data.draw(targets_for(Estimator, n))
    params = fast_params(Estimator)
    params["solver"] = data.draw(st.sampled_from(MLP_SOLVERS if "hidden_layer_sizes" in params else SOLVERS))
    params["batch_size"] = data.draw(st.sampled_from([1, 2, "full"]))
    est = Estimator(**params)
    fitted, _ = attempt(lambda: est.fit(X, y))
    if fitted:
        check_fitted(est, X)
        assert_rejects_other_feature_counts(est)


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=estimator_ids)
@given(data=st.data())
def test_hyperparameters_at_and_beyond_their_bounds(Estimator, data):
    """Valid hyperparameters at their bounds fit (or say why not); invalid ones are named."""
    params, invalid = data.draw(hyperparameters(Estimator))
    n = data.draw(st.integers(6, 16))
    X = data.draw(clean_X(n, data.draw(st.integers(1, 4))))
    if is_classifier(Estimator):
        y = data.draw(balanced_labels(n))
    else:
        scale = data.draw(st.sampled_from([0.0, 1.0, 1e-20, 1e20]))
        y = (X.astype(np.float64) @ np.linspace(-1, 2, X.shape[1])) * scale
    est = Estimator(**params)
    fitted, error = attempt(lambda: est.fit(X, y), allowed=(NonFiniteTrainingError,))
    if not fitted:
        if isinstance(error, NonFiniteTrainingError):  # asked for, or an MLP with no finite epoch to give back
            assert params.get("on_nonfinite") == "raise" or "no model to give back" in str(error), error
            return
        if invalid is not None:
            return
        assert any(words in str(error) for words in EXPECTED_ERRORS), f"valid hyperparameters rejected: {error!r}"
        return
    assert invalid is None, f"invalid {invalid}={params.get(invalid)!r} was accepted"
    check_fitted(est, X)
    if params.get("warm_start") is True:  # a second fit continues from the first, on other data
        X2 = data.draw(clean_X(n, X.shape[1]))
        refitted, error = attempt(lambda: est.fit(X2, y), allowed=(NonFiniteTrainingError,))
        if refitted:
            check_fitted(est, X2)
        check_fitted(est, X)


@st.composite
def any_targets(draw, Estimator, n: int):
    """Targets of any kind: odd labels, NaN/Inf, wrong lengths and shapes, every dtype."""
    kind = draw(st.sampled_from(["valid", "valid", "length", "2d", "3d", "none", "dtype", "special", "empty"]))
    if kind == "valid":
        y = draw(targets_for(Estimator, n))
    elif kind == "length":
        y = draw(targets_for(Estimator, draw(st.sampled_from([0, max(n - 1, 0), n + 1]))))
    elif kind == "2d":
        y = draw(real_values((n, draw(st.integers(0, 3))), specials=False))
        if is_classifier(Estimator):
            y = np.rint(np.clip(y, 0, 1))
    elif kind == "3d":
        y = np.zeros((n, 2, 2))
    elif kind == "none":
        return None
    elif kind == "dtype":
        y = as_dtype(draw(real_values((n,), specials=False)), draw(st.sampled_from(DTYPES)), draw)
    elif kind == "special":
        y = draw(real_values((n,), specials=True))
        if draw(st.booleans()) and n:
            y[draw(st.integers(0, n - 1))] = draw(st.sampled_from(SPECIALS))
        if is_classifier(Estimator):
            y = np.where(np.isfinite(y), np.sign(y), y)
    else:
        y = np.array([])
    form = draw(st.sampled_from(["array", "list", "series"]))
    if form == "list":
        return y.tolist()
    if form == "series" and y.ndim == 1:
        return pd.Series(y)
    return y


@st.composite
def any_sample_weight(draw, n: int):
    kind = draw(st.sampled_from(["none", "none", "values", "length", "scalar", "2d", "list"]))
    if kind == "none":
        return None
    if kind == "scalar":
        return draw(st.sampled_from([0.0, 1.0, -1.0, 1e30, math.nan]))
    if kind == "length":
        return np.ones(draw(st.sampled_from([0, n + 1])))
    if kind == "2d":
        return np.ones((n, 2))
    weights = draw(real_values((n,), specials=True))
    if n and draw(st.booleans()):
        weights[:] = draw(st.sampled_from([0.0, -1.0, 1e-300, 1e300]))
    return weights.tolist() if kind == "list" else weights


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=estimator_ids)
@given(data=st.data())
def test_fit_on_any_targets_and_sample_weights(Estimator, data):
    n = data.draw(st.integers(1, 10))
    X = data.draw(clean_X(n, data.draw(st.integers(1, 3)), magnitudes=(1e-3, 1.0, 1e3)))
    y = data.draw(any_targets(Estimator, n))
    sample_weight = data.draw(any_sample_weight(n))
    params = fast_params(Estimator)
    params["solver"] = data.draw(st.sampled_from(MLP_SOLVERS if "hidden_layer_sizes" in params else SOLVERS))
    if Estimator is LinearClassifier:
        params["class_weight"] = data.draw(st.sampled_from([None, "balanced", {0: 2.0}, {"a": 1.0, "z": 3.0}]))
        params["loss"] = data.draw(st.sampled_from(CLASSIFIER_LOSSES))
    if Estimator is LinearRegressor:
        params["loss"] = data.draw(st.sampled_from(REGRESSOR_LOSSES))
    est = Estimator(**params)
    fitted, _ = attempt(lambda: est.fit(X, y, sample_weight=sample_weight))
    if fitted:
        check_fitted(est, X)


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=estimator_ids)
@given(data=st.data())
def test_partial_fit_sequences(Estimator, data):
    """Batches with unseen labels, other feature counts and dtypes, missing or changed ``classes``."""
    params = fast_params(Estimator)
    solvers = [s for s in MLP_SOLVERS if s != "lbfgs"] if "hidden_layer_sizes" in params else list(SOLVERS)
    params["solver"] = data.draw(st.sampled_from(solvers))
    params["learning_rate_init"] = data.draw(st.sampled_from([1e-3, 0.1, 1e3]))
    est = Estimator(**params)
    n_features = data.draw(st.integers(1, 3))
    label_set = data.draw(st.sampled_from(LABEL_SETS))
    classes = None
    if is_classifier(Estimator):
        classes = data.draw(st.sampled_from([None, label_set[:2], label_set[:3], label_set]))
    last_good = None
    for _ in range(data.draw(st.integers(1, 4))):
        n = data.draw(st.integers(1, 6))
        m = n_features if data.draw(st.integers(0, 3)) else data.draw(st.integers(0, 4))
        X = data.draw(clean_X(n, m))
        if data.draw(st.integers(0, 4)) == 0:
            X = in_container(with_layout(X, data.draw(st.sampled_from(LAYOUTS))),
                             data.draw(st.sampled_from(CONTAINERS)), data.draw)
        if is_classifier(Estimator):
            y = data.draw(labels(n, label_set=label_set))
        else:
            y = data.draw(real_values((n,), specials=False))
        call_classes = classes if data.draw(st.integers(0, 3)) else data.draw(st.sampled_from([None, label_set]))
        kwargs = {"classes": call_classes} if is_classifier(Estimator) else {}
        was_fitted = last_good is not None
        n_features_before = getattr(est, "n_features_in_", None)
        fitted, _ = attempt(lambda X=X, y=y, kwargs=kwargs: est.partial_fit(X, y, **kwargs))
        if was_fitted and m != n_features_before:
            assert not fitted, f"partial_fit accepted {m} features, fitted with {n_features_before}"
        if was_fitted and is_classifier(Estimator) and fitted:
            assert set(np.unique(y)) <= set(est.classes_), f"labels {np.unique(y)} outside {est.classes_}"
        if fitted:
            check_fitted(est, X)
            last_good = X
        elif last_good is not None:  # a rejected batch leaves a usable model
            check_fitted(est, last_good)


#: Settings changed between a fit and a warm-started fit or partial_fit, by estimator family.
LINEAR_CHANGES = {"solver": list(SOLVERS), "loss": None, "penalty": ["l2", "l1", None], "fit_intercept": [True, False],
                  "learning_rate": ["constant", "adaptive"], "momentum": [0.0, 0.9]}
MLP_CHANGES = {"solver": [s for s in MLP_SOLVERS if s != "lbfgs"], "hidden_layer_sizes": [(2,), (3,), (2, 2)],
               "activation": list(HIDDEN_ACTIVATIONS), "learning_rate": ["constant", "adaptive"],
               "early_stopping": [False, True]}


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=estimator_ids)
@given(data=st.data())
def test_continue_with_changed_settings_and_data(Estimator, data):
    """A warm start, partial_fit or new fit after fit, with other settings, feature counts, dtypes, classes or
    targets; a rejected call keeps the fitted model."""
    mlp = Estimator in (MLPClassifier, MLPRegressor)
    params = fast_params(Estimator)
    n, n_features = 8, data.draw(st.integers(1, 3))
    X = data.draw(clean_X(n, n_features, magnitudes=(1e-3, 1.0, 1e3)))
    if is_classifier(Estimator):
        y = data.draw(balanced_labels(n))
    else:
        y = data.draw(real_values((n,) if data.draw(st.booleans()) else (n, 2), specials=False,
                                  magnitudes=(1.0, 1e3)))
    est = Estimator(**params)
    fitted, error = attempt(lambda: est.fit(X, y), allowed=(NonFiniteTrainingError,))
    if isinstance(error, NonFiniteTrainingError):  # values up to 1e3 can overflow an MLP's first epoch
        assert mlp and "no model to give back" in str(error), error
        return
    assert fitted, f"fit on clean data failed: {error!r}"

    changes = MLP_CHANGES if mlp else {**LINEAR_CHANGES, "loss": list(
        CLASSIFIER_LOSSES if Estimator is LinearClassifier else REGRESSOR_LOSSES)}
    new = {name: data.draw(st.sampled_from(values)) for name, values in changes.items() if data.draw(st.booleans())}
    method = data.draw(st.sampled_from(["fit", "partial_fit", "refit"]))
    est.set_params(warm_start=method == "fit", **new)
    m = n_features if data.draw(st.booleans()) else data.draw(st.integers(1, 4))
    n2 = data.draw(st.integers(1, 8))
    X2 = data.draw(clean_X(n2, m, magnitudes=(1e-3, 1.0, 1e3)))
    if is_classifier(Estimator):
        y2 = data.draw(labels(n2))
    else:
        y2 = data.draw(real_values((n2,) if data.draw(st.booleans()) else (n2, data.draw(st.integers(1, 3))),
                                   specials=False, magnitudes=(1.0, 1e3)))
    note(f"then {method} with {new} on X {X2.dtype} {X2.shape}, y {y2.dtype} {y2.shape}")
    if method == "partial_fit" and not hasattr(est, "partial_fit"):  # lbfgs
        return
    call = getattr(est, "fit" if method == "refit" else method)
    continued, _ = attempt(lambda: call(X2, y2), allowed=(NonFiniteTrainingError,))
    if m != n_features and method != "refit":
        assert not continued, f"{method} continued a model of {n_features} features on {m}"
    if continued:
        check_fitted(est, X2)
    else:  # a rejected call leaves the fitted model as it was
        check_fitted(est, X)
        assert est.n_features_in_ == n_features


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=estimator_ids)
@given(data=st.data())
def test_predict_on_any_X(Estimator, data):
    """A fitted model predicts finite values on anything it accepts."""
    n_features = data.draw(st.integers(1, 3))
    n = 8
    X_train = data.draw(clean_X(n, n_features, magnitudes=(1e-3, 1.0, 1e3)))
    y = data.draw(balanced_labels(n)) if is_classifier(Estimator) else X_train.sum(axis=1)
    params = fast_params(Estimator)
    params["solver"] = data.draw(st.sampled_from(MLP_SOLVERS if "hidden_layer_sizes" in params else SOLVERS))
    if Estimator is LinearClassifier:
        params["loss"] = data.draw(st.sampled_from(CLASSIFIER_LOSSES))
    est = Estimator(**params)
    fitted, error = attempt(lambda: est.fit(X_train, y))
    if isinstance(error, NonFiniteTrainingError):  # an MLP whose first epoch overflowed: no model to predict with
        assert "no model to give back" in str(error), error
        return
    assert fitted, f"fit on clean data failed: {error!r}"
    X, _ = data.draw(any_X(n_features=data.draw(st.sampled_from([n_features, n_features, 0, n_features + 1]))))
    methods = ["predict"] + [m for m in ("decision_function", "predict_proba", "predict_log_proba")
                             if hasattr(est, m)]
    for method in methods:
        ok, result = attempt(lambda method=method: getattr(est, method)(X))
        if not ok:
            continue
        assert result.shape[0] == n_rows(X)
        if method == "predict_log_proba":
            assert not np.any(np.isnan(result)) and np.all(result <= 0)
        elif method != "predict" or not is_classifier(est):
            assert np.all(np.isfinite(result)), f"non-finite {method}: {result}"


# --- optimizers ----------------------------------------------------------------------------------------------

#: Values of every kind for an optimizer's real-valued hyperparameters.
WILD_REALS = [0.0, -0.0, 1e-300, 1e-8, 0.5, 0.9, 0.999, 1.0, 1.5, 1e30, -1e-12, -1.0, math.inf, -math.inf,
              math.nan, "0.1", None, 1j, np.float32(0.5), np.int64(1), np.float16(0.25), True, Fraction(1, 2),
              Decimal("0.1"), [0.5], np.array(0.5), np.array([0.5])]
WILD_FLAGS = [True, False, 0, 1, np.bool_(True), None, "yes"]


@st.composite
def wild_constructor_kwargs(draw, name: str) -> dict[str, Any]:
    signature = inspect.signature(OPTIMIZERS[name].__init__)
    kwargs: dict[str, Any] = {}
    for pname, param in signature.parameters.items():
        if pname == "self" or not draw(st.booleans()):
            continue
        if isinstance(param.default, bool):
            kwargs[pname] = draw(st.sampled_from(WILD_FLAGS))
        elif isinstance(param.default, tuple):
            kwargs[pname] = draw(st.one_of(
                st.lists(st.sampled_from(WILD_REALS), min_size=0, max_size=3).map(tuple),
                st.sampled_from([0.9, "ab", None, np.array([0.9, 0.999]), [0.9, 0.999]])))
        else:
            kwargs[pname] = draw(st.sampled_from(WILD_REALS))
    note(f"{name}({kwargs})")
    return kwargs


#: Hyperparameters for which steps on moderate finite gradients must give finite parameters and state
#: (down to the smallest valid ``eps`` and smoothing constants of 0).
FINITE_VALUES: dict[str, list] = {
    "lr": [0.0, 1e-300, 1e-3, 0.1, 1.0],
    "momentum": [0.0, 0.5, 0.9],
    "dampening": [0.0, 0.5, 1.0],
    "weight_decay": [0.0, 1e-4, 0.1, 1.0],
    "alpha": [0.0, 0.5, 0.99],
    "eps": [1e-300, 1e-8, 1e-3, 1.0],
    "lr_decay": [0.0, 0.1, 1.0],
    "initial_accumulator_value": [0.0, 0.1, 1.0],
}
FINITE_BETAS = [0.0, 0.5, 0.9, 0.999]


@st.composite
def finite_constructor_kwargs(draw, name: str) -> dict[str, Any]:
    signature = inspect.signature(OPTIMIZERS[name].__init__)
    kwargs: dict[str, Any] = {}
    for pname, param in signature.parameters.items():
        if pname == "self":
            continue
        if isinstance(param.default, bool):
            kwargs[pname] = draw(st.booleans())
        elif isinstance(param.default, tuple):
            kwargs[pname] = (draw(st.sampled_from(FINITE_BETAS)), draw(st.sampled_from(FINITE_BETAS)))
        else:
            kwargs[pname] = draw(st.sampled_from(FINITE_VALUES.get(pname, [0.0, 0.5])))
    return kwargs


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
@given(data=st.data())
def test_optimizer_constructor_on_any_hyperparameters(name, data):
    kwargs = data.draw(wild_constructor_kwargs(name))
    built, opt = attempt(lambda: OPTIMIZERS[name](**kwargs))
    if not built:
        return
    for value in opt.get_params().values():  # validated hyperparameters are plain Python values
        assert isinstance(value, bool | float | tuple), f"{name} kept {value!r} of type {type(value).__name__}"
        if isinstance(value, float):
            assert not math.isnan(value)
    params = np.linspace(-1.0, 1.0, 5)
    state = opt.init(params)
    grads = np.linspace(0.5, -0.5, 5)
    stepped, error = attempt(lambda: opt.step(params, grads, state))
    assert stepped, f"a constructed {name} optimizer cannot step: {error!r}"


def wild_array(draw, n: int, dtype, kind: str):
    values = draw(real_values((n,), specials=draw(st.booleans())))
    if kind == "valid":
        return values.astype(dtype)
    if kind == "dtype":
        return as_dtype(values, draw(st.sampled_from(DTYPES)), draw)
    if kind == "2d":
        return values.astype(dtype).reshape(1, -1)
    if kind == "0d":
        return np.array(values[0] if n else 0.0, dtype=dtype)
    if kind == "strided":
        return with_layout(values.astype(dtype), "strided")
    if kind == "readonly":
        return with_layout(values.astype(dtype), "readonly")
    if kind == "list":
        return values.tolist()
    if kind == "size":
        return np.zeros(n + 1, dtype=dtype)
    return None


ARRAY_KINDS = ["dtype", "2d", "0d", "strided", "readonly", "list", "size", "none"]
STEP_OPTIONS: dict[str, list] = {
    "lr": [None, 0.0, 1e-300, 0.1, 1.0, 1e30, math.inf, -1.0, math.nan, "0.1", np.float32(0.1), True, 1j,
           Decimal("0.1")],
    "grad_scale": [1.0, 0.0, -1.0, 0.5, 1e-300, 1e300, math.inf, -math.inf, math.nan, "2", None, np.float64(2.0)],
    "clip_value": [None, 1e-300, 1e-3, 1.0, 1e30, math.inf, 0.0, -1.0, math.nan, "1"],
    "clip_norm": [None, 1e-300, 1e-3, 1.0, 1e30, math.inf, 0.0, -1.0, math.nan, [1.0]],
}
FINITE_STEP_OPTIONS: dict[str, list] = {
    "lr": [None, 0.0, 1e-3, 1.0],
    "grad_scale": [1.0, 0.0, -1.0, 0.5, 1e-3],
    "clip_value": [None, 1e-300, 1e-3, 1.0, 1e30],
    "clip_norm": [None, 1e-300, 1e-3, 1.0, 1e30],
}


@st.composite
def any_state(draw, opt, params):
    kind = draw(st.sampled_from(["init"] * 6 + ["size", "dtype", "other", "none", "dict", "list", "step", "fortran"]))
    note(f"state: {kind}")
    valid = isinstance(params, np.ndarray) and params.dtype in (np.float32, np.float64) and params.ndim == 1
    base = np.array(params if valid else np.zeros(3), copy=True)
    if kind == "init":
        return opt.init(base)
    if kind == "size":
        return opt.init(np.zeros(base.size + 1, dtype=base.dtype))
    if kind == "dtype":
        return opt.init(base.astype(np.float32 if base.dtype == np.float64 else np.float64))
    if kind == "other":
        return OPTIMIZERS[draw(st.sampled_from(OPTIMIZER_NAMES))]().init(base)
    if kind == "none":
        return None
    if kind == "dict":
        return {"slots": opt.init(base).slots, "step": 0}
    if kind == "list":
        return OptimizerState(slots=opt.init(base).slots.tolist())
    if kind == "step":
        return OptimizerState(slots=opt.init(base).slots, step=draw(st.sampled_from([-3, 1.5, 2**70, None])))
    return OptimizerState(slots=np.asfortranarray(opt.init(base).slots))


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
@given(data=st.data())
def test_optimizer_step_on_any_input(name, data):
    """``step`` works or raises a clean error that leaves params and state untouched; steps with finite
    hyperparameters on moderate gradients stay finite."""
    finite = data.draw(st.booleans())
    kwargs = data.draw(finite_constructor_kwargs(name) if finite else wild_constructor_kwargs(name))
    built, opt = attempt(lambda: OPTIMIZERS[name](**kwargs))
    assume(built)
    n = data.draw(st.integers(0, 6))
    dtype = data.draw(st.sampled_from([np.float64, np.float32]))
    params_kind = data.draw(st.one_of(st.just("valid"), st.sampled_from(ARRAY_KINDS)))
    grads_kind = data.draw(st.one_of(st.just("valid"), st.sampled_from(ARRAY_KINDS)))
    params = wild_array(data.draw, n, dtype, params_kind)
    grads = wild_array(data.draw, n, dtype, grads_kind)
    state = data.draw(any_state(opt, params))
    table = FINITE_STEP_OPTIONS if finite else STEP_OPTIONS
    options = {key: data.draw(st.sampled_from(values)) for key, values in table.items() if data.draw(st.booleans())}
    note(f"params {params_kind}: {params!r}\ngrads {grads_kind}: {grads!r}\noptions: {options}")
    params_before = params.copy() if isinstance(params, np.ndarray) else None
    slots_before = state.slots.copy() if isinstance(getattr(state, "slots", None), np.ndarray) else None
    step_before = getattr(state, "step", None)
    moderate = all(isinstance(a, np.ndarray) and a.dtype.kind == "f" and np.all(np.abs(a) <= 1e6)
                   for a in (params, grads))

    stepped, _ = attempt(lambda: opt.step(params, grads, state, **options))
    if not stepped:  # a rejected step changes nothing
        if params_before is not None and params_before.dtype.kind == "f":
            np.testing.assert_array_equal(params, params_before)
        if slots_before is not None:
            np.testing.assert_array_equal(state.slots, slots_before)
        assert getattr(state, "step", None) == step_before
        return
    for a in (params, grads):  # what step accepts: 1-D C-contiguous float arrays of one dtype and shape
        assert isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) and a.ndim == 1, f"accepted {a!r}"
        assert a.flags.c_contiguous and a.shape == params.shape and a.dtype == params.dtype, f"accepted {a!r}"
    assert params.flags.writeable
    for factor in data.draw(st.lists(st.sampled_from([1.0, -0.5, 3.0]), max_size=3)):  # further steps
        grads = np.roll(grads, 1) * grads.dtype.type(factor)
        stepped, error = attempt(lambda grads=grads: opt.step(params, grads, state, **options))
        assert stepped, f"a step that worked once failed the next time: {error!r}"
    if finite and moderate:
        assert np.all(np.isfinite(params)), f"finite inputs gave non-finite params: {params}"
        assert np.all(np.isfinite(state.slots)), f"finite inputs gave non-finite state: {state.slots}"

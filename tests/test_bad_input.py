"""Bad input gets a clear ValueError or TypeError from validation, never a crash."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastgd import LinearClassifier, LinearRegressor, MLPClassifier

X = np.random.default_rng(0).normal(size=(20, 3))
y_class = np.arange(20) % 2
y_reg = X @ [1.0, 2.0, 3.0]


@pytest.mark.parametrize("Estimator,y", [(LinearClassifier, y_class), (LinearRegressor, y_reg)])
@pytest.mark.parametrize(("bad_X", "message"), [
    (np.where(np.eye(20, 3) == 1, np.nan, X), "NaN"),
    (np.where(np.eye(20, 3) == 1, np.inf, X), "infinity"),
    (X[:, 0], "Expected 2D array"),
    (np.empty((0, 3)), "0 sample"),
    (X[:, :0], "0 feature"),
    (X.astype(complex), "Complex"),
    (np.full((20, 3), "a"), "could not convert|string"),
])
def test_bad_X(Estimator, y, bad_X, message):
    with pytest.raises(ValueError, match=message):
        Estimator().fit(bad_X, y)


def test_bad_targets_and_weights():
    with pytest.raises(ValueError, match="NaN"):
        LinearRegressor().fit(X, np.where(np.arange(20) == 3, np.nan, y_reg))
    with pytest.raises(ValueError, match="one class"):
        LinearClassifier().fit(X, np.zeros(20))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        LinearClassifier().fit(X, y_class[:10])
    with pytest.raises(ValueError, match="sample_weight"):
        LinearClassifier().fit(X, y_class, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="Unknown label type"):
        LinearClassifier().fit(X, y_reg)
    with pytest.raises(ValueError, match=r"sample_weight must be non-negative; got min -1"):
        LinearRegressor().fit(X, y_reg, sample_weight=-np.ones(20))


@pytest.mark.parametrize("Estimator", [LinearClassifier, MLPClassifier])
def test_continuous_or_unseen_labels_get_a_short_message(Estimator):
    y_long = np.random.default_rng(1).normal(size=200)  # every value distinct: printed whole, a long message
    X_long = np.random.default_rng(2).normal(size=(200, 3))
    with pytest.raises(ValueError, match="Unknown label type: continuous") as caught:
        Estimator(max_iter=2).fit(X_long, y_long)
    assert len(str(caught.value)) < 300
    fitted = Estimator(max_iter=2).partial_fit(X_long[:20], np.arange(20) % 2, classes=[0, 1])
    with pytest.raises(ValueError, match="Unknown label type: continuous") as caught:
        fitted.partial_fit(X_long, y_long)
    assert len(str(caught.value)) < 300
    with pytest.raises(ValueError, match=r"labels not in classes_: \[2, 3, 4, 5, 6, \.\.\.\] \(198 values\)") as caught:
        fitted.partial_fit(X_long, np.arange(200))
    assert len(str(caught.value)) < 300
    with pytest.raises(ValueError, match=r"classes=\[0, 1, 2, 3, 4, \.\.\.\] \(200 values\) differs") as caught:
        fitted.partial_fit(X_long, np.arange(200) % 2, classes=np.arange(200))
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(("params", "name"), [
    ({"loss": "squared_error"}, "loss"),
    ({"solver": "lbfgs"}, "solver"),
    ({"learning_rate": "linear"}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"),
    ({"learning_rate_init": -1.0}, "learning_rate_init"),
    ({"beta_1": 1.0}, "beta_1"),
    ({"momentum": 1.0}, "momentum"),
    ({"penalty": "l3"}, "penalty"),
    ({"clip_norm": 0.0}, "clip_norm"),
    ({"on_nonfinite": "ignore"}, "on_nonfinite"),
    ({"solver_options": {"amsgrad": True}, "solver": "sgd"}, "solver_options"),
    ({"solver_options": {"momentum": -1.0}}, "momentum"),
    ({"alpha": 0.0}, "alpha > 0"),
])
def test_bad_options_name_the_parameter(params, name):
    with pytest.raises(ValueError, match=name):
        LinearClassifier(**params).fit(X, y_class)


def test_predict_with_other_features_and_unfitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LinearClassifier().predict(X)
    clf = LinearClassifier(max_iter=2, tol=None).fit(X, y_class)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :2])
    with pytest.raises(ValueError, match="features"):
        clf.predict(sp.csr_matrix(X[:, :2]))


def test_failed_fit_keeps_the_fitted_model():
    clf = LinearClassifier(max_iter=2, tol=None, random_state=0).fit(X, y_class)
    coef = clf.coef_.copy()
    with pytest.raises(ValueError):
        clf.fit(np.full_like(X, np.nan), y_class)
    np.testing.assert_array_equal(clf.coef_, coef)


def test_lists_and_fortran_arrays_are_accepted():
    a = LinearClassifier(max_iter=2, tol=None, random_state=0).fit(X.tolist(), y_class.tolist())
    b = LinearClassifier(max_iter=2, tol=None, random_state=0).fit(np.asfortranarray(X), y_class)
    np.testing.assert_allclose(a.coef_, b.coef_)

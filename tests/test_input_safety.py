"""Never silently wrong, never touch the caller's data.

* CSR matrices that scipy allows but that are not canonical (duplicate entries, which add up, and unsorted
  indices) train the model of the matrix they stand for.
* ``fit``, ``partial_fit`` and the predictions leave the caller's ``X``, ``y`` and ``sample_weight`` as they were,
  to the bit (and read-only inputs train).
* ``early_stopping`` holds out the rows ``train_test_split`` picks without copying the training part.
* Inputs that train to nothing say so usefully: huge values name scaling, negative sample weights and
  ``momentum=1`` is refused by the linear models (the MLPs keep scikit-learn's range and warn).
"""

import copy
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import InvalidParameterError

from fastgd import (
    LinearClassifier,
    LinearRegressor,
    MLPClassifier,
    MLPRegressor,
    NonFiniteTrainingError,
    NonFiniteTrainingWarning,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RNG = np.random.default_rng(0)
N, D = 120, 6
X_DENSE = np.where(RNG.random((N, D)) < 0.5, RNG.normal(size=(N, D)), 0.0)
Y_CLASS = (X_DENSE[:, 0] - X_DENSE[:, 1] + 0.3 * RNG.normal(size=N) > 0).astype(np.int64)
Y_REG = X_DENSE @ np.linspace(-1.0, 2.0, D) + 0.1 * RNG.normal(size=N)

ESTIMATORS = {
    "LinearClassifier": (lambda **kw: LinearClassifier(loss="log_loss", batch_size=8, learning_rate="constant",
                                                       learning_rate_init=0.05, max_iter=3, tol=None,
                                                       random_state=0, **kw), Y_CLASS),
    "LinearRegressor": (lambda **kw: LinearRegressor(learning_rate="constant", learning_rate_init=0.02,
                                                     max_iter=3, tol=None, random_state=0, **kw), Y_REG),
    "MLPClassifier": (lambda **kw: MLPClassifier((5,), batch_size=16, learning_rate_init=0.01, max_iter=3,
                                                 random_state=0, **kw), Y_CLASS),
    "MLPRegressor": (lambda **kw: MLPRegressor((5,), batch_size=16, learning_rate_init=0.01, max_iter=3,
                                               random_state=0, **kw), Y_REG),
}


def noncanonical(X, rng, *, readonly=False):
    """A CSR matrix equal to dense ``X`` but not canonical: every non-zero stored as two entries (about a
    third of them not halves), each row's entries in a random column order; arrays read-only if asked."""
    data, indices, indptr = [], [], [0]
    for row in X:
        (cols,) = np.nonzero(row)
        first = np.where(rng.random(cols.size) < 0.3, row[cols] * 0.3, row[cols] * 0.5)
        row_data = np.concatenate([first, row[cols] - first])
        row_cols = np.concatenate([cols, cols])
        shuffled = rng.permutation(row_cols.size)
        data.append(row_data[shuffled])
        indices.append(row_cols[shuffled])
        indptr.append(indptr[-1] + row_cols.size)
    arrays = (np.concatenate(data), np.concatenate(indices).astype(np.int32), np.array(indptr, dtype=np.int32))
    if readonly:
        for a in arrays:
            a.flags.writeable = False
    M = sp.csr_matrix(arrays, shape=X.shape)
    assert not M.has_sorted_indices and not M.has_canonical_format
    return M


def canonical(M):
    """A canonical copy of ``M`` (scipy sums the duplicates)."""
    M = M.copy()
    M.sum_duplicates()
    assert M.has_canonical_format
    return M


def parameters(est):
    if hasattr(est, "coef_"):
        return [est.coef_, est.intercept_]
    return [*est.coefs_, *est.intercepts_]


def outputs(est, X):
    """Every prediction method of ``est`` on ``X``."""
    results = [est.predict(X)]
    for name in ("decision_function", "predict_proba"):
        if hasattr(est, name):
            results.append(getattr(est, name)(X))
    return results


def assert_same_model(a, b, X_a, X_b):
    for p, q in zip(parameters(a), parameters(b), strict=True):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    np.testing.assert_array_equal(a.gradient_norms_, b.gradient_norms_)
    for p, q in zip(outputs(a, X_a), outputs(b, X_b), strict=True):
        np.testing.assert_array_equal(p, q)


# --- 1. duplicate entries and unsorted indices ---------------------------------------------------------------


@pytest.mark.parametrize("name", ESTIMATORS)
def test_duplicate_entries_train_the_model_of_the_summed_matrix(name):
    make, y = ESTIMATORS[name]
    X_dup = noncanonical(X_DENSE, np.random.default_rng(1))
    X_sum = canonical(X_dup)
    assert abs(X_sum - sp.csr_matrix(X_DENSE)).max() < 1e-15  # the matrix the duplicates stand for
    on_dup = make().fit(X_dup, y)
    on_sum = make().fit(X_sum, y)
    assert_same_model(on_dup, on_sum, X_dup, X_sum)
    if name.startswith("MLP"):  # an MLP densifies its rows: CSR and dense train the same bits
        on_dense = make().fit(X_sum.toarray(), y)
        assert_same_model(on_dup, on_dense, X_dup, X_sum.toarray())
    else:  # other kernels for CSR and dense: the same model to round-off
        on_dense = make().fit(X_sum.toarray(), y)
        for p, q in zip(parameters(on_dup), parameters(on_dense), strict=True):
            np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("params", [{}, {"clip_norm": 0.5}, {"penalty": "l1"}])
def test_per_sample_sgd_on_duplicate_entries_matches_dense(params):
    # the sparse per-sample kernels keep each row's squared norm as the sum of its stored squares: duplicates made
    # the gradient norms (and so clipping by norm) wrong, by far more than round-off
    X_dup = noncanonical(X_DENSE, np.random.default_rng(10))

    def make():
        return LinearRegressor(learning_rate="constant", learning_rate_init=0.02, max_iter=3, tol=None,
                               random_state=0, **params)

    # per-sample L1 reaches the weights a step moved: on CSR rows the nonzeros' (scikit-learn's rule), so its
    # reference is the same matrix stored canonically rather than the dense one
    same = canonical(X_dup) if "penalty" in params else X_dup.toarray()
    sparse, reference = make().fit(X_dup, Y_REG), make().fit(same, Y_REG)
    np.testing.assert_allclose(sparse.coef_, reference.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sparse.gradient_norms_, reference.gradient_norms_, rtol=1e-10)
    np.testing.assert_allclose(sparse.predict(X_dup), reference.predict(same), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["LinearClassifier", "MLPRegressor"])
def test_partial_fit_on_duplicate_entries(name):
    make, y = ESTIMATORS[name]
    X_dup = noncanonical(X_DENSE, np.random.default_rng(2))
    kwargs = {"classes": [0, 1]} if name.endswith("Classifier") else {}
    a, b = make(), make()
    for rows in (slice(0, 60), slice(60, N)):
        a.partial_fit(X_dup[rows], y[rows], **kwargs)
        b.partial_fit(canonical(X_dup[rows]), y[rows], **kwargs)
    for p, q in zip(parameters(a), parameters(b), strict=True):
        np.testing.assert_array_equal(p, q)


def test_gather_rows_adds_duplicates_in_any_order():
    import numba

    from fastgd.kernels.dense import gather_rows

    @numba.njit
    def gather(X, order, start, stop, out):
        gather_rows(X, order, start, stop, out)

    X_dup = noncanonical(X_DENSE, np.random.default_rng(3))
    csr = (X_dup.data, X_dup.indices.astype(np.int64), X_dup.indptr.astype(np.int64))
    order = np.random.default_rng(4).permutation(N).astype(np.int64)
    out = np.full((N, D), np.nan)
    gather(csr, order, 0, N, out)
    np.testing.assert_array_equal(out, X_dup.toarray()[order])  # scipy adds duplicates in storage order too


@pytest.mark.cuda
def test_cuda_gather_adds_duplicates_in_any_order():
    from numba import cuda

    from fastgd.cuda import dense

    rows = 5
    X = np.random.default_rng(5).normal(size=(rows, 20))
    X_dup = noncanonical(X, np.random.default_rng(6))  # rows of 40 entries: each thread of a block holds several
    order = np.arange(rows, dtype=np.int64)[::-1].copy()
    x_out = cuda.to_device(np.full((rows, 20), np.nan))
    y_out = cuda.device_array((rows, 1))
    sw_out = cuda.device_array(rows)
    weight_sums = cuda.to_device(np.zeros(1))
    dense.gather_batch_csr(cuda.to_device(X_dup.data), cuda.to_device(X_dup.indices.astype(np.int64)),
                           cuda.to_device(X_dup.indptr.astype(np.int64)), cuda.to_device(np.zeros((rows, 1))),
                           cuda.to_device(np.ones(rows)), cuda.to_device(order), 0, rows, x_out, y_out, sw_out,
                           weight_sums, 0)
    np.testing.assert_array_equal(x_out.copy_to_host(), X_dup.toarray()[order])  # two entries each: exact


@pytest.mark.cuda
def test_cuda_mlp_on_duplicate_entries_matches_dense():
    X = X_DENSE[:18, :4]
    y = Y_CLASS[:18]
    X_dup = noncanonical(X, np.random.default_rng(7))

    def make():
        return MLPClassifier((3,), batch_size=9, max_iter=2, shuffle=False, random_state=0, device="cuda")

    on_dup = make().fit(X_dup, y)
    on_dense = make().fit(X_dup.toarray(), y)
    for p, q in zip(parameters(on_dup), parameters(on_dense), strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)


# --- 2 and 3. the caller's data: never changed, may be read-only ----------------------------------------------


def snapshot(*arrays):
    """Bitwise copies of arrays and of CSR matrices (their three arrays and their sorted-indices flag)."""
    taken = []
    for a in arrays:
        if sp.issparse(a):
            taken.append((a.data.copy(), a.indices.copy(), a.indptr.copy(), a.has_sorted_indices))
        else:
            taken.append(None if a is None else np.array(a, copy=True))
    return taken


def assert_unchanged(before, *arrays):
    for old, new in zip(before, arrays, strict=True):
        if sp.issparse(new):
            data, indices, indptr, flag = old
            np.testing.assert_array_equal(new.data.view(np.uint8), data.view(np.uint8))
            np.testing.assert_array_equal(new.indices, indices)
            np.testing.assert_array_equal(new.indptr, indptr)
            assert new.has_sorted_indices == flag
        elif old is not None:
            np.testing.assert_array_equal(np.asarray(new).view(np.uint8), old.view(np.uint8))


@pytest.mark.parametrize("layout", ["dense", "csr"])
@pytest.mark.parametrize("name", ESTIMATORS)
def test_fit_partial_fit_and_predictions_leave_the_callers_data_alone(name, layout):
    make, y = ESTIMATORS[name]
    X = X_DENSE.astype(np.float32) if layout == "dense" else noncanonical(X_DENSE, np.random.default_rng(8))
    y = y.copy()
    sample_weight = np.linspace(0.5, 2.0, N)  # float64 while X may train in float32: converted, not written
    before = snapshot(X, y, sample_weight)
    kwargs = {"classes": [0, 1]} if name.endswith("Classifier") else {}
    est = make(early_stopping=True).fit(X, y, sample_weight=sample_weight)
    assert_unchanged(before, X, y, sample_weight)
    outputs(est, X)
    assert_unchanged(before, X, y, sample_weight)
    make().partial_fit(X, y, sample_weight=sample_weight, **kwargs).partial_fit(X, y, sample_weight=sample_weight)
    assert_unchanged(before, X, y, sample_weight)
    weights32 = sample_weight.astype(np.float32)  # the training dtype of float32 X: may be used as it is
    before32 = snapshot(weights32)
    make().fit(X, y, sample_weight=weights32)
    assert_unchanged(before32, weights32)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_read_only_inputs_train(name):
    make, y = ESTIMATORS[name]
    X_ro = noncanonical(X_DENSE, np.random.default_rng(9), readonly=True)
    X_rw = noncanonical(X_DENSE, np.random.default_rng(9))  # the same matrix, writeable
    y_ro = y.copy()
    weights = np.linspace(0.5, 2.0, N)
    for a in (y_ro, weights):
        a.flags.writeable = False
    a = make().fit(X_ro, y_ro, sample_weight=weights)  # was: ValueError: WRITEBACKIFCOPY base is read-only
    b = make().fit(X_rw, y, sample_weight=weights.copy())
    assert_same_model(a, b, X_ro, X_rw)
    kwargs = {"classes": [0, 1]} if name.endswith("Classifier") else {}
    make().partial_fit(X_ro, y_ro, **kwargs)

    X_dense = X_DENSE.copy()
    X_dense.flags.writeable = False
    c = make().fit(X_dense, y_ro, sample_weight=weights)
    d = make().fit(X_DENSE.copy(), y, sample_weight=weights.copy())
    assert_same_model(c, d, X_dense, X_DENSE)


# --- 4. early stopping without a copy of the training rows ---------------------------------------------------


def test_linear_early_stopping_holds_out_train_test_split_rows_and_trains_on_the_others():
    X, y = X_DENSE, Y_CLASS
    params = {"loss": "log_loss", "learning_rate": "constant", "learning_rate_init": 0.05, "tol": None}
    epochs = 6
    est = LinearClassifier(**params, early_stopping=True, validation_fraction=0.2, max_iter=epochs,
                           random_state=0).fit(X, y)
    # the reference: scikit-learn's split of the same random state, then the copy of the training part trained
    rng = np.random.RandomState(0)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.2, random_state=rng, stratify=y)
    scores, coefs = [], []
    for e in range(1, epochs + 1):
        ref = LinearClassifier(**params, max_iter=e, random_state=copy.deepcopy(rng)).fit(X_train, y_train)
        scores.append(ref.score(X_val, y_val))
        coefs.append(ref.coef_)
    assert est.validation_scores_ == scores
    assert est.best_validation_score_ == max(scores)
    np.testing.assert_array_equal(est.coef_, coefs[int(np.argmax(scores))])  # the best epoch's parameters
    assert est.n_iter_ == epochs and est.t_ == epochs * len(y_train)


@pytest.mark.parametrize("shuffle", [True, False])
def test_mlp_early_stopping_scores_train_test_split_rows(shuffle):
    X, y = X_DENSE, Y_CLASS
    rng = np.random.RandomState(0)
    rng.uniform(size=(D + 1) * 4 + (4 + 1) * 1)  # the initial weights are drawn first, then the split
    held_out = train_test_split(np.arange(N), test_size=0.25, random_state=rng, stratify=y)[1]
    seen = []

    def record(r):
        seen.append((r.validation_score, float(np.mean(est.predict(X[held_out]) == y[held_out]))))

    est = MLPClassifier((4,), batch_size=16, max_iter=5, n_iter_no_change=100, early_stopping=True,
                        validation_fraction=0.25, shuffle=shuffle, random_state=0, callbacks=[record])
    est.fit(X, y)
    assert len(seen) == est.n_iter_ == len(est.validation_scores_) == 5
    assert [s for s, _ in seen] == [s for _, s in seen] == est.validation_scores_
    assert est.best_validation_score_ == max(est.validation_scores_)
    n_train = N - len(held_out)
    assert est.t_ == 5 * n_train and est.n_updates_ == 5 * -(-n_train // 16)
    # the held-out rows take no part in training: changing them changes the scores only
    X_other = X.copy()
    X_other[held_out] = 10.0 * X_other[held_out] + 1.0
    other = MLPClassifier((4,), batch_size=16, max_iter=5, n_iter_no_change=100, early_stopping=True,
                          validation_fraction=0.25, shuffle=shuffle, random_state=0).fit(X_other, y)
    np.testing.assert_array_equal(other.loss_curve_, est.loss_curve_)


def _peak_traced_bytes(call) -> int:
    """Peak bytes that NumPy and Python allocate during ``call()`` (tracemalloc sees NumPy's array buffers)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("make", [
    lambda: LinearClassifier(loss="log_loss", batch_size=64, max_iter=2, tol=None, early_stopping=True,
                             random_state=0),
    lambda: MLPClassifier((4,), batch_size=64, max_iter=2, early_stopping=True, random_state=0),
], ids=["linear", "mlp"])
def test_early_stopping_copies_the_validation_rows_only(make):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 50))  # 8 MB
    y = (X[:, 0] > 0).astype(np.int64)
    make().fit(X[:200], y[:200])  # kernels loaded and compiled outside the measurement
    peak = _peak_traced_bytes(lambda: make().fit(X, y))
    # the validation copy is a tenth of X, the MLP's prediction workspace 1024 rows (a twentieth); a copy of the
    # training part would be nine tenths more
    assert peak < 0.3 * X.nbytes, f"fit allocated {peak / X.nbytes:.2f} x the data"


@pytest.mark.cuda
def test_cuda_early_stopping_holds_out_the_same_rows():
    X, y = X_DENSE[:24, :4], Y_CLASS[:24]

    def make(device):
        return LinearClassifier(loss="log_loss", batch_size=5, learning_rate="constant", max_iter=2, tol=None,
                                early_stopping=True, validation_fraction=0.25, shuffle=False, random_state=0,
                                device=device)

    cpu, gpu = make("cpu").fit(X, y), make("cuda").fit(X, y)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-9, atol=1e-12)
    assert gpu.validation_scores_ == cpu.validation_scores_


# --- 5. inputs that train to nothing ---------------------------------------------------------------------------


@pytest.mark.parametrize("Estimator", [LinearRegressor, MLPRegressor])
def test_a_huge_value_in_X_names_scaling(Estimator):
    X = X_DENSE.copy()
    X[3, 1] = 1e300
    kwargs = {"hidden_layer_sizes": (3,), "solver": "sgd"} if Estimator is MLPRegressor else {}
    if Estimator is MLPRegressor:  # no finite epoch: no model to give back, an error whatever on_nonfinite says
        with pytest.raises(NonFiniteTrainingError, match=r"X holds values as large as 1e\+300.*StandardScaler"):
            Estimator(max_iter=3, random_state=0, **kwargs).fit(X, Y_REG)
    else:
        with pytest.warns(NonFiniteTrainingWarning, match=r"X holds values as large as 1e\+300.*StandardScaler"):
            Estimator(max_iter=3, random_state=0, **kwargs).fit(X, Y_REG)
    with pytest.raises(NonFiniteTrainingError, match="StandardScaler"):
        Estimator(max_iter=3, random_state=0, on_nonfinite="raise", **kwargs).fit(X, Y_REG)


def test_huge_targets_name_target_scaling():
    with pytest.warns(NonFiniteTrainingWarning, match=r"y holds values as large as .*TransformedTargetRegressor"):
        LinearRegressor(max_iter=3, random_state=0).fit(X_DENSE, Y_REG * 1e300)


def test_divergence_on_unit_scale_data_still_lists_scaling_among_the_cures():
    with pytest.warns(NonFiniteTrainingWarning) as caught, np.errstate(all="ignore"):
        LinearRegressor(learning_rate="constant", learning_rate_init=1e6, max_iter=5, random_state=0).fit(
            X_DENSE, Y_REG)
    (message,) = [str(w.message) for w in caught if w.category is NonFiniteTrainingWarning]
    assert "holds values" not in message and "StandardScaler" in message and "learning_rate_init" in message


@pytest.mark.parametrize("name", ESTIMATORS)
def test_negative_sample_weights_are_rejected(name):
    make, y = ESTIMATORS[name]
    weights = np.ones(N)
    weights[7] = -0.5
    with pytest.raises(ValueError, match=r"sample_weight must be non-negative; got min -0\.5"):
        make().fit(X_DENSE, y, sample_weight=weights)
    kwargs = {"classes": [0, 1]} if name.endswith("Classifier") else {}
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        make().partial_fit(X_DENSE, y, sample_weight=weights, **kwargs)
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        make().fit(X_DENSE, y, sample_weight=-1.0)
    weights[7] = 0.0  # zero weights are fine
    make().fit(X_DENSE, y, sample_weight=weights)


def test_negative_class_weights_are_rejected():
    with pytest.raises(ValueError, match="class_weight must be non-negative"):
        LinearClassifier(class_weight={0: 1.0, 1: -1.0}).fit(X_DENSE, Y_CLASS)


@pytest.mark.parametrize("name", ["LinearClassifier", "LinearRegressor"])
def test_momentum_one_is_rejected_by_the_linear_models(name):
    make, y = ESTIMATORS[name]
    with pytest.raises(InvalidParameterError, match=r"'momentum' parameter .* range \[0(\.0)?, 1(\.0)?\)"):
        make(solver="sgd", momentum=1.0).fit(X_DENSE, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        make(solver="sgd", momentum=0.99).fit(X_DENSE, y)


@pytest.mark.parametrize("name", ["MLPClassifier", "MLPRegressor"])
def test_momentum_one_is_scikit_learns_range_for_the_mlps_with_a_warning(name):
    make, y = ESTIMATORS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(UserWarning, match="momentum=1.0 never lets the velocity decay"):
            make(solver="sgd", momentum=1.0).fit(X_DENSE, y)
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # a UserWarning too
        make(solver="sgd", momentum=0.99).fit(X_DENSE, y)



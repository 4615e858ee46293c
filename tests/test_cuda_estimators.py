"""The estimators on the CUDA backend agree with the CPU backend.

Without a GPU these run in numba's CUDA simulator (tests/conftest.py), one
Python thread per CUDA thread: the data are tiny and the epochs few.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from fastgd import LinearClassifier, LinearRegressor, MLPClassifier, MLPRegressor
from fastgd.cuda import is_available, resolve_device

pytestmark = pytest.mark.cuda

RNG = np.random.RandomState(0)
X = RNG.normal(size=(18, 4))
Y_MULTI = RNG.randint(0, 3, size=18)
Y_BINARY = (X[:, 0] + 0.3 * RNG.normal(size=18) > 0).astype(int)
Y_REG = np.column_stack([X @ [1.0, -2.0, 0.5, 0.0], X[:, 1] - X[:, 2]]) + 0.1 * RNG.normal(size=(18, 2))

TOL = {np.float64: dict(rtol=1e-9, atol=1e-12), np.float32: dict(rtol=2e-4, atol=1e-5)}


def fit_both(make, X, y):
    cpu = make(device="cpu").fit(X, y)
    gpu = make(device="cuda").fit(X, y)
    return cpu, gpu


def assert_mlps_agree(cpu, gpu, dtype):
    assert gpu.device_ == "cuda" and cpu.device_ == "cpu"
    for a, b in zip(cpu.coefs_ + cpu.intercepts_, gpu.coefs_ + gpu.intercepts_, strict=True):
        assert b.dtype == np.dtype(dtype)
        np.testing.assert_allclose(b, a, **TOL[dtype])
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, **TOL[dtype])
    np.testing.assert_allclose(gpu.gradient_norms_, cpu.gradient_norms_, **TOL[dtype])
    assert gpu.n_iter_ == cpu.n_iter_ and gpu.t_ == cpu.t_


# every optimizer's CUDA kernel is checked against the CPU's in tests/test_cuda_optim.py: here each solver once
@pytest.mark.parametrize(("solver", "dtype"), [("adam", np.float32), ("sgd", np.float64), ("rmsprop", np.float64),
                                               ("adamw", np.float32), ("adagrad", np.float64)])
def test_mlp_classifier_epochs_match_cpu(solver, dtype):
    def make(device):
        return MLPClassifier((5, 3), activation="tanh", solver=solver, batch_size=9, max_iter=2, shuffle=False,
                             learning_rate_init=0.05, random_state=0, device=device)

    cpu, gpu = fit_both(make, X.astype(dtype), Y_MULTI)
    assert_mlps_agree(cpu, gpu, dtype)
    np.testing.assert_array_equal(gpu.predict(X.astype(dtype)), cpu.predict(X.astype(dtype)))


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "logistic", "identity"])
def test_mlp_activations_and_binary_output_match_cpu(activation):
    def make(device):
        return MLPClassifier((6,), activation=activation, batch_size=9, max_iter=2, shuffle=False, alpha=0.01,
                             learning_rate_init=0.05, random_state=1, device=device)

    assert_mlps_agree(*fit_both(make, X, Y_BINARY), np.float64)


def test_mlp_regressor_clipping_sparse_and_sample_weight_match_cpu():
    def make(device):
        return MLPRegressor((4,), solver="sgd", batch_size=6, max_iter=2, shuffle=False, clip_norm=0.5,
                            clip_value=0.2, random_state=2, device=device)

    Xs = sp.csr_matrix(np.where(np.abs(X) > 0.7, X, 0.0))
    weights = RNG.uniform(0.5, 2.0, size=18)
    cpu = make("cpu").fit(Xs, Y_REG, sample_weight=weights)
    gpu = make("cuda").fit(Xs, Y_REG, sample_weight=weights)
    assert_mlps_agree(cpu, gpu, np.float64)


def test_mlp_multilabel_and_lbfgs_match_cpu():
    Y = np.column_stack([Y_BINARY, Y_MULTI == 1])

    def make(device):
        return MLPClassifier((4,), solver="lbfgs", max_iter=5, random_state=3, device=device)

    cpu, gpu = fit_both(make, X, Y)
    for a, b in zip(cpu.coefs_, gpu.coefs_, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("loss", ["log_loss", "hinge", "modified_huber"])
def test_linear_classifier_epochs_match_cpu(loss):
    def make(device):
        return LinearClassifier(loss=loss, solver="adam", batch_size=6, max_iter=2, shuffle=False, tol=None,
                                learning_rate_init=0.05, device=device)

    for y in (Y_BINARY, Y_MULTI):
        cpu, gpu = fit_both(make, X, y)
        np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gpu.intercept_, cpu.intercept_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-9)
        np.testing.assert_allclose(gpu.gradient_norms_, cpu.gradient_norms_, rtol=1e-9)


def test_linear_regressor_penalties_and_clipping_match_cpu():
    def make(device):
        return LinearRegressor(loss="huber", solver="sgd", momentum=0.9, penalty="elasticnet", alpha=0.01,
                               batch_size=6, max_iter=2, shuffle=False, tol=None, clip_norm=0.3,
                               fit_intercept=False, device=device)

    cpu, gpu = fit_both(make, X.astype(np.float32), Y_REG[:, 0])
    assert gpu.coef_.dtype == np.float32
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=2e-4, atol=1e-5)
    np.testing.assert_array_equal(gpu.intercept_, 0.0)


def test_sparse_steps_agree_with_the_device_and_lazy_updates_stay_on_the_cpu():
    """Adagrad without penalty on wide CSR rows: the CPU steps only the rows' nonzero features (its exact rule),
    the device every weight, to the same model; the lazy rule is the CPU's alone, and says so."""
    wide = sp.hstack([sp.csr_matrix(X), sp.csr_matrix((X.shape[0], 60))], format="csr")

    def make(device, **kw):
        return LinearClassifier(loss="log_loss", solver="adagrad", alpha=0.0, max_iter=2, shuffle=False, tol=None,
                                learning_rate="constant", device=device, **kw)

    cpu, gpu = fit_both(make, wide, Y_BINARY)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, **TOL[np.float64])
    with pytest.raises(ValueError, match="lazy_updates"):
        make("cuda", lazy_updates=True).fit(wide, Y_BINARY)


def test_linear_per_sample_l1_is_the_cumulative_penalty_as_on_cpu():
    def make(device):  # momentum: the update moves every weight on both backends, so both penalise them all
        return LinearClassifier(loss="log_loss", momentum=0.5, penalty="elasticnet", l1_ratio=0.7, alpha=0.1,
                                learning_rate="constant", learning_rate_init=0.1, batch_size=1, max_iter=2,
                                shuffle=False, tol=None, device=device)

    cpu, gpu = fit_both(make, X, Y_BINARY)
    assert (cpu.coef_ == 0).any()  # the penalty zeroed weights
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gpu.intercept_, cpu.intercept_, rtol=1e-9, atol=1e-12)


def test_device_shuffle_is_reproducible_and_trains():
    def make():
        return MLPClassifier((5,), batch_size=9, max_iter=3, random_state=4, device="cuda")

    first, second = make().fit(X, Y_MULTI), make().fit(X, Y_MULTI)
    for a, b in zip(first.coefs_, second.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert first.loss_curve_[-1] < first.loss_curve_[0]


def test_auto_picks_the_gpu_when_usable(capsys):
    model = LinearClassifier(max_iter=1, batch_size=9, device="auto", verbose=1).fit(X, Y_BINARY)
    assert model.device_ == ("cuda" if is_available() else "cpu")
    assert "device='auto' runs on the" in capsys.readouterr().out


def test_partial_fit_continues_on_the_device():
    model = MLPClassifier((4,), batch_size=9, random_state=0, device="cuda")
    model.partial_fit(X, Y_MULTI, classes=[0, 1, 2])
    reference = MLPClassifier((4,), batch_size=9, random_state=0, shuffle=False, device="cpu")
    reference.partial_fit(X, Y_MULTI, classes=[0, 1, 2])
    assert model.t_ == reference.t_ == 18
    model.partial_fit(X, Y_MULTI)
    assert model.t_ == 36 and np.isfinite(model.coefs_[0]).all()


def test_unknown_device_is_rejected():
    with pytest.raises(ValueError, match="device"):
        LinearClassifier(device="gpu").fit(X, Y_BINARY)


@pytest.mark.skipif(os.path.exists("/dev/nvidia0"), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_says_how_to_fix_it():
    code = ("from fastgd.cuda import resolve_device\n"
            "try:\n    resolve_device('cuda')\nexcept RuntimeError as e:\n    print('ERROR', e)\n"
            "print('auto ->', resolve_device('auto'))")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    assert "ERROR device='cuda' was requested" in out and "device='cpu'" in out
    assert "auto -> cpu" in out
    assert resolve_device("cpu") == "cpu"


def test_a_numba_cuda_that_cannot_compile_is_reported_before_any_fit(monkeypatch, capsys):
    """numba-cuda 0.30.4 under NumPy 2.5 fails at its first compile (np.row_stack is gone): seen on an H200."""
    import fastgd.cuda

    def broken():
        raise AttributeError("module 'numpy' has no attribute 'row_stack'")

    monkeypatch.setattr(fastgd.cuda, "_import_compiler", broken)
    reason = fastgd.cuda.unavailable_reason()
    assert "row_stack" in reason and 'pip install "numpy<2.5"' in reason
    with pytest.raises(RuntimeError, match="cannot compile kernels with NumPy"):
        MLPClassifier((3,), max_iter=1, device="cuda").fit(X, Y_MULTI)
    model = LinearClassifier(max_iter=1, batch_size=9, device="auto", verbose=1).fit(X, Y_BINARY)
    assert model.device_ == "cpu" and "numpy<2.5" in capsys.readouterr().out


def test_nonfinite_training_on_the_device_restores_the_last_good_epoch():
    from fastgd import NonFiniteTrainingWarning

    model = MLPRegressor((4,), solver="sgd", learning_rate_init=1e6, batch_size=9, max_iter=3, shuffle=False,
                         random_state=0, device="cuda")
    with pytest.warns(NonFiniteTrainingWarning):
        model.fit(X, Y_REG * 1e3)
    assert all(np.isfinite(c).all() for c in model.coefs_ + model.intercepts_)
    assert all(np.isfinite(model.loss_curve_))


def test_a_model_fitted_on_the_device_pickles_and_predicts_on_the_cpu():
    import pickle

    model = LinearRegressor(solver="adam", batch_size=9, max_iter=2, tol=None, device="cuda").fit(X, Y_REG[:, 0])
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict(X), model.predict(X))
    np.testing.assert_allclose(model.predict(X), X @ model.coef_ + model.intercept_, rtol=1e-12)

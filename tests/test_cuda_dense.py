"""The dense CUDA kernels (fastgd.cuda.dense) against plain-NumPy transcriptions and the CPU kernels.

Without a GPU these run in numba's CUDA simulator (tests/conftest.py), where every CUDA thread is a Python thread:
the shapes are tiny but ragged (several tiles of ``TILE`` with partial edges, more rows than a block of ``BLOCK``
threads), so every boundary branch runs. ``pytest -m cuda`` runs them on a GPU.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numba import cuda

from fastgd.cuda import dense
from fastgd.kernels import dense as cpu_dense
from fastgd.kernels import losses as cpu_losses
from fastgd.kernels.activations import LEAKY_SLOPE, Activation
from fastgd.kernels.losses import Loss, OutputLoss

pytestmark = pytest.mark.cuda

DTYPES = (np.float32, np.float64)
ELEMENTWISE = (Activation.IDENTITY, Activation.LOGISTIC, Activation.TANH, Activation.RELU, Activation.LEAKY_RELU)
SHAPES = ((1, 1, 1), (5, 3, 7), (17, 9, 18), (1, 9, 6))  # (M, K, N) of op(A) @ op(B)


@pytest.fixture(autouse=True, scope="module")
def _fast_thread_switches():
    """The simulator's block barriers wait for Python's thread switch interval: a shorter one halves the run time."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(5e-4)
    yield
    sys.setswitchinterval(previous)


def _tol(dtype):
    return {"rtol": 2e-5, "atol": 2e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}


def _act(code, z):
    """NumPy transcription of the element-wise activations (fastgd/kernels/activations.py)."""
    z = np.asarray(z, dtype=np.float64)
    if code == Activation.LOGISTIC:
        return 1.0 / (1.0 + np.exp(-z))
    if code == Activation.TANH:
        return np.tanh(z)
    if code == Activation.RELU:
        return np.maximum(z, 0.0)
    if code == Activation.LEAKY_RELU:
        return np.where(z > 0, z, LEAKY_SLOPE * z)
    return z


def _act_derivative(code, a):
    """Derivative of the activation from its output ``a``."""
    a = np.asarray(a, dtype=np.float64)
    if code == Activation.LOGISTIC:
        return a * (1.0 - a)
    if code == Activation.TANH:
        return 1.0 - a * a
    if code == Activation.RELU:
        return (a > 0).astype(np.float64)
    if code == Activation.LEAKY_RELU:
        return np.where(a > 0, 1.0, LEAKY_SLOPE)
    return np.ones_like(a)


def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _dev(array):
    return cuda.to_device(np.ascontiguousarray(array))


# ---------------------------------------------------------------------------------------------------------------
# matrix products


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matmul_every_transpose(shape, dtype):
    m, k, n = shape
    rng = np.random.default_rng(m * 100 + n)
    A = rng.normal(size=(m, k)).astype(dtype)
    B = rng.normal(size=(k, n)).astype(dtype)
    expected = A.astype(np.float64) @ B.astype(np.float64)
    for trans_a in (False, True):
        for trans_b in (False, True):
            C = cuda.to_device(np.full((m, n), np.nan, dtype=dtype))
            dense.matmul(_dev(A.T if trans_a else A), _dev(B.T if trans_b else B), C, trans_a=trans_a,
                         trans_b=trans_b)
            got = C.copy_to_host()
            assert got.dtype == dtype
            np.testing.assert_allclose(got, expected, **_tol(dtype), err_msg=f"trans_a={trans_a} trans_b={trans_b}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_activation_epilogue_every_code(dtype):
    rng = np.random.default_rng(1)
    A = rng.normal(size=(6, 5)).astype(dtype)
    B = rng.normal(size=(5, 9)).astype(dtype)
    bias = rng.normal(size=9).astype(dtype)
    A_d, B_d, bias_d = _dev(A), _dev(B), _dev(bias)
    pre = A.astype(np.float64) @ B + bias
    for code in ELEMENTWISE:
        C = cuda.device_array((6, 9), dtype=dtype)
        dense.matmul(A_d, B_d, C, epilogue=dense.EPILOGUE_BIAS_ACT, bias=bias_d, code=code)
        np.testing.assert_allclose(C.copy_to_host(), _act(code, pre), **_tol(dtype), err_msg=f"code {code}")


def test_logistic_epilogue_is_stable_for_large_inputs():
    A = np.array([[1.0], [1.0]])
    B = np.array([[800.0, -800.0, 0.0]])
    C = cuda.device_array((2, 3))
    dense.matmul(_dev(A), _dev(B), C, epilogue=dense.EPILOGUE_BIAS_ACT, bias=_dev(np.zeros(3)),
                 code=Activation.LOGISTIC)
    np.testing.assert_array_equal(C.copy_to_host(), [[1.0, 0.0, 0.5]] * 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_derivative_and_add_scaled_epilogues(dtype):
    rng = np.random.default_rng(2)
    A = rng.normal(size=(7, 5)).astype(dtype)
    B = rng.normal(size=(5, 6)).astype(dtype)
    D = rng.normal(size=(7, 6)).astype(dtype)
    A_d, B_d, D_d = _dev(A), _dev(B), _dev(D)
    product = A.astype(np.float64) @ B
    for code in ELEMENTWISE:
        E = _act(code, rng.normal(size=(7, 6))).astype(dtype)  # activation values, zeros included for relu
        C = cuda.device_array((7, 6), dtype=dtype)
        dense.matmul(A_d, B_d, C, epilogue=dense.EPILOGUE_DERIVATIVE, code=code, E=_dev(E))
        np.testing.assert_allclose(C.copy_to_host(), product * _act_derivative(code, E), **_tol(dtype),
                                   err_msg=f"code {code}")
    C = cuda.device_array((7, 6), dtype=dtype)
    dense.matmul(A_d, B_d, C, epilogue=dense.EPILOGUE_ADD_SCALED, alpha=0.3, D=D_d)
    np.testing.assert_allclose(C.copy_to_host(), product + dtype(0.3) * D.astype(np.float64), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_wrappers_on_views_of_flat_parameters(dtype):
    """The trainers' use: weights and biases are reshaped slices of one flat device vector."""
    rng = np.random.default_rng(3)
    n_rows, n_in, n_out = 6, 5, 7
    flat = rng.normal(size=3 + n_in * n_out + n_out + 2).astype(dtype)
    params = cuda.to_device(flat)
    W = params[3:3 + n_in * n_out].reshape(n_in, n_out)
    bias = params[3 + n_in * n_out:3 + (n_in + 1) * n_out]
    W_h = flat[3:3 + n_in * n_out].reshape(n_in, n_out).astype(np.float64)
    b_h = flat[3 + n_in * n_out:3 + (n_in + 1) * n_out].astype(np.float64)
    A_in = rng.normal(size=(n_rows, n_in)).astype(dtype)
    A_in_d = _dev(A_in)
    tol = _tol(dtype)

    out = cuda.device_array((n_rows, n_out), dtype=dtype)
    dense.dense_forward(A_in_d, W, bias, Activation.TANH, out)
    np.testing.assert_allclose(out.copy_to_host(), np.tanh(A_in @ W_h + b_h), **tol)

    # linear layout: W_t of shape (n_out, n_in)
    W_t = params[3:3 + n_in * n_out].reshape(n_out, n_in)
    W_t_h = W_h.reshape(n_out, n_in)
    dense.dense_forward_transposed(A_in_d, W_t, bias, Activation.IDENTITY, out)
    np.testing.assert_allclose(out.copy_to_host(), A_in @ W_t_h.T + b_h, **tol)

    delta = rng.normal(size=(n_rows, n_out)).astype(dtype)
    delta_d = _dev(delta)
    gW = cuda.device_array((n_in, n_out), dtype=dtype)
    dense.weight_gradient(A_in_d, delta_d, W, 0.25, gW)
    np.testing.assert_allclose(gW.copy_to_host(), A_in.T.astype(np.float64) @ delta + 0.25 * W_h, **tol)

    gW_t = cuda.device_array((n_out, n_in), dtype=dtype)
    dense.weight_gradient_transposed(A_in_d, delta_d, W_t, 0.5, gW_t)
    np.testing.assert_allclose(gW_t.copy_to_host(), delta.T.astype(np.float64) @ A_in + 0.5 * W_t_h, **tol)

    A_below = np.maximum(rng.normal(size=(n_rows, n_in)), 0).astype(dtype)  # relu outputs, with zeros
    delta_in = cuda.device_array((n_rows, n_in), dtype=dtype)
    dense.backprop_delta(delta_d, W, _dev(A_below), Activation.RELU, delta_in)
    np.testing.assert_allclose(delta_in.copy_to_host(), (delta.astype(np.float64) @ W_h.T) * (A_below > 0), **tol)

    gb = params[3 + n_in * n_out:3 + (n_in + 1) * n_out]  # a view, as a gradient slice would be
    dense.column_sums(delta_d, gb)
    np.testing.assert_allclose(gb.copy_to_host(), delta.astype(np.float64).sum(axis=0), **tol)
    untouched = params.copy_to_host()
    np.testing.assert_array_equal(untouched[:3], flat[:3])
    np.testing.assert_array_equal(untouched[-2:], flat[-2:])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_rows", (1, 7))
def test_weight_gradients_with_fused_bias_gradients(n_rows, dtype):
    """``gb`` comes from the same launch: an extra row (column) of ones, also where it needs a block of its own."""
    rng = np.random.default_rng(n_rows)
    n_in, n_out = 2 * dense.TILE, 2 * dense.TILE + 1  # n_in a multiple of TILE: the ones row gets a new tile
    A_in = rng.normal(size=(n_rows, n_in)).astype(dtype)
    delta = rng.normal(size=(n_rows, n_out)).astype(dtype)
    W = rng.normal(size=(n_in, n_out)).astype(dtype)
    A_in_d, delta_d = _dev(A_in), _dev(delta)
    tol = _tol(dtype)
    bias_ref = delta.astype(np.float64).sum(axis=0)

    gW = cuda.device_array((n_in, n_out), dtype=dtype)
    gb = cuda.to_device(np.full(n_out, np.nan, dtype=dtype))
    dense.weight_gradient(A_in_d, delta_d, _dev(W), 0.5, gW, gb=gb)
    np.testing.assert_allclose(gW.copy_to_host(), A_in.T.astype(np.float64) @ delta + 0.5 * W, **tol)
    np.testing.assert_allclose(gb.copy_to_host(), bias_ref, **tol)

    W_t = rng.normal(size=(n_out, n_in)).astype(dtype)
    gW_t = cuda.device_array((n_out, n_in), dtype=dtype)
    gb = cuda.to_device(np.full(n_out, np.nan, dtype=dtype))
    dense.weight_gradient_transposed(A_in_d, delta_d, _dev(W_t), 0.25, gW_t, gb=gb)
    np.testing.assert_allclose(gW_t.copy_to_host(), delta.T.astype(np.float64) @ A_in + 0.25 * W_t, **tol)
    np.testing.assert_allclose(gb.copy_to_host(), bias_ref, **tol)


def test_column_sums_of_one_row_and_of_many():
    for rows in (1, 11):
        M = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
        out = cuda.device_array(3, dtype=np.float32)
        dense.column_sums(_dev(M), out)
        np.testing.assert_array_equal(out.copy_to_host(), M.sum(axis=0))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_layer_squared_norms_in_one_launch_match_numpy(dtype):
    """Per-layer and total gradient norms and the weights' L2 sum of an MLP 5-19-3-2, against NumPy slices."""
    from fastgd.backends.cpu_mlp import layer_offsets

    units = np.array([5, 19, 3, 2])
    offsets = layer_offsets(units)
    n_params = int(sum((units[i] + 1) * units[i + 1] for i in range(3)))
    rng = np.random.default_rng(3)
    params = (rng.standard_normal(n_params) * 3).astype(dtype)
    grads = rng.standard_normal(n_params).astype(dtype)
    bounds = dense.layer_bounds(offsets, units)
    weight_sq, total_sq = _dev(np.array([0.0, 1.5])), _dev(np.array([0.0, 2.5]))
    layer_sq = _dev(np.full(6, 0.5))
    dense.layer_squared_norms(_dev(params), _dev(grads), bounds, weight_sq, layer_sq, total_sq, 1)
    p64, g64 = params.astype(np.float64), grads.astype(np.float64)
    layer_ref, weight_ref = [], 0.0
    for i in range(3):
        lo, n_in, n_out = int(offsets[i]), int(units[i]), int(units[i + 1])
        layer_ref.append(np.sum(g64[lo:lo + (n_in + 1) * n_out] ** 2))
        weight_ref += np.sum(p64[lo:lo + n_in * n_out] ** 2)  # weights only: the biases follow them
    np.testing.assert_allclose(layer_sq.copy_to_host(), [0.5] * 3 + [0.5 + v for v in layer_ref], rtol=1e-13)
    np.testing.assert_allclose(total_sq.copy_to_host(), [0.0, 2.5 + np.sum(g64 ** 2)], rtol=1e-13)
    np.testing.assert_allclose(weight_sq.copy_to_host(), [0.0, 1.5 + weight_ref], rtol=1e-13)
    with pytest.raises(ValueError, match="layer_sq has 6 entries"):
        dense.layer_squared_norms(_dev(params), _dev(grads), bounds, weight_sq, layer_sq, total_sq, 2)


def test_wrong_inputs_are_refused_before_any_launch():
    A = cuda.device_array((3, 4))
    B = cuda.device_array((4, 2))
    C = cuda.device_array((3, 2))
    with pytest.raises(TypeError, match="device array"):
        dense.matmul(np.zeros((3, 4)), B, C)
    with pytest.raises(TypeError, match="same dtype"):
        dense.matmul(A, cuda.device_array((4, 2), dtype=np.float32), C)
    with pytest.raises(ValueError, match="shapes do not agree"):
        dense.matmul(A, B, C, trans_a=True)
    with pytest.raises(ValueError, match="row-wise"):
        dense.dense_forward(A, B, cuda.device_array(2), Activation.SOFTMAX, C)
    with pytest.raises(ValueError, match="bias"):
        dense.matmul(A, B, C, epilogue=dense.EPILOGUE_BIAS_ACT)
    with pytest.raises(ValueError, match="not both"):
        dense.matmul(A, B, C, b_column_sums=cuda.device_array(2), a_row_sums=cuda.device_array(3))
    with pytest.raises(ValueError, match="b_column_sums must have shape"):
        dense.matmul(A, B, C, b_column_sums=cuda.device_array(3))


def test_small_grid_warnings_of_numba_cuda_are_ignored_and_others_are_not():
    class PerformanceWarning(Warning):
        pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dense.ignore_small_grid_warnings()
        warnings.warn(PerformanceWarning("Grid size 3 will likely result in GPU under-utilization due to low "
                                         "occupancy."), stacklevel=1)
        warnings.warn(PerformanceWarning("Host array used in CUDA kernel will incur copy overhead"), stacklevel=1)
    assert [str(w.message) for w in caught] == ["Host array used in CUDA kernel will incur copy overhead"]


# ---------------------------------------------------------------------------------------------------------------
# output steps


MLP_CASES = (  # (out_code, loss_kind, n_out)
    (Activation.IDENTITY, OutputLoss.SQUARED_ERROR, 2),
    (Activation.SOFTMAX, OutputLoss.LOG_LOSS, 4),
    (Activation.LOGISTIC, OutputLoss.BINARY_LOG_LOSS, 1),
    (Activation.LOGISTIC, OutputLoss.BINARY_LOG_LOSS, 3),  # multilabel
)


def _mlp_case(out_code, loss_kind, n_out, dtype, n_rows=11):
    rng = np.random.default_rng(out_code * 10 + n_out)
    Z = rng.normal(scale=3.0, size=(n_rows, n_out))
    if out_code == Activation.SOFTMAX:
        Z[0, 1:3] += (999.0, 1000.0)  # needs the max shift (not the first element: the shift is the row's max)
        Z[1, 0] = 60.0  # a probability of 1 up to round-off: the eps clipping of the loss
        Y = np.eye(n_out)[rng.integers(n_out, size=n_rows)]
        Y[1] = np.eye(n_out)[1]
    elif out_code == Activation.LOGISTIC:
        Z[0, 0] = 40.0  # p = 1 (clipped) with y = 0
        Y = rng.integers(2, size=(n_rows, n_out)).astype(np.float64)
        Y[0, 0] = 0.0
    else:
        Y = rng.normal(size=(n_rows, n_out))
    sw = rng.uniform(0.5, 2.0, size=n_rows)
    return Z.astype(dtype), Y.astype(dtype), sw.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MLP_CASES, ids=lambda case: f"out{case[0]}-loss{case[1]}-k{case[2]}")
def test_mlp_output_delta_matches_the_cpu_output_step(case, dtype):
    out_code, loss_kind, n_out = case
    Z, Y, sw = _mlp_case(out_code, loss_kind, n_out, dtype)
    if out_code == Activation.SOFTMAX:
        P = _softmax(Z)
    else:
        P = _act(out_code, Z)
    P = P.astype(dtype)
    delta_ref = np.empty_like(P)
    loss_ref = cpu_dense.output_delta(P, Y, sw, int(loss_kind), delta_ref)

    Z_d = _dev(Z)
    delta = cuda.device_array(Z.shape, dtype=dtype)
    loss_sums = _dev(np.array([7.0, 0.5, -3.0]))
    dense.mlp_output_delta(Z_d, _dev(Y), _dev(sw), out_code, loss_kind, delta, loss_sums, 1)
    tol = _tol(dtype)
    np.testing.assert_allclose(Z_d.copy_to_host(), P, **tol)
    np.testing.assert_allclose(delta.copy_to_host(), delta_ref, **tol)
    if loss_kind == OutputLoss.SQUARED_ERROR:
        loss_ref /= 0.5 / n_out  # the caller applies scikit-learn's factor
    sums = loss_sums.copy_to_host()
    assert sums[0] == 7.0 and sums[2] == -3.0
    np.testing.assert_allclose(sums[1], 0.5 + loss_ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert np.isfinite(sums[1])


def test_mlp_loss_sums_accumulate_over_launches():
    Z, Y, sw = _mlp_case(Activation.IDENTITY, OutputLoss.SQUARED_ERROR, 2, np.float64, n_rows=3)
    loss_sums = _dev(np.zeros(1))
    delta = cuda.device_array(Z.shape)
    for _ in range(2):
        dense.mlp_output_delta(_dev(Z), _dev(Y), _dev(sw), Activation.IDENTITY, OutputLoss.SQUARED_ERROR, delta,
                               loss_sums, 0)
    expected = 2 * np.sum(sw[:, None] * (Y - Z) ** 2)  # twice, unscaled
    np.testing.assert_allclose(loss_sums.copy_to_host()[0], expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_output_activation_softmax_and_logistic(dtype):
    rng = np.random.default_rng(4)
    Z = rng.normal(scale=5.0, size=(9, 3)).astype(dtype)
    Z[2, 1] += 500.0
    cases = ((Activation.SOFTMAX, _softmax(Z)), (Activation.LOGISTIC, _act(Activation.LOGISTIC, Z)),
             (Activation.IDENTITY, Z))
    for code, expected in cases:
        Z_d = _dev(Z)
        dense.output_activation(Z_d, code)
        np.testing.assert_allclose(Z_d.copy_to_host(), expected, **_tol(dtype), err_msg=f"code {code}")


MARGIN_CODES = (Loss.LOG_LOSS, Loss.HINGE, Loss.SQUARED_HINGE, Loss.MODIFIED_HUBER,
                Loss.PERCEPTRON)
RESIDUAL_CODES = (Loss.SQUARED_ERROR, Loss.HUBER, Loss.EPSILON_INSENSITIVE)


def _linear_case(loss_code, dtype, n_rows=11):
    rng = np.random.default_rng(loss_code)
    if loss_code == Loss.MULTINOMIAL:
        Z = rng.normal(scale=3.0, size=(n_rows, 4))
        Z[0, 2] += 2000.0  # needs the max shift, even in float64
        Y = rng.integers(4, size=(n_rows, 1)).astype(np.float64)
    elif loss_code in MARGIN_CODES:
        Z = rng.uniform(-3.0, 3.0, size=(n_rows, 3))  # margins below -1, within [-1, 1] and above 1
        Z[0] = [40.0, -40.0, 0.0]
        Y = rng.choice([-1.0, 1.0], size=(n_rows, 3))
    else:
        Y = rng.normal(size=(n_rows, 2))
        Z = Y + rng.uniform(-1.0, 1.0, size=(n_rows, 2))  # residuals on both sides of epsilon
    sw = rng.uniform(0.5, 2.0, size=n_rows)
    return Z.astype(dtype), Y.astype(dtype), sw.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss_code", (*MARGIN_CODES, *RESIDUAL_CODES, Loss.MULTINOMIAL))
def test_linear_output_delta_matches_the_cpu_losses(loss_code, dtype):
    epsilon = 0.3
    Z, Y, sw = _linear_case(loss_code, dtype)
    dz_ref = np.empty_like(Z)
    loss_ref = 0.0
    for i in range(Z.shape[0]):
        row_loss = cpu_losses.output_loss(int(loss_code), Z[i], Y[i], dz_ref[i], epsilon)
        dz_ref[i] *= sw[i]
        loss_ref += sw[i] * row_loss

    dZ = cuda.device_array(Z.shape, dtype=dtype)
    loss_sums = _dev(np.array([1.0, 2.0]))
    Z_d = _dev(Z)
    dense.linear_output_delta(Z_d, _dev(Y), _dev(sw), loss_code, epsilon, dZ, loss_sums, 1)
    tol = _tol(dtype)
    np.testing.assert_allclose(dZ.copy_to_host(), dz_ref, **tol)
    sums = loss_sums.copy_to_host()
    assert sums[0] == 1.0
    np.testing.assert_allclose(sums[1], 2.0 + loss_ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(Z_d.copy_to_host(), Z)  # decision values are not modified


# ---------------------------------------------------------------------------------------------------------------
# batches


def _gather_data(dtype):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(13, 5)).astype(dtype)
    X[X < 0.3] = 0.0  # sparse enough for a CSR copy
    Y = rng.normal(size=(13, 2)).astype(dtype)
    sw = rng.uniform(0.5, 2.0, size=13).astype(dtype)
    order = rng.permutation(13).astype(np.int64)
    return X, Y, sw, order


def _check_gather(x_out, y_out, sw_out, weight_sums, X, Y, sw, order, start, stop):
    b = stop - start
    rows = order[start:stop]
    got_x, got_y, got_sw = x_out.copy_to_host(), y_out.copy_to_host(), sw_out.copy_to_host()
    np.testing.assert_array_equal(got_x[:b], X[rows])
    np.testing.assert_array_equal(got_y[:b], Y[rows])
    np.testing.assert_array_equal(got_sw[:b], sw[rows])
    assert np.all(got_x[b:] == -7.0) and np.all(got_y[b:] == -7.0) and np.all(got_sw[b:] == -7.0)
    sums = weight_sums.copy_to_host()
    assert sums[0] == 3.0
    np.testing.assert_allclose(sums[1], 0.25 + sw[rows].astype(np.float64).sum(), rtol=1e-12)


def _buffers(dtype, rows, n_features, n_targets):
    fill = dtype(-7.0)
    return (cuda.to_device(np.full((rows, n_features), fill, dtype=dtype)),
            cuda.to_device(np.full((rows, n_targets), fill, dtype=dtype)),
            cuda.to_device(np.full(rows, fill, dtype=dtype)), _dev(np.array([3.0, 0.25])))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_batch_in_a_permuted_order(dtype):
    X, Y, sw, order = _gather_data(dtype)
    x_out, y_out, sw_out, weight_sums = _buffers(dtype, 10, 5, 2)
    dense.gather_batch(_dev(X), _dev(Y), _dev(sw), _dev(order), 3, 11, x_out, y_out, sw_out, weight_sums, 1)
    _check_gather(x_out, y_out, sw_out, weight_sums, X, Y, sw, order, 3, 11)


@pytest.mark.parametrize("index_dtype", (np.int64, np.int32))
def test_gather_batch_csr_densifies_rows(index_dtype):
    dtype = np.float32
    X, Y, sw, order = _gather_data(dtype)
    csr = sp.csr_matrix(X)
    assert 0 < csr.nnz < X.size
    x_out, y_out, sw_out, weight_sums = _buffers(dtype, 10, 5, 2)  # x_out starts full of -7: rows are zeroed first
    dense.gather_batch_csr(_dev(csr.data), _dev(csr.indices.astype(index_dtype)), _dev(csr.indptr.astype(index_dtype)),
                           _dev(Y), _dev(sw), _dev(order), 2, 11, x_out, y_out, sw_out, weight_sums, 1)
    _check_gather(x_out, y_out, sw_out, weight_sums, X, Y, sw, order, 2, 11)


def test_gather_refuses_a_batch_outside_the_order():
    X, Y, sw, order = _gather_data(np.float64)
    x_out, y_out, sw_out, weight_sums = _buffers(np.float64, 4, 5, 2)
    with pytest.raises(ValueError, match="fewer than"):
        dense.gather_batch(_dev(X), _dev(Y), _dev(sw), _dev(order), 0, 6, x_out, y_out, sw_out, weight_sums, 0)
    with pytest.raises(ValueError, match="not within"):
        dense.gather_batch(_dev(X), _dev(Y), _dev(sw), _dev(order), 12, 14, x_out, y_out, sw_out, weight_sums, 0)


# ---------------------------------------------------------------------------------------------------------------
# shuffling


@pytest.mark.parametrize("n", (1, 2, 3, 5, 17, 64, 100))
def test_shuffle_order_is_a_permutation(n):
    order = cuda.to_device(np.full(n + 3, -1, dtype=np.int64))
    dense.shuffle_order(order, 12345, n)
    got = order.copy_to_host()
    np.testing.assert_array_equal(np.sort(got[:n]), np.arange(n))
    np.testing.assert_array_equal(got[n:], -1)


def test_shuffle_order_of_1000_is_deterministic_in_the_key_and_differs_across_keys():
    n = 1000
    results = []
    for key in (np.uint64(2**64 - 1), np.uint64(2**64 - 1), 7):
        order = cuda.device_array(n, dtype=np.int64)
        dense.shuffle_order(order, key, n)
        results.append(order.copy_to_host())
    first, again, other = results
    np.testing.assert_array_equal(np.sort(first), np.arange(n))
    np.testing.assert_array_equal(np.sort(other), np.arange(n))
    np.testing.assert_array_equal(first, again)
    assert np.mean(first != other) > 0.9
    # shuffled, not a near-identity or a rotation: few fixed points, no long runs of consecutive values
    assert np.sum(first == np.arange(n)) < 10
    assert np.mean(np.diff(first) == 1) < 0.05
    assert abs(np.corrcoef(first, np.arange(n))[0, 1]) < 0.2


def test_identity_order():
    order = cuda.to_device(np.full(12, -1, dtype=np.int64))
    dense.identity_order(order, 10)
    np.testing.assert_array_equal(order.copy_to_host(), [*range(10), -1, -1])


# ---------------------------------------------------------------------------------------------------------------
# the kernels composed into one MLP batch, against finite differences


def test_one_mlp_batch_composed_from_the_kernels_has_the_finite_difference_gradient():
    """Gather, forward, fused softmax/cross-entropy, backward: the gradient of scikit-learn's batch loss."""
    rng = np.random.default_rng(6)
    n_samples, n_in, n_hidden, n_out, alpha = 10, 3, 5, 4, 0.1
    X = rng.normal(size=(n_samples, n_in))
    Y = np.eye(n_out)[rng.integers(n_out, size=n_samples)]
    sw = rng.uniform(0.5, 2.0, size=n_samples)
    order = rng.permutation(n_samples).astype(np.int64)
    start, stop = 2, 8
    shapes = [(n_in, n_hidden), (n_hidden,), (n_hidden, n_out), (n_out,)]
    sizes = [int(np.prod(shape)) for shape in shapes]
    flat = rng.normal(scale=0.7, size=sum(sizes))

    def unpack(vector):
        parts, lo = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            parts.append(vector[lo:lo + size].reshape(shape))
            lo += size
        return parts

    def batch_loss(vector):
        W1, b1, W2, b2 = unpack(vector)
        rows = order[start:stop]
        hidden = np.maximum(X[rows] @ W1 + b1, 0.0)
        P = _softmax(hidden @ W2 + b2)
        data = -np.sum(sw[rows] * np.sum(Y[rows] * np.log(P), axis=1))
        return (data + 0.5 * alpha * (np.sum(W1 ** 2) + np.sum(W2 ** 2))) / sw[rows].sum()

    h = 1e-6
    numeric = np.array([(batch_loss(flat + h * e) - batch_loss(flat - h * e)) / (2 * h) for e in np.eye(flat.size)])

    params = _dev(flat)
    grads = cuda.device_array(flat.size)
    W1, b1, W2, b2 = (params[lo:lo + size].reshape(shape) for lo, size, shape in
                      zip(np.cumsum([0, *sizes[:-1]]), sizes, shapes, strict=True))
    gW1, gb1, gW2, gb2 = (grads[lo:lo + size].reshape(shape) for lo, size, shape in
                          zip(np.cumsum([0, *sizes[:-1]]), sizes, shapes, strict=True))
    b = stop - start
    x, y, s = cuda.device_array((8, n_in)), cuda.device_array((8, n_out)), cuda.device_array(8)
    weight_sums, loss_sums = _dev(np.zeros(1)), _dev(np.zeros(1))
    dense.gather_batch(_dev(X), _dev(Y), _dev(sw), _dev(order), start, stop, x, y, s, weight_sums, 0)
    A1, Z = cuda.device_array((b, n_hidden)), cuda.device_array((b, n_out))
    delta1, delta2 = cuda.device_array((b, n_hidden)), cuda.device_array((b, n_out))
    dense.dense_forward(x[:b], W1, b1, Activation.RELU, A1)
    dense.dense_forward(A1, W2, b2, Activation.IDENTITY, Z)
    dense.mlp_output_delta(Z, y[:b], s[:b], Activation.SOFTMAX, OutputLoss.LOG_LOSS, delta2, loss_sums, 0)
    dense.weight_gradient(A1, delta2, W2, alpha, gW2, gb=gb2)
    dense.backprop_delta(delta2, W2, A1, Activation.RELU, delta1)
    dense.weight_gradient(x[:b], delta1, W1, alpha, gW1)
    dense.column_sums(delta1, gb1)

    weight_sum = weight_sums.copy_to_host()[0]
    W1_h, _, W2_h, _ = unpack(flat)
    loss = (loss_sums.copy_to_host()[0] + 0.5 * alpha * (np.sum(W1_h ** 2) + np.sum(W2_h ** 2))) / weight_sum
    np.testing.assert_allclose(loss, batch_loss(flat), rtol=1e-12)
    np.testing.assert_allclose(grads.copy_to_host() / weight_sum, numeric, rtol=1e-6, atol=1e-8)

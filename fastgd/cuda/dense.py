"""numba.cuda kernels of the dense passes: matrix products with fused epilogues, output steps, batches, shuffling.

Everything here works on device arrays (numba ``DeviceNDArray``, C-contiguous, float32 or float64; slices and
reshapes of larger device arrays are fine). The public functions are host-side wrappers: each picks the launch
configuration, casts its scalars to the arrays' dtype (float32 stays float32) and launches on ``stream``. None of
them copies anything between host and device, and none synchronises: results are read by later launches on the
same stream, or by the caller after ``stream.synchronize()``.

Matrix products (:func:`matmul` and the named wrappers on top of it) use one tiled shared-memory kernel: each block
computes a ``TILE x TILE`` tile of ``C``, one element per thread, staging ``TILE x TILE`` tiles of ``op(A)`` and
``op(B)`` in shared memory (transposed operands are read so that neighbouring threads read neighbouring addresses,
and the tiles are padded by one column against bank conflicts). Any shape works, down to one row or one column:
threads outside ``C`` load zeros and write nothing. The epilogue runs on the accumulator before the only store of
``C``:

========================  ======================================================================
``EPILOGUE_NONE``         ``C = op(A) op(B)``
``EPILOGUE_BIAS_ACT``     ``C = act(op(A) op(B) + bias)`` (``bias`` a row vector; not softmax)
``EPILOGUE_DERIVATIVE``   ``C = (op(A) op(B)) * act'(E)`` (``E`` holds activation *values*)
``EPILOGUE_ADD_SCALED``   ``C = op(A) op(B) + alpha * D``
========================  ======================================================================

The activation codes and formulas are those of :mod:`fastgd.kernels.activations` (derivatives are taken from the
activation's output, as there). The same launch can also produce the column sums of ``op(B)`` (or the row sums of
``op(A)``) as the product of one more row (column) of ones: :func:`weight_gradient` and
:func:`weight_gradient_transposed` so compute the bias gradient beside the weight gradient (their ``gb``).

Matrix products accumulate in the arrays' dtype. The output steps compute each element's loss in float64 (as the
CPU kernels do) and store derivatives and deltas in the arrays' dtype.

Launch configurations:

* matrix products: blocks of ``TILE x TILE`` threads, a grid of ``(ceil(M / TILE), ceil(N / TILE))`` blocks for an
  ``M x N`` result (rows on the grid's x axis, so the number of rows is not limited by the grid's y limit of 65535
  blocks; columns are, to ``65535 * TILE``).
* row-wise kernels (:func:`mlp_output_delta`, :func:`linear_output_delta`, :func:`output_activation`,
  :func:`column_sums` by column), :func:`shuffle_order`, :func:`identity_order`: one thread per row (column,
  index), ``BLOCK`` threads per block. The loss sums are reduced in shared memory, one atomic add per block.
* :func:`gather_batch`, :func:`gather_batch_csr`: one block of ``BLOCK`` threads per batch row, its threads
  striding over the row's columns (dense) or stored entries (CSR, added atomically into the zeroed row, so that
  duplicate entries add up); one atomic add per row for the weight sum.
* :func:`layer_squared_norms`: a grid of ``(blocks per layer, layers)`` blocks of ``BLOCK`` threads, each layer's
  blocks striding over its slice of the flat vectors; per block three shared-memory reductions, three atomic adds.

Every launch costs the host tens of microseconds in numba-cuda (more the more array arguments): an MLP batch of a
few hundred rows is bound by its number of launches, not by the GPU (measured on an H200: README, "On a GPU").

``TILE`` is 16 and ``BLOCK`` 128 on a GPU. Under numba's CUDA simulator (:func:`fastgd.cuda.simulated`), where each
CUDA thread is a Python thread, they are 4 and 8 so that the tests stay fast; the code path is the same, only these
two constants differ.

Loss sums and batch weight sums are accumulated in float64 with atomic adds, whose order is not fixed: they may
differ between runs in the last bits. Everything else is deterministic. Kernels compile on their first launch for
each combination of argument types (dtype, dimensions, layout) and are kept in Numba's on-disk cache.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from numba import cuda, float64

from ..kernels.activations import LEAKY_SLOPE, Activation
from ..kernels.losses import Loss, OutputLoss
from . import simulated
from ._reduce import block_sum_add
from .optim import max_blocks

__all__ = [
    "BLOCK", "EPILOGUE_ADD_SCALED", "EPILOGUE_BIAS_ACT", "EPILOGUE_DERIVATIVE", "EPILOGUE_NONE", "SMALL_GRID_WARNING",
    "TILE", "backprop_delta", "column_sums", "dense_forward", "dense_forward_transposed", "gather_batch",
    "gather_batch_csr", "identity_order", "ignore_small_grid_warnings", "layer_bounds", "layer_squared_norms",
    "linear_output_delta", "matmul",
    "mlp_output_delta", "output_activation", "shuffle_order", "weight_gradient", "weight_gradient_transposed",
]

#: Side of the square tiles of the matrix product (threads per block: ``TILE * TILE``). 16 on a GPU; 4 under the
#: simulator, where every thread is a Python thread (same code, fewer idle threads on small test shapes).
TILE = 4 if simulated() else 16

#: Threads per block of the one-dimensional kernels (a power of two: the block reductions halve it). 128 on a GPU,
#: 8 under the simulator.
BLOCK = 8 if simulated() else 128

# Row length of the shared tiles: one padding column, so that a column of a tile spans all memory banks (a constant
# of its own: the shape of a shared array must be a compile-time constant, and ``TILE + 1`` in a kernel is not).
_TILE_ROW = TILE + 1

EPILOGUE_NONE = 0
EPILOGUE_BIAS_ACT = 1
EPILOGUE_DERIVATIVE = 2
EPILOGUE_ADD_SCALED = 3
_EPILOGUES = (EPILOGUE_NONE, EPILOGUE_BIAS_ACT, EPILOGUE_DERIVATIVE, EPILOGUE_ADD_SCALED)

_NO_SUMS = 0
_SUMS_OF_B_COLUMNS = 1
_SUMS_OF_A_ROWS = 2

#: The message of numba-cuda's warning for grids of fewer than 128 blocks (``NumbaPerformanceWarning``, a class of
#: numba-cuda's own, hence matched by message).
SMALL_GRID_WARNING = r"Grid size \d+ will likely result in GPU under-utilization"


def ignore_small_grid_warnings() -> None:
    """Silence numba-cuda's warning about grids of fewer than 128 blocks (done once, at import).

    A batch of 32 rows makes small grids by design; numba-cuda would warn at the first launch of every grid
    size. Only that message is ignored (for every kernel of the process: a warning filter cannot tell which
    kernel launched).
    """
    warnings.filterwarnings("ignore", message=SMALL_GRID_WARNING, category=Warning)


ignore_small_grid_warnings()

_ELEMENTWISE_CODES = tuple(code for code in Activation if code not in (Activation.SOFTMAX, Activation.EXP))
_OUTPUT_CODES = (Activation.IDENTITY, Activation.LOGISTIC, Activation.SOFTMAX, Activation.EXP)
_MLP_LOSSES = tuple(OutputLoss)
_LINEAR_LOSSES = tuple(Loss)

# Constants of the Feistel round function (uint64 so that compiled arithmetic stays unsigned: uint64 mixed with
# int64 would be float64 in Numba). Every product is of two numbers below 2**32: it never wraps around.
_MASK32 = np.uint64(0xFFFFFFFF)
_MIX1 = np.uint64(0x85EBCA6B)
_MIX2 = np.uint64(0xC2B2AE35)
_SHIFT13 = np.uint64(13)
_SHIFT16 = np.uint64(16)
_FEISTEL_ROUNDS = 4


# ----------------------------------------------------------------------------------------------------------------
# device functions


@cuda.jit(device=True)
def _activate(code, z, one, slope):
    """The activation ``code`` of one value (not softmax); ``one`` and ``slope`` in ``z``'s dtype."""
    zero = one - one
    if code == Activation.RELU:
        return z if z > zero else zero
    if code == Activation.LOGISTIC:
        if z >= zero:
            return one / (one + math.exp(-z))
        e = math.exp(z)
        return e / (one + e)
    if code == Activation.TANH:
        return math.tanh(z)
    if code == Activation.LEAKY_RELU:
        return z if z > zero else z * slope
    if code == Activation.EXP:
        return math.exp(z)
    return z


@cuda.jit(device=True)
def _derivative(code, a, one, slope):
    """Derivative of activation ``code`` from its output ``a``; ``one`` and ``slope`` in ``a``'s dtype."""
    zero = one - one
    if code == Activation.RELU:
        return one if a > zero else zero
    if code == Activation.LOGISTIC:
        return a * (one - a)
    if code == Activation.TANH:
        return one - a * a
    if code == Activation.LEAKY_RELU:
        return one if a > zero else slope
    return one


@cuda.jit(device=True)
def _margin_loss(code, z, y):
    """Loss and derivative of a margin loss (``y`` in {-1, +1}) in float64, as ``fastgd.kernels.losses.margin_loss``."""
    z = 1.0 * z
    y = 1.0 * y
    m = y * z
    if code == Loss.LOG_LOSS:
        if m > 0.0:
            e = math.exp(-m)
            return math.log1p(e), -y * e / (1.0 + e)
        e = math.exp(m)
        return math.log1p(e) - m, -y / (1.0 + e)
    if code == Loss.HINGE:
        if m < 1.0:
            return 1.0 - m, -y
        return 0.0, 0.0
    if code == Loss.SQUARED_HINGE:
        if m < 1.0:
            r = 1.0 - m
            return r * r, -2.0 * y * r
        return 0.0, 0.0
    if code == Loss.MODIFIED_HUBER:
        if m >= 1.0:
            return 0.0, 0.0
        if m >= -1.0:
            r = 1.0 - m
            return r * r, -2.0 * y * r
        return -4.0 * m, -4.0 * y
    # Loss.PERCEPTRON
    if m <= 0.0:
        return -m, -y
    return 0.0, 0.0


@cuda.jit(device=True)
def _residual_loss(code, z, y, epsilon):
    """Loss and derivative of a regression loss, in float64: :func:`fastgd.kernels.losses.residual_loss`."""
    r = 1.0 * z - 1.0 * y
    if code == Loss.SQUARED_ERROR:
        return 0.5 * r * r, r
    a = abs(r)
    if code == Loss.HUBER:
        if a <= epsilon:
            return 0.5 * r * r, r
        return epsilon * a - 0.5 * epsilon * epsilon, epsilon if r > 0.0 else -epsilon
    if a <= epsilon:
        return 0.0, 0.0
    if code == Loss.SQUARED_EPSILON_INSENSITIVE:
        e = a - epsilon
        return e * e, 2.0 * e if r > 0.0 else -2.0 * e
    # Loss.EPSILON_INSENSITIVE
    return a - epsilon, 1.0 if r > 0.0 else -1.0


@cuda.jit(device=True)
def _feistel(x, half_bits, half_mask, k0, k1, k2, k3):
    """A keyed permutation of ``[0, 4**half_bits)``: four balanced Feistel rounds (murmur3's finaliser as F)."""
    left = x >> half_bits
    right = x & half_mask
    for r in range(_FEISTEL_ROUNDS):
        if r == 0:
            key = k0
        elif r == 1:
            key = k1
        elif r == 2:
            key = k2
        else:
            key = k3
        f = (right ^ key) & _MASK32
        f = (f * _MIX1) & _MASK32
        f ^= f >> _SHIFT13
        f = (f * _MIX2) & _MASK32
        f ^= f >> _SHIFT16
        left, right = right, (left ^ f) & half_mask
    return (left << half_bits) | right


# ----------------------------------------------------------------------------------------------------------------
# kernels


@cuda.jit(cache=True)
def _matmul_kernel(A, B, C, trans_a, trans_b, epilogue, bias, code, E, alpha, D, one, slope, sums_mode, sums):
    tile_a = cuda.shared.array((TILE, _TILE_ROW), dtype=C.dtype)
    tile_b = cuda.shared.array((TILE, _TILE_ROW), dtype=C.dtype)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    row0 = cuda.blockIdx.x * TILE
    col0 = cuda.blockIdx.y * TILE
    n_rows = C.shape[0]
    n_cols = C.shape[1]
    depth = A.shape[0] if trans_a else A.shape[1]
    # sums_mode 1: op(A) has an extra last row of ones (its product row, the column sums of op(B), goes to sums);
    # sums_mode 2: op(B) has an extra last column of ones (the row sums of op(A))
    ones_row = n_rows if sums_mode == _SUMS_OF_B_COLUMNS else -1
    ones_col = n_cols if sums_mode == _SUMS_OF_A_ROWS else -1
    zero = one - one
    acc = zero
    for k0 in range(0, depth, TILE):
        # tile_a[r, k] = op(A)[row0 + r, k0 + k]; tile_b[k, c] = op(B)[k0 + k, col0 + c]; each thread loads one
        # element of each, neighbouring tx reading neighbouring addresses of A and B
        if trans_a:
            k = k0 + ty
            r = row0 + tx
            tile_a[tx, ty] = A[k, r] if k < depth and r < n_rows else one if k < depth and r == ones_row else zero
        else:
            k = k0 + tx
            r = row0 + ty
            tile_a[ty, tx] = A[r, k] if k < depth and r < n_rows else one if k < depth and r == ones_row else zero
        if trans_b:
            k = k0 + tx
            c = col0 + ty
            tile_b[tx, ty] = B[c, k] if k < depth and c < n_cols else one if k < depth and c == ones_col else zero
        else:
            k = k0 + ty
            c = col0 + tx
            tile_b[ty, tx] = B[k, c] if k < depth and c < n_cols else one if k < depth and c == ones_col else zero
        cuda.syncthreads()
        for kk in range(TILE):
            acc += tile_a[ty, kk] * tile_b[kk, tx]
        cuda.syncthreads()
    row = row0 + ty
    col = col0 + tx
    if row < n_rows and col < n_cols:
        if epilogue == EPILOGUE_BIAS_ACT:
            acc = _activate(code, acc + bias[col], one, slope)
        elif epilogue == EPILOGUE_DERIVATIVE:
            acc *= _derivative(code, E[row, col], one, slope)
        elif epilogue == EPILOGUE_ADD_SCALED:
            acc += alpha * D[row, col]
        C[row, col] = acc
    elif row == ones_row and col < n_cols:
        sums[col] = acc
    elif col == ones_col and row < n_rows:
        sums[row] = acc


@cuda.jit(cache=True)
def _layer_squared_norms_kernel(params, grads, bounds, weight_sq, layer_sq, total_sq, batch_index):
    # blockIdx.y is the layer; its blocks stride over the layer's entries [lo, hi), the weights being [lo, w_end)
    layer = cuda.blockIdx.y
    n_layers = bounds.shape[0]
    lo, w_end, hi = bounds[layer, 0], bounds[layer, 1], bounds[layer, 2]
    partial = cuda.shared.array(BLOCK, float64)
    grad_sq = float64(0.0)
    param_sq = float64(0.0)
    for i in range(lo + cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, hi, cuda.gridDim.x * cuda.blockDim.x):
        g = float64(grads[i])
        grad_sq += g * g
        if i < w_end:
            p = float64(params[i])
            param_sq += p * p
    block_sum_add(partial, grad_sq, layer_sq, batch_index * n_layers + layer)
    cuda.syncthreads()
    block_sum_add(partial, grad_sq, total_sq, batch_index)
    cuda.syncthreads()
    block_sum_add(partial, param_sq, weight_sq, batch_index)


@cuda.jit(cache=True)
def _column_sums_kernel(M, out, zero):
    col = cuda.grid(1)
    if col < M.shape[1]:
        total = zero
        for row in range(M.shape[0]):
            total += M[row, col]
        out[col] = total


@cuda.jit(device=True)
def _row_output_activation(Z, i, out_code, one):
    """Apply the output activation ``out_code`` (identity, logistic, softmax, exp) to row ``i`` of ``Z`` in place."""
    n_out = Z.shape[1]
    if out_code == Activation.SOFTMAX:
        zmax = Z[i, 0]
        for k in range(1, n_out):
            zmax = max(zmax, Z[i, k])
        total = one - one
        overflowed = math.isinf(zmax)  # as on the CPU: the largest logits share the probability
        for k in range(n_out):
            if overflowed:
                e = one if Z[i, k] == zmax else one - one
            else:
                e = math.exp(Z[i, k] - zmax)
            Z[i, k] = e
            total += e
        inv = one / total
        for k in range(n_out):
            Z[i, k] *= inv
    elif out_code == Activation.LOGISTIC:
        for k in range(n_out):
            Z[i, k] = _activate(Activation.LOGISTIC, Z[i, k], one, one)
    elif out_code != Activation.IDENTITY:
        for k in range(n_out):
            Z[i, k] = _activate(out_code, Z[i, k], one, one - one)


@cuda.jit(cache=True)
def _output_activation_kernel(Z, out_code, one):
    i = cuda.grid(1)
    if i < Z.shape[0]:
        _row_output_activation(Z, i, out_code, one)


@cuda.jit(cache=True)
def _mlp_output_delta_kernel(Z, Y, sw, out_code, loss_kind, delta, loss_sums, batch_index, one, eps):
    partial = cuda.shared.array(BLOCK, dtype=float64)
    i = cuda.grid(1)
    weighted_loss = 0.0
    if i < Z.shape[0]:
        _row_output_activation(Z, i, out_code, one)
        n_out = Z.shape[1]
        w = sw[i]
        row_loss = 0.0
        for k in range(n_out):
            p = Z[i, k]
            y = Y[i, k]
            delta[i, k] = (p - y) * w
            if loss_kind == OutputLoss.SQUARED_ERROR:
                r = y - p
                row_loss += r * r
            elif loss_kind == OutputLoss.POISSON:
                if y != 0:
                    row_loss += 1.0 * y * math.log(1.0 * y / p)
                row_loss += 1.0 * p - y
            else:
                pc = min(max(1.0 * p, eps), 1.0 - eps)
                if y != 0:
                    row_loss -= y * math.log(pc)
                if loss_kind == OutputLoss.BINARY_LOG_LOSS and y != 1:
                    row_loss -= (1.0 - y) * math.log(1.0 - pc)
        weighted_loss = w * row_loss
    block_sum_add(partial, weighted_loss, loss_sums, batch_index)


@cuda.jit(cache=True)
def _linear_output_delta_kernel(Z, Y, sw, loss_code, epsilon, dZ, loss_sums, batch_index):
    partial = cuda.shared.array(BLOCK, dtype=float64)
    i = cuda.grid(1)
    weighted_loss = 0.0
    if i < Z.shape[0]:
        n_out = Z.shape[1]
        w = 1.0 * sw[i]
        loss = 0.0
        if loss_code == Loss.MULTINOMIAL:
            zmax = 1.0 * Z[i, 0]
            for k in range(1, n_out):
                zmax = max(zmax, 1.0 * Z[i, k])
            total = 0.0
            for k in range(n_out):
                total += math.exp(Z[i, k] - zmax)
            target = int(Y[i, 0])
            inv = 1.0 / total
            for k in range(n_out):
                d = math.exp(Z[i, k] - zmax) * inv
                if k == target:
                    d -= 1.0
                dZ[i, k] = d * w
            loss = math.log(total) + zmax - Z[i, target]
        elif loss_code >= Loss.SQUARED_ERROR:
            for k in range(n_out):
                value, d = _residual_loss(loss_code, Z[i, k], Y[i, k], epsilon)
                loss += value
                dZ[i, k] = d * w
        else:
            for k in range(n_out):
                value, d = _margin_loss(loss_code, Z[i, k], Y[i, k])
                loss += value
                dZ[i, k] = d * w
        weighted_loss = w * loss
    block_sum_add(partial, weighted_loss, loss_sums, batch_index)


@cuda.jit(cache=True)
def _gather_dense_kernel(X, Y, sw, order, start, x_out, y_out, sw_out, weight_sums, batch_index):
    r = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    row = order[start + r]
    for j in range(tid, X.shape[1], BLOCK):
        x_out[r, j] = X[row, j]
    for j in range(tid, Y.shape[1], BLOCK):
        y_out[r, j] = Y[row, j]
    if tid == 0:
        w = sw[row]
        sw_out[r] = w
        cuda.atomic.add(weight_sums, batch_index, 1.0 * w)


@cuda.jit(cache=True)
def _gather_csr_kernel(data, indices, indptr, Y, sw, order, start, x_out, y_out, sw_out, weight_sums, batch_index):
    r = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    row = order[start + r]
    for j in range(tid, x_out.shape[1], BLOCK):
        x_out[r, j] = 0
    cuda.syncthreads()  # the row is zero before any thread scatters into it
    for p in range(indptr[row] + tid, indptr[row + 1], BLOCK):
        # duplicate entries of a column add up (scipy's rule), and two threads may hold two of them: an atomic
        # add, no slower than a store where the columns differ (as in a canonical matrix)
        cuda.atomic.add(x_out, (r, indices[p]), data[p])
    for j in range(tid, Y.shape[1], BLOCK):
        y_out[r, j] = Y[row, j]
    if tid == 0:
        w = sw[row]
        sw_out[r] = w
        cuda.atomic.add(weight_sums, batch_index, 1.0 * w)


@cuda.jit(cache=True)
def _shuffle_kernel(order, n, n_unsigned, half_bits, half_mask, k0, k1, k2, k3):
    i = cuda.grid(1)
    if i < n:
        x = _feistel(np.uint64(i), half_bits, half_mask, k0, k1, k2, k3)
        while x >= n_unsigned:  # cycle-walking: the orbit of i leaves the padding and comes back below n
            x = _feistel(x, half_bits, half_mask, k0, k1, k2, k3)
        order[i] = x


@cuda.jit(cache=True)
def _identity_kernel(order, n):
    i = cuda.grid(1)
    if i < n:
        order[i] = i


# ----------------------------------------------------------------------------------------------------------------
# host-side wrappers


_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)

if simulated():
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray as _DEVICE_ARRAY_TYPE
else:
    _DEVICE_ARRAY_TYPE = None

# The checks below run before every launch: they compare dtype objects and attributes only (a few microseconds per
# wrapper call, next to the launch's own tens of microseconds).


def _float_dtype(*arrays: Any) -> np.dtype:
    """The common float dtype of ``arrays``; raises unless they are all float32 or all float64."""
    dtype = arrays[0].dtype
    if dtype != _FLOAT32 and dtype != _FLOAT64:
        raise TypeError(f"CUDA dense kernels take float32 or float64 arrays, got {dtype}.")
    for array in arrays[1:]:
        if array.dtype != dtype:
            raise TypeError(f"all arrays must have the same dtype, got {dtype} and {array.dtype}.")
    return dtype


def _is_device_array(array: Any) -> bool:
    """Whether ``array`` lives on the device (numba's simulator has its own device-array type, and no
    ``__cuda_array_interface__``)."""
    if _DEVICE_ARRAY_TYPE is not None:
        return isinstance(array, _DEVICE_ARRAY_TYPE)
    return hasattr(array, "__cuda_array_interface__")


def _check_device(*arrays: Any) -> None:
    for array in arrays:
        if not _is_device_array(array):
            raise TypeError(f"expected a device array, got {type(array).__name__}: a host array would be copied to the "
                            "device at every launch (use numba.cuda.to_device once).")


_DUMMY_VECTORS: dict[np.dtype, Any] = {}


def _dummy_vector(dtype: np.dtype) -> Any:
    """A one-element device vector of ``dtype`` standing for the unused array arguments of a kernel.

    Allocated once per dtype (a slice of ``C`` would also do, but slicing a device array costs more on the host
    than the launch); kernels never read it.
    """
    vector = _DUMMY_VECTORS.get(dtype)
    if vector is None:
        vector = _DUMMY_VECTORS[dtype] = cuda.device_array(1, dtype=dtype)
    return vector


def _blocks(n: int, per_block: int) -> int:
    """Blocks of ``per_block`` threads covering ``n >= 1`` items, as a Python int.

    numba-cuda's launcher on a GPU accepts only Python ints as grid sizes (a NumPy integer raises ``ValueError``;
    the simulator takes either), and sizes here are often NumPy integers (batch bounds drawn from an index array).
    """
    return int((n + per_block - 1) // per_block)


def matmul(A: Any, B: Any, C: Any, *, trans_a: bool = False, trans_b: bool = False, epilogue: int = EPILOGUE_NONE,
           bias: Any = None, code: int = Activation.IDENTITY, E: Any = None, alpha: float = 0.0, D: Any = None,
           b_column_sums: Any = None, a_row_sums: Any = None, stream: Any = 0) -> None:
    """``C = op(A) @ op(B)`` with a fused epilogue, by the tiled shared-memory kernel.

    Parameters
    ----------
    A, B : DeviceNDArray, 2-D
        Operands; ``op(A)`` is ``A.T`` with ``trans_a`` (likewise ``B``). ``op(A)`` is ``(M, K)``, ``op(B)``
        ``(K, N)``.
    C : DeviceNDArray of shape (M, N)
        Result, overwritten; same dtype as ``A`` and ``B``.
    trans_a, trans_b : bool, default=False
        Whether to use the transpose of ``A`` (of ``B``).
    epilogue : int, default=EPILOGUE_NONE
        ``EPILOGUE_NONE``, ``EPILOGUE_BIAS_ACT`` (needs ``bias`` and ``code``), ``EPILOGUE_DERIVATIVE`` (needs
        ``E`` and ``code``) or ``EPILOGUE_ADD_SCALED`` (needs ``D`` and ``alpha``).
    bias : DeviceNDArray of shape (N,), optional
        Added to each row before the activation (``EPILOGUE_BIAS_ACT``).
    code : int, default=Activation.IDENTITY
        Activation code of :mod:`fastgd.kernels.activations`, not ``Activation.SOFTMAX``.
    E : DeviceNDArray of shape (M, N), optional
        Activation values whose derivative multiplies the product (``EPILOGUE_DERIVATIVE``).
    alpha : float, default=0.0
        Factor of ``D`` (``EPILOGUE_ADD_SCALED``); cast to ``C``'s dtype.
    D : DeviceNDArray of shape (M, N), optional
        Added to the product times ``alpha`` (``EPILOGUE_ADD_SCALED``).
    b_column_sums : DeviceNDArray of shape (N,), optional
        Also receives the column sums of ``op(B)`` (no epilogue), computed in the same launch as the product of
        an extra row of ones of ``op(A)``: the bias gradient beside a weight gradient.
    a_row_sums : DeviceNDArray of shape (M,), optional
        Also receives the row sums of ``op(A)`` (an extra column of ones of ``op(B)``); not with
        ``b_column_sums``.
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.

    Raises
    ------
    ValueError
        On mismatched shapes, an unknown epilogue or activation, or a missing epilogue operand.
    TypeError
        On host arrays or mixed dtypes.
    """
    _check_device(A, B, C)
    dtype = _float_dtype(A, B, C)
    m, k = (A.shape[1], A.shape[0]) if trans_a else A.shape
    k_b, n = (B.shape[1], B.shape[0]) if trans_b else B.shape
    if k != k_b or C.shape != (m, n):
        raise ValueError(f"shapes do not agree: op(A) is {(m, k)}, op(B) is {(k_b, n)}, C is {C.shape}.")
    if epilogue not in _EPILOGUES:
        raise ValueError(f"unknown epilogue {epilogue!r}.")
    if epilogue in (EPILOGUE_BIAS_ACT, EPILOGUE_DERIVATIVE) and code not in _ELEMENTWISE_CODES:
        raise ValueError(f"activation code {code!r} is not an element-wise activation (softmax is row-wise: "
                         "see mlp_output_delta and output_activation).")
    if m == 0 or n == 0:
        return
    dummy_row = _dummy_vector(dtype)
    if epilogue == EPILOGUE_BIAS_ACT:
        if bias is None or bias.shape != (n,):
            raise ValueError(f"EPILOGUE_BIAS_ACT needs a bias of shape {(n,)}.")
        _check_device(bias)
        _float_dtype(C, bias)
    else:
        bias = dummy_row
    if epilogue == EPILOGUE_DERIVATIVE:
        if E is None or E.shape != C.shape:
            raise ValueError(f"EPILOGUE_DERIVATIVE needs E of shape {C.shape}.")
        _check_device(E)
        _float_dtype(C, E)
    else:
        E = C
    if epilogue == EPILOGUE_ADD_SCALED:
        if D is None or D.shape != C.shape:
            raise ValueError(f"EPILOGUE_ADD_SCALED needs D of shape {C.shape}.")
        _check_device(D)
        _float_dtype(C, D)
    else:
        D = C
    sums_mode, sums = _NO_SUMS, dummy_row
    if b_column_sums is not None and a_row_sums is not None:
        raise ValueError("matmul fuses b_column_sums or a_row_sums, not both.")
    if b_column_sums is not None:
        sums_mode, sums = _SUMS_OF_B_COLUMNS, b_column_sums
        if sums.shape != (n,):
            raise ValueError(f"b_column_sums must have shape {(n,)}, got {sums.shape}.")
    elif a_row_sums is not None:
        sums_mode, sums = _SUMS_OF_A_ROWS, a_row_sums
        if sums.shape != (m,):
            raise ValueError(f"a_row_sums must have shape {(m,)}, got {sums.shape}.")
    if sums_mode != _NO_SUMS:
        _check_device(sums)
        _float_dtype(C, sums)
    scalar = dtype.type
    grid = (_blocks(m + (sums_mode == _SUMS_OF_B_COLUMNS), TILE), _blocks(n + (sums_mode == _SUMS_OF_A_ROWS), TILE))
    _matmul_kernel[grid, (TILE, TILE), stream](
        A, B, C, bool(trans_a), bool(trans_b), int(epilogue), bias, int(code), E, scalar(alpha), D, scalar(1.0),
        scalar(LEAKY_SLOPE), sums_mode, sums)


def dense_forward(A_in: Any, W: Any, bias: Any, code: int, out: Any, stream: Any = 0) -> None:
    """``out = act(A_in @ W + bias)``: a layer's forward pass (MLP layout).

    Parameters
    ----------
    A_in : DeviceNDArray of shape (n_rows, n_in)
        Inputs of the layer.
    W : DeviceNDArray of shape (n_in, n_out)
        Weights.
    bias : DeviceNDArray of shape (n_out,)
        Biases.
    code : int
        Activation code (identity, logistic, tanh, relu, leaky_relu; softmax is applied by
        :func:`mlp_output_delta` or :func:`output_activation` after an identity layer).
    out : DeviceNDArray of shape (n_rows, n_out)
        Activations, overwritten.
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.
    """
    matmul(A_in, W, out, epilogue=EPILOGUE_BIAS_ACT, bias=bias, code=code, stream=stream)


def dense_forward_transposed(A_in: Any, W: Any, bias: Any, code: int, out: Any, stream: Any = 0) -> None:
    """``out = act(A_in @ W.T + bias)``, ``W`` of shape ``(n_out, n_in)`` (the linear models' coefficient layout).

    Parameters
    ----------
    A_in : DeviceNDArray of shape (n_rows, n_in)
        Inputs.
    W : DeviceNDArray of shape (n_out, n_in)
        Weights, one row per output.
    bias : DeviceNDArray of shape (n_out,)
        Intercepts (a zero vector without intercepts).
    code : int
        Activation code (identity for decision values).
    out : DeviceNDArray of shape (n_rows, n_out)
        Result, overwritten.
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.
    """
    matmul(A_in, W, out, trans_b=True, epilogue=EPILOGUE_BIAS_ACT, bias=bias, code=code, stream=stream)


def weight_gradient(A_in: Any, delta: Any, W: Any, alpha: float, gW: Any, stream: Any = 0, *, gb: Any = None) -> None:
    """``gW = A_in.T @ delta + alpha * W`` (MLP layout; no division by the batch's weight sum).

    With ``gb``, also the bias gradient ``gb = delta.sum(axis=0)`` in the same launch (instead of
    :func:`column_sums`).

    Parameters
    ----------
    A_in : DeviceNDArray of shape (n_rows, n_in)
        The layer's inputs.
    delta : DeviceNDArray of shape (n_rows, n_out)
        The layer's deltas.
    W : DeviceNDArray of shape (n_in, n_out)
        Weights (L2 term).
    alpha : float
        L2 strength (0 for none); cast to the arrays' dtype.
    gW : DeviceNDArray of shape (n_in, n_out)
        Gradient, overwritten.
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.
    gb : DeviceNDArray of shape (n_out,), optional
        Receives the column sums of ``delta``.
    """
    matmul(A_in, delta, gW, trans_a=True, epilogue=EPILOGUE_ADD_SCALED, alpha=alpha, D=W, b_column_sums=gb,
           stream=stream)


def weight_gradient_transposed(A_in: Any, delta: Any, W: Any, alpha: float, gW: Any, stream: Any = 0, *,
                               gb: Any = None) -> None:
    """``gW = delta.T @ A_in + alpha * W``, shapes ``(n_out, n_in)`` (the linear models' coefficient layout).

    With ``gb``, also the intercept gradient ``gb = delta.sum(axis=0)`` in the same launch (instead of
    :func:`column_sums`).

    Parameters
    ----------
    A_in : DeviceNDArray of shape (n_rows, n_in)
        Inputs.
    delta : DeviceNDArray of shape (n_rows, n_out)
        Loss derivatives in the decision values (``dZ`` of :func:`linear_output_delta`).
    W : DeviceNDArray of shape (n_out, n_in)
        Coefficients (L2 term).
    alpha : float
        L2 strength (0 for none); cast to the arrays' dtype.
    gW : DeviceNDArray of shape (n_out, n_in)
        Gradient, overwritten.
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.
    gb : DeviceNDArray of shape (n_out,), optional
        Receives the column sums of ``delta``.
    """
    matmul(delta, A_in, gW, trans_a=True, epilogue=EPILOGUE_ADD_SCALED, alpha=alpha, D=W, a_row_sums=gb,
           stream=stream)


def backprop_delta(delta: Any, W: Any, A_in: Any, code: int, delta_in: Any, stream: Any = 0) -> None:
    """``delta_in = (delta @ W.T) * act'(A_in)``: the deltas of the layer below (MLP layout).

    Parameters
    ----------
    delta : DeviceNDArray of shape (n_rows, n_out)
        Deltas of the layer.
    W : DeviceNDArray of shape (n_in, n_out)
        The layer's weights (before their update).
    A_in : DeviceNDArray of shape (n_rows, n_in)
        Activations of the layer below (its outputs, from which the derivative is taken).
    code : int
        Activation code of the layer below.
    delta_in : DeviceNDArray of shape (n_rows, n_in)
        Result, overwritten.
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.
    """
    matmul(delta, W, delta_in, trans_b=True, epilogue=EPILOGUE_DERIVATIVE, code=code, E=A_in, stream=stream)


def layer_bounds(offsets: np.ndarray, units: np.ndarray) -> Any:
    """The device table of :func:`layer_squared_norms`: per layer ``[start, end of the weights, end]`` (int64).

    Parameters
    ----------
    offsets : ndarray of int
        Start of each layer in the flat parameter vector (``fastgd.backends.cpu_mlp.layer_offsets``).
    units : ndarray of int
        Widths of the layers, input first.

    Returns
    -------
    DeviceNDArray of shape (n_layers, 3), int64
    """
    n_in, n_out = np.asarray(units[:-1], dtype=np.int64), np.asarray(units[1:], dtype=np.int64)
    lo = np.asarray(offsets[:n_out.size], dtype=np.int64)
    return cuda.to_device(np.ascontiguousarray(np.stack([lo, lo + n_in * n_out, lo + (n_in + 1) * n_out], axis=1)))


def layer_squared_norms(params: Any, grads: Any, bounds: Any, weight_sq: Any, layer_sq: Any, total_sq: Any,
                        batch_index: int, stream: Any = 0) -> None:
    """One batch's squared norms in one launch: per-layer and whole gradient, and the weights' L2 sum.

    With ``L`` layers and layer ``l`` taking ``params[lo:hi]`` (weights ``[lo:w_end]``, then biases; ``bounds[l]``
    is ``(lo, w_end, hi)``), adds, in float64::

        layer_sq[batch_index * L + l] += sum(grads[lo:hi] ** 2)     for each layer l
        total_sq[batch_index]         += sum(grads[lo:hi] ** 2)     over all layers
        weight_sq[batch_index]        += sum(params[lo:w_end] ** 2) over all layers (the L2 term of the loss)

    Nothing is zeroed first. One launch instead of one :func:`fastgd.cuda.optim.squared_norm` per vector and
    layer (2L launches, 2L + 1 with clip_norm): an MLP batch on a GPU is bound by the host's launch overhead, not
    by arithmetic. Measured on an H200 whose host spent 30-120 us per launch (100-256-128-10, Adam, float32, two
    alternating runs each): 1222-1318 -> 980-999 us per batch of 32, 1189-1391 -> 1052-1084 at 128,
    1470-1524 -> 1277-1281 at 1024.

    Parameters
    ----------
    params, grads : DeviceNDArray of shape (n_params,)
        Flat parameters and gradient (float32 or float64, the same dtype).
    bounds : DeviceNDArray of shape (L, 3), int64
        From :func:`layer_bounds`.
    weight_sq, total_sq : DeviceNDArray of float64
        Accumulators indexed by ``batch_index``.
    layer_sq : DeviceNDArray of float64
        Accumulator of ``L`` entries per batch.
    batch_index : int
        Entry of the accumulators.
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.
    """
    _check_device(params, grads, bounds, weight_sq, layer_sq, total_sq)
    _float_dtype(params, grads)
    n_layers = bounds.shape[0]
    if layer_sq.shape[0] < (batch_index + 1) * n_layers:
        raise ValueError(f"layer_sq has {layer_sq.shape[0]} entries; batch {batch_index} needs "
                         f"{(batch_index + 1) * n_layers}.")
    # blocks per layer for the mean layer size, capped (a wider layer's blocks loop over the rest of it)
    per_layer = min(_blocks(-(-params.shape[0] // n_layers), BLOCK), max(1, max_blocks() // n_layers))
    _layer_squared_norms_kernel[(per_layer, int(n_layers)), BLOCK, stream](
        params, grads, bounds, weight_sq, layer_sq, total_sq, np.int64(batch_index))


def column_sums(M: Any, out: Any, stream: Any = 0) -> None:
    """``out = M.sum(axis=0)`` (bias gradients from deltas), one thread per column.

    Parameters
    ----------
    M : DeviceNDArray of shape (n_rows, n_cols)
        Matrix to sum, at least one row.
    out : DeviceNDArray of shape (n_cols,)
        Result, overwritten.
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.
    """
    _check_device(M, out)
    _float_dtype(M, out)
    if out.shape != (M.shape[1],) or M.shape[0] == 0:
        raise ValueError(f"column_sums needs at least one row and out of shape {(M.shape[1],)}; got M {M.shape}, "
                         f"out {out.shape}.")
    if M.shape[1]:
        _column_sums_kernel[_blocks(M.shape[1], BLOCK), BLOCK, stream](M, out, M.dtype.type(0.0))


def output_activation(Z: Any, out_code: int, stream: Any = 0) -> None:
    """Apply an output activation row by row, in place (softmax numerically stable): for predictions.

    Parameters
    ----------
    Z : DeviceNDArray of shape (n_rows, n_out)
        Pre-activations, overwritten by activations.
    out_code : int
        An :class:`~fastgd.kernels.activations.Activation`: ``IDENTITY``, ``LOGISTIC``, ``SOFTMAX``, ``EXP``
        (or another element-wise one).
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.
    """
    _check_device(Z)
    dtype = _float_dtype(Z)
    if out_code not in (*_ELEMENTWISE_CODES, Activation.SOFTMAX, Activation.EXP):
        raise ValueError(f"unknown activation code {out_code!r}.")
    if Z.shape[0] == 0:
        return
    _output_activation_kernel[_blocks(Z.shape[0], BLOCK), BLOCK, stream](Z, int(out_code), dtype.type(1.0))


def mlp_output_delta(Z: Any, Y: Any, sw: Any, out_code: int, loss_kind: int, delta: Any, loss_sums: Any,
                     batch_index: int, stream: Any = 0) -> None:
    """The fused output step of an MLP: activation, ``delta = (P - Y) * sw``, weighted loss sum.

    Row ``i``: ``Z[i]`` becomes ``P[i] = out(Z[i])`` in place (identity, logistic, softmax with the max
    shift, or exp), ``delta[i] = (P[i] - Y[i]) * sw[i]``, and ``sw[i] * loss_i`` is added to
    ``loss_sums[batch_index]`` (float64), with the definitions of :func:`fastgd.kernels.dense.output_delta`:
    ``OutputLoss.SQUARED_ERROR`` adds ``sum_k (y - p)^2`` **without** the factor ``0.5 / n_out`` (the caller multiplies
    the sum by it), ``OutputLoss.LOG_LOSS`` adds ``-sum_k y log(clip(p))``, ``OutputLoss.BINARY_LOG_LOSS`` also
    ``-(1 - y) log(1 - clip(p))``, with ``clip`` to ``[eps, 1 - eps]`` (``eps`` of the arrays' dtype),
    ``OutputLoss.POISSON`` adds ``sum_k xlogy(y, y / p) - y + p``. So ``loss_sums[batch_index]`` receives what
    ``output_delta`` returns, divided by ``0.5 / n_out`` for squared error; that factor, the division by the
    batch's weight sum and the L2 term are the caller's.

    Parameters
    ----------
    Z : DeviceNDArray of shape (n_rows, n_out)
        Output pre-activations (bias added), overwritten by the predictions ``P``.
    Y : DeviceNDArray of shape (n_rows, n_out)
        Targets (indicator matrix for classifiers); same dtype as ``Z``.
    sw : DeviceNDArray of shape (n_rows,)
        Sample weights; same dtype as ``Z``.
    out_code : int
        Output :class:`~fastgd.kernels.activations.Activation`: ``IDENTITY``, ``LOGISTIC``, ``SOFTMAX`` or ``EXP``.
    loss_kind : int
        An :class:`~fastgd.kernels.losses.OutputLoss`.
    delta : DeviceNDArray of shape (n_rows, n_out)
        Output deltas, overwritten.
    loss_sums : DeviceNDArray of float64
        Loss accumulators; ``loss_sums[batch_index]`` is added to (atomically), never reset here.
    batch_index : int
        Which accumulator.
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.
    """
    _check_device(Z, Y, sw, delta, loss_sums)
    dtype = _float_dtype(Z, Y, sw, delta)
    if out_code not in _OUTPUT_CODES:
        names = [code.name for code in _OUTPUT_CODES]
        raise ValueError(f"out_code must be an output Activation ({names}), got {out_code!r}.")
    if loss_kind not in _MLP_LOSSES:
        raise ValueError(f"unknown MLP loss kind {loss_kind!r}.")
    _check_rows(Z, Y, sw, delta, loss_sums, batch_index)
    if Z.shape[0] == 0:
        return
    _mlp_output_delta_kernel[_blocks(Z.shape[0], BLOCK), BLOCK, stream](
        Z, Y, sw, int(out_code), int(loss_kind), delta, loss_sums, int(batch_index), dtype.type(1.0),
        float(np.finfo(dtype).eps))


def linear_output_delta(Z: Any, Y: Any, sw: Any, loss_code: int, epsilon: float, dZ: Any, loss_sums: Any,
                        batch_index: int, stream: Any = 0) -> None:
    """The fused loss step of a linear model: per row, the weighted loss and its derivative in the decision values.

    Row ``i``: ``dZ[i] = sw[i] * dloss/dz`` and ``sw[i] * loss_i`` is added to ``loss_sums[batch_index]``
    (float64), with the definitions of :func:`fastgd.kernels.losses.output_loss`: margin losses (``Y`` in
    {-1, +1}, one column per output, losses summed over outputs), residual losses (regression, one target per
    output) and ``Loss.MULTINOMIAL`` (``Y[i, 0]`` the class index, softmax cross-entropy over the row with the max
    shift). Computed in float64 per element, stored in ``dZ``'s dtype. The caller divides by the batch length and
    adds the penalty, as :func:`fastgd.kernels.linear.finish_gradient` does.

    Parameters
    ----------
    Z : DeviceNDArray of shape (n_rows, n_outputs)
        Decision values (not modified).
    Y : DeviceNDArray of shape (n_rows, n_targets)
        Targets coded for the loss; same dtype as ``Z``.
    sw : DeviceNDArray of shape (n_rows,)
        Sample weights; same dtype as ``Z``.
    loss_code : int
        A loss code of :mod:`fastgd.kernels.losses` (including ``Loss.MULTINOMIAL``).
    epsilon : float
        Threshold of ``huber`` and ``epsilon_insensitive``.
    dZ : DeviceNDArray of shape (n_rows, n_outputs)
        Weighted loss derivatives, overwritten.
    loss_sums : DeviceNDArray of float64
        Loss accumulators; ``loss_sums[batch_index]`` is added to (atomically), never reset here.
    batch_index : int
        Which accumulator.
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.
    """
    _check_device(Z, Y, sw, dZ, loss_sums)
    _float_dtype(Z, Y, sw, dZ)
    if loss_code not in _LINEAR_LOSSES:
        raise ValueError(f"unknown loss code {loss_code!r}.")
    _check_rows(Z, Y, sw, dZ, loss_sums, batch_index)
    if Z.shape[0] == 0:
        return
    _linear_output_delta_kernel[_blocks(Z.shape[0], BLOCK), BLOCK, stream](
        Z, Y, sw, int(loss_code), float(epsilon), dZ, loss_sums, int(batch_index))


def _check_rows(Z: Any, Y: Any, sw: Any, delta: Any, sums: Any, index: int) -> None:
    n = Z.shape[0]
    if Y.shape[0] != n or sw.shape != (n,) or delta.shape != Z.shape:
        raise ValueError(f"shapes do not agree: Z {Z.shape}, Y {Y.shape}, sw {sw.shape}, delta {delta.shape}.")
    if np.dtype(sums.dtype) != np.float64 or not 0 <= index < sums.shape[0]:
        raise ValueError(f"the sums must be a float64 array with an element {index}; got {sums.dtype} "
                         f"of shape {sums.shape}.")


def gather_batch(X: Any, Y: Any, sw: Any, order: Any, start: int, stop: int, x_out: Any, y_out: Any, sw_out: Any,
                 weight_sums: Any, batch_index: int, stream: Any = 0) -> None:
    """Copy rows ``order[start:stop]`` of ``X``, ``Y``, ``sw`` into the batch buffers; add their weight sum.

    Parameters
    ----------
    X : DeviceNDArray of shape (n_samples, n_features)
        Dense samples.
    Y : DeviceNDArray of shape (n_samples, n_targets)
        Targets.
    sw : DeviceNDArray of shape (n_samples,)
        Sample weights.
    order : DeviceNDArray of int64
        Visiting order.
    start, stop : int
        The batch is ``order[start:stop]``.
    x_out, y_out, sw_out : DeviceNDArray
        Batch buffers of at least ``stop - start`` rows; rows ``0 .. stop - start - 1`` are written.
    weight_sums : DeviceNDArray of float64
        ``weight_sums[batch_index]`` is added the batch's sum of sample weights (atomically; zeroed by the caller).
    batch_index : int
        Which accumulator.
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.
    """
    _check_device(X, Y, sw, order, x_out, y_out, sw_out, weight_sums)
    _check_gather(X.shape[1], Y, sw, order, start, stop, x_out, y_out, sw_out, weight_sums, batch_index)
    if stop > start:
        _gather_dense_kernel[int(stop - start), BLOCK, stream](X, Y, sw, order, int(start), x_out, y_out, sw_out,
                                                          weight_sums, int(batch_index))


def gather_batch_csr(data: Any, indices: Any, indptr: Any, Y: Any, sw: Any, order: Any, start: int, stop: int,
                     x_out: Any, y_out: Any, sw_out: Any, weight_sums: Any, batch_index: int, stream: Any = 0) -> None:
    """:func:`gather_batch` for CSR samples: the batch rows are densified into ``x_out`` (zeroed first).

    Parameters
    ----------
    data, indices, indptr : DeviceNDArray
        The CSR arrays of the samples (``indices`` and ``indptr`` integers, int64 preferred; sorted indices are
        not required, and duplicate entries of a column add up, as in scipy: in the order the threads reach
        them, so three or more of one element may round differently from one run to the next).
    Y, sw, order, start, stop, x_out, y_out, sw_out, weight_sums, batch_index, stream
        As in :func:`gather_batch`; ``x_out`` has as many columns as the samples have features.
    """
    _check_device(data, indices, indptr, Y, sw, order, x_out, y_out, sw_out, weight_sums)
    _check_gather(x_out.shape[1], Y, sw, order, start, stop, x_out, y_out, sw_out, weight_sums, batch_index)
    if stop > start:
        _gather_csr_kernel[int(stop - start), BLOCK, stream](data, indices, indptr, Y, sw, order, int(start), x_out,
                                                             y_out, sw_out, weight_sums, int(batch_index))


def _check_gather(n_features: int, Y: Any, sw: Any, order: Any, start: int, stop: int, x_out: Any, y_out: Any,
                  sw_out: Any, weight_sums: Any, batch_index: int) -> None:
    b = stop - start
    if not 0 <= start <= stop <= order.shape[0]:
        raise ValueError(f"the batch {start}:{stop} is not within the order of {order.shape[0]} samples.")
    if x_out.shape[0] < b or y_out.shape[0] < b or sw_out.shape[0] < b:
        raise ValueError(f"the batch buffers have fewer than {b} rows.")
    if x_out.shape[1] != n_features or y_out.shape[1] != Y.shape[1]:
        raise ValueError(f"the batch buffers' widths ({x_out.shape[1]}, {y_out.shape[1]}) are not the data's "
                         f"({n_features}, {Y.shape[1]}).")
    if np.dtype(order.dtype) != np.int64:
        raise TypeError(f"order must be int64, got {order.dtype}.")
    if np.dtype(weight_sums.dtype) != np.float64 or not 0 <= batch_index < weight_sums.shape[0]:
        raise ValueError(f"weight_sums must be a float64 array with an element {batch_index}.")


def _round_keys(key: int) -> tuple[np.uint64, ...]:
    """Four 32-bit round keys from a 64-bit key (splitmix64, in Python integers)."""
    state = int(key) & 0xFFFFFFFFFFFFFFFF
    keys = []
    for _ in range(_FEISTEL_ROUNDS):
        state = (state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        z ^= z >> 31
        keys.append(np.uint64(z & 0xFFFFFFFF))
    return tuple(keys)


def shuffle_order(order: Any, key: int, n: int, stream: Any = 0) -> None:
    """Fill ``order[:n]`` with a pseudo-random permutation of ``0 .. n - 1``, computed on the device.

    Thread ``i`` writes ``order[i] = pi(i)``, with ``pi`` a keyed four-round Feistel network over ``[0, 4**h)``
    (``4**h`` the smallest power of four at least ``n``, so below ``4 n``) restricted to ``[0, n)`` by
    cycle-walking: ``pi`` is applied again until the value is below ``n``. A permutation restricted this way is a
    bijection of ``[0, n)``; the expected walk is under four rounds of the network. The same key gives the same
    permutation on every device and under the simulator.

    Parameters
    ----------
    order : DeviceNDArray of int64
        At least ``n`` elements; the first ``n`` are overwritten.
    key : int
        64-bit key (draw it from the estimator's random state, e.g. ``rng.integers(2**64, dtype=np.uint64)``).
    n : int
        Number of samples, ``n < 2**62``.
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.
    """
    _check_device(order)
    if np.dtype(order.dtype) != np.int64 or not 0 <= n <= order.shape[0]:
        raise ValueError(f"order must be an int64 device array of at least n={n} elements.")
    if n == 0:
        return
    half_bits = max(1, ((n - 1).bit_length() + 1) // 2)
    k0, k1, k2, k3 = _round_keys(key)
    _shuffle_kernel[_blocks(n, BLOCK), BLOCK, stream](order, int(n), np.uint64(n), np.uint64(half_bits),
                                                      np.uint64((1 << half_bits) - 1), k0, k1, k2, k3)


def identity_order(order: Any, n: int, stream: Any = 0) -> None:
    """Fill ``order[:n]`` with ``0 .. n - 1`` (training without shuffling, predictions).

    Parameters
    ----------
    order : DeviceNDArray of int64
        At least ``n`` elements; the first ``n`` are overwritten.
    n : int
        Number of samples.
    stream : numba.cuda stream or 0, default=0
        Stream of the launch.
    """
    _check_device(order)
    if np.dtype(order.dtype) != np.int64 or not 0 <= n <= order.shape[0]:
        raise ValueError(f"order must be an int64 device array of at least n={n} elements.")
    if n:
        _identity_kernel[_blocks(n, BLOCK), BLOCK, stream](order, int(n))

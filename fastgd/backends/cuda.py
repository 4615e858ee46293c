"""CUDA trainers: a model's data, parameters and optimizer state live on the GPU for the whole fit.

At construction a trainer copies the samples, targets, sample weights,
parameters and optimizer state to the device, once. Each batch is then a fixed
sequence of kernel launches with no transfer and no wait for the device:
gather the batch's rows (the visiting order is drawn on the device,
:class:`DeviceOrders`), forward pass, fused output/loss/delta step, backward
pass, gradient norms, the clip-by-norm factor and the fused optimizer update.
Per-batch results (loss, sum of sample weights, squared gradient norms) are
accumulated in small device arrays that are read once per epoch, when the
host copies of the parameters and of the optimizer state are also refreshed:
after every epoch (and after :meth:`restore`) the host arrays the estimator
holds mirror the device, so validation scores, the non-finite guard and the
final fitted attributes read ordinary NumPy arrays.

The arithmetic is that of the CPU trainers (:mod:`fastgd.backends.cpu`,
:mod:`fastgd.backends.cpu_mlp`), with the sums of a batch taken in another
order: results agree within float32 round-off, not bitwise.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import cuda

from ..cuda import dense
from ..cuda.linear import cumulative_l1, l1_shrink
from ..cuda.optim import clip_norm_scale, device_step, fill, squared_norm
from ..kernels.activations import Activation
from ..kernels.losses import OutputLoss
from ..optim import OptimizerState
from ..optim.schedules import UpdateRule, update_lr
from .cpu import LinearTrainer
from .cpu_mlp import MLPTrainer
from .trainer import EpochResult

#: The identity activation as the kernels take it (an int: an enum member would be a kernel specialisation of its own).
IDENTITY = int(Activation.IDENTITY)
#: The per-update learning rate in plain Python: a call of the compiled one from Python costs microseconds.
learning_rate = update_lr.py_func


def _device_copy(array):
    """A new device array holding a copy of device array ``array``."""
    copy = cuda.device_array(array.shape, dtype=array.dtype)
    copy.copy_to_device(array)
    return copy


def _upload_samples(X):
    """``X`` on the device: a dense array, or the CSR triple ``(data, indices, indptr)``."""
    if isinstance(X, tuple):
        return tuple(cuda.to_device(np.ascontiguousarray(part)) for part in X)
    return cuda.to_device(np.ascontiguousarray(X))


class DeviceOrders:
    """The visiting order of each epoch, drawn on the device.

    Each epoch's order is a fresh pseudo-random permutation
    (:func:`fastgd.cuda.dense.shuffle_order`) keyed by a 63-bit integer drawn
    from ``random_state``: the same ``random_state`` gives the same orders.
    They differ from the CPU's orders (NumPy's shuffle); with ``shuffle=False``
    both visit the samples in their order.

    Parameters
    ----------
    n_samples : int
        Number of samples.
    random_state : numpy.random.RandomState or None
        Source of the keys; None visits the samples in their order.
    """

    def __init__(self, n_samples: int, random_state: np.random.RandomState | None) -> None:
        self.n_samples = n_samples
        self.random_state = random_state
        self.order = cuda.device_array(n_samples, dtype=np.int64)
        dense.identity_order(self.order, n_samples)

    def next(self):
        """The device array holding the next epoch's order."""
        if self.random_state is not None:
            key = int(self.random_state.randint(0, np.iinfo(np.int64).max, dtype=np.int64))
            dense.shuffle_order(self.order, np.uint64(key), self.n_samples)
        return self.order

    def prepare_next(self) -> None:
        """Nothing to prepare: drawing an order on the device is a single launch."""


class DeviceParameters:
    """What the CUDA trainers share: device copies of the flat parameters and the optimizer state.

    Subclasses set ``params`` and ``state`` (the host arrays the estimator
    holds), then call :meth:`_upload_parameters`.
    """

    params: np.ndarray
    state: OptimizerState
    n_samples: int

    def _upload_parameters(self) -> None:
        self.d_params = cuda.to_device(self.params)
        self.d_grads = cuda.device_array_like(self.params)
        self.d_slots = cuda.to_device(self.state.slots)
        self.scale = cuda.device_array(1, dtype=np.float64)

    def make_orders(self, random_state: np.random.RandomState | None) -> DeviceOrders:
        """Epoch orders drawn on the device (see :class:`DeviceOrders`)."""
        return DeviceOrders(self.n_samples, random_state)

    def to_host(self) -> None:
        """Copy the device parameters and optimizer state into the host arrays."""
        self.d_params.copy_to_host(self.params)
        if self.state.slots.size:
            self.d_slots.copy_to_host(self.state.slots)

    def snapshot(self, reuse=None):
        """Device copies of the parameters and optimizer state, and the step count (``reuse`` is not used)."""
        return _device_copy(self.d_params), _device_copy(self.d_slots), self.state.step

    def restore(self, snapshot) -> None:
        """Put back a :meth:`snapshot` on the device, and refresh the host copies."""
        params, slots, step = snapshot
        self.d_params.copy_to_device(params)
        self.d_slots.copy_to_device(slots)
        self.state.step = step
        self.to_host()

    def _update(self, rule: UpdateRule, step: int, lr: float, sq_norms, index: int, weight_sum) -> None:
        """Scale the summed gradient by ``1 / weight_sum[0]`` (and clip it by norm), then update.

        ``sq_norms[index]`` is the squared norm of the summed gradient when clipping by norm.
        """
        clip_norm_scale(sq_norms, index, weight_sum, rule.clip_norm, self.scale)
        device_step(rule.kernel_id, self.d_params, self.d_grads, self.d_slots, rule.hyper, step, lr, 1.0,
                    rule.clip_value, scale_ref=self.scale)


def _n_batches(n_samples: int, batch_size: int) -> int:
    return (n_samples + batch_size - 1) // batch_size


class CudaLinearTrainer(DeviceParameters, LinearTrainer):
    """Trains a linear model's flat parameter vector on a CUDA GPU.

    Takes the parameters of :class:`fastgd.backends.cpu.LinearTrainer` (its
    CPU-only options, such as thread counts, are accepted and unused). Each
    batch: decision values ``Z = X_b W^T + b``, the loss derivative, ``dZ^T
    X_b + l2 |b| W``, the column sums of ``dZ`` (intercepts), all divided by
    the batch length in the fused optimizer update, then the L1 step: the
    cumulative penalty per sample (``batch_size=1``), as on the CPU, else the
    proximal one.
    """

    def __init__(self, X, Y, sample_weight, params, optimizer, state: OptimizerState, rule: UpdateRule, *,
                 loss_code: int, loss_epsilon: float, n_outputs: int, fit_intercept: bool, l2: float, l1: float,
                 batch_size: int, **cpu_options) -> None:
        if cpu_options.get("lazy_updates") and sp.issparse(X):
            raise ValueError("lazy_updates=True is a rule of the CPU's sparse steps; the GPU trains with the exact "
                             "rule. Use device='cpu', or lazy_updates=False.")
        super().__init__(X, Y, sample_weight, params, optimizer, state, rule, loss_code=loss_code,
                         loss_epsilon=loss_epsilon, n_outputs=n_outputs, fit_intercept=fit_intercept, l2=l2, l1=l1,
                         batch_size=batch_size, **cpu_options)
        self.grads = None  # the gradient lives on the device
        self.sums_from_fold = False  # the CPU kernels' fold does not run here
        dtype = params.dtype
        n_features = self.n_coefs // n_outputs
        self.n_features = n_features
        self.d_X = _upload_samples(self.X)
        self.d_Y = cuda.to_device(np.ascontiguousarray(Y))
        self.d_sw = cuda.to_device(np.ascontiguousarray(sample_weight))
        self._upload_parameters()
        self.d_l1_applied = cuda.to_device(self.l1_applied) if self.l1_applied.size else None
        rows = self.batch_size
        self.x_batch = cuda.device_array((rows, n_features), dtype=dtype)
        self.y_batch = cuda.device_array((rows, Y.shape[1]), dtype=dtype)
        self.sw_batch = cuda.device_array(rows, dtype=dtype)
        self.z = cuda.device_array((rows, n_outputs), dtype=dtype)
        self.dz = cuda.device_array((rows, n_outputs), dtype=dtype)
        n_batches = _n_batches(self.n_samples, self.batch_size)
        lengths = np.minimum(self.batch_size, self.n_samples - self.batch_size * np.arange(n_batches))
        self.batch_lengths = lengths
        d_lengths = cuda.to_device(lengths.astype(np.float64))
        self.length_views = [d_lengths[k:k + 1] for k in range(n_batches)]
        self.loss_sums = cuda.device_array(n_batches, dtype=np.float64)
        self.weight_sums = cuda.device_array(n_batches, dtype=np.float64)
        self.sq_norms = cuda.device_array(n_batches, dtype=np.float64)

    def run_epoch(self, order, lr: float) -> EpochResult:
        """Train one epoch on the device, visiting the samples in device array ``order``."""
        rule = self.rule._replace(lr=float(lr))
        n_coefs = self.n_coefs
        W = self.d_params[:n_coefs].reshape(self.n_outputs, self.n_features)
        bias = self.d_params[n_coefs:]
        gW = self.d_grads[:n_coefs].reshape(self.n_outputs, self.n_features)
        gb = self.d_grads[n_coefs:]
        if not self.fit_intercept:
            fill(gb, 0.0)
        for accumulator in (self.loss_sums, self.weight_sums, self.sq_norms):
            fill(accumulator, 0.0)
        step = self.state.step
        views = {}  # slicing a device array costs as much as a launch: once per batch length
        for k, b in enumerate(self.batch_lengths):
            start = k * self.batch_size
            if b not in views:
                views[b] = self.x_batch[:b], self.y_batch[:b], self.sw_batch[:b], self.z[:b], self.dz[:b]
            x, y, sw, z, dz = views[b]
            if isinstance(self.d_X, tuple):
                dense.gather_batch_csr(*self.d_X, self.d_Y, self.d_sw, order, start, start + b, x, y, sw,
                                       self.weight_sums, k)
            else:
                dense.gather_batch(self.d_X, self.d_Y, self.d_sw, order, start, start + b, x, y, sw,
                                   self.weight_sums, k)
            dense.dense_forward_transposed(x, W, bias, IDENTITY, z)
            dense.linear_output_delta(z, y, sw, self.loss_code, self.loss_epsilon, dz, self.loss_sums, k)
            dense.weight_gradient_transposed(x, dz, W, self.l2 * b, gW, gb=gb if self.fit_intercept else None)
            squared_norm(self.d_grads, self.sq_norms, k)
            step += 1
            lr_k = learning_rate(rule, step)
            # the mean over the batch: 1 / batch length, from the device copy of the lengths
            self._update(rule, step, lr_k, self.sq_norms, k, self.length_views[k])
            if self.l1 > 0.0 and self.d_l1_applied is not None:  # per-sample: the cumulative penalty, as on the CPU
                self.lazy[3, 0] += lr_k * self.l1
                cumulative_l1(self.d_params, n_coefs, self.lazy[3, 0], self.d_l1_applied)
            elif self.l1 > 0.0:
                l1_shrink(self.d_params, n_coefs, lr_k * self.l1)
        self.state.step = step
        self.to_host()
        loss_sum = float(self.loss_sums.copy_to_host().sum())
        norms = np.sqrt(self.sq_norms.copy_to_host()) / self.batch_lengths
        penalty, params_finite = self.penalty_and_finiteness()
        loss = loss_sum / self.n_samples + penalty
        if not (np.isfinite(loss) and np.isfinite(norms).all() and params_finite):
            loss = np.nan
        return EpochResult(loss, np.array([norms.mean()]), len(self.batch_lengths))


class CudaMLPTrainer(DeviceParameters, MLPTrainer):
    """Trains a multi-layer perceptron's flat parameters on a CUDA GPU.

    Takes the parameters of :class:`fastgd.backends.cpu_mlp.MLPTrainer` (its
    CPU-only options are accepted and unused) and
    computes what :func:`fastgd.kernels.dense.mlp_epoch` computes: per batch,
    ``A_l = act(A_{l-1} W_l + b_l)``, the fused output activation, loss and
    delta, ``gW_l = A_{l-1}^T delta_l + alpha W_l``, ``gb_l`` the column sums
    of ``delta_l`` and ``delta_{l-1} = (delta_l W_l^T) act'(A_{l-1})``; the
    fused optimizer update divides by the batch's sum of sample weights.
    """

    def __init__(self, X, Y, sample_weight, params, state: OptimizerState, rule: UpdateRule, *, units, hidden_code,
                 out_code, loss_kind, alpha, batch_size, **cpu_options) -> None:
        super().__init__(X, Y, sample_weight, params, state, rule, units=units, hidden_code=hidden_code,
                         out_code=out_code, loss_kind=loss_kind, alpha=alpha, batch_size=batch_size, **cpu_options)
        self.grads = None
        self.d_X = _upload_samples(self.X)
        self.d_Y = cuda.to_device(np.ascontiguousarray(Y))
        self.d_sw = cuda.to_device(np.ascontiguousarray(sample_weight))
        self._upload_parameters()
        self._allocate_device(self.batch_size)
        n_batches = _n_batches(self.n_samples, self.batch_size)
        self.batch_lengths = np.minimum(self.batch_size, self.n_samples - self.batch_size * np.arange(n_batches))
        n_layers = self.units.size - 1
        self.loss_sums = cuda.device_array(n_batches, dtype=np.float64)
        self.weight_sums = cuda.device_array(n_batches, dtype=np.float64)
        self.weight_sq = cuda.device_array(n_batches, dtype=np.float64)
        self.layer_sq = cuda.device_array(n_batches * n_layers, dtype=np.float64)
        self.total_sq = cuda.device_array(n_batches, dtype=np.float64)
        self.weight_sum_views = [self.weight_sums[k:k + 1] for k in range(n_batches)]
        self.d_layer_bounds = dense.layer_bounds(self.offsets, self.units)

    def _allocate(self, rows: int, dtype) -> None:
        """The host workspaces of the CPU trainer are not needed: see :meth:`_allocate_device`."""
        self.x_batch = np.empty((0, self.units[0]), dtype=dtype)

    def _allocate_device(self, rows: int) -> None:
        dtype = self.params.dtype
        self.rows = rows
        self._views: dict = {}
        self.d_x_batch = cuda.device_array((rows, self.units[0]), dtype=dtype)
        self.d_y_batch = cuda.device_array((rows, self.units[-1]), dtype=dtype)
        self.d_sw_batch = cuda.device_array(rows, dtype=dtype)
        width = int(self.units[1:].sum())
        self.d_activations = cuda.device_array(rows * width, dtype=dtype)
        self.d_deltas = cuda.device_array(rows * width, dtype=dtype)

    def _layer(self, array, layer: int):
        """Weights ``(n_in, n_out)`` and biases of ``layer`` inside flat device vector ``array``."""
        n_in, n_out = int(self.units[layer]), int(self.units[layer + 1])
        lo = int(self.offsets[layer])
        return array[lo:lo + n_in * n_out].reshape(n_in, n_out), array[lo + n_in * n_out:lo + (n_in + 1) * n_out]

    def _batch_views(self, b: int, params, grads) -> tuple:
        """The device views one batch of ``b`` rows works on, made once per batch length and parameter vector.

        Slicing a device array costs microseconds on the host, as much as a launch: an epoch reuses these.
        """
        key = (b, id(params), id(grads))
        views = self._views.get(key)
        if views is not None:
            return views
        rows = self.rows
        n_layers = self.units.size - 1
        inputs = [self.d_x_batch[:b]]
        layers = []
        a_offset = 0
        for layer in range(n_layers):
            n_out = int(self.units[layer + 1])
            W, bias = self._layer(params, layer)
            gW, gb = self._layer(grads, layer)
            A = self.d_activations[a_offset:a_offset + b * n_out].reshape(b, n_out)
            delta = self.d_deltas[a_offset:a_offset + b * n_out].reshape(b, n_out)
            layers.append((W, bias, gW, gb, A, delta))
            inputs.append(A)
            a_offset += rows * n_out
        views = (inputs, layers, self.d_y_batch[:b], self.d_sw_batch[:b])
        self._views[key] = views
        return views

    def _batch_gradient(self, order, start: int, stop: int, k: int, params, grads) -> None:
        """Gradient sums of samples ``order[start:stop]`` at ``params`` into ``grads``; batch results at ``k``."""
        inputs, layers, y, sw = self._batch_views(stop - start, params, grads)
        n_layers = len(layers)
        if isinstance(self.d_X, tuple):
            dense.gather_batch_csr(*self.d_X, self.d_Y, self.d_sw, order, start, stop, inputs[0], y, sw,
                                   self.weight_sums, k)
        else:
            dense.gather_batch(self.d_X, self.d_Y, self.d_sw, order, start, stop, inputs[0], y, sw,
                               self.weight_sums, k)
        for layer, (W, bias, *_, A, _) in enumerate(layers):
            # the output activation is applied by the fused output step
            dense.dense_forward(inputs[layer], W, bias, self.hidden_code if layer < n_layers - 1 else IDENTITY, A)
        delta = layers[-1][-1]
        dense.mlp_output_delta(inputs[-1], y, sw, self.out_code, self.loss_kind, delta, self.loss_sums, k)
        for layer in range(n_layers - 1, -1, -1):
            W, _, gW, gb, *_ = layers[layer]
            dense.weight_gradient(inputs[layer], delta, W, self.alpha, gW, gb=gb)
            if layer > 0:
                delta_in = layers[layer - 1][-1]
                dense.backprop_delta(delta, W, inputs[layer], self.hidden_code, delta_in)
                delta = delta_in
        # per-layer and total gradient norms and the loss's L2 term (parameters before the update): one launch
        dense.layer_squared_norms(params, grads, self.d_layer_bounds, self.weight_sq, self.layer_sq, self.total_sq, k)

    def _reset_accumulators(self) -> None:
        for accumulator in (self.loss_sums, self.weight_sums, self.weight_sq, self.layer_sq, self.total_sq):
            fill(accumulator, 0.0)

    def _batch_losses(self, n_batches: int, weight_sums: np.ndarray) -> np.ndarray:
        """Each batch's loss (scikit-learn's definition, L2 term included), from the device accumulators.

        ``weight_sums`` is the host copy of the batches' sums of sample weights.
        """
        loss = self.loss_sums.copy_to_host()[:n_batches]
        if self.loss_kind == OutputLoss.SQUARED_ERROR:
            loss = loss * (0.5 / self.units[-1])
        return (loss + 0.5 * self.alpha * self.weight_sq.copy_to_host()[:n_batches]) / weight_sums[:n_batches]

    def run_epoch(self, order, lr: float) -> EpochResult:
        """Train one epoch on the device, visiting the samples in device array ``order``."""
        rule = self.rule._replace(lr=float(lr))
        n_layers = self.units.size - 1
        self._reset_accumulators()
        step = self.state.step
        for k, b in enumerate(self.batch_lengths):
            start = k * self.batch_size
            self._batch_gradient(order, start, start + b, k, self.d_params, self.d_grads)  # total_sq[k] too
            step += 1
            self._update(rule, step, learning_rate(rule, step), self.total_sq, k, self.weight_sum_views[k])
        self.state.step = step
        self.to_host()
        n_batches = len(self.batch_lengths)
        weight_sums = self.weight_sums.copy_to_host()
        batch_loss = self._batch_losses(n_batches, weight_sums)
        norms = np.sqrt(self.layer_sq.copy_to_host().reshape(n_batches, n_layers)) / weight_sums[:, None]
        loss = float((batch_loss * self.batch_lengths).sum()) / self.n_samples
        if not (np.isfinite(loss) and np.isfinite(norms).all() and np.isfinite(self.params).all()):
            loss = np.nan
        return EpochResult(loss, norms.mean(axis=0), n_batches)

    def loss_and_gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """Full-batch loss and gradient at ``params`` (for L-BFGS), computed on the device as one batch."""
        if self.rows < self.n_samples:
            self._allocate_device(self.n_samples)
        self._reset_accumulators()
        if getattr(self, "_probe", None) is None:  # one device vector and order for every point L-BFGS asks about
            self._probe = cuda.device_array_like(self.params)
            self._samples_in_order = DeviceOrders(self.n_samples, None).next()
        d_params = self._probe
        d_params.copy_to_device(np.ascontiguousarray(params, dtype=self.params.dtype))
        self._batch_gradient(self._samples_in_order, 0, self.n_samples, 0, d_params, self.d_grads)
        weight_sums = self.weight_sums.copy_to_host()
        loss = float(self._batch_losses(1, weight_sums)[0])
        return loss, self.d_grads.copy_to_host().astype(np.float64) / weight_sums[0]


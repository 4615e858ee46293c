"""CPU trainer of multi-layer perceptrons."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

from .._compile_notice import compile_notice
from .._numeric.float_env import subnormals_flushed
from ..kernels.dense import (
    mlp_epoch,
    mlp_epoch_split,
    mlp_forward,
    mlp_loss_and_gradient,
    mlp_loss_and_gradient_split,
)
from ..optim import OptimizerState
from ..optim.schedules import UpdateRule
from .cpu import FlatParameterSnapshots, numba_threads, parallel_section, resolve_n_threads
from .trainer import EpochResult

#: Fewest rows of one part of a batch. On an idle 2-vCPU machine (the 100-256-128-10 network, float32, Adam)
#: two parts of 8 rows on two threads trained 1.13x faster than one batch of 16; batches of 8 gained nothing
#: from two parts of 4.
MIN_PART_ROWS = 8

#: Fewest rows of each part when a batch has more than two: every part costs a pass over a gradient buffer
#: and smaller matrix products, which one thread computing all the parts pays in full. On one thread (same
#: network, CPU time per epoch, load 3.6-4.4): batch 32 in 4 parts of 8 rows 1.4x the time of one part,
#: batch 128 in 8 parts of 16 1.3x, in 2 parts of 64 within the noise of one part.
WIDE_PART_ROWS = 64

#: Most parts a batch is split into, whatever the thread count: at most this many threads share a batch.
MAX_PARTS = 8

#: Rows a part computes at a time: a larger part is computed piece by piece, each piece's gradient sums added
#: to the part's, so that its activations and deltas stay in cache and take memory for this many rows only.
#: L-BFGS on 20,000 rows of the 100-256-128-10 network (float32, two threads): 47.3 ms per evaluation in
#: parts of 10,000 rows, 39.0 / 35.5 / 35.9 ms in pieces of 1024 / 512 / 256; batches of 1024 (two parts of
#: 512) trained at 517-522 k samples/s without pieces and 511 k in pieces of 256.
PIECE_ROWS = 512

#: Most elements of the parts' extra gradient buffers (``(parts - 1) x parameters``); a large model is split
#: into fewer parts (two at least).
MAX_PART_ELEMENTS = 1 << 22


_controller: tuple[int, ThreadpoolController] | None = None


def blas_controller() -> ThreadpoolController:
    """A :class:`threadpoolctl.ThreadpoolController` of the loaded BLAS libraries, built once.

    Building one reads the process's memory map to find the libraries (about a
    millisecond, more under load), which a ``partial_fit`` on a small batch
    cannot afford at every call. It is rebuilt when modules were imported
    since, which may have loaded another BLAS.
    """
    global _controller
    if _controller is None or _controller[0] != len(sys.modules):
        _controller = (len(sys.modules), ThreadpoolController())
    return _controller[1]


def one_blas_thread() -> AbstractContextManager:
    """Limit the loaded BLAS libraries to one thread for the block (nothing to do where they already are).

    fastgd's MLPs multiply on one BLAS thread, always, and use Numba's threads
    instead (:func:`batch_parts`): OpenBLAS threads woken by a call at the
    default count keep spinning for a while afterwards, on the cores that
    Numba's threads need (measured: a 2-thread epoch ran no faster than one
    while they spun, cpu time twice the wall time).
    """
    controller = blas_controller()
    blas = [lib for lib in controller.lib_controllers if lib.user_api == "blas"]
    if all(lib.num_threads == 1 for lib in blas):  # nothing to change
        return nullcontext()
    return controller.limit(limits=1, user_api="blas")


def batch_parts(batch_size: int, n_params: int) -> int:
    """Parts each batch of ``batch_size`` rows is split into: a function of the batch and the model only.

    Never of the thread count, so that the order in which the parts' sums are added -- hence every bit
    of the trained model -- is the same on 1 thread and on 64, whatever the machine's load: threads only
    pick which parts they compute. Two parts from ``2 * MIN_PART_ROWS`` rows on; more, of at least
    :data:`WIDE_PART_ROWS` rows each, up to :data:`MAX_PARTS`; and few enough that their gradient buffers
    stay within :data:`MAX_PART_ELEMENTS` elements (see :func:`fastgd.kernels.dense.mlp_epoch_split`).
    """
    if batch_size < 2 * MIN_PART_ROWS:
        return 1
    most_buffers = max(1, MAX_PART_ELEMENTS // max(n_params, 1))
    return max(1, min(max(2, batch_size // WIDE_PART_ROWS), MAX_PARTS, most_buffers + 1))


def layer_offsets(units: np.ndarray) -> np.ndarray:
    """Start of each layer's weights in the flat parameter vector (weights, then biases, per layer)."""
    sizes = (units[:-1] + 1) * units[1:]
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


def n_parameters(units: np.ndarray) -> int:
    """Length of the flat parameter vector of layers ``units``."""
    return int(((units[:-1] + 1) * units[1:]).sum())


class MLPTrainer(FlatParameterSnapshots):
    """Holds an MLP's data, flat parameters and workspaces; runs compiled epochs.

    Parameters
    ----------
    X : ndarray or scipy.sparse CSR matrix of shape (n_samples, n_features)
        Training samples in the parameters' dtype.
    Y : ndarray of shape (n_samples, n_outputs)
        Targets (indicator matrix for classifiers).
    sample_weight : ndarray of shape (n_samples,)
        Sample weights.
    params : ndarray
        Flat parameters, trained in place.
    state : OptimizerState
        Optimizer state for ``params``.
    rule : UpdateRule
        Optimizer, schedule and clipping.
    units : ndarray of int64
        Layer widths, input first.
    hidden_code, out_code, loss_kind : int
        Activations and loss (see :mod:`fastgd.kernels.dense`).
    alpha : float
        L2 strength.
    batch_size : int
        Samples per update.
    n_threads : int or None, default=None
        Threads (:func:`fastgd.backends.cpu.resolve_n_threads`; None: the idle
        CPUs). A batch of at least ``2 * MIN_PART_ROWS`` rows -- and L-BFGS's
        full batch -- is split into parts of rows (:func:`batch_parts`), the
        same parts on any thread count; the threads share them out. Matrix
        products run on one BLAS thread. The thread count changes the speed
        only: the trained parameters are the same to the bit.
    """

    def __init__(self, X, Y, sample_weight, params, state: OptimizerState, rule: UpdateRule, *, units, hidden_code,
                 out_code, loss_kind, alpha, batch_size, n_threads: int | None = None) -> None:
        dtype = params.dtype
        self.X = (X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)) if sp.issparse(X) else X
        self.Y = Y
        self.sample_weight = sample_weight
        self.n_samples = Y.shape[0]
        self.params = params
        self.grads = np.zeros_like(params)
        self.state = state
        self.rule = rule
        self.units = np.asarray(units, dtype=np.int64)
        self.offsets = layer_offsets(self.units)
        self.hidden_code = int(hidden_code)
        self.out_code = int(out_code)
        self.loss_kind = int(loss_kind)
        self.alpha = float(alpha)
        self.batch_size = int(batch_size)
        threads = resolve_n_threads(n_threads)
        self.numba_threads = threads if rule.threaded else None
        self.n_parts = batch_parts(self.batch_size, params.size)
        #: Threads that compute a split batch's parts (no more than there are parts).
        self.part_threads = min(threads, self.n_parts)
        # batches run split into parts (one per thread, or one part of several pieces: a batch larger than
        # PIECE_ROWS on one thread), or in the serial epoch
        self.split = self.n_parts > 1 or self.batch_size > PIECE_ROWS
        # the serial epoch's workspaces; the split epoch allocates its own at its first call
        self._allocate(0 if self.split else self.batch_size, dtype)
        self.part_grads: np.ndarray | None = None
        self.layer_sq = np.zeros(self.units.size - 1)
        self.norm_sums = np.zeros(self.units.size - 1)
        #: What compiles on first use, for :func:`fastgd._compile_notice.compile_notice`.
        self.kernels = f"{dtype.name} MLP kernels" + (" for CSR input" if sp.issparse(X) else "")

    def _allocate(self, rows: int, dtype) -> None:
        width = int(self.units[1:].sum())
        self.x_batch = np.empty((rows, self.units[0]), dtype=dtype)
        self.y_batch = np.empty((rows, self.units[-1]), dtype=dtype)
        self.sw_batch = np.empty(rows, dtype=dtype)
        self.activations = np.empty(rows * width, dtype=dtype)
        self.deltas = np.empty(rows * width, dtype=dtype)

    def run_epoch(self, order: np.ndarray, lr: float) -> EpochResult:
        """Train one epoch: :func:`fastgd.kernels.dense.mlp_epoch`, or its split form on several threads."""
        if self.split:
            return self._run_split_epoch(order, lr)
        step_before = self.state.step
        parallel = parallel_section() if self.numba_threads is not None else nullcontext()
        with compile_notice(self.kernels), one_blas_thread(), parallel, numba_threads(self.numba_threads), \
                subnormals_flushed():
            loss_sum, step = mlp_epoch(
                self.X, self.Y, self.sample_weight, order, self.params, self.grads, self.state.slots, self.units,
                self.offsets, self.hidden_code, self.out_code, self.loss_kind, self.x_batch, self.y_batch,
                self.sw_batch, self.activations, self.deltas, self.rule._replace(lr=float(lr)), step_before,
                self.alpha, self.batch_size, self.layer_sq, self.norm_sums)
        return self._epoch_result(loss_sum, step_before, step)

    def _allocate_parts(self) -> None:
        """Workspaces of :func:`fastgd.kernels.dense.split_batch`, one set per part of a batch (once)."""
        if self.part_grads is not None:
            return
        n_parts, dtype = self.n_parts, self.params.dtype
        part_rows = min(-(-self.batch_size // n_parts), PIECE_ROWS)
        width = int(self.units[1:].sum())
        self.x_parts = np.empty((n_parts, part_rows, self.units[0]), dtype=dtype)
        self.y_parts = np.empty((n_parts, part_rows, self.units[-1]), dtype=dtype)
        self.sw_parts = np.empty((n_parts, part_rows), dtype=dtype)
        self.activation_parts = np.empty((n_parts, part_rows * width), dtype=dtype)
        self.delta_parts = np.empty((n_parts, part_rows * width), dtype=dtype)
        self.part_grads = np.zeros((n_parts - 1, self.params.size), dtype=dtype)
        pieces = -(-self.batch_size // n_parts) > PIECE_ROWS  # parts computed piece by piece
        self.piece_grads = np.zeros((n_parts, self.params.size if pieces else 0), dtype=dtype)
        self.part_sq = np.zeros((2 * n_parts, self.units.size - 1))

    def _run_split_epoch(self, order: np.ndarray, lr: float) -> EpochResult:
        """One epoch with every batch split into :attr:`n_parts` parts, computed on :attr:`part_threads` of
        Numba's threads (pieces of :data:`PIECE_ROWS` rows at most)."""
        self._allocate_parts()
        step_before = self.state.step
        with compile_notice(self.kernels), one_blas_thread(), parallel_section(), numba_threads(self.part_threads), \
                subnormals_flushed():
            loss_sum, step = mlp_epoch_split(
                self.X, self.Y, self.sample_weight, order, self.params, self.grads, self.part_grads,
                self.piece_grads, self.state.slots, self.units, self.offsets, self.hidden_code, self.out_code,
                self.loss_kind, self.x_parts, self.y_parts, self.sw_parts, self.activation_parts, self.delta_parts,
                self.rule._replace(lr=float(lr)), step_before, self.alpha, self.batch_size, self.part_sq,
                self.layer_sq, self.norm_sums)
        return self._epoch_result(loss_sum, step_before, step)

    def _epoch_result(self, loss_sum: float, step_before: int, step: int) -> EpochResult:
        """Record the epoch's updates; its mean loss (NaN once anything is not finite) and mean gradient norms."""
        self.state.step = step
        n_updates = step - step_before
        loss = loss_sum / self.n_samples
        if not np.isfinite(loss) or not np.isfinite(self.params).all():
            loss = np.nan
        return EpochResult(loss, self.norm_sums / max(n_updates, 1), n_updates)

    def loss_and_gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """Full-batch loss and gradient at ``params`` (for L-BFGS); the trainer's parameters are untouched.

        As in the split epoch (and for a trainer made for the full batch), the rows are split into parts
        on Numba's threads, computed in pieces of :data:`PIECE_ROWS` rows.
        """
        order = np.arange(self.n_samples, dtype=np.int64)
        params = np.ascontiguousarray(params, dtype=self.params.dtype)
        if self.split and self.batch_size >= self.n_samples:
            self._allocate_parts()
            with compile_notice(self.kernels), one_blas_thread(), parallel_section(), \
                    numba_threads(self.part_threads), subnormals_flushed():
                loss = mlp_loss_and_gradient_split(
                    self.X, self.Y, self.sample_weight, order, 0, self.n_samples, params, self.grads,
                    self.part_grads, self.piece_grads, self.units, self.offsets, self.hidden_code, self.out_code,
                    self.loss_kind, self.x_parts, self.y_parts, self.sw_parts, self.activation_parts,
                    self.delta_parts, self.alpha, self.part_sq, self.layer_sq, self.rule, self.state.slots)
            return float(loss), self.grads.astype(np.float64)
        if self.x_batch.shape[0] < self.n_samples:
            self._allocate(self.n_samples, self.params.dtype)
        with compile_notice(self.kernels), one_blas_thread(), subnormals_flushed():
            loss = mlp_loss_and_gradient(
                self.X, self.Y, self.sample_weight, order, 0, self.n_samples, params, self.grads, self.units,
                self.offsets, self.hidden_code, self.out_code, self.loss_kind, self.x_batch, self.y_batch,
                self.sw_batch, self.activations, self.deltas, self.alpha, self.layer_sq, self.rule, self.state.slots)
        return float(loss), self.grads.astype(np.float64)

    def outputs_finite(self, n_rows: int = 64) -> bool:
        """Whether the network's outputs on the first ``n_rows`` samples are finite.

        See :meth:`fastgd.engine.Trainer.outputs_finite`.
        """
        out = np.empty((min(n_rows, self.n_samples), self.units[-1]), dtype=self.params.dtype)
        with compile_notice(self.kernels), one_blas_thread():
            mlp_forward(self.X, self.params, self.units, self.offsets, self.hidden_code, self.out_code, out,
                        out.shape[0])
        return bool(np.isfinite(out).all())

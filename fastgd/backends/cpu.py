"""CPU trainers: hold a model's data, parameters and workspaces, and run compiled epochs."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._config import PARALLEL_MIN_SIZE
from ..engine import EpochResult
from ..kernels.linear import linear_epoch, linear_epoch_threaded
from ..optim import Optimizer, OptimizerState
from ..optim.schedules import Schedule, UpdateRule


def make_update_rule(optimizer: Optimizer, schedule: Schedule, n_params: int,
                     clip_value: float | None, clip_norm: float | None) -> UpdateRule:
    """Bundle the optimizer, the schedule's per-update formula and clipping for the kernels."""
    return UpdateRule(
        kernel_id=optimizer.kernel_id,
        hyper=optimizer.hyperparameters(),
        lr_kind=schedule.lr_kind,
        lr=float(schedule.eta0),
        power_t=schedule.power_t,
        optimal_t0=schedule.optimal_t0,
        optimal_alpha=schedule.alpha,
        clip_value=np.inf if clip_value is None else float(clip_value),
        clip_norm=np.inf if clip_norm is None else float(clip_norm),
        threaded=n_params >= PARALLEL_MIN_SIZE,
    )


class FlatParameterSnapshots:
    """Snapshots of a trainer whose model is one flat ``params`` vector and an optimizer ``state``."""

    params: np.ndarray
    state: OptimizerState

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Copies of the parameters and optimizer state."""
        return self.params.copy(), self.state.slots.copy(), self.state.step

    def restore(self, snapshot: tuple[np.ndarray, np.ndarray, int]) -> None:
        """Put back what :meth:`snapshot` copied, in place."""
        params, slots, step = snapshot
        self.params[:] = params
        self.state.slots[:] = slots
        self.state.step = step


class LinearTrainer(FlatParameterSnapshots):
    """Trains the flat parameter vector of a linear model on the CPU.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or scipy.sparse CSR matrix
        Training samples, float32 or float64.
    Y : ndarray of shape (n_samples, n_targets)
        Targets coded for the loss, in the dtype of ``X``.
    sample_weight : ndarray of shape (n_samples,)
        Sample weights, in the dtype of ``X``.
    params : ndarray
        Flat parameters (weights row-major, then intercepts), trained in place.
    optimizer : Optimizer
        The optimizer.
    state : OptimizerState
        Its state for ``params``.
    rule : UpdateRule
        Optimizer, schedule and clipping for the kernel.
    loss_code : int
        Loss (see :mod:`fastgd.kernels.losses`).
    loss_epsilon : float
        Epsilon of ``huber`` and ``epsilon_insensitive``.
    n_outputs : int
        Rows of the weight matrix.
    fit_intercept : bool
        Whether intercepts are trained.
    l2, l1 : float
        Penalty strengths.
    batch_size : int
        Samples per update.
    """

    def __init__(self, X, Y, sample_weight, params, optimizer, state: OptimizerState, rule: UpdateRule, *,
                 loss_code: int, loss_epsilon: float, n_outputs: int, fit_intercept: bool, l2: float, l1: float,
                 batch_size: int) -> None:
        dtype = params.dtype
        if sp.issparse(X):
            self.X = (X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64))
        else:
            self.X = X
        self.Y = Y
        self.sample_weight = sample_weight
        self.n_samples = Y.shape[0]
        self.params = params
        self.grads = np.zeros_like(params)
        self.optimizer = optimizer
        self.state = state
        self.rule = rule
        self.z = np.empty(n_outputs, dtype=dtype)
        self.dz = np.empty(n_outputs, dtype=dtype)
        self.norms = np.empty((2, n_outputs), dtype=dtype)
        self.loss_code = loss_code
        self.loss_epsilon = float(loss_epsilon)
        self.n_outputs = n_outputs
        self.n_coefs = params.size - n_outputs
        self.fit_intercept = bool(fit_intercept)
        self.l2 = float(l2)
        self.l1 = float(l1)
        self.batch_size = int(batch_size)

    def run_epoch(self, order: np.ndarray, lr: float) -> EpochResult:
        """Train one epoch (see :func:`fastgd.kernels.linear.linear_epoch`)."""
        step_before = self.state.step
        epoch = linear_epoch_threaded if self.rule.threaded else linear_epoch
        loss_sum, step, norm_sum = epoch(
            self.X, self.Y, self.sample_weight, order, self.params, self.grads, self.state.slots,
            self.z, self.dz, self.norms, self.rule._replace(lr=float(lr)), step_before, self.loss_code,
            self.loss_epsilon, self.n_outputs, self.fit_intercept, self.l2, self.l1, self.batch_size)
        self.state.step = step
        n_updates = step - step_before
        loss = loss_sum / self.n_samples + self.penalty()
        if not np.isfinite(loss) or not np.isfinite(self.params).all():
            loss = np.nan
        return EpochResult(loss, np.array([norm_sum / max(n_updates, 1)]), n_updates)

    def outputs_finite(self, n_rows: int = 64) -> bool:
        """Whether the decision values of the first ``n_rows`` samples are finite.

        See :meth:`fastgd.engine.Trainer.outputs_finite`.
        """
        k = min(n_rows, self.n_samples)
        if isinstance(self.X, tuple):
            data, indices, indptr = self.X
            rows = sp.csr_matrix((data[:indptr[k]], indices[:indptr[k]], indptr[:k + 1]),
                                 shape=(k, self.n_coefs // self.n_outputs))
        else:
            rows = self.X[:k]
        coef = self.params[:self.n_coefs].reshape(self.n_outputs, -1)
        with np.errstate(all="ignore"):
            return bool(np.isfinite(rows @ coef.T + self.params[self.n_coefs:]).all())

    def penalty(self) -> float:
        """Value of the penalty ``l2 / 2 * ||W||^2 + l1 * ||W||_1``."""
        coefs = self.params[:self.n_coefs].astype(np.float64, copy=False)
        value = 0.0
        if self.l2:
            value += 0.5 * self.l2 * float(coefs @ coefs)
        if self.l1:
            value += self.l1 * float(np.abs(coefs).sum())
        return value

"""CPU trainers: hold a model's data, parameters and workspaces, and run compiled epochs."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, NamedTuple

import numba
import numpy as np
import scipy.sparse as sp

from .._compile_notice import compile_notice
from .._config import PARALLEL_MIN_SIZE
from .._numeric.float_env import subnormals_flushed
from ..kernels.linear import (
    linear_epoch,
    linear_epoch_blocked,
    linear_epoch_csr_batches,
    linear_epoch_csr_sparse_updates,
    linear_epoch_threaded,
    linear_gradient_sum,
    one_pass_step_serves,
)
from ..kernels.penalty import weight_sums
from ..optim import Optimizer, OptimizerState
from ..optim.schedules import Schedule, UpdateRule
from .trainer import EpochResult

#: Mini-batches of at least this much work (rows x parameters touched per row, about two multiply-adds
#: each) compute their gradient in blocks of rows on Numba's threads; smaller ones in one serial pass.
#: Measured with ``benchmarks/compare.py --threads`` (2 vCPUs, 100 features, load average 2.3): two threads
#: beat one by 1.26-1.41x from batches of 1024 rows (103k) up; 2**17 keeps a margin for the cost of
#: waking the threads and adding the blocks.
THREADED_MIN_WORK = int(os.environ.get("FASTGD_THREADED_MIN_WORK", 1 << 17))

#: Mini-batch plain SGD on CSR rows passes over only the weights its rows touch
#: (:func:`~fastgd.kernels.linear.linear_epoch_csr_batches`) when the model has at least this many columns
#: per nonzero of a batch (batch size x mean nonzeros per row); on narrower models the dense passes over
#: every weight cost less. Hashed text, 80 nonzeros per row, batch 32, us per sample, sparse / dense:
#: 0.48 / 0.35 at 2**12 columns (1.6 columns per nonzero), 0.52 / 0.66 at 2**14, 0.61 / 1.88 at 2**16,
#: 1.25 / 45.8 at 2**20 (load 0.5).
CSR_BATCH_MIN_COLUMNS_PER_NONZERO = 2.0

#: Other optimizers on CSR rows step only the coordinates of a batch's nonzero features
#: (:func:`~fastgd.kernels.linear.linear_epoch_csr_sparse_updates`) where that is their exact rule and the
#: weights of a batch's nonzeros are at most this share of the model, counted in bytes per nonzero: 8 float64
#: or 16 float32 columns. Adagrad without penalty, 20,000 random CSR rows, us per sample sparse / dense, by
#: columns per nonzero of a batch: float64 per sample 0.29 / 0.28 at 6.4, 0.50 / 0.77 at 9.6, 1.74 / 4.05 at
#: 12.8 (5 classes); float32 per sample 0.53 / 0.29 at 6.4, 0.50 / 0.35 at 9.6, 0.19 / 0.16 at 12.8; batches
#: of 16-64 rows 0.54 / 0.59 at 6.4 (float64), 0.27 / 0.23 and 1.68 / 1.54 (4 classes) at 12.8 and 4.04 /
#: 4.13 (3 classes) at 25.6 (float32); on hashed text at 2**16 columns 1.2 / 142 (load 0.6-0.9).
SPARSE_STEP_MIN_BYTES_PER_NONZERO = 64

#: Least work of one block of rows: a thread handed less than this waits more than it computes.
MIN_BLOCK_WORK = 1 << 15

#: Most blocks a batch is split into (so at most this many threads share one batch).
MAX_BLOCKS = 64

#: Elements (of 4 bytes or more) in a 64-byte cache line: padding between per-block workspaces.
CACHE_LINE_ELEMENTS = 16

#: Most elements of the per-block gradient buffers (blocks x parameters); a model too large for two
#: blocks within it computes its gradient serially.
MAX_BLOCK_ELEMENTS = 1 << 22


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def load_average() -> float:
    """The 1-minute load average (0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


#: Shortest window over which :func:`idle_cpus` measures: the kernel counts CPU time in ticks of 10 ms,
#: so a shorter window would read a handful of ticks.
IDLE_WINDOW = 0.2


class _CpuSample(NamedTuple):
    time: float  # time.monotonic()
    idle: int  # ticks all CPUs spent idle (and waiting for I/O), from /proc/stat
    total: int  # ticks of all CPUs
    own: float  # CPU seconds of this process, every thread


def _cpu_sample() -> _CpuSample | None:
    """Now's CPU counters (None where ``/proc/stat`` cannot be read: not Linux)."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != b"cpu":
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    own = os.times()
    return _CpuSample(time.monotonic(), ticks[3] + ticks[4], sum(ticks), own.user + own.system)


_idle_lock = threading.Lock()
_idle_state: dict[str, Any] = {"sample": None, "cpus": None}


def idle_cpus() -> float | None:
    """CPUs of the machine that other processes leave idle, measured since the previous call.

    From ``/proc/stat``: the idle ticks of all CPUs plus this process's own CPU time (its fits are not
    load that it should avoid), over the time since the previous call -- at least :data:`IDLE_WINDOW`
    (the first call in a process measures from the import of fastgd, and waits out the rest of the
    window if that was less). Calls closer together than the window reuse the last figure, so a loop of
    ``partial_fit`` calls reads nothing. None where ``/proc/stat`` cannot be read (not Linux).
    """
    with _idle_lock:
        previous = _idle_state["sample"]
        now = _cpu_sample()
        if now is None or previous is None:
            return None
        if now.time - previous.time < IDLE_WINDOW:
            if _idle_state["cpus"] is not None:
                return _idle_state["cpus"]
            time.sleep(IDLE_WINDOW - (now.time - previous.time))
            now = _cpu_sample()
        ticks = now.total - previous.total
        if ticks <= 0:
            return _idle_state["cpus"]
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        cpus = os.cpu_count() or 1
        own_ticks = (now.own - previous.own) * hz
        idle = min(cpus, max(0.0, (now.idle - previous.idle + own_ticks) / ticks * cpus))
        _idle_state["sample"], _idle_state["cpus"] = now, idle
        return idle


_idle_state["sample"] = _cpu_sample()  # the first window starts at import


def resolve_n_threads(n_threads: int | None) -> int:
    """Threads an estimator's ``n_threads`` stands for.

    ``None`` is the CPUs this process may run on that other processes leave
    idle (:func:`idle_cpus`), rounded: ``clip(round(idle), 1, cpus)`` -- all
    of them on an idle machine, one on a busy one. On a machine with no idle
    core a second thread does not just fail to pay: Numba's OpenMP threads
    spin at each batch's barrier while the thread they wait for is
    descheduled, and training was measured 3 to 100 times slower on two
    threads than on one (2 vCPUs, load average 2 to 5). The 1-minute load
    average, used where ``/proc/stat`` is missing, would count the fit's own
    threads as load after a minute of training. Any number is capped at
    ``numba.config.NUMBA_NUM_THREADS``, the threads Numba launched. The
    count changes the speed of training only, never its result.
    """
    cap = int(numba.config.NUMBA_NUM_THREADS)
    if n_threads is None:
        cpus = available_cpus()
        idle = idle_cpus()
        if idle is None:
            idle = cpus - load_average()
        wanted = min(cpus, max(1, math.floor(idle + 0.5)))
    else:
        wanted = int(n_threads)
    return max(1, min(wanted, cap))


@contextmanager
def numba_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` of Numba's threads (None: as they are), then restore the previous count.

    Numba keeps the count per calling thread (a thread-local mask), so fits
    in several Python threads do not change each other's.
    """
    before = numba.get_num_threads() if n is not None else None
    if n is None or n == before:
        yield
        return
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


_WORKQUEUE_LOCK = threading.Lock()


def parallel_section() -> AbstractContextManager:
    """What must be held while an epoch runs Numba's parallel code: nothing, or a lock under ``workqueue``.

    Numba's ``workqueue`` threading layer (its fallback where neither OpenMP
    nor TBB is available) aborts the process when two Python threads launch
    parallel code at once; under it, concurrent fits take turns epoch by
    epoch. The ``omp`` and ``tbb`` layers are thread-safe.
    """
    from numba.np.ufunc.parallel import _launch_threads

    _launch_threads()  # picks the layer, once per process
    return _WORKQUEUE_LOCK if numba.threading_layer() == "workqueue" else nullcontext()


def block_partition(batch_size: int, row_work: float, n_params: int) -> tuple[int, int]:
    """Rows per block and blocks per full batch of a mini-batch gradient; ``(0, 1)``: serial.

    Depends on the batch and the model only, never on the thread count, so
    the summation order -- hence every bit of the result -- is the same on 1
    thread and on 64. A batch is split when it holds at least
    :data:`THREADED_MIN_WORK` and two blocks of :data:`MIN_BLOCK_WORK`; into
    at most :data:`MAX_BLOCKS` blocks, and fewer for large models
    (:data:`MAX_BLOCK_ELEMENTS`).
    """
    work = batch_size * row_work
    max_blocks = min(MAX_BLOCKS, MAX_BLOCK_ELEMENTS // max(n_params, 1))
    if batch_size < 2 or work < THREADED_MIN_WORK or work < 2 * MIN_BLOCK_WORK or max_blocks < 2:
        return 0, 1
    block_rows = max(math.ceil(MIN_BLOCK_WORK / row_work), math.ceil(batch_size / max_blocks), 1)
    n_blocks = math.ceil(batch_size / block_rows)
    if n_blocks < 2:
        return 0, 1
    return block_rows, n_blocks


def make_update_rule(optimizer: Optimizer, schedule: Schedule, n_params: int,
                     clip_value: float | None, clip_norm: float | None, intercept_decay: float = 1.0,
                     average_from: int = 0) -> UpdateRule:
    """Bundle the optimizer, the schedule's per-update formula and clipping for the kernels.

    ``intercept_decay`` multiplies the intercepts' gradient and ``average_from``
    starts averaged SGD (see :class:`~fastgd.optim.schedules.UpdateRule`).
    """
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
        intercept_decay=float(intercept_decay),
        average_from=int(average_from),
    )


class FlatParameterSnapshots:
    """Snapshots of a trainer whose model is one flat ``params`` vector and an optimizer ``state``."""

    params: np.ndarray
    state: OptimizerState

    def snapshot(self, reuse: tuple[np.ndarray, np.ndarray, int] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """Copies of the parameters and optimizer state, written into the arrays of ``reuse`` when it fits."""
        if reuse is not None and reuse[0].shape == self.params.shape and reuse[1].shape == self.state.slots.shape:
            params, slots, _ = reuse
            np.copyto(params, self.params)
            np.copyto(slots, self.state.slots)
            return params, slots, self.state.step
        return self.params.copy(), self.state.slots.copy(), self.state.step

    def restore(self, snapshot: tuple[np.ndarray, np.ndarray, int]) -> None:
        """Put back what :meth:`snapshot` copied, in place."""
        params, slots, step = snapshot
        self.params[:] = params
        self.state.slots[:] = slots
        self.state.step = step


class LinearGradientSums:
    """The weighted loss sum and loss-gradient sum of a linear model over in-memory data, at given parameters.

    :func:`~fastgd.kernels.linear.linear_gradient_sum` in the dtype of ``X``
    with workspaces kept between calls; the sums come back in float64.

    Parameters
    ----------
    X : ndarray or scipy.sparse CSR matrix, float32 or float64
        Training samples (canonical CSR).
    Y : ndarray of shape (n_samples, n_targets)
        Targets coded for the loss, in the dtype of ``X``.
    sample_weight : ndarray of shape (n_samples,)
        Sample weights, in the dtype of ``X``.
    loss_code : int
        Loss (see :mod:`fastgd.kernels.losses`).
    loss_epsilon : float
        Epsilon of ``huber``.
    n_outputs : int
        Rows of the weight matrix.
    fit_intercept : bool
        Whether intercepts are trained (their gradient is 0 otherwise).
    """

    def __init__(self, X, Y, sample_weight, *, loss_code: int, loss_epsilon: float, n_outputs: int,
                 fit_intercept: bool) -> None:
        self.dtype = X.dtype
        self.X = (X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)) if sp.issparse(X) else X
        self.Y = Y
        self.sample_weight = sample_weight
        self.loss_code = int(loss_code)
        self.loss_epsilon = float(loss_epsilon)
        self.n_outputs = n_outputs
        self.fit_intercept = bool(fit_intercept)
        self.grads = np.zeros(n_outputs * (X.shape[1] + 1), dtype=self.dtype)
        self.z = np.empty(n_outputs, dtype=self.dtype)
        self.dz = np.empty(n_outputs, dtype=self.dtype)

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """``(sum(sample_weight * loss), the sum of its gradient)`` at ``params``."""
        at = np.ascontiguousarray(params, dtype=self.dtype)
        with compile_notice(f"{self.dtype.name} linear-model kernels"), subnormals_flushed():
            loss_sum = linear_gradient_sum(self.X, self.Y, self.sample_weight, at, self.grads, self.z, self.dz,
                                           self.loss_code, self.loss_epsilon, self.n_outputs, self.fit_intercept)
        gradient = self.grads.astype(np.float64)
        if not self.fit_intercept:
            gradient[gradient.size - self.n_outputs:] = 0.0
        return float(loss_sum), gradient


class LinearObjective:
    """The full-batch objective of a linear model and its gradient, for L-BFGS.

    ``f(params) = sum(sample_weight * loss) / n_samples + l2 / 2 * ||W||^2``
    (the intercepts unpenalised), the objective of the gradient solvers'
    epochs, in float64 from the sums that ``sums`` computes
    (:class:`LinearGradientSums` in memory, :meth:`fastgd.dask.ClusterBlocks.sums`
    on a cluster). Calling it twice at the same point computes it once.

    Parameters
    ----------
    sums : callable
        ``sums(params) -> (loss_sum, gradient_sum)``, the weighted loss sum
        and the loss gradient's sum (float64, intercepts' 0 without them).
    n_samples : int
        Number of samples the sums run over.
    n_outputs : int
        Rows of the weight matrix (the last ``n_outputs`` parameters are intercepts).
    l2 : float
        Strength of the L2 penalty.
    """

    def __init__(self, sums, *, n_samples: int, n_outputs: int, l2: float) -> None:
        self.sums = sums
        self.n_samples = max(int(n_samples), 1)
        self.n_outputs = n_outputs
        self.l2 = float(l2)
        self._last: tuple[np.ndarray, float, np.ndarray] | None = None

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """The objective at ``params`` (float64, flat: weights row-major, then intercepts) and its gradient."""
        if self._last is not None and np.array_equal(self._last[0], params):
            return self._last[1], self._last[2].copy()
        loss_sum, gradient = self.sums(params)
        gradient = gradient / self.n_samples
        n_coefs = params.size - self.n_outputs
        weights = np.asarray(params[:n_coefs], dtype=np.float64)
        gradient[:n_coefs] += self.l2 * weights
        value = loss_sum / self.n_samples + 0.5 * self.l2 * float(weights @ weights)
        self._last = (np.array(params, dtype=np.float64), value, gradient)
        return value, gradient.copy()


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
    n_threads : int or None, default=None
        Numba threads for the training (see :func:`resolve_n_threads`); a
        mini-batch large enough (:func:`block_partition`) computes its gradient
        in blocks of rows on them, and a large model's update runs on them.
    averaged : ndarray or None, default=None
        Averaged SGD's running average of ``params`` (trained in place), when
        ``rule.average_from`` asks for averaging.
    lazy_updates : bool, default=False
        On CSR input, step only the coordinates of each batch's nonzero
        features, with any optimizer (PyTorch's ``SparseAdam`` semantics, see
        :func:`~fastgd.kernels.linear.linear_epoch_csr_sparse_updates`).
        Without it that route is taken only where it is the exact rule
        (no penalty, an optimizer that a zero gradient leaves alone) and the
        model is wide enough to gain from it.
    """

    def __init__(self, X, Y, sample_weight, params, optimizer, state: OptimizerState, rule: UpdateRule, *,
                 loss_code: int, loss_epsilon: float, n_outputs: int, fit_intercept: bool, l2: float, l1: float,
                 batch_size: int, n_threads: int | None = None, averaged: np.ndarray | None = None,
                 lazy_updates: bool = False) -> None:
        dtype = params.dtype
        if sp.issparse(X):
            self.X = (X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64))
        else:
            self.X = X
        self.Y = Y
        self.sample_weight = sample_weight
        self.n_samples = Y.shape[0]
        self.params = params
        # written before it is read on every route; empty, it costs nothing where it is never touched (per-sample
        # plain SGD): a zeroed one cost 0.45 ms per partial_fit call on a 2**20-column model
        self.grads = np.empty_like(params)
        self.optimizer = optimizer
        self.state = state
        csr = isinstance(self.X, tuple)
        lazy_updates = csr and lazy_updates
        plain_sgd = not lazy_updates and getattr(one_pass_step_serves, "py_func", one_pass_step_serves)(
            self.X, rule, l1)
        one_pass = batch_size == 1 and plain_sgd
        # a step on the weights of a batch's nonzero features costs less than a pass over every weight
        # (see CSR_BATCH_MIN_COLUMNS_PER_NONZERO)
        columns_per_nonzero = (params.size / n_outputs - 1) / max(
            min(batch_size, self.n_samples) * self.X[0].size / max(self.n_samples, 1), 1e-300) if csr else 0.0
        wide = columns_per_nonzero >= CSR_BATCH_MIN_COLUMNS_PER_NONZERO
        # mini-batch plain SGD without L1 on wide CSR rows: the weight scale carries the L2 term
        self.csr_batches = wide and batch_size > 1 and plain_sgd and l1 == 0
        #: Any other optimizer on CSR rows steps only the coordinates of each batch's nonzero features
        #: (linear_epoch_csr_sparse_updates): asked for (lazy_updates), or where that is the exact rule
        self.sparse_updates = csr and not (one_pass or self.csr_batches) and (lazy_updates or (
            columns_per_nonzero * dtype.itemsize >= SPARSE_STEP_MIN_BYTES_PER_NONZERO
            and l1 == 0 and l2 == 0 and optimizer.zero_gradient_is_identity()))
        if self.sparse_updates:  # its workspace is zeros between steps: fresh zero pages, touched only where used
            self.grads = np.zeros(params.shape, dtype)
        if rule.threaded and (self.csr_batches or self.sparse_updates
                              or (one_pass and (isinstance(self.X, tuple) or l1 > 0))):
            # per-sample SGD on CSR rows (and CSR batches, above): the step costs the nonzeros, where a threaded
            # update of a wide model would pass over every weight for every sample; and with L1 it applies
            # the cumulative penalty, whatever the model's size (the test runs as plain Python: compiling it
            # for a call from here would cost more than it saves; py_func is absent under NUMBA_DISABLE_JIT)
            rule = rule._replace(threaded=False)
        self.rule = rule
        self.z = np.empty(n_outputs, dtype=dtype)
        self.dz = np.empty(n_outputs, dtype=dtype)
        self.norms = np.empty((2, n_outputs), dtype=dtype)
        self.lazy = np.ones((7, n_outputs))
        self.lazy[3] = 0.0  # the cumulative L1 penalty's running total, over the epochs of this fit
        self.lazy[4] = 0.0  # with lazy[5], the scalars of the lazy average (averaged SGD on CSR rows)
        if rule.average_from and not one_pass:
            raise ValueError("averaged SGD needs per-sample plain SGD (batch_size=1, solver='sgd' without momentum, "
                             "no clip_value and no lazy_updates on sparse input).")
        if rule.average_from and (averaged is None or averaged.shape != params.shape or averaged.dtype != dtype):
            raise ValueError("averaged SGD needs `averaged`, an array like `params` that holds the running average.")
        #: Every epoch on CSR rows per sample or in wide batches ends by folding the weight scale back, a pass
        #: that also sums the weights' squares and absolute values (lazy[1], lazy[6]): the penalty and the
        #: finiteness check then need no pass of their own (0.28 ms an epoch on 2**20 weights).
        self.sums_from_fold = isinstance(self.X, tuple) and (batch_size == 1 or self.csr_batches)
        #: Averaged SGD: the running average of the parameters (trained in place; empty without averaging).
        self.averaged = averaged if rule.average_from else np.empty(0, dtype=dtype)
        # and each weight's share of it (per-sample training with L1 only)
        self.l1_applied = np.zeros(params.size - n_outputs if (batch_size == 1 or self.sparse_updates) and l1 > 0
                                   else 0)
        self.loss_code = int(loss_code)  # an int: an enum member would compile a specialisation of its own
        self.loss_epsilon = float(loss_epsilon)
        self.n_outputs = n_outputs
        self.n_coefs = params.size - n_outputs
        self.fit_intercept = bool(fit_intercept)
        self.l2 = float(l2)
        self.l1 = float(l1)
        self.batch_size = int(batch_size)
        if isinstance(self.X, tuple):
            row_work = n_outputs * (self.X[0].size / max(self.n_samples, 1) + 1)
        else:
            row_work = float(params.size)
        self.block_rows, n_blocks = (0, 1)
        if not (self.csr_batches or self.sparse_updates):
            self.block_rows, n_blocks = block_partition(self.batch_size, row_work, params.size)
        # the touched weights of a batch, at most n_outputs times the nonzeros of its longest rows
        capacity = 0
        if self.csr_batches:
            row_lengths = np.sort(np.diff(self.X[2]))
            capacity = n_outputs * int(row_lengths[-self.batch_size:].sum())
        elif self.sparse_updates:  # and the intercepts
            row_lengths = np.sort(np.diff(self.X[2]))
            capacity = n_outputs * (int(row_lengths[-self.batch_size:].sum()) + 1)
        self.touched = np.empty(capacity, dtype=np.int64)
        self.touched_grads = np.empty(capacity, dtype=dtype)
        self.touched_params = np.empty(capacity if self.sparse_updates else 0, dtype=dtype)
        self.touched_slots = np.empty((state.slots.shape[0], capacity if self.sparse_updates else 0), dtype=dtype)
        self.seen = np.zeros(self.n_coefs if self.sparse_updates else 0, dtype=np.uint8)
        rows = n_blocks if self.block_rows else 1
        pad = CACHE_LINE_ELEMENTS  # per-block rows a cache line apart: threads never share a line they write
        self.block_grads = np.zeros((rows, params.size + pad) if self.block_rows else (1, pad), dtype=dtype)
        self.block_loss = np.zeros((rows, pad))[:, 0]
        self.block_z = np.empty((rows, n_outputs + pad), dtype=dtype)
        self.block_dz = np.empty((rows, n_outputs + pad), dtype=dtype)
        #: What compiles on first use, for :func:`fastgd._compile_notice.compile_notice`.
        self.kernels = f"{dtype.name} linear-model kernels" + (" for CSR input" if sp.issparse(X) else "")
        # None: nothing runs on Numba's threads, their count is left alone
        self.n_threads: int | None = None
        if self.block_rows:
            self.n_threads = min(resolve_n_threads(n_threads), n_blocks)
        elif rule.threaded:
            self.n_threads = resolve_n_threads(n_threads)

    def run_epoch(self, order: np.ndarray, lr: float) -> EpochResult:
        """Train one epoch (see :func:`fastgd.kernels.linear.linear_epoch`)."""
        step_before = self.state.step
        if self.block_rows:
            epoch = linear_epoch_blocked
        else:
            epoch = linear_epoch_threaded if self.rule.threaded else linear_epoch
        parallel = parallel_section() if self.n_threads is not None else nullcontext()
        with compile_notice(self.kernels), parallel, numba_threads(self.n_threads), subnormals_flushed():
            if self.csr_batches:
                loss_sum, step, norm_sum = linear_epoch_csr_batches(
                    self.X, self.Y, self.sample_weight, order, self.params, self.grads, self.touched,
                    self.touched_grads, self.z, self.dz, self.lazy, self.rule._replace(lr=float(lr)), step_before,
                    self.loss_code, self.loss_epsilon, self.n_outputs, self.fit_intercept, self.l2, self.batch_size)
            elif self.sparse_updates:
                loss_sum, step, norm_sum = linear_epoch_csr_sparse_updates(
                    self.X, self.Y, self.sample_weight, order, self.params, self.grads, self.state.slots, self.seen,
                    self.touched, self.touched_params, self.touched_grads, self.touched_slots, self.z, self.dz,
                    self.lazy, self.l1_applied, self.rule._replace(lr=float(lr)), step_before, self.loss_code,
                    self.loss_epsilon, self.n_outputs, self.fit_intercept, self.l2, self.l1, self.batch_size)
            else:
                loss_sum, step, norm_sum = epoch(
                    self.X, self.Y, self.sample_weight, order, self.params, self.grads, self.state.slots,
                    self.z, self.dz, self.norms, self.lazy, self.l1_applied, self.averaged,
                    self.rule._replace(lr=float(lr)),
                    step_before, self.loss_code, self.loss_epsilon, self.n_outputs, self.fit_intercept, self.l2,
                    self.l1, self.batch_size, self.block_grads, self.block_loss, self.block_z, self.block_dz,
                    max(self.block_rows, 1))
        self.state.step = step
        n_updates = step - step_before
        penalty, params_finite = self.penalty_and_finiteness()
        loss = loss_sum / self.n_samples + penalty
        if not np.isfinite(loss) or not params_finite:
            loss = np.nan
        return EpochResult(loss, np.array([norm_sum / max(n_updates, 1)]), n_updates)

    def snapshot(self, reuse=None):
        """Copies of the parameters and optimizer state (see :class:`FlatParameterSnapshots`), with the running
        average of averaged SGD as a fourth item."""
        averaged = getattr(self, "averaged", None)
        if averaged is None or not averaged.size:
            return super().snapshot(reuse)
        taken = super().snapshot(None if reuse is None else reuse[:3])
        if reuse is not None and len(reuse) == 4 and reuse[3].shape == averaged.shape:
            np.copyto(reuse[3], averaged)
            return (*taken, reuse[3])
        return (*taken, averaged.copy())

    def restore(self, snapshot) -> None:
        """Put back what :meth:`snapshot` copied, in place."""
        super().restore(snapshot[:3])
        if len(snapshot) == 4:
            self.averaged[:] = snapshot[3]

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

    def penalty_and_finiteness(self) -> tuple[float, bool]:
        """Value of the penalty ``l2 / 2 * ||W||^2 + l1 * ||W||_1``, and whether every parameter is finite."""
        if self.sums_from_fold:
            squares, absolutes = float(self.lazy[1].sum()), float(self.lazy[6].sum())
            finite = math.isfinite(squares) and math.isfinite(absolutes) and bool(
                np.isfinite(self.params[self.n_coefs:]).all())
        else:
            squares, absolutes, finite = weight_sums(self.params, self.n_coefs)
        return 0.5 * self.l2 * squares + self.l1 * absolutes, finite

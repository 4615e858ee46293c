"""Full-batch training on a Dask cluster: the data stay on the workers that hold their blocks.

A fit on chunked ``dask.array`` inputs (rows in blocks, every column in each
block) keeps each block on a worker (:class:`ClusterBlocks`). For every
evaluation the parameters go out to the workers, each block's loss and
gradient sums come back (computed there with the compiled kernel
:func:`~fastgd.kernels.linear.linear_gradient_sum`), and the client adds them
in block order: a result that depends on the chunking only, not on which
worker ran which block or when. Full-batch GD runs through the engine with
:class:`ClusterFullBatchTrainer`; L-BFGS minimises the same sums through
:class:`~fastgd.backends.cpu.LinearObjective`.

Dask and distributed are imported only when a fit meets a dask array.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from .backends.cpu import FlatParameterSnapshots, LinearTrainer
from .backends.trainer import EpochResult
from .kernels.linear import linear_gradient_sum, norm_and_clip_scale
from .optim import OptimizerState
from .optim._registry import optimizer_step
from .optim.schedules import update_lr


def is_dask_array(x: Any) -> bool:
    """Whether ``x`` is a ``dask.array.Array``, decided without importing dask.

    Parameters
    ----------
    x : object
        Anything passed as ``X`` (or ``y``, ``sample_weight``).

    Returns
    -------
    bool
        True for a dask array.
    """
    return type(x).__name__ == "Array" and type(x).__module__.startswith("dask.")


def active_client():
    """The ``distributed.Client`` of this process.

    Returns
    -------
    distributed.Client
        The client the fit's tasks go to.

    Raises
    ------
    ValueError
        No client is active (or distributed is missing): the message says how to start one.
    """
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - dask without distributed
        raise ValueError("fitting on dask arrays needs the distributed scheduler: pip install \"fastgd[dask]\", "
                         "then start a client (distributed.Client() or Client('tcp://scheduler:8786')).") from None
    try:
        return get_client()
    except ValueError:
        raise ValueError("fitting on dask arrays trains on a Dask cluster, and no distributed.Client is active: "
                         "start one first (distributed.Client() for a local cluster, Client('tcp://host:8786') "
                         "for a running one), or pass NumPy arrays.") from None


def check_row_blocks(name: str, array, row_chunks: tuple | None) -> None:
    """Refuse a dask array that is not split by rows alone, or whose blocks do not line up with ``X``'s.

    Parameters
    ----------
    name : str
        The argument's name, for the message (``"X"``: also checked for column blocks).
    array : dask.array.Array
        The array.
    row_chunks : tuple of int or None
        The row blocks of ``X`` that ``array`` must follow (None: no such condition).

    Raises
    ------
    ValueError
        Blocks of unknown size, ``X`` in several column blocks, or rows blocked
        otherwise than ``X``'s; the message says how to rechunk.
    """
    if any(math.isnan(size) for size in array.chunks[0]):
        raise ValueError(f"{name} has blocks of unknown size: call {name}.compute_chunk_sizes() (or build it "
                         "with known chunks) before fitting.")
    if array.ndim == 2 and len(array.chunks[1]) > 1 and name == "X":
        raise ValueError(f"X is chunked by columns ({len(array.chunks[1])} column blocks): fastgd needs every "
                         "column of a row in one block. Rechunk it: X.rechunk({1: -1}).")
    if row_chunks is not None and tuple(array.chunks[0]) != tuple(row_chunks):
        raise ValueError(f"{name}'s row blocks {tuple(array.chunks[0])} do not match X's {tuple(row_chunks)}: "
                         f"rechunk it with {name}.rechunk({{0: X.chunks[0]}}).")


def _prepare_block(X, y, sample_weight, dtype, prepare):
    """A block as the kernel takes it: rows in ``dtype`` (CSR as its three arrays), coded targets, weights.

    ``prepare(X, y, sample_weight) -> (Y, sample_weight)`` codes the targets
    for the loss and applies class weights (the estimator's own rules).
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=dtype)
        X.sum_duplicates()
        X.sort_indices()
        rows = (X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64))
    else:
        X = np.ascontiguousarray(X, dtype=dtype)
        rows = X
    Y, sample_weight = prepare(X, y, np.asarray(sample_weight))
    Y = np.require(np.asarray(Y, dtype=dtype).reshape(len(Y), -1), dtype, ["C", "W"])
    return rows, Y, np.ascontiguousarray(sample_weight, dtype=dtype)


def _block_sums(block, params, loss_code: int, epsilon: float, n_outputs: int, fit_intercept: bool):
    """One block's weighted loss sum and loss-gradient sum at ``params`` (run on the worker that holds it)."""
    rows, Y, sample_weight = block
    grads = np.zeros_like(params)
    z = np.empty(n_outputs, dtype=params.dtype)
    dz = np.empty(n_outputs, dtype=params.dtype)
    loss_sum = linear_gradient_sum(rows, Y, sample_weight, params, grads, z, dz, loss_code, epsilon, n_outputs,
                                   fit_intercept)
    if not fit_intercept:
        grads[params.size - n_outputs:] = 0
    return float(loss_sum), grads


class ClusterBlocks:
    """The row blocks of a fit's data, computed and kept on the workers of ``client``.

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    X : dask.array.Array of shape (n_samples, n_features)
        Samples, chunked by rows only.
    y : dask.array.Array of shape (n_samples,) or (n_samples, n_targets)
        Targets, chunked as ``X``'s rows.
    sample_weight : dask.array.Array of shape (n_samples,)
        Sample weights, chunked as ``X``'s rows.
    dtype : numpy dtype
        float32 or float64: the dtype the kernels train in.
    prepare : callable
        ``prepare(X_block, y_block, weight_block) -> (Y_block, weight_block)``,
        run on the workers: targets coded for the loss, class weights applied.
    """

    def __init__(self, client, X, y, sample_weight, dtype, *, prepare) -> None:
        import dask

        self.client = client
        self.shape = X.shape
        self.dtype = np.dtype(dtype)
        self.n_blocks = len(X.chunks[0])
        parts = zip(X.to_delayed().ravel(), y.to_delayed().ravel(), sample_weight.to_delayed().ravel(), strict=True)
        prepare = dask.delayed(prepare, pure=True)  # sent once, not once per block
        #: One future per block, held on a worker for as long as this object lives.
        self.blocks = client.compute([dask.delayed(_prepare_block)(x, y, w, self.dtype, prepare)
                                      for x, y, w in parts])

    def sums(self, params: np.ndarray, *, loss_code: int, epsilon: float, n_outputs: int,
             fit_intercept: bool) -> tuple[float, np.ndarray]:
        """The weighted loss sum and loss-gradient sum over every block at ``params``, added in block order."""
        # a key of its own (hash=False): a key named after the content is shared with an earlier call at the same
        # point, whose release can cancel this call's tasks
        at = self.client.scatter(np.ascontiguousarray(params, dtype=self.dtype), broadcast=True, hash=False)
        futures = self.client.map(_block_sums, self.blocks, params=at, loss_code=int(loss_code),
                                  epsilon=float(epsilon), n_outputs=int(n_outputs), fit_intercept=bool(fit_intercept),
                                  pure=False)
        loss_sum = 0.0
        gradient = np.zeros(params.size)
        for block_loss, block_gradient in self.client.gather(futures):
            loss_sum += block_loss
            gradient += block_gradient
        return loss_sum, gradient


class _ClusterTrainer(FlatParameterSnapshots):
    """What the trainers of :class:`ClusterBlocks` share: the model and its rule on the client.

    The constructor takes the arguments of :class:`~fastgd.backends.cpu.LinearTrainer`
    (``X`` the blocks; ``Y`` and ``sample_weight`` unused: they live in them).
    """

    def __init__(self, X: ClusterBlocks, Y, sample_weight, params, optimizer, state, rule, *, loss_code: int,
                 loss_epsilon: float, n_outputs: int, fit_intercept: bool, l2: float, l1: float, batch_size: int,
                 **options: Any) -> None:
        self.blocks = X
        self.n_samples = X.shape[0]
        self.params = params
        self.optimizer = optimizer
        self.state = state
        self.rule = rule
        self.loss_code = int(loss_code)
        self.loss_epsilon = float(loss_epsilon)
        self.n_outputs = n_outputs
        self.n_coefs = params.size - n_outputs
        self.fit_intercept = bool(fit_intercept)
        self.l2 = float(l2)
        self.l1 = float(l1)
        self.batch_size = int(batch_size)
        self.kernels = f"{params.dtype.name} linear-model kernels"

    def outputs_finite(self) -> bool:
        """Whether the parameters are finite (the outputs of finite rows then are, short of overflow)."""
        return bool(np.isfinite(self.params).all())


class ClusterFullBatchTrainer(_ClusterTrainer):
    """Full-batch GD of a linear model whose data are :class:`ClusterBlocks`: one update per epoch.

    Each epoch takes the mean loss gradient over every block
    (:meth:`ClusterBlocks.sums`), adds the L2 term, clips it as the in-memory
    epochs do and makes the optimizer's fused update on the client, then the
    L1 soft threshold: the update of in-memory full-batch GD
    (:func:`~fastgd.kernels.linear.linear_epoch` with ``batch_size =
    n_samples``), to round-off. The parameters and optimizer state stay on
    the client; the visiting order does not matter to a full batch.
    """

    def run_epoch(self, order: np.ndarray, lr: float) -> EpochResult:
        """One full-batch update (``order`` is not needed: every sample is in the batch)."""
        loss_sum, gradient = self.blocks.sums(self.params, loss_code=self.loss_code, epsilon=self.loss_epsilon,
                                              n_outputs=self.n_outputs, fit_intercept=self.fit_intercept)
        gradient /= self.n_samples
        weights = self.params[:self.n_coefs].astype(np.float64)
        gradient[:self.n_coefs] += self.l2 * weights
        sq = float(gradient @ gradient)
        if not (math.isfinite(sq) and math.isfinite(loss_sum)):
            return EpochResult(np.nan, np.array([np.nan]), 0)
        norm, scale = getattr(norm_and_clip_scale, "py_func", norm_and_clip_scale)(sq, self.rule.clip_norm)
        rule = self.rule._replace(lr=float(lr))
        step = self.state.step + 1
        rate = getattr(update_lr, "py_func", update_lr)(rule, step)
        optimizer_step(rule.kernel_id, self.params, gradient.astype(self.params.dtype), self.state.slots, rule.hyper,
                       step, rate, scale, rule.clip_value, False)  # serial: its work is one update
        self.state.step = step
        if self.l1 > 0:  # the proximal step of in-memory mini-batches and full batches
            w = self.params[:self.n_coefs]
            shrink = self.params.dtype.type(rate * self.l1)
            w[:] = np.where(w > shrink, w - shrink, np.where(w < -shrink, w + shrink, 0))
        weights = self.params[:self.n_coefs].astype(np.float64)
        loss = loss_sum / self.n_samples + 0.5 * self.l2 * float(weights @ weights) + self.l1 * float(
            np.abs(weights).sum())
        return EpochResult(loss if math.isfinite(loss) else np.nan, np.array([norm]), 1)


def _local_epoch(block, seed: int | None, params, slots, step: int, lr: float, optimizer, rule, options: dict):
    """One epoch of in-memory training on one block from the given parameters and optimizer state (on a worker).

    Returns the block's parameters and state rows after it, its update count,
    and its row count with the epoch's mean loss and gradient norm.
    """
    rows, Y, sample_weight = block
    n_rows = Y.shape[0]
    X = rows if isinstance(rows, np.ndarray) else sp.csr_matrix(rows, shape=(n_rows, options["n_features"]))
    params = params.copy()
    state = OptimizerState(slots=slots.copy(), step=step)
    trainer = LinearTrainer(X, Y, sample_weight, params, optimizer, state, rule,
                            **{key: value for key, value in options.items() if key != "n_features"})
    order = np.arange(n_rows, dtype=np.int64)
    if seed is not None:
        np.random.RandomState(seed).shuffle(order)
    result = trainer.run_epoch(order, lr)
    return params, state.slots, result.n_updates, n_rows, result.loss, float(result.gradient_norms[0])


class _BlockSeeds:
    """The engine's epoch orders for :class:`ClusterLocalSGDTrainer`: one shuffling seed per block, or None."""

    def __init__(self, n_blocks: int, random_state: np.random.RandomState | None) -> None:
        self.n_blocks = n_blocks
        self.random_state = random_state

    def next(self) -> np.ndarray | None:
        if self.random_state is None:
            return None
        return self.random_state.randint(np.iinfo(np.int32).max, size=self.n_blocks)

    def prepare_next(self) -> None:
        """Nothing to prepare: a seed per block is drawn in :meth:`next`."""


class ClusterLocalSGDTrainer(_ClusterTrainer):
    """Per-sample and mini-batch SGD of a linear model on :class:`ClusterBlocks`: local SGD with averaging.

    Every epoch each block trains one epoch of the in-memory rule
    (:class:`~fastgd.backends.cpu.LinearTrainer`, the same kernels) on its
    worker, all of them from the same parameters and optimizer state; the
    client then sets the parameters and every state row to their mean over the
    blocks weighted by their rows, and the update count to the most any block
    made (Adam's bias corrections go on from there). Shuffled, each block
    visits its rows in an order seeded by a number the fit's ``random_state``
    draws for it per epoch: a fit is the same for the same seed and chunking.
    The epoch's loss is the row-weighted mean of the blocks' epoch losses;
    its gradient norm the mean over all updates; ``n_updates`` the most
    updates any block made. With one block it is the in-memory fit.
    """

    def __init__(self, X: ClusterBlocks, Y, sample_weight, params, optimizer, state, rule, *,
                 lazy_updates: bool = False, **options: Any) -> None:
        if rule.average_from:
            raise ValueError("averaged SGD is not available on a Dask cluster: use average=False.")
        super().__init__(X, Y, sample_weight, params, optimizer, state, rule, **options)
        self.lazy_updates = bool(lazy_updates)

    def make_orders(self, random_state: np.random.RandomState | None) -> _BlockSeeds:
        """A seed per block and epoch from ``random_state`` (None: every block in its order)."""
        return _BlockSeeds(self.blocks.n_blocks, random_state)

    def run_epoch(self, order: np.ndarray | None, lr: float) -> EpochResult:
        """One local epoch on every block, then the average (``order``: the blocks' seeds, or None)."""
        client = self.blocks.client
        params = client.scatter(self.params, broadcast=True, hash=False)
        slots = client.scatter(self.state.slots, broadcast=True, hash=False)
        seeds = [None] * self.blocks.n_blocks if order is None else [int(seed) for seed in order]
        options = {"loss_code": self.loss_code, "loss_epsilon": self.loss_epsilon, "n_outputs": self.n_outputs,
                   "fit_intercept": self.fit_intercept, "l2": self.l2, "l1": self.l1, "batch_size": self.batch_size,
                   "n_threads": 1, "lazy_updates": self.lazy_updates, "n_features": self.blocks.shape[1]}
        futures = client.map(_local_epoch, self.blocks.blocks, seeds, params=params, slots=slots,
                             step=self.state.step, lr=float(lr), optimizer=self.optimizer, rule=self.rule,
                             options=options, pure=False)
        results = client.gather(futures)
        if not all(math.isfinite(loss) for *_, loss, _ in results):
            return EpochResult(np.nan, np.array([np.nan]), 0)
        n_rows = np.array([rows for _, _, _, rows, _, _ in results], dtype=np.float64)
        share = n_rows / n_rows.sum()
        mean_params = np.zeros(self.params.size)
        mean_slots = np.zeros(self.state.slots.shape)
        for (block_params, block_slots, *_), weight in zip(results, share, strict=True):
            mean_params += weight * block_params
            mean_slots += weight * block_slots
        self.params[:] = mean_params
        self.state.slots[:] = mean_slots
        updates = [n for _, _, n, _, _, _ in results]
        self.state.step += max(updates)
        loss = float(sum(weight * block_loss for (*_, block_loss, _), weight in zip(results, share, strict=True)))
        norm = sum(n * block_norm for (_, _, n, _, _, block_norm) in results) / max(sum(updates), 1)
        return EpochResult(loss, np.array([norm]), max(updates))

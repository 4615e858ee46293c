"""What the gradient-descent estimators share: solver vocabulary, schedule, loop options."""

from __future__ import annotations

import functools
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.optimize
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight

from .._compile_notice import compile_notice
from ..backends.cpu_mlp import one_blas_thread
from ..dask import ClusterBlocks
from ..engine import LoopConfig
from ..optim import OPTIMIZERS, SOLVERS, Optimizer
from ..optim.schedules import SCHEDULES, Schedule

try:  # scikit-learn's options of SciPy's L-BFGS-B: no iprint/disp where SciPy deprecates them
    from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
except ImportError:  # pragma: no cover - a scikit-learn without the helper
    def _get_additional_lbfgs_options_dict(key, value):
        from scipy import __version__ as scipy_version

        major, minor = (int(part) for part in scipy_version.split(".")[:2])
        return {} if (major, minor) >= (1, 15) else {key: value}


def minimize_lbfgs(loss_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *,
                   max_iter: int, max_fun: int, tol: float, verbose: bool, callback: Callable | None = None,
                   **options: Any) -> scipy.optimize.OptimizeResult:
    """SciPy's L-BFGS-B on ``loss_and_gradient`` from ``x0``, with scikit-learn's options.

    L-BFGS's own vector arithmetic runs on one BLAS thread: woken BLAS threads
    would spin on the cores that the loss and gradient evaluations use.

    Parameters
    ----------
    loss_and_gradient : callable
        ``loss_and_gradient(x) -> (loss, gradient)`` for a float64 vector ``x``.
    x0 : ndarray of float64
        Starting point.
    max_iter, max_fun : int
        Most iterations and most evaluations.
    tol : float
        Projected gradient tolerance (SciPy's ``gtol``).
    verbose : bool
        Print SciPy's iterations (where SciPy still takes ``iprint``).
    callback : callable or None, default=None
        Called with each iteration's ``OptimizeResult``.
    **options
        Further options of SciPy's L-BFGS-B (``ftol``, ...).

    Returns
    -------
    scipy.optimize.OptimizeResult
        SciPy's result.
    """
    iprint = _get_additional_lbfgs_options_dict("iprint", 1 if verbose else -1)
    with one_blas_thread():
        return scipy.optimize.minimize(loss_and_gradient, x0, method="L-BFGS-B", jac=True, callback=callback,
                                       options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol, **iprint,
                                                **options})


#: Parameter constraints shared by every gradient-descent estimator.
GD_PARAMETER_CONSTRAINTS: dict[str, list[Any]] = {
    "solver": [StrOptions(set(SOLVERS))],
    "learning_rate": [StrOptions(set(SCHEDULES))],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "power_t": [Interval(Real, 0, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"full"}), None],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left"), None],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    # 1 is excluded: a velocity that never decays sums every past gradient, and training diverges
    "momentum": [Interval(Real, 0, 1, closed="left")],
    "nesterovs_momentum": ["boolean"],
    "beta_1": [Interval(Real, 0, 1, closed="left")],
    "beta_2": [Interval(Real, 0, 1, closed="left")],
    "epsilon": [Interval(Real, 0, None, closed="neither")],
    "weight_decay": [Interval(Real, 0, None, closed="left"), None],
    "solver_options": [dict, None],
    "clip_value": [Interval(Real, 0, None, closed="neither"), None],
    "clip_norm": [Interval(Real, 0, None, closed="neither"), None],
    "shuffle": ["boolean"],
    "random_state": ["random_state"],
    "warm_start": ["boolean"],
    "verbose": ["verbose"],
    "progress": ["boolean"],
    "on_nonfinite": [StrOptions({"warn", "raise"})],
    "callbacks": [list, tuple, None],
    "n_threads": [Interval(Integral, 1, None, closed="left"), None],
    "device": [StrOptions({"cpu", "cuda", "auto"})],
}

def unique_labels_and_index(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct labels of 1-D ``y`` and each sample's index among them.

    ``np.unique(y, return_inverse=True)``, in linear time for integer labels
    spanning a range no wider than about twice their number (counted with
    ``np.bincount`` instead of sorted): 1.7 ms instead of 32 ms for 200,000
    binary int64 labels (measured with timeit), a cost every ``fit`` of a
    classifier pays before training.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Labels.

    Returns
    -------
    labels : ndarray
        The distinct labels, sorted, in the dtype of ``y``.
    index : ndarray of shape (n_samples,)
        ``labels[index]`` equals ``y``.
    """
    if y.ndim == 1 and y.size and y.dtype.kind in "iu":
        wide = y if y.dtype.itemsize == 8 else y.astype(np.int64)  # y - low cannot overflow
        low, high = wide.min(), wide.max()
        if int(high) - int(low) < max(2 * y.size, 1024):
            offset = (wide - low).astype(np.intp, copy=False)
            present = np.bincount(offset) > 0
            labels = (np.flatnonzero(present).astype(wide.dtype) + low).astype(y.dtype)
            return labels, (np.cumsum(present) - 1)[offset]
    labels, index = np.unique(y, return_inverse=True)
    return labels, index.reshape(-1)


def check_sample_weight(sample_weight, X, dtype) -> np.ndarray:
    """``sample_weight`` validated against ``X`` (all ones when None), in ``dtype``; negative weights rejected.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or None
        The weights passed to ``fit`` or ``partial_fit``.
    X : array-like or sparse matrix of shape (n_samples, n_features)
        The validated samples.
    dtype : numpy dtype
        The training dtype.

    Returns
    -------
    ndarray of shape (n_samples,)
        The weights; the caller's own array when it already has the right
        dtype and layout and is writeable (it is never written to: a
        read-only one is copied, one value per sample, so that the kernels
        compiled for writeable arrays serve it).
    """
    weights = np.require(_check_sample_weight(sample_weight, X, dtype=dtype), requirements=["W"])
    if sample_weight is not None and weights.size:
        low = weights.min()
        if low < 0:
            raise ValueError(f"sample_weight must be non-negative; got min {float(low):g}. A negative weight makes "
                             "gradient descent climb its sample's loss instead of descending it.")
    return weights


def short_repr(values, limit: int = 5) -> str:
    """``repr`` of the first ``limit`` of ``values`` and how many there are, for error messages.

    Parameters
    ----------
    values : array-like
        Labels or other values to name.
    limit : int, default=5
        How many to show.

    Returns
    -------
    str
        E.g. ``"[0.5, 1.25, 2.0, ...] (120 values)"``, or the whole list when
        it holds at most ``limit`` values.
    """
    values = np.asarray(values).reshape(-1)
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:limit])
    if values.size <= limit:
        return f"[{shown}]"
    return f"[{shown}, ...] ({values.size} values)"


def validation_split(n_samples: int, validation_fraction: float, random_state: np.random.RandomState,
                     stratify=None, stratify_names=None) -> tuple[np.ndarray, np.ndarray]:
    """Rows to train on and rows held out for early stopping, as index arrays; nothing is copied.

    The rows are those ``sklearn.model_selection.train_test_split`` picks
    with ``test_size=validation_fraction``, the same ``random_state`` (which
    it advances as that function does) and ``stratify``: the training rows
    in the order of its training part, the held-out rows in the order of its
    test part. The estimators copy the held-out rows only (a
    ``validation_fraction`` of the data) and train on the others through the
    epochs' visiting order, where ``train_test_split`` would also copy the
    training part, holding the data twice.

    Parameters
    ----------
    n_samples : int
        Number of samples.
    validation_fraction : float
        Share of the samples held out.
    random_state : numpy.random.RandomState
        Source of the split.
    stratify : array-like of shape (n_samples,) or None
        Class labels to keep the classes' proportions in both parts.
    stratify_names : callable or None
        Called only when the stratified split fails: labels with the classes
        of ``stratify`` in the same order, to name them in the error instead
        (e.g. the ``'True'``/``'False'`` that scikit-learn's MLPs stratify on).
        The split would be the same with them; ``stratify`` is just cheaper
        to split on.

    Returns
    -------
    train : ndarray of int64
        The rows to train on.
    validation : ndarray of int64
        The rows held out.
    """
    splitter = StratifiedShuffleSplit if stratify is not None else ShuffleSplit
    placeholder = np.empty((n_samples, 0), dtype=np.int8)  # the splitters read only its length
    try:
        train, validation = next(splitter(test_size=validation_fraction, random_state=random_state)
                                 .split(placeholder, stratify))
    except ValueError as exc:
        reason = str(exc)
        if stratify is not None and stratify_names is not None:
            try:  # the same split, only to have the splitter's message name the classes as the caller does
                next(splitter(test_size=validation_fraction, random_state=0).split(placeholder, stratify_names()))
            except ValueError as named:
                reason = str(named)
        raise ValueError(f"early_stopping could not split off a validation set ({reason}); use more samples, a "
                         "larger validation_fraction or early_stopping=False.") from None
    return train.astype(np.int64, copy=False), validation.astype(np.int64, copy=False)


def reusable_state(state: Any, optimizer: Optimizer, n_params: int, dtype) -> bool:
    """Whether ``state`` (an estimator's ``_optimizer_state``) may continue with ``optimizer``.

    It may when ``optimizer`` made it (``state.made_by`` names the same
    class and the same state rows as :meth:`fastgd.optim.Optimizer.state_maker`;
    hyperparameters such as the learning rate may have changed since) and
    its slots fit ``n_params`` parameters of ``dtype``. A state of another
    solver with as many rows (``"adam"`` then ``"adamw"``) or of an unknown
    maker is not reused: its moments mean other things.

    Parameters
    ----------
    state : OptimizerState or None
        The state kept from the last call.
    optimizer : Optimizer
        The optimizer about to train.
    n_params : int
        Number of parameters.
    dtype : numpy dtype
        The training dtype.

    Returns
    -------
    bool
        True to continue with ``state``, False to start a fresh one.
    """
    if state is None:
        return False
    made_by, maker = getattr(state, "made_by", None), optimizer.state_maker()
    if made_by is None or made_by.optimizer != maker.optimizer or made_by.rows != maker.rows:
        return False
    return state.slots.shape == (optimizer.n_slots(), n_params) and state.slots.dtype == dtype


def train_only_on(trainer: Any, rows: np.ndarray) -> None:
    """Make a CPU trainer built on all the samples train on ``rows`` only (early stopping's training rows).

    The engine visits ``rows`` (``LoopConfig.rows``); the trainer's
    ``n_samples``, the count its epochs' mean loss divides by and the
    engine's ``n_samples_seen`` adds, becomes theirs. The compiled epochs
    read each sample (row, target, weight) at the index the order gives, so
    the validation rows stay where they are, untouched.
    """
    trainer.n_samples = int(rows.size)


#: Magnitude of an input from which the non-finite warning leads with scaling the data: standardized
#: features are rarely beyond a few tens, while raw counts, prices or sums in the thousands and up make
#: ``learning_rate_init * ||x||^2`` too large for a stable step at the default rates.
LARGE_INPUT = 1e3


def nonfinite_hint(X, y=None) -> Callable[[], str | None]:
    """A function saying, when training diverged, whether the inputs are far from unit scale.

    Computed only when it is called (after a non-finite epoch), not for
    every fit. It names the largest magnitude of ``X`` (and of regression
    targets ``y``) when it reaches :data:`LARGE_INPUT`; data on a cluster
    (:class:`fastgd.dask.ClusterBlocks`) are not read back for a hint.
    """
    if isinstance(X, ClusterBlocks):
        return lambda: None

    def hint() -> str | None:
        parts = []
        with np.errstate(all="ignore"):
            x_max = _max_abs(X)
            if x_max >= LARGE_INPUT:
                parts.append(f"X holds values as large as {x_max:.3g}: scale the features first "
                             "(sklearn.preprocessing.StandardScaler, e.g. make_pipeline(StandardScaler(), model))")
            if y is not None and np.asarray(y).dtype.kind == "f":
                y_max = _max_abs(np.asarray(y))
                if y_max >= LARGE_INPUT:
                    parts.append(f"y holds values as large as {y_max:.3g}: standardize the targets "
                                 "(sklearn.compose.TransformedTargetRegressor with a StandardScaler)")
        return "; ".join(parts) + "." if parts else None

    return hint


def _max_abs(X) -> float:
    """Largest magnitude in dense or sparse ``X``, without a temporary as large as ``X`` (dense)."""
    if hasattr(X, "data") and hasattr(X, "indptr"):  # scipy.sparse CSR
        X = X.data
    X = np.asarray(X)
    if X.size == 0:
        return 0.0
    return float(max(abs(float(X.max())), abs(float(X.min()))))


#: Docstring of ``device``, shared by every estimator.
DEVICE_DOC = """
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where ``fit`` and ``partial_fit`` train. ``"cuda"`` trains on the
        first CUDA GPU (needs the ``cuda`` extra, numba-cuda, and an NVIDIA
        driver; a clear ``RuntimeError`` says what is missing otherwise):
        the data are copied to the device once per fit and every batch runs
        there. ``"auto"`` is ``"cuda"`` when a GPU is usable, otherwise the
        CPU (said when ``verbose``). Results agree with the CPU's within
        float32 round-off; predictions always run on the CPU from the fitted
        NumPy arrays. The backend used is in ``device_``."""

#: Docstring of the fitted attribute ``device_``.
DEVICE_ATTRIBUTE_DOC = """
    device_ : {"cpu", "cuda"}
        The backend the last fit ran on."""


def fit_device(est: Any) -> str:
    """The backend ``est`` trains on now: its ``device`` resolved (see :func:`fastgd.cuda.resolve_device`)."""
    from ..cuda import resolve_device

    return resolve_device(est.device, verbose=est.verbose)


#: Docstring of ``n_threads``, shared by every estimator.
N_THREADS_DOC = """    n_threads : int or None, default=None
        Threads that training may use: Numba's threads for mini-batch
        gradients and large models' optimizer updates. It changes the speed
        only: for a given ``random_state`` the trained parameters are the same
        to the bit on any thread count and under any load. ``None``: the CPUs
        this process may run on that other processes leave idle, measured from
        ``/proc/stat`` since the previous fit (this process's own CPU use not
        counted; the 1-minute load average where ``/proc/stat`` is missing),
        rounded: every CPU of an idle machine, one thread on a busy one, where
        a second thread waiting at each batch's barrier makes training slower,
        not faster. Any number is capped at Numba's pool
        (``NUMBA_NUM_THREADS``). A linear model's mini-batch is split into
        blocks of rows when it holds at least 2**17 rows x parameters
        (``fastgd.backends.cpu.THREADED_MIN_WORK``), each block at least
        2**15, at most 64 blocks. An MLP's batch of 16 rows or more (L-BFGS:
        the training set) is split into two parts, or one per 64 rows from
        256 rows on, at most 8 (``fastgd.backends.cpu_mlp.batch_parts``). Both splits depend on
        the batch and the model, never on the thread count; the threads share
        out the blocks or parts, and no more threads run than there are. The
        count is set for the fit and for the calling thread only (Numba's
        count is thread-local), then restored."""


def keeps_attributes_on_error(fit: Callable) -> Callable:
    """Decorate an estimator's ``_fit`` so that a failed call leaves its attributes as they were.

    Validation sets ``n_features_in_`` and ``classes_`` before later checks
    (targets, options, non-finite training) can fail; without this a failed
    fit would leave a fitted model whose attributes disagree with its weights.
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        attributes = dict(vars(self))
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            vars(self).clear()
            vars(self).update(attributes)
            raise

    return wrapper


def announces_compiles(method: Callable) -> Callable:
    """Decorate an estimator's ``_fit`` or ``_forward``: kernels compiled during the call are announced once.

    The whole call is one :func:`fastgd._compile_notice.compile_notice` block, so a first fit prints one
    line when its first kernel starts compiling (named by the trainer that compiles it) and one when the
    call ends, however many kernels compile in between.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with compile_notice(f"{type(self).__name__} kernels"):
            return method(self, *args, **kwargs)

    return wrapper


def make_optimizer(est: Any) -> Optimizer:
    """The :mod:`fastgd.optim` optimizer named by ``est.solver``, configured from ``est``.

    ``momentum`` and ``nesterovs_momentum`` configure ``"sgd"``; ``beta_1`` and
    ``beta_2`` Adam's and AdamW's decay rates (``beta_2`` is also RMSprop's
    smoothing constant); ``epsilon`` the denominator term of the adaptive
    solvers; ``weight_decay`` the optimizer's own decay (``None``: its
    default). ``solver_options`` overrides any constructor argument.
    """
    solver = est.solver
    lr = float(est.learning_rate_init)
    kwargs: dict[str, Any]
    if solver == "sgd":
        nesterov = bool(est.nesterovs_momentum) and est.momentum > 0
        kwargs = {"lr": lr, "momentum": est.momentum, "nesterov": nesterov}
    elif solver in ("adam", "adamw"):
        kwargs = {"lr": lr, "betas": (est.beta_1, est.beta_2), "eps": est.epsilon}
    elif solver == "rmsprop":
        kwargs = {"lr": lr, "alpha": est.beta_2, "eps": est.epsilon}
    elif solver == "adagrad":
        kwargs = {"lr": lr, "eps": est.epsilon}
    else:
        kwargs = {"lr": lr}
    if est.weight_decay is not None:
        kwargs["weight_decay"] = est.weight_decay
    kwargs.update(est.solver_options or {})
    try:
        return OPTIMIZERS[solver](**kwargs)
    except TypeError as exc:
        raise ValueError(f"solver_options does not fit solver={solver!r}: {exc}") from None


def resolve_batch_size(batch_size: int | str | None, n_samples: int) -> int:
    """Samples per update: ``None``/``"full"`` is the whole set; larger sizes are clipped to it."""
    if batch_size is None or batch_size == "full":
        return n_samples
    return min(int(batch_size), n_samples)


def make_schedule(est: Any, *, alpha: float, optimal_t0: float = 1.0) -> Schedule:
    """The learning-rate schedule named by ``est.learning_rate``."""
    return Schedule(est.learning_rate, est.learning_rate_init, est.max_iter, power_t=est.power_t,
                    alpha=alpha, optimal_t0=optimal_t0)


def make_loop_config(est: Any, schedule: Schedule, random_state: np.random.RandomState, *,
                     incremental: bool, validation_score=None, epoch_offset: int = 0) -> LoopConfig:
    """Loop options from the estimator's parameters; ``partial_fit`` runs one epoch, unchecked."""
    return LoopConfig(
        max_iter=1 if incremental else est.max_iter,
        schedule=schedule,
        random_state=random_state,
        shuffle=est.shuffle,
        tol=est.tol,
        n_iter_no_change=est.n_iter_no_change,
        validation_score=validation_score,
        verbose=est.verbose,
        progress=est.progress,
        on_nonfinite=est.on_nonfinite,
        callbacks=tuple(est.callbacks or ()),
        epoch_offset=epoch_offset,
        check_convergence=not incremental,
    )

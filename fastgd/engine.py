"""The epoch loop shared by every estimator and backend.

The engine knows nothing of losses, layers or devices. It drives a
:class:`Trainer` (one per model family and backend) through epochs: it draws
the visiting order, asks the schedule for the learning rate, runs one compiled
epoch, records the history, checks convergence and early stopping, and guards
against non-finite training by restoring the last good epoch.
"""

from __future__ import annotations

import copy
import math
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .backends.trainer import Trainer
from .optim.schedules import Schedule


class NonFiniteTrainingWarning(RuntimeWarning):
    """Training produced a NaN or infinite loss and was stopped."""


class NonFiniteTrainingError(FloatingPointError, ValueError):
    """Training produced a NaN or infinite loss.

    Raised with ``on_nonfinite="raise"``, and whatever ``on_nonfinite`` says
    when no epoch finished with finite values on freshly initialised
    parameters (there is no model to give back). A ``ValueError``, as
    scikit-learn's error for non-finite weights is, and a
    ``FloatingPointError``.
    """


class DivergingTrainingWarning(RuntimeWarning):
    """The training loss grew far above its best value while staying finite (see :data:`DIVERGENCE_FACTOR`)."""


#: An epoch whose loss exceeds this many times the lowest loss so far, and the loss of the first epoch,
#: is flagged with a :class:`DivergingTrainingWarning` (once per training history): the loss has grown by
#: orders of magnitude, as with ReLU units at a huge learning rate, before anything became NaN or infinite.
DIVERGENCE_FACTOR = 1e3

#: scikit-learn's sentence for non-finite weights (``BaseMultilayerPerceptron._fit``), which the error of a
#: fit that has no finite epoch to give back starts with.
SKLEARN_NONFINITE = ("Solver produced non-finite parameter weights. The input data may contain large values and "
                     "need to be preprocessed.")


class EpochRecord(NamedTuple):
    """The read-only record a callback receives at the end of each epoch.

    Attributes
    ----------
    epoch : int
        Epochs completed so far in this fit (1-based).
    loss : float
        Mean training loss of the epoch.
    validation_score : float or None
        Score on the validation split (``early_stopping=True``), else None.
    gradient_norms : ndarray
        Mean gradient norm of each layer over the epoch's updates.
    learning_rate : float
        Base learning rate of the epoch.
    """

    epoch: int
    loss: float
    validation_score: float | None
    gradient_norms: np.ndarray
    learning_rate: float


@dataclass
class LoopConfig:
    """Options of the epoch loop (the estimators' parameters of the same names)."""

    max_iter: int
    schedule: Schedule
    random_state: np.random.RandomState
    shuffle: bool = True
    tol: float | None = 1e-4
    n_iter_no_change: int = 5
    validation_score: Callable[[], float] | None = None
    verbose: int = 0
    progress: bool = False
    on_nonfinite: str = "warn"
    callbacks: Sequence[Callable[[EpochRecord], Any]] = ()
    epoch_offset: int = 0
    check_convergence: bool = True
    #: The samples an epoch visits, as row indices (early stopping's training rows); None: every sample.
    #: The trainer's ``n_samples`` must be their number. Not for trainers that draw orders themselves.
    rows: np.ndarray | None = None
    #: Called only after a non-finite epoch: a sentence on the data (e.g. far from unit scale) that leads
    #: the cures of the warning or error, or None.
    nonfinite_hint: Callable[[], str | None] | None = None
    #: The parameters are a fresh initialisation: a non-finite first epoch leaves no model to give back, and
    #: raises :class:`NonFiniteTrainingError` (a ``ValueError``) whatever ``on_nonfinite`` says.
    fresh_start: bool = False
    #: ``n_iter_no_change`` as the verbose stopping message names it (the estimator's parameter, where the
    #: loop is given a count of another convention); None: ``n_iter_no_change``.
    reported_n_iter_no_change: float | None = None
    #: See :data:`DIVERGENCE_FACTOR`; None: no :class:`DivergingTrainingWarning`.
    divergence_factor: float | None = DIVERGENCE_FACTOR
    #: Start from the count of epochs without improvement that the history kept from earlier runs, and check
    #: it even without ``check_convergence`` (``adaptive`` then divides its rate, nothing stops): scikit-learn's
    #: MLPs keep the count over warm starts and ``partial_fit`` calls.
    carry_no_improvement: bool = False


@dataclass
class History:
    """What a run of the loop leaves behind (appended to across warm starts)."""

    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    gradient_norms: list[np.ndarray] = field(default_factory=list)
    n_updates: int = 0
    n_samples_seen: int = 0
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    n_epochs: int = 0
    converged: bool = False
    diverged_at: int | None = None
    #: The epoch (1-based) whose loss first exceeded ``divergence_factor`` times the best (warned once), or None.
    diverging_at: int | None = None
    #: Epochs without improvement at the end of the last run (see ``LoopConfig.carry_no_improvement``).
    no_improvement: int = 0


def run_epochs(trainer: Trainer, config: LoopConfig, history: History | None = None) -> History:
    """Train ``trainer`` for up to ``config.max_iter`` epochs.

    Parameters
    ----------
    trainer : Trainer
        The model on its backend.
    config : LoopConfig
        Loop options.
    history : History, optional
        History of earlier fits to extend (warm start, ``partial_fit``).

    Returns
    -------
    History
        Losses, validation scores, gradient norms and counters; the trainer
        holds the final (or, with early stopping, the best) parameters.
    """
    history = History() if history is None else history
    bar = _progress_bar(config.max_iter) if config.progress else None
    try:
        _loop(trainer, config, history, bar)
    finally:
        if bar is not None:
            bar.close()
    return history


def _progress_bar(total: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError('progress=True needs tqdm: pip install "fastgd[progress]" (or pip install tqdm).') from None
    return tqdm(total=total, unit="epoch", desc="fastgd")


#: From this many samples on, the next epoch's order is shuffled on a helper thread (see :class:`EpochOrders`).
BACKGROUND_SHUFFLE_MIN_SAMPLES = 1 << 16


class EpochOrders:
    """The visiting order of each epoch: ``random_state.shuffle`` applied to the previous order.

    Shuffling 200,000 indices takes 2 to 3 ms (more when the epoch has just
    evicted them from the caches), a sixth of a per-sample SGD epoch on 100
    float32 features. From :data:`BACKGROUND_SHUFFLE_MIN_SAMPLES` samples on,
    :meth:`prepare_next` therefore shuffles the following epoch's order on a
    helper thread while the current epoch trains (``RandomState.shuffle`` and
    the compiled epochs release the GIL), on a copy of the order and of the
    random state. The copied state is adopted only when :meth:`next` hands
    that order out, so the orders, and the state of ``random_state`` after
    the fit, are exactly those of shuffling in place before each epoch. The
    shuffle is hidden only where a core is free; otherwise the helper costs
    a thread start and a copy of the order, about 0.2 ms an epoch.

    Parameters
    ----------
    n_samples : int
        Number of samples.
    random_state : numpy.random.RandomState or None
        Source of the shuffles; None visits the samples in their order.
    rows : ndarray of int, optional
        The samples to visit (copied), in the order of the first unshuffled
        epoch; default ``arange(n_samples)``. Each epoch's order is then
        ``rows`` permuted by the very shuffles that permute ``arange(len(rows))``:
        training on ``rows`` of ``X`` visits the rows that training on the
        copy ``X[rows]`` visits, in the same order.
    """

    def __init__(self, n_samples: int, random_state: np.random.RandomState | None,
                 rows: np.ndarray | None = None) -> None:
        self.random_state = random_state
        if rows is None:
            self._order = np.arange(n_samples, dtype=np.int64)
        else:
            self._order = np.array(rows, dtype=np.int64)
        self._spare: np.ndarray | None = None
        self._helper_state: np.random.RandomState | None = None
        self._pending: tuple[threading.Thread, np.ndarray] | None = None

    def next(self) -> np.ndarray:
        """The order of the next epoch (the array stays valid until the following call)."""
        if self.random_state is None:
            return self._order
        if self._pending is None:
            self.random_state.shuffle(self._order)
            return self._order
        thread, order = self._pending
        self._pending = None
        thread.join()
        self.random_state.set_state(self._helper_state.get_state(legacy=False))
        self._spare, self._order = self._order, order
        return self._order

    def prepare_next(self) -> None:
        """Start shuffling the order that follows the current one, on a helper thread (large data only)."""
        if (not isinstance(self.random_state, np.random.RandomState)
                or self._order.size < BACKGROUND_SHUFFLE_MIN_SAMPLES):
            return
        if self._spare is None:
            self._spare = np.empty_like(self._order)
        if self._helper_state is None:
            self._helper_state = copy.deepcopy(self.random_state)
        else:
            self._helper_state.set_state(self.random_state.get_state(legacy=False))
        thread = threading.Thread(target=_copy_and_shuffle, args=(self._order, self._spare, self._helper_state),
                                  daemon=True)
        thread.start()
        self._pending = (thread, self._spare)
        self._spare = None


def _copy_and_shuffle(source: np.ndarray, out: np.ndarray, random_state: np.random.RandomState) -> None:
    """``out[:] = source``, then shuffle ``out`` with ``random_state``."""
    np.copyto(out, source)
    random_state.shuffle(out)


def _loop(trainer: Trainer, config: LoopConfig, history: History, bar) -> None:
    random_state = config.random_state if config.shuffle else None
    make_orders = getattr(trainer, "make_orders", None)
    if config.rows is not None and (make_orders is not None or len(config.rows) != trainer.n_samples):
        raise ValueError("LoopConfig.rows needs a trainer whose n_samples is their number and that takes the "
                         "engine's orders.")
    if make_orders is None:
        orders = EpochOrders(trainer.n_samples, random_state, config.rows)
    else:
        orders = make_orders(random_state)
    no_improvement = history.no_improvement if config.carry_no_improvement else 0
    best_snapshot = None
    last_good = trainer.snapshot()
    # with a validation score and no epoch beating the best so far, the run gives back where it started
    start = last_good if config.validation_score is not None else None
    history.converged = False
    in_epoch = False
    finished = 0
    try:
        for epoch in range(config.max_iter):
            global_epoch = config.epoch_offset + epoch
            order = orders.next()
            if epoch + 1 < config.max_iter:
                orders.prepare_next()
            lr = config.schedule.epoch_lr(global_epoch, history.n_samples_seen)
            started = time.perf_counter()
            in_epoch = True
            result = trainer.run_epoch(order, lr)
            elapsed = time.perf_counter() - started
            if not (math.isfinite(result.loss) and trainer.outputs_finite()):
                trainer.restore(last_good)
                in_epoch = False
                history.diverged_at = global_epoch + 1
                hint = config.nonfinite_hint() if config.nonfinite_hint is not None else None
                if epoch == 0 and config.fresh_start:
                    raise NonFiniteTrainingError(no_model_message(global_epoch + 1, hint))
                _report_nonfinite(global_epoch + 1, config.on_nonfinite, hint)
                break
            if epoch + 1 < config.max_iter:  # the copy the next epoch would fall back on, over the previous one
                last_good = trainer.snapshot(reuse=None if last_good is start else last_good)
            in_epoch = False
            best_before = history.best_loss
            history.n_updates += result.n_updates
            history.n_samples_seen += trainer.n_samples
            history.n_epochs += 1
            finished += 1
            history.loss_curve.append(result.loss)
            history.gradient_norms.append(result.gradient_norms)
            score = None
            if config.validation_score is not None:
                score = float(config.validation_score())
                history.validation_scores.append(score)
            if config.verbose:  # numbered within this run, as scikit-learn numbers its iterations
                _print_epoch(epoch + 1, result.loss, score, lr, trainer.n_samples / max(elapsed, 1e-12))
            if bar is not None:
                bar.set_postfix(loss=f"{result.loss:.4g}", refresh=False)
                bar.update()
            _check_divergence(config, history, global_epoch + 1, result.loss, best_before)

            # scikit-learn's comparisons (its MLPs' and SGD's): reaching the best by tol counts as improving
            improved = False
            if score is not None:
                improved = config.tol is None or score >= history.best_validation_score + config.tol
                if score > history.best_validation_score:
                    history.best_validation_score = score
                    best_snapshot = trainer.snapshot()
            else:
                improved = config.tol is None or result.loss <= history.best_loss - config.tol
            history.best_loss = min(history.best_loss, result.loss)
            no_improvement = 0 if improved else no_improvement + 1
            history.no_improvement = no_improvement

            record = EpochRecord(global_epoch + 1, result.loss, score, result.gradient_norms.copy(), lr)
            if any(callback(record) is True for callback in config.callbacks):
                break
            checks = config.check_convergence or config.carry_no_improvement
            if config.tol is not None and checks and no_improvement >= config.n_iter_no_change:
                stalled = _stalled_message(config, score is not None)
                if config.schedule.on_plateau():
                    no_improvement = history.no_improvement = 0
                    if config.verbose:
                        print(f"{stalled} Setting learning rate to {config.schedule.eta:f}")
                    continue
                if config.verbose:
                    too_small = config.schedule.name == "adaptive"
                    print(f"{stalled} {'Learning rate too small. ' if too_small else ''}Stopping.")
                if config.check_convergence:
                    history.converged = True
                    break
        else:
            if config.check_convergence and config.tol is not None and config.max_iter > 0:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({config.max_iter}) reached and the "
                              "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
    except KeyboardInterrupt:
        # scikit-learn's MLPs keep what was trained when interrupted; here the last finished epoch
        if in_epoch:
            trainer.restore(last_good)
        warnings.warn("Training interrupted by user.", stacklevel=3)
    if best_snapshot is not None:
        trainer.restore(best_snapshot)
    elif config.validation_score is not None and finished:
        # no epoch of this run scored better than the best before it (scikit-learn's MLPs give back their best
        # parameters: those this run started from, or the initial ones when no score was a number)
        trainer.restore(start)


def _stalled_message(config: LoopConfig, validation: bool) -> str:
    """scikit-learn's words for ``n_iter_no_change`` epochs without improvement."""
    count = config.n_iter_no_change if config.reported_n_iter_no_change is None else config.reported_n_iter_no_change
    what = "Validation score" if validation else "Training loss"
    return f"{what} did not improve more than tol={config.tol:f} for {count:.0f} consecutive epochs."


def _check_divergence(config: LoopConfig, history: History, epoch: int, loss: float, best_before: float) -> None:
    """Warn once per history when ``loss`` exceeds ``divergence_factor`` times the best loss and the first one."""
    factor = config.divergence_factor
    if factor is None or history.diverging_at is not None or not history.loss_curve:
        return
    first = history.loss_curve[0]
    if not (math.isfinite(best_before) and loss > factor * best_before and loss > first):
        return
    history.diverging_at = epoch
    hint = config.nonfinite_hint() if config.nonfinite_hint is not None else None
    message = (f"The training loss of epoch {epoch} ({loss:.4g}) exceeds {factor:g} times the lowest loss before it "
               f"({best_before:.4g}) and the loss of the first epoch ({first:.4g}): training is diverging, though "
               "every value is still finite. ")
    if hint:
        message += hint + " "
    warnings.warn(message + DIVERGING_CURES, DivergingTrainingWarning, stacklevel=5)


#: The cures the non-finite warning lists.
NONFINITE_CURES = ("Cures: scale the features (sklearn.preprocessing.StandardScaler, in a pipeline), lower "
                   "learning_rate_init, set clip_norm (gradient clipping), raise alpha (L2), or use a ReLU-family "
                   "activation.")

#: The cures the divergence warning lists.
DIVERGING_CURES = ("Cures: lower learning_rate_init, set clip_norm (gradient clipping), scale the features "
                   "(sklearn.preprocessing.StandardScaler, in a pipeline), or raise alpha (L2).")


def with_hint_and_cures(message: str, hint: str | None) -> str:
    """``message``, then ``hint`` (a sentence on the data) if any, then :data:`NONFINITE_CURES`."""
    return message + (hint + " " if hint else "") + NONFINITE_CURES


def nonfinite_message(epoch: int, hint: str | None = None) -> str:
    """The message of a non-finite epoch: what happened, ``hint`` (a sentence on the data) if any, the cures."""
    return with_hint_and_cures(f"The training loss became NaN or infinite in epoch {epoch}; training stopped and "
                                "the parameters were restored to the end of the last finite epoch. ", hint)


def no_model_message(epoch: int, hint: str | None = None) -> str:
    """The message of a fit with no finite epoch: scikit-learn's sentence, then what happened, ``hint``, the cures."""
    return with_hint_and_cures(f"{SKLEARN_NONFINITE} The training loss became NaN or infinite in epoch {epoch}, "
                                "before any epoch finished with finite values: there is no model to give back. ",
                                hint)


def _report_nonfinite(epoch: int, on_nonfinite: str, hint: str | None = None) -> None:
    message = nonfinite_message(epoch, hint)
    if on_nonfinite == "raise":
        raise NonFiniteTrainingError(message)
    warnings.warn(message, NonFiniteTrainingWarning, stacklevel=4)


def _print_epoch(epoch: int, loss: float, score: float | None, lr: float, samples_per_s: float) -> None:
    """scikit-learn's line (``Iteration N, loss = X``), fastgd's extras after it, then the validation score's."""
    print(f"Iteration {epoch}, loss = {loss:.8f}, lr = {lr:.3g}, {samples_per_s:,.0f} samples/s")
    if score is not None:
        print(f"Validation score: {score:f}")

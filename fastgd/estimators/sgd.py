"""Drop-ins for scikit-learn's ``SGDClassifier`` and ``SGDRegressor``: change the import, keep the code.

They take scikit-learn's constructor parameters (names, defaults, meaning)
and train with its numerics: plain per-sample SGD (the weight-scale form,
O(nonzeros) per sample on CSR rows), its ``optimal`` schedule with the same
``t0``, one-vs-rest over the classes (``log_loss`` included), intercepts moved
at a hundredth of the rate on sparse input, and its ``t_`` and ``n_iter_``.
They are thin classes over :class:`~fastgd.LinearClassifier` and
:class:`~fastgd.LinearRegressor`, which keep the MLP vocabulary and the extras
(other solvers, mini-batches, clipping, progress, devices).
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from sklearn.linear_model._base import SparseCoefMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from ..backends.cpu import resolve_n_threads
from ..dask import ClusterBlocks
from ..engine import History
from ._base import check_sample_weight, reusable_state, validation_split
from .linear import CLASSIFIER_LOSSES, REGRESSOR_LOSSES, LinearClassifier, LinearRegressor

#: Regression losses (also accepted by the classifier, on targets coded -1/+1).
SGD_REGRESSOR_LOSSES = (*REGRESSOR_LOSSES, "squared_epsilon_insensitive")

_SHARED_CONSTRAINTS: dict = {
    "penalty": [StrOptions({"l2", "l1", "elasticnet"}), None],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "l1_ratio": [Interval(Real, 0, 1, closed="both"), None],
    "fit_intercept": ["boolean"],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left"), None],
    "shuffle": ["boolean"],
    "verbose": ["verbose"],
    "epsilon": [Interval(Real, 0, None, closed="left")],
    "random_state": ["random_state"],
    "learning_rate": [StrOptions({"constant", "optimal", "invscaling", "adaptive"})],
    "eta0": [Interval(Real, 0, None, closed="neither")],
    "power_t": [Interval(Real, None, None, closed="neither")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "warm_start": ["boolean"],
    "average": [Interval(Integral, 0, None, closed="neither"), "boolean"],
}

_SHARED_DOC = """
    penalty : {"l2", "l1", "elasticnet"} or None, default="l2"
        Regulariser: ``alpha / 2 * ||w||^2`` (l2), ``alpha * ||w||_1`` (l1), or
        their mix weighted by ``l1_ratio``. L2 decays the weights through a
        scale (scikit-learn's ``wscale``) and L1 is the cumulative penalty of
        Tsuruoka et al. (2009) on the weights a step moved, as in
        scikit-learn: a step on a CSR row costs its nonzeros.
    alpha : float, default=1e-4
        Regularisation strength; also sets the ``optimal`` learning rate.
    l1_ratio : float or None, default=0.15
        Share of L1 in ``elasticnet``, in [0, 1]; ``None`` only without it.
    fit_intercept : bool, default=True
        Whether to learn intercepts.
    max_iter : int, default=1000
        Maximum number of epochs (passes over the training data).
    tol : float or None, default=1e-3
        Training stops when the epoch's mean loss (or, with ``early_stopping``,
        the validation score) fails to improve by ``tol`` for
        ``n_iter_no_change`` epochs in a row; ``None`` runs ``max_iter`` epochs.
        The loss compared includes the penalty (scikit-learn's leaves it out).
    shuffle : bool, default=True
        Shuffle the training data before each epoch.
    verbose : int, default=0
        Print one line per epoch.
    epsilon : float, default=0.1
        Threshold of ``huber``, ``epsilon_insensitive`` and
        ``squared_epsilon_insensitive``.
    random_state : int, RandomState instance or None, default=None
        Seeds shuffling and the validation split (the draws differ from
        scikit-learn's, so shuffled runs are not the same run).
    learning_rate : {"constant", "optimal", "invscaling", "adaptive"}
        Schedule of update ``t`` (1-based): ``eta0``; ``1 / (alpha * (t0 + t - 1))``
        with scikit-learn's ``t0``; ``eta0 / t ** power_t``; ``eta0`` divided
        by 5 each time ``n_iter_no_change`` epochs fail to improve by ``tol``.
    eta0 : float, default=0.01
        Initial learning rate (unused by ``optimal``), > 0.
    power_t : float, default={power_t}
        Exponent of ``invscaling``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop on its score and keep
        the best epoch's parameters (scikit-learn keeps the last).
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.
    n_iter_no_change : int, default=5
        Epochs without improvement before stopping (or, ``adaptive``, before
        the rate is divided by 5).
    warm_start : bool, default=False
        Start ``fit`` from the current coefficients; the schedule restarts, as
        in scikit-learn.
    average : bool or int, default=False
        Averaged SGD: ``True`` averages the weights after every update, an
        int ``n`` from update ``n`` on (counted over the calls since the last
        ``fit`` started, as ``t_`` is); ``coef_`` and ``intercept_`` are then
        the averages once ``t_ - 1`` reaches ``n``. On CSR rows the average is
        kept lazily (Bottou's trick, as scikit-learn does), so a step still
        costs the row's nonzeros. With an L1 penalty the weights are averaged
        after the penalty step (scikit-learn updates its average before it,
        so each step's penalty reaches its average at full weight)."""

_SHARED_ATTRIBUTES = """
    intercept_ : ndarray of shape (n_outputs,)
        Intercepts.
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
    t_ : float
        Updates made since the last ``fit`` started, plus one: scikit-learn's
        ``n_iter_ * n_samples + 1`` after a ``fit``.
    loss_curve_ : list of float
        Mean training loss (penalty included) of each epoch, a fastgd extra;
        with one-vs-rest problems, the sum of theirs (a problem that stopped
        earlier counts with its last epoch's loss).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Feature names seen in ``fit``, when ``X`` had string column names."""


def _threads_of(n_jobs: int | None) -> int | None:
    """Threads for ``n_jobs``: ``None`` lets fastgd choose, negative counts from the cores as joblib does."""
    if n_jobs is None:
        return None
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return max(1, n_jobs)


class _SGDDropIn(SparseCoefMixin):
    """What both drop-ins change in the :class:`~fastgd.LinearClassifier` machinery.

    The fastgd parameters they do not take are fixed here to scikit-learn's
    algorithm: plain per-sample SGD without momentum, clipping or callbacks.
    """

    solver = "sgd"
    batch_size = 1
    momentum = 0.0
    nesterovs_momentum = False
    beta_1 = 0.9
    beta_2 = 0.999
    weight_decay = None
    solver_options = None
    clip_value = None
    clip_norm = None
    lazy_updates = False
    progress = False
    on_nonfinite = "warn"
    callbacks = None
    device = "cpu"
    _sparse_intercept_decay = 0.01  # scikit-learn's SPARSE_INTERCEPT_DECAY
    _warm_start_from_sgd_weights = False  # with averaging: see _sgd_fit
    _warm_start_restarts_schedule = True

    @property
    def learning_rate_init(self) -> float:
        """The base rate of the fastgd schedules: ``eta0``."""
        return self.eta0

    @property
    def loss_epsilon(self) -> float:
        """The threshold of the epsilon losses: ``epsilon``."""
        return self.epsilon

    @property
    def n_threads(self) -> int | None:
        """Threads of the compiled kernels, from ``n_jobs`` (the regressor has none: fastgd chooses)."""
        return _threads_of(getattr(self, "n_jobs", None))

    def _check_sgd_options(self, partial: bool) -> None:
        """scikit-learn's checks of option combinations, with its messages."""
        if self.early_stopping and partial:
            raise ValueError("early_stopping should be False with partial_fit")
        if self.penalty == "elasticnet" and self.l1_ratio is None:
            raise ValueError("l1_ratio must be set when penalty is 'elasticnet'")

    def _average_from(self) -> int:
        """The update from which the weights are averaged (``average``: True is 1), 0 without averaging."""
        return int(self.average)

    def _initial_average(self, params, continuing: bool, incremental: bool) -> np.ndarray | None:
        """The running average that ``partial_fit`` continues (in place), else zeros, as in scikit-learn (a
        ``fit`` with ``warm_start`` starts from the averaged weights, a fresh average); None without averaging."""
        if not self.average:
            return None
        before = getattr(self, "_averaged_params", None) if continuing and incremental else None
        if before is None or before.shape != params.shape or before.dtype != params.dtype:
            return np.zeros_like(params)
        return before

    def _sgd_fit(self, X, y, sample_weight, incremental: bool, **kwargs):
        """``_fit``, then scikit-learn's ``n_iter_`` (this call's epochs) and ``t_`` (updates + 1).

        With averaging, ``partial_fit`` continues from the last weights of SGD
        (``_standard_coef``, ``_standard_intercept``) and their average, a
        ``fit`` with ``warm_start`` from the averaged weights (the classifier)
        or from those of SGD (the regressor), as scikit-learn does, and
        ``coef_`` and ``intercept_`` are the averages (``_average_coef``,
        ``_average_intercept``) once averaging has begun.
        """
        self._check_sgd_options(incremental)
        restart = not incremental and not (self.warm_start and hasattr(self, "coef_"))
        epochs_before = 0 if restart or not hasattr(self, "n_iter_") else self._history.n_epochs
        self._epochs_run = None
        shown = (getattr(self, "coef_", None), getattr(self, "intercept_", None))
        from_sgd_weights = incremental or (self._warm_start_from_sgd_weights and not restart)
        if from_sgd_weights and getattr(self, "_standard_coef", None) is not None:
            self.coef_, self.intercept_ = self._standard_coef, self._standard_intercept  # SGD goes on from these
        try:
            self._fit(X, y, sample_weight, incremental=incremental, **kwargs)
        except BaseException:
            if shown[0] is not None:
                self.coef_, self.intercept_ = shown
            raise
        ran = self._epochs_run  # set by one-vs-rest training: the most epochs one of its problems ran
        self.n_iter_ = self._history.n_epochs - epochs_before if ran is None else ran
        self.t_ = float(self._optimizer_state.step + 1)
        self._standard_coef = self._average_coef = self._standard_intercept = self._average_intercept = None
        if self.average:
            averaged = self._averaged_params
            n_coefs = self.coef_.size
            self._standard_coef, self._standard_intercept = self.coef_, self.intercept_
            self._average_coef = averaged[:n_coefs].reshape(self.coef_.shape)
            self._average_intercept = averaged[n_coefs:]
            if self.average <= self.t_ - 1:
                self.coef_, self.intercept_ = self._average_coef, self._average_intercept
        return self


class _BinaryProblem(NamedTuple):
    """What one one-vs-rest problem of :class:`SGDClassifier` keeps between calls."""

    state: object
    history: History
    adaptive_eta: float | None


def _binary_accuracy(y_val, scores) -> float:
    """Accuracy of the decision values ``scores[:, 0] > 0`` on the boolean labels ``y_val``."""
    return float(np.mean((scores[:, 0] > 0) == y_val))


def _padded(curves) -> np.ndarray:
    """The non-empty ``curves`` as rows of one array, each shorter one continued by its last value."""
    curves = [list(c) for c in curves if len(c)]
    if not curves:
        return np.empty((0, 0))
    n = max(len(c) for c in curves)
    return np.array([c + [c[-1]] * (n - len(c)) for c in curves], dtype=float)


def _summed_history(histories: list[History]) -> History:
    """One history for the one-vs-rest problems of a fit.

    Epoch ``e``'s loss is the sum of the problems' losses (a problem that
    stopped earlier counts with its last epoch's), its gradient norm that of
    all their gradients together, its validation score their mean; the
    counters are the largest of the problems'.
    """
    losses = _padded([h.loss_curve for h in histories]).sum(axis=0)
    norms = _padded([[float(g[0]) for g in h.gradient_norms] for h in histories])
    scores = _padded([h.validation_scores for h in histories])
    scores = scores.mean(axis=0) if scores.size else scores.reshape(-1)
    return History(loss_curve=[float(v) for v in losses], validation_scores=[float(v) for v in scores],
                   gradient_norms=[np.array([v]) for v in np.sqrt((norms ** 2).sum(axis=0))],
                   n_updates=max(h.n_updates for h in histories),
                   n_samples_seen=max(h.n_samples_seen for h in histories),
                   best_loss=float(losses.min()) if losses.size else np.inf,
                   best_validation_score=float(scores.max()) if scores.size else -np.inf,
                   n_epochs=max(h.n_epochs for h in histories),
                   converged=all(h.converged for h in histories))


class SGDClassifier(_SGDDropIn, LinearClassifier):
    __doc__ = f"""Linear classifier trained by plain SGD: a drop-in for ``sklearn.linear_model.SGDClassifier``.

    Same parameters, defaults, fitted attributes and numerics as scikit-learn's
    (started from the same state with ``shuffle=False``, an epoch of each
    agrees to float64 round-off). A multiclass fit trains scikit-learn's
    one-vs-rest problems, one per class, each with its own shuffling, stopping
    and class weighting, on up to ``n_jobs`` threads.

    Parameters
    ----------
    loss : str, default="hinge"
        ``"hinge"``, ``"log_loss"``, ``"modified_huber"``, ``"squared_hinge"``,
        ``"perceptron"``, or a regression loss (``"squared_error"``,
        ``"huber"``, ``"epsilon_insensitive"``, ``"squared_epsilon_insensitive"``)
        on targets coded -1/+1.
    {_SHARED_DOC.replace("{power_t}", "0.5")}
    n_jobs : int or None, default=None
        Threads that train the one-vs-rest problems of a multiclass fit at
        the same time (``None``: as many as there are idle cores; ``-1``: all
        cores). Each problem is one chain of updates on one thread; the
        result is the same for any number.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplying the sample weights. With more than
        two classes, problem ``k`` weights only its positive samples (those
        of class ``k``) by class ``k``'s weight, as scikit-learn does.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Weights (a sparse matrix after :meth:`sparsify`).
    {_SHARED_ATTRIBUTES}

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastgd import SGDClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SGDClassifier(random_state=0).fit(X / 16, y)
    >>> clf.score(X / 16, y) > 0.9
    True
    """

    _parameter_constraints: dict = {
        **_SHARED_CONSTRAINTS,
        "loss": [StrOptions({*CLASSIFIER_LOSSES, *SGD_REGRESSOR_LOSSES})],
        "n_jobs": [Integral, None],
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }
    _losses = (*CLASSIFIER_LOSSES, *SGD_REGRESSOR_LOSSES)
    _multinomial_log_loss = False

    def __init__(self, loss="hinge", *, penalty="l2", alpha=0.0001, l1_ratio=0.15, fit_intercept=True,
                 max_iter=1000, tol=1e-3, shuffle=True, verbose=0, epsilon=0.1, n_jobs=None, random_state=None,
                 learning_rate="optimal", eta0=0.01, power_t=0.5, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=5, class_weight=None, warm_start=False, average=False):
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.verbose = verbose
        self.epsilon = epsilon
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.average = average

    def _sample_weight(self, y, sample_weight, X, incremental):
        if self.classes_.size > 2:  # class weights weight each problem's positive samples (_train_model)
            return check_sample_weight(sample_weight, X, X.dtype)
        return super()._sample_weight(y, sample_weight, X, incremental)

    def _train_model(self, X, y, Y, sample_weight, params, optimizer, state, *, continuing: bool,
                     incremental: bool, n_outputs: int, loss_code: int, averaged=None):
        """Two classes: one model. More: scikit-learn's one-vs-rest, one binary problem per class.

        Problem ``k`` separates class ``k`` (+1) from the others (-1), its
        positive samples weighted by the class's weight, with its own random
        seed (drawn as scikit-learn draws them), schedule, stopping and
        optimizer state; the early-stopping split is drawn once for all. The
        problems run on up to ``n_jobs`` threads (the compiled epochs release
        the GIL); each is trained on its own copy of its weights, written
        back when all have finished, so the result does not depend on the
        threads.
        """
        if self.classes_.size <= 2:
            return super()._train_model(X, y, Y, sample_weight, params, optimizer, state, continuing=continuing,
                                        incremental=incremental, n_outputs=n_outputs, loss_code=loss_code,
                                        averaged=averaged)
        if isinstance(X, ClusterBlocks):
            raise ValueError(f"{type(self).__name__} trains its one-vs-rest problems in memory; on a Dask cluster "
                             "use fastgd.LinearClassifier, which trains the classes together.")
        n_classes, n_features = n_outputs, X.shape[1]
        per_class = self._class_weights(y, incremental)
        rng = check_random_state(self.random_state)
        split = None
        if self.early_stopping and not incremental:
            train_rows, held_out = validation_split(X.shape[0], self.validation_fraction, rng, y)
            split = (train_rows, held_out, X[held_out])
        seeds = rng.randint(np.iinfo(np.int32).max, size=n_classes)
        before = getattr(self, "_problems", None) if continuing else None
        if before is None or len(before) != n_classes:
            before = [None] * n_classes

        def train(k: int):
            positive = Y[:, k] > 0
            Y_k = np.where(positive, 1.0, -1.0).astype(X.dtype).reshape(-1, 1)
            weight = sample_weight
            if per_class is not None:
                weight = sample_weight * np.where(positive, per_class[k], 1.0).astype(X.dtype)
            params_k = np.append(params[k * n_features:(k + 1) * n_features], params[n_classes * n_features + k])
            averaged_k = None if averaged is None else np.append(averaged[k * n_features:(k + 1) * n_features],
                                                                 averaged[n_classes * n_features + k])
            prior = before[k]
            if prior is None or not reusable_state(prior.state, optimizer, params_k.size, params_k.dtype):
                state_k = optimizer.init(params_k)
            else:  # a copy: a failed call leaves the problems as they were
                state_k = dataclasses.replace(prior.state, slots=prior.state.slots.copy(), _device_scratch=None)
                if not incremental:
                    state_k.step = 0
            history, eta = self._train(X, positive, Y_k, weight, params_k, optimizer, state_k,
                                       None if prior is None else prior.history,
                                       None if prior is None else prior.adaptive_eta,
                                       np.random.RandomState(seeds[k]), incremental=incremental, n_outputs=1,
                                       loss_code=loss_code, split=split, score=_binary_accuracy, n_threads=1,
                                       averaged=averaged_k)
            return params_k, averaged_k, _BinaryProblem(state_k, history, eta)

        workers = min(n_classes, resolve_n_threads(self.n_threads))
        if workers > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="fastgd-ovr") as pool:
                results = list(pool.map(train, range(n_classes)))
        else:
            results = [train(k) for k in range(n_classes)]
        for k, (params_k, averaged_k, _) in enumerate(results):
            for flat, flat_k in ((params, params_k), (averaged, averaged_k)):
                if flat is not None:
                    flat[k * n_features:(k + 1) * n_features] = flat_k[:n_features]
                    flat[n_classes * n_features + k] = flat_k[n_features]
        problems = [problem for _, _, problem in results]
        self._epochs_run = max(p.history.n_epochs - (0 if b is None else b.history.n_epochs)
                               for p, b in zip(problems, before, strict=True))
        self._problems = problems
        state.step = max(p.state.step for p in problems)
        return state, _summed_history([p.history for p in problems]), None

    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None) -> SGDClassifier:
        """Fit the model by plain SGD.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; float32 trains in float32, anything else in float64.
        y : array-like of shape (n_samples,)
            Class labels.
        coef_init : ndarray of shape (n_classes, n_features), optional
            Initial weights (``(1, n_features)`` or ``(n_features,)`` for two classes).
        intercept_init : ndarray of shape (n_classes,), optional
            Initial intercepts.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the samples' losses (default: all 1).

        Returns
        -------
        self : SGDClassifier
            The fitted estimator.
        """
        self._validate_params()
        return self._sgd_fit(X, y, sample_weight, incremental=False, initial=(coef_init, intercept_init))

    def partial_fit(self, X, y, classes=None, sample_weight=None) -> SGDClassifier:
        """Train one epoch on ``(X, y)``, continuing from the current state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A batch of training data.
        y : array-like of shape (n_samples,)
            Its labels.
        classes : array-like of shape (n_classes,), optional
            All classes that can appear; required on the first call.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the samples' losses (default: all 1).

        Returns
        -------
        self : SGDClassifier
            The updated estimator.
        """
        self._validate_params()
        return self._sgd_fit(X, y, sample_weight, incremental=True, classes=classes)


class SGDRegressor(_SGDDropIn, LinearRegressor):
    __doc__ = f"""Linear regressor trained by plain SGD: a drop-in for ``sklearn.linear_model.SGDRegressor``.

    Same parameters, defaults, fitted attributes and numerics as scikit-learn's
    (started from the same state with ``shuffle=False``, an epoch of each
    agrees to float64 round-off). A 2-D ``y`` trains one weight vector per
    target, a fastgd extra.

    Parameters
    ----------
    loss : {{"squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive"}}
        Default ``"squared_error"``: ``(f(x) - y)^2 / 2``.
    {_SHARED_DOC.replace("{power_t}", "0.25")}

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Weights (a sparse matrix after :meth:`sparsify`).
    {_SHARED_ATTRIBUTES}

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd import SGDRegressor
    >>> X = np.random.default_rng(0).normal(size=(500, 3))
    >>> reg = SGDRegressor(random_state=0).fit(X, X @ [1.0, -2.0, 0.5] + 3.0)
    >>> np.round(reg.coef_, 1)
    array([ 1. , -2. ,  0.5])
    """

    _parameter_constraints: dict = {
        **_SHARED_CONSTRAINTS,
        "loss": [StrOptions(set(SGD_REGRESSOR_LOSSES))],
    }
    _losses = SGD_REGRESSOR_LOSSES
    _warm_start_from_sgd_weights = True  # scikit-learn's regressor ignores coef_ (the average) on warm start

    def __init__(self, loss="squared_error", *, penalty="l2", alpha=0.0001, l1_ratio=0.15, fit_intercept=True,
                 max_iter=1000, tol=1e-3, shuffle=True, verbose=0, epsilon=0.1, random_state=None,
                 learning_rate="invscaling", eta0=0.01, power_t=0.25, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=5, warm_start=False, average=False):
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.verbose = verbose
        self.epsilon = epsilon
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.average = average

    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None) -> SGDRegressor:
        """Fit the model by plain SGD.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; float32 trains in float32, anything else in float64.
        y : array-like of shape (n_samples,)
            Targets.
        coef_init : ndarray of shape (n_features,), optional
            Initial weights.
        intercept_init : ndarray of shape (1,), optional
            Initial intercept.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the samples' losses (default: all 1).

        Returns
        -------
        self : SGDRegressor
            The fitted estimator.
        """
        self._validate_params()
        return self._sgd_fit(X, y, sample_weight, incremental=False, initial=(coef_init, intercept_init))

    def partial_fit(self, X, y, sample_weight=None) -> SGDRegressor:
        """Train one epoch on ``(X, y)``, continuing from the current state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A batch of training data.
        y : array-like of shape (n_samples,)
            Its targets.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the samples' losses (default: all 1).

        Returns
        -------
        self : SGDRegressor
            The updated estimator.
        """
        self._validate_params()
        return self._sgd_fit(X, y, sample_weight, incremental=True)

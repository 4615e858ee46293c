"""Linear classifiers and regressors trained by fastgd's gradient-descent engine."""

from __future__ import annotations

import dataclasses
import functools
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context, clone
from sklearn.metrics import r2_score
from sklearn.utils import check_random_state, compute_class_weight
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.extmath import softmax
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import check_is_fitted, validate_data

from .._numeric.float_env import subnormals_flushed
from ..backends.cpu import LinearGradientSums, LinearObjective, LinearTrainer, make_update_rule
from ..dask import (
    ClusterBlocks,
    ClusterFullBatchTrainer,
    ClusterLocalSGDTrainer,
    active_client,
    check_row_blocks,
    is_dask_array,
)
from ..engine import (
    History,
    NonFiniteTrainingError,
    NonFiniteTrainingWarning,
    nonfinite_message,
    run_epochs,
    with_hint_and_cures,
)
from ..kernels.linear import linear_gradient_sum
from ..kernels.losses import LOSS_CODES, Loss
from ..optim import SOLVERS
from ..optim.schedules import PER_EPOCH
from ._base import (
    DEVICE_ATTRIBUTE_DOC,
    DEVICE_DOC,
    GD_PARAMETER_CONSTRAINTS,
    N_THREADS_DOC,
    announces_compiles,
    check_sample_weight,
    fit_device,
    keeps_attributes_on_error,
    make_loop_config,
    make_optimizer,
    make_schedule,
    minimize_lbfgs,
    nonfinite_hint,
    resolve_batch_size,
    reusable_state,
    short_repr,
    train_only_on,
    unique_labels_and_index,
    validation_split,
)

CLASSIFIER_LOSSES = ("log_loss", "hinge", "squared_hinge", "modified_huber", "perceptron")
REGRESSOR_LOSSES = ("squared_error", "huber", "epsilon_insensitive")
#: Losses with a kink, where L-BFGS's curvature model breaks down.
_NONSMOOTH_LOSSES = ("hinge", "perceptron", "epsilon_insensitive")

_LINEAR_DOC_PARAMETERS = """
    penalty : {"l2", "l1", "elasticnet"} or None, default="l2"
        Regulariser added to the mean loss: ``alpha / 2 * ||W||^2`` (l2),
        ``alpha * ||W||_1`` (l1), or their mix weighted by ``l1_ratio``.
        Intercepts are never penalised. Per-sample training (``batch_size=1``)
        applies L1 as scikit-learn's ``SGDClassifier`` does, the cumulative
        penalty of Tsuruoka et al. (2009) on the weights each update moved (on
        CSR rows: the row's nonzeros, so a step costs them); mini-batches
        apply it as a soft threshold of every weight after each update.
    alpha : float, default=1e-4
        Regularisation strength, >= 0; also sets the ``optimal`` learning rate.
    l1_ratio : float, default=0.15
        Share of L1 in ``elasticnet``, in [0, 1].
    fit_intercept : bool, default=True
        Whether to learn intercepts.
    solver : {"sgd", "adam", "rmsprop", "adamw", "adagrad", "lbfgs"}, default="sgd"
        Optimizer from :mod:`fastgd.optim`, or ``"lbfgs"``: SciPy's L-BFGS-B
        on the whole data set's objective and gradient (compiled), for a
        differentiable loss (not ``hinge``, ``perceptron``,
        ``epsilon_insensitive``) and penalty (``l2`` or ``None``), on the CPU.
        It runs up to ``max_iter`` iterations and stops when the projected
        gradient's largest component is at most ``tol``; the schedule,
        batch, early-stopping and clipping parameters do not apply, and it
        has no ``partial_fit``.
    learning_rate : {"constant", "invscaling", "optimal", "adaptive", "step", "cosine"}
        Learning-rate schedule (see :mod:`fastgd.optim.schedules`).
    learning_rate_init : float, default=0.01
        Initial learning rate (unused by ``optimal``).
    power_t : float, default=0.25
        Exponent of ``invscaling``.
    batch_size : int, "full" or None, default=1
        Samples per update: 1 is per-sample SGD, ``k`` mini-batch SGD (the last
        batch of an epoch may be smaller), ``None`` or ``"full"`` full-batch GD.
    max_iter : int, default=1000
        Maximum number of epochs.
    tol : float or None, default=1e-3
        Training stops when the loss (or, with early stopping, the validation
        score) fails to improve by ``tol`` for ``n_iter_no_change`` epochs in
        a row. ``None`` runs all ``max_iter`` epochs.
    n_iter_no_change : int, default=5
        Patience of the stopping rule and of the ``adaptive`` schedule.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop on its score and keep
        the best parameters. The held-out rows are those
        ``sklearn.model_selection.train_test_split`` would pick with the same
        ``random_state`` (stratified by class for the classifier); only they
        are copied, and training visits the other rows where they are.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.
    momentum : float, default=0.0
        Momentum of ``solver="sgd"``, in [0, 1): at 1 the velocity never
        decays and training diverges.
    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum (``solver="sgd"`` with ``momentum > 0``).
    beta_1 : float, default=0.9
        Decay of the first-moment estimate (adam, adamw), in [0, 1).
    beta_2 : float, default=0.999
        Decay of the second-moment estimate (adam, adamw, and RMSprop's
        smoothing constant), in [0, 1).
    epsilon : float, default=1e-8
        Denominator term of adam, adamw, rmsprop and adagrad, > 0.
    weight_decay : float or None, default=None
        The optimizer's own weight decay (decoupled for adamw); ``None`` keeps
        the optimizer's default. Unlike ``alpha`` it also decays intercepts.
    solver_options : dict or None, default=None
        Further constructor arguments of the optimizer, e.g.
        ``{"amsgrad": True}`` or ``{"centered": True}``.
    clip_value : float or None, default=None
        Clip each gradient component to ``[-clip_value, clip_value]``.
    clip_norm : float or None, default=None
        Rescale each gradient to global L2 norm at most ``clip_norm``.
    lazy_updates : bool, default=False
        On sparse (CSR) input, step only the coordinates of each batch's
        nonzero features, whatever the solver: the coordinates a batch does
        not touch keep their parameters and optimizer state, and the L2 term
        (and L1, as the cumulative penalty) reaches a weight only when a batch
        touches it. This is PyTorch's ``SparseAdam`` rule, and a step costs the
        batch's nonzeros. The default is the exact rule: plain SGD still costs
        the nonzeros (the L2 term lives in a weight scale), and so do
        ``solver="adagrad"`` and SGD with ``clip_value`` when ``alpha=0`` (a
        zero gradient moves nothing); ``adam``, ``adamw``, ``rmsprop`` and
        momentum move every weight at every step, a pass over the model per
        update. No effect on dense input, and not with ``device="cuda"``.
    shuffle : bool, default=True
        Shuffle the samples before each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds shuffling and the validation split.
    warm_start : bool, default=False
        Start ``fit`` from the current coefficients and optimizer state.
    verbose : int, default=0
        Print one line per epoch (loss, validation score, lr, samples/s).
    progress : bool, default=False
        Show a tqdm progress bar over the epochs (needs the ``progress`` extra).
    on_nonfinite : {"warn", "raise"}, default="warn"
        What to do when the loss becomes NaN or infinite: training stops and
        the last finite epoch's parameters are restored, then a warning or an
        error names the epoch and the cures.
    callbacks : list of callable or None, default=None
        Called with an :class:`fastgd.engine.EpochRecord` after each epoch;
        returning ``True`` stops training.
""" + N_THREADS_DOC + DEVICE_DOC

_LINEAR_DOC_ATTRIBUTES = """
    coef_ : ndarray
        Weights, in the dtype of the training data.
    intercept_ : ndarray
        Intercepts.
    n_iter_ : int
        Epochs run (accumulated over warm starts and ``partial_fit``).
    t_ : int
        Optimizer updates made: ``ceil(n_samples / batch_size)`` per complete epoch. scikit-learn's
        ``SGDClassifier.t_`` counts ``n_iter_ * n_samples + 1`` (one more than this with
        ``batch_size=1``); the MLP estimators' ``t_`` counts training samples, as scikit-learn's MLPs do.
    loss_curve_ : list of float
        Mean training loss (penalty included) of each epoch.
    validation_scores_ : list of float
        Validation score of each epoch (early stopping only).
    gradient_norms_ : ndarray of shape (n_epochs, 1)
        Mean global gradient norm of each epoch's updates.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Feature names seen in ``fit``, when ``X`` had string column names.""" + DEVICE_ATTRIBUTE_DOC


def _has_partial_fit(estimator) -> bool:
    """``partial_fit`` exists for the gradient solvers; L-BFGS trains on the whole data set at once."""
    if estimator.solver == "lbfgs":
        raise AttributeError("partial_fit is only available for the gradient solvers: solver='lbfgs' trains on the "
                             "whole data set at once.")
    return True


class _LinearGD(BaseEstimator):
    """Shared machinery of :class:`LinearClassifier` and :class:`LinearRegressor`."""

    _parameter_constraints: dict = {
        **GD_PARAMETER_CONSTRAINTS,
        "penalty": [StrOptions({"l2", "l1", "elasticnet"}), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "fit_intercept": ["boolean"],
        "lazy_updates": ["boolean"],
        "solver": [StrOptions({*SOLVERS, "lbfgs"})],
    }

    _losses: tuple[str, ...] = ()
    #: Factor on the intercepts' gradient on CSR input (scikit-learn's SGD estimators use 0.01).
    _sparse_intercept_decay = 1.0
    #: Whether ``fit`` with ``warm_start`` restarts the learning-rate schedule (scikit-learn's SGD estimators do).
    _warm_start_restarts_schedule = False

    def __init__(self, *, loss, penalty="l2", alpha=1e-4, l1_ratio=0.15, fit_intercept=True, solver="sgd",
                 learning_rate="optimal", learning_rate_init=0.01, power_t=0.25, batch_size=1, max_iter=1000,
                 tol=1e-3, n_iter_no_change=5, early_stopping=False, validation_fraction=0.1, momentum=0.0,
                 nesterovs_momentum=True, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=None,
                 solver_options=None, clip_value=None, clip_norm=None, lazy_updates=False, shuffle=True,
                 random_state=None, warm_start=False, verbose=0, progress=False, on_nonfinite="warn", callbacks=None,
                 n_threads=None, device="cpu"):
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.weight_decay = weight_decay
        self.solver_options = solver_options
        self.clip_value = clip_value
        self.clip_norm = clip_norm
        self.lazy_updates = lazy_updates
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.progress = progress
        self.on_nonfinite = on_nonfinite
        self.callbacks = callbacks
        self.n_threads = n_threads
        self.device = device

    # -- pieces the subclasses provide ------------------------------------------------------
    def _encode(self, y, first_call: bool, classes, incremental: bool) -> tuple[np.ndarray, int, int]:
        """Targets coded for the kernel, the number of outputs and the loss code."""
        raise NotImplementedError

    def _validation_score(self, y, scores) -> float:
        """Score of decision values ``scores`` against ``y``."""
        raise NotImplementedError

    def _sample_weight(self, y, sample_weight, X, incremental: bool) -> np.ndarray:
        return check_sample_weight(sample_weight, X, X.dtype)

    # -- fitting ----------------------------------------------------------------------------
    def _penalties(self) -> tuple[float, float]:
        if self.penalty is None:
            return 0.0, 0.0
        l1_share = {"l2": 0.0, "l1": 1.0, "elasticnet": self.l1_ratio}[self.penalty]
        return self.alpha * (1.0 - l1_share), self.alpha * l1_share

    @announces_compiles
    @keeps_attributes_on_error
    def _fit(self, X, y, sample_weight, *, incremental: bool, classes=None, initial=(None, None)):
        if self.loss not in self._losses:
            raise ValueError(f"loss must be one of {self._losses}, got {self.loss!r}.")
        if self.solver == "lbfgs":
            self._check_lbfgs()
        elif self.learning_rate == "optimal" and self.alpha == 0:
            raise ValueError("learning_rate='optimal' needs alpha > 0: its rate is 1 / (alpha * (t0 + t)).")
        continuing = (incremental or self.warm_start) and hasattr(self, "coef_")
        # Continuing trains in the dtype of the fitted parameters: casting them to float32 could overflow.
        X_dtype = self.coef_.dtype if continuing else [np.float64, np.float32]
        if is_dask_array(X) and not incremental:  # the data stay on the cluster, in blocks
            X, Y, sample_weight, n_outputs, loss_code = self._cluster_data(X, y, sample_weight, continuing)
            dtype = X.dtype
        else:
            X, y = validate_data(self, X, y, reset=not continuing, accept_sparse="csr",
                                 dtype=X_dtype, order="C", multi_output=self._multi_output,
                                 y_numeric=not isinstance(self, ClassifierMixin))
            if sp.issparse(X):
                X = _canonical(X)
            self.device_ = fit_device(self)
            Y, n_outputs, loss_code = self._encode(y, not continuing, classes, incremental)
            # a writeable array (a read-only y would be copied, not compiled for: one value per sample and output)
            Y = np.require(Y, X.dtype, ["W"])
            sample_weight = self._sample_weight(y, sample_weight, X, incremental)
            dtype = X.dtype
        n_features = X.shape[1]

        n_params = n_outputs * (n_features + 1)
        # partial_fit trains the model's own arrays and optimizer state in place (no copy of the model);
        # fit with warm_start trains copies, so that a failed fit leaves the fitted model as it was.
        params = self._own_params(dtype, n_params) if incremental and continuing else None
        if params is None and continuing:
            coef = self.coef_.toarray() if sp.issparse(self.coef_) else self.coef_  # after sparsify()
            params = np.concatenate([np.asarray(coef, dtype=dtype).reshape(-1),
                                     np.asarray(self.intercept_, dtype=dtype).reshape(-1)])
        elif params is None:
            params = np.zeros(n_params, dtype=dtype)
        _set_initial(params, *initial, n_outputs, n_features)
        if self.solver == "lbfgs":
            return self._fit_lbfgs(X, y, Y, sample_weight, params, n_outputs=n_outputs, loss_code=loss_code)
        optimizer = make_optimizer(self)
        state = getattr(self, "_optimizer_state", None) if continuing else None
        if not reusable_state(state, optimizer, n_params, dtype):  # none yet, or another solver's
            state = optimizer.init(params)
        elif not incremental:  # a copy that keeps made_by; the device scratch is the original's own
            state = dataclasses.replace(state, slots=state.slots.copy(), _device_scratch=None)
            if self._warm_start_restarts_schedule:
                state.step = 0

        averaged = self._initial_average(params, continuing, incremental)
        state, history, adaptive_eta = self._train_model(X, y, Y, sample_weight, params, optimizer, state,
                                                         continuing=continuing, incremental=incremental,
                                                         n_outputs=n_outputs, loss_code=loss_code,
                                                         averaged=averaged)

        coef = params[:n_outputs * n_features].reshape(n_outputs, n_features)
        self.coef_ = coef.reshape(-1) if self._coef_1d(y) else coef
        self.intercept_ = params[n_outputs * n_features:]
        self._params = params  # coef_ and intercept_ are views of it
        self._averaged_params = averaged
        self._optimizer_state = state
        self._history = history
        self._adaptive_eta = adaptive_eta
        self.n_iter_ = history.n_epochs
        self.t_ = history.n_updates
        self.loss_curve_ = list(history.loss_curve)
        self.loss_ = history.loss_curve[-1] if history.loss_curve else np.nan
        self.best_loss_ = history.best_loss
        self.gradient_norms_ = np.array(history.gradient_norms).reshape(-1, 1)
        if self.early_stopping and not incremental:
            self.validation_scores_ = list(history.validation_scores)
            self.best_validation_score_ = history.best_validation_score
        return self

    def _cluster_data(self, X, y, sample_weight, continuing: bool):
        """Blocks of a fit on dask arrays, prepared on the workers; returns ``(blocks, None, None, n_outputs,
        loss_code)`` after the checks and the fitted attributes ``fit`` sets before training."""
        import dask.array as da

        client = active_client()
        if self.early_stopping:
            raise ValueError("early_stopping is not available on a Dask cluster yet: hold out a validation set "
                             "and compare its scores yourself, or fit in memory.")
        if self.device == "cuda":
            raise ValueError("a fit on dask arrays runs on the cluster's CPUs: use device='cpu' (or 'auto').")
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got a {X.ndim}-D dask array.")
        y = y if is_dask_array(y) else da.from_array(np.asarray(y), chunks=(X.chunks[0],) + ((-1,) * (np.ndim(y) - 1)))
        if sample_weight is None:
            sample_weight = da.ones(X.shape[0], chunks=X.chunks[0], dtype=X.dtype)
        elif not is_dask_array(sample_weight):
            sample_weight = da.from_array(np.asarray(sample_weight), chunks=X.chunks[0])
        check_row_blocks("X", X, None)
        check_row_blocks("y", y, X.chunks[0])
        check_row_blocks("sample_weight", sample_weight, X.chunks[0])
        if continuing and X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")
        self.n_features_in_ = X.shape[1]
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.device_ = "cpu"
        dtype = self.coef_.dtype if continuing else (np.float32 if X.dtype == np.float32 else np.float64)
        encoder = clone(self)  # what the workers need to code their blocks' targets and weights
        if isinstance(self, ClassifierMixin):
            labels, counts = (np.asarray(part) for part in da.compute(*da.unique(y, return_counts=True)))
            _, n_outputs, loss_code = self._encode(labels, not continuing, None, False)
            encoder.classes_ = self.classes_
            if self.class_weight == "balanced":  # scikit-learn's n_samples / (n_classes * count), from the counts
                encoder.class_weight = dict(zip(labels.tolist(), (y.shape[0] / (labels.size * counts)).tolist(),
                                                strict=True))
        else:
            _, n_outputs, loss_code = self._encode(np.zeros((1, *y.shape[1:])), not continuing, None, False)
        blocks = ClusterBlocks(client, X, y, sample_weight, dtype, prepare=encoder._block_targets_and_weights)
        return blocks, None, None, n_outputs, loss_code

    def _block_targets_and_weights(self, X, y, sample_weight):
        """Targets coded for the loss and sample weights of one block of a cluster fit (run on a worker)."""
        y = np.asarray(y)
        Y, _, _ = self._encode(y, not isinstance(self, ClassifierMixin), None, False)
        return Y, self._sample_weight(y, sample_weight, X, incremental=False)

    def _check_lbfgs(self) -> None:
        """Refuse what L-BFGS cannot do, before any work: a kink in the objective, the GPU (no partial_fit:
        see :func:`_has_partial_fit`)."""
        if self.loss in _NONSMOOTH_LOSSES:
            raise ValueError(f"solver='lbfgs' needs a differentiable loss; loss={self.loss!r} has a kink. Use "
                             f"one of {sorted(set(self._losses) - set(_NONSMOOTH_LOSSES))}, or a gradient solver.")
        if self.penalty in ("l1", "elasticnet") and self.alpha > 0:
            raise ValueError(f"solver='lbfgs' needs a differentiable objective; penalty={self.penalty!r} is not at "
                             "0. Use penalty='l2' or None, or a gradient solver (they apply L1 as a "
                             "soft threshold).")
        if self.device == "cuda":
            raise ValueError("solver='lbfgs' runs on the CPU: use device='cpu' (or 'auto').")

    def _fit_lbfgs(self, X, y, Y, sample_weight, params, *, n_outputs: int, loss_code: int):
        """Full-batch L-BFGS (SciPy's L-BFGS-B) on the objective of the gradient solvers; ``params`` in place.

        ``max_iter`` bounds the iterations and ``tol`` is the projected
        gradient's tolerance; ``n_iter_`` and ``t_`` count this fit's
        iterations, ``loss_curve_`` and ``gradient_norms_`` hold the objective
        and its gradient's norm after each.
        """
        l2, _ = self._penalties()
        options = {"loss_code": loss_code, "loss_epsilon": getattr(self, "loss_epsilon", 0.0), "n_outputs": n_outputs,
                   "fit_intercept": self.fit_intercept}
        if isinstance(X, ClusterBlocks):
            options["epsilon"] = options.pop("loss_epsilon")
            sums = functools.partial(X.sums, **options)
        else:
            sums = LinearGradientSums(X, Y, sample_weight, **options)
        objective = LinearObjective(sums, n_samples=X.shape[0], n_outputs=n_outputs, l2=l2)
        loss_curve: list[float] = []
        gradient_norms: list[np.ndarray] = []

        def record(intermediate_result):
            value, gradient = objective(intermediate_result.x)
            loss_curve.append(value)
            gradient_norms.append(np.array([np.linalg.norm(gradient)]))

        # ftol as scikit-learn's LogisticRegression sets it: stop on the gradient (tol), not on a small decrease
        result = minimize_lbfgs(objective, params.astype(np.float64), max_iter=self.max_iter, max_fun=15_000,
                                tol=0.0 if self.tol is None else self.tol, verbose=bool(self.verbose),
                                callback=record, ftol=64 * np.finfo(np.float64).eps)
        if not (np.isfinite(result.fun) and np.isfinite(result.x).all()):
            hint = nonfinite_hint(X, None if isinstance(self, ClassifierMixin) else y)()
            raise NonFiniteTrainingError(with_hint_and_cures(
                f"L-BFGS ended on a NaN or infinite loss after {int(result.nit)} iterations: there is no model to "
                "give back. ", hint))
        n_iter = _check_optimize_result("lbfgs", result, self.max_iter)
        params[:] = result.x
        n_features = X.shape[1]
        coef = params[:n_outputs * n_features].reshape(n_outputs, n_features)
        self.coef_ = coef.reshape(-1) if self._coef_1d(y) else coef
        self.intercept_ = params[n_outputs * n_features:]
        self._params = params
        self._averaged_params = None
        self._optimizer_state = None
        self._history = None
        self._adaptive_eta = None
        self.n_iter_ = n_iter
        self.t_ = n_iter
        self.loss_curve_ = loss_curve
        self.loss_ = float(result.fun)
        self.best_loss_ = min(loss_curve, default=float(result.fun))
        self.gradient_norms_ = np.array(gradient_norms).reshape(-1, 1)
        return self

    def _initial_average(self, params, continuing: bool, incremental: bool) -> np.ndarray | None:
        """Averaged SGD's running average of ``params`` to continue from; None: no averaging (here)."""
        return None

    def _average_from(self) -> int:
        """The update from which averaged SGD averages (1-based); 0: no averaging (here)."""
        return 0

    def _train_model(self, X, y, Y, sample_weight, params, optimizer, state, *, continuing: bool,
                     incremental: bool, n_outputs: int, loss_code: int, averaged=None):
        """Train ``params`` (and ``averaged``, the running average of averaged SGD) in place, all outputs in one
        epoch loop; return the state, history and adaptive rate."""
        history = getattr(self, "_history", None) if continuing else None
        eta = getattr(self, "_adaptive_eta", None) if continuing else None
        history, eta = self._train(X, y, Y, sample_weight, params, optimizer, state, history, eta,
                                   check_random_state(self.random_state), incremental=incremental,
                                   n_outputs=n_outputs, loss_code=loss_code, averaged=averaged)
        return state, history, eta

    def _train(self, X, y, Y, sample_weight, params, optimizer, state, history, adaptive_eta, rng, *,
               incremental: bool, n_outputs: int, loss_code: int, split=None, score=None,
               n_threads: int | None = None, averaged=None):
        """Run the epochs of one model on its trainer: ``params`` and ``state`` are trained in place.

        ``split`` is ``(train_rows, held_out, X_val)`` of early stopping when
        already drawn (else it is drawn from ``rng``); ``score(y_val, scores)``
        replaces :meth:`_validation_score`; ``n_threads`` replaces the
        estimator's; ``averaged`` is averaged SGD's running average (trained in
        place). Returns the history and the adaptive schedule's rate.
        """
        n_features = X.shape[1]
        n_params = params.size
        validation_score = None
        train_rows = None  # early stopping on the CPU: the rows trained on, the others held out where they are
        hint = nonfinite_hint(X, None if isinstance(self, ClassifierMixin) else y)
        if self.early_stopping and not incremental:
            if split is None:
                stratify = y if isinstance(self, ClassifierMixin) else None
                train_rows, held_out = validation_split(X.shape[0], self.validation_fraction, rng, stratify)
                X_val = X[held_out]  # the only copy: validation_fraction of the data
            else:
                train_rows, held_out, X_val = split
            y_val = y[held_out]
            if self.device_ == "cuda":  # the device trainer draws its own orders over all its samples
                X, Y, sample_weight, y = X[train_rows], Y[train_rows], sample_weight[train_rows], y[train_rows]
                train_rows = None
            score = self._validation_score if score is None else score

            def validation_score():
                coef = params[:n_outputs * n_features].reshape(n_outputs, n_features)
                return score(y_val, _decision(X_val, coef, params[n_outputs * n_features:]))

        n_train = X.shape[0] if train_rows is None else train_rows.size
        batch_size = resolve_batch_size(self.batch_size, n_train)
        l2, l1 = self._penalties()
        # scikit-learn's ``optimal`` offset: typw = sqrt(1 / sqrt(alpha)), eta0 = typw, t0 = 1 / (eta0 * alpha)
        optimal_t0 = 1.0 / (np.sqrt(1.0 / np.sqrt(self.alpha)) * self.alpha) if self.alpha > 0 else 1.0
        epoch_offset = history.n_epochs if history is not None else 0
        schedule = make_schedule(self, alpha=self.alpha, optimal_t0=optimal_t0)
        if adaptive_eta is not None and self.learning_rate == "adaptive":
            schedule.eta = adaptive_eta
        intercept_decay = self._sparse_intercept_decay if sp.issparse(X) else 1.0
        rule = make_update_rule(optimizer, schedule, n_params, self.clip_value, self.clip_norm, intercept_decay,
                                average_from=self._average_from())
        trainer_class = LinearTrainer
        if isinstance(X, ClusterBlocks):
            trainer_class = ClusterFullBatchTrainer if batch_size >= n_train else ClusterLocalSGDTrainer
        elif self.device_ == "cuda":
            from ..backends.cuda import CudaLinearTrainer as trainer_class
        trainer = trainer_class(X, Y, sample_weight, params, optimizer, state, rule, loss_code=loss_code,
                              loss_epsilon=getattr(self, "loss_epsilon", 0.0), n_outputs=n_outputs,
                              fit_intercept=self.fit_intercept, l2=l2, l1=l1, batch_size=batch_size,
                              n_threads=self.n_threads if n_threads is None else n_threads, averaged=averaged,
                              lazy_updates=self.lazy_updates)
        config = make_loop_config(self, schedule, rng, incremental=incremental, validation_score=validation_score,
                                  epoch_offset=epoch_offset)
        config.nonfinite_hint = hint
        if train_rows is not None:
            train_only_on(trainer, train_rows)
            config.rows = train_rows
        history = run_epochs(trainer, config, None if history is None else _copy_history(history))
        return history, schedule.eta

    def _fit_full_batch(self, read_chunks, epochs: int, classes=None):
        """Exact full-batch GD over data read chunk by chunk (see :func:`fastgd.stream.fit_full_batch`).

        ``read_chunks()`` yields ``(X, y, sample_weight)`` chunks covering the
        data once. Each epoch sums the loss gradient over the chunks, then
        makes one optimizer update with the mean gradient plus the L2 term:
        the update of in-memory full-batch GD.
        """
        self._validate_params()
        if self.loss not in self._losses:
            raise ValueError(f"loss must be one of {self._losses}, got {self.loss!r}.")
        if isinstance(epochs, bool) or not isinstance(epochs, Integral) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}.")
        l2, l1 = self._penalties()
        optimizer = make_optimizer(self)
        schedule = make_schedule(self, alpha=self.alpha)
        if schedule.lr_kind != PER_EPOCH:
            raise ValueError(f"learning_rate={self.learning_rate!r} changes the rate at every update; "
                             "full-batch GD over chunks takes an epoch-level schedule.")
        params = state = grads = None
        history = History()
        for epoch in range(epochs):
            loss_sum, n_total, grad_total = 0.0, 0, None
            for chunk_index, (X, y, sample_weight) in enumerate(read_chunks()):
                first = params is None
                X, y = validate_data(self, X, y, reset=first and chunk_index == 0, accept_sparse="csr",
                                     dtype=[np.float64, np.float32], order="C", multi_output=self._multi_output,
                                     y_numeric=not isinstance(self, ClassifierMixin))
                if first:
                    Y, n_outputs, loss_code = self._encode(y, True, classes, False)
                    n_features = X.shape[1]
                    params = np.zeros(n_outputs * (n_features + 1), dtype=X.dtype)
                    state = optimizer.init(params)
                    grads = np.zeros_like(params)
                    z, dz = np.empty(n_outputs, dtype=X.dtype), np.empty(n_outputs, dtype=X.dtype)
                    # views, so that _encode checks later chunks against the model being trained
                    self.coef_ = params[:n_outputs * n_features].reshape(n_outputs, n_features)
                    self.intercept_ = params[n_outputs * n_features:]
                else:
                    Y, _, _ = self._encode(y, False, None, True)
                X = X.astype(params.dtype, copy=False)
                if sp.issparse(X):
                    X = _canonical(X)
                rows = (X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)) if sp.issparse(X) else X
                weights = self._sample_weight(y, sample_weight, X, incremental=False)
                with subnormals_flushed():  # as in the in-memory epochs
                    loss_sum += linear_gradient_sum(rows, Y.astype(params.dtype, copy=False), weights, params, grads,
                                                    z, dz, loss_code, getattr(self, "loss_epsilon", 0.0), n_outputs,
                                                    self.fit_intercept)
                grad_total = grads.astype(np.float64) if grad_total is None else grad_total + grads
                n_total += X.shape[0]
            n_coefs = params.size - n_outputs
            gradient = grad_total / n_total
            gradient[:n_coefs] += l2 * params[:n_coefs]
            if not self.fit_intercept:
                gradient[n_coefs:] = 0.0
            if not np.isfinite(loss_sum) or not np.isfinite(gradient).all():
                # nothing of this epoch was applied: the parameters are those of the last finite epoch
                warnings.warn(nonfinite_message(epoch + 1), NonFiniteTrainingWarning, stacklevel=3)
                break
            lr = schedule.epoch_lr(epoch)
            history.gradient_norms.append(np.array([np.linalg.norm(gradient)]))
            with subnormals_flushed():
                optimizer.step(params, gradient.astype(params.dtype), state, lr=lr, clip_value=self.clip_value,
                               clip_norm=self.clip_norm)
            if l1 > 0:
                shrink = lr * l1
                params[:n_coefs] = np.sign(params[:n_coefs]) * np.maximum(np.abs(params[:n_coefs]) - shrink, 0)
            # as in the in-memory epoch: the data loss met during the epoch, the penalty at its end
            coefs = params[:n_coefs].astype(np.float64)
            history.loss_curve.append(loss_sum / n_total + 0.5 * l2 * float(coefs @ coefs)
                                      + l1 * float(np.abs(coefs).sum()))
            history.n_epochs += 1
            history.n_updates += 1
            history.n_samples_seen += n_total
        coef = params[:n_outputs * n_features].reshape(n_outputs, n_features)
        self.coef_ = coef.reshape(-1) if self._coef_1d(y) else coef.copy()
        self.intercept_ = params[n_outputs * n_features:].copy()
        self._params = None
        self._optimizer_state = state
        self._history = history
        self.n_iter_ = history.n_epochs
        self.t_ = history.n_updates
        self.loss_curve_ = list(history.loss_curve)
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else np.nan
        self.best_loss_ = min(self.loss_curve_, default=np.nan)
        self.gradient_norms_ = np.array(history.gradient_norms).reshape(-1, 1)
        return self

    def _coef_1d(self, y) -> bool:
        return False

    def _own_params(self, dtype, n_params: int) -> np.ndarray | None:
        """The flat parameter vector that ``coef_`` and ``intercept_`` view, if they still do."""
        params = getattr(self, "_params", None)
        if (params is None or params.dtype != dtype or params.size != n_params
                or getattr(self.coef_, "base", None) is not params
                or getattr(self.intercept_, "base", None) is not params):
            return None
        return params

    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ returns __dict__ itself, not a copy
        state.pop("_params", None)  # coef_ and intercept_ carry the values; a copy of the views is rebuilt
        return state

    def _raw_decision(self, X) -> np.ndarray:
        """Decision values of the fitted model, shape (n_samples, n_outputs)."""
        coef = self.coef_
        if sp.issparse(coef):  # after sparsify(): a 1-D sparse array for one target
            coef = sp.csr_array(coef.toarray().reshape(1, -1)) if coef.ndim == 1 else coef
        else:
            coef = np.atleast_2d(coef)
        return _decision(X, coef, self.intercept_)

    def _on_row_blocks(self, method, X):
        """``method`` on each row block of the dask array ``X``, as a dask array: computed by the workers."""
        check_is_fitted(self)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got a {X.ndim}-D dask array.")
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})
        check_row_blocks("X", X, None)
        sample = method(np.zeros((1, X.shape[1]), dtype=self.coef_.dtype))
        if sample.ndim == 1:
            return X.map_blocks(method, drop_axis=1, dtype=sample.dtype, meta=sample[:0])
        return X.map_blocks(method, chunks=(X.chunks[0], (sample.shape[1],)), dtype=sample.dtype, meta=sample[:0])

    def _validated(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse="csr", dtype=[np.float64, np.float32])
        return _canonical(X) if sp.issparse(X) else X  # duplicates summed first, as in training

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _canonical(X):
    """CSR ``X`` in canonical format: itself when it is, else a copy with sorted indices and duplicates summed.

    scipy allows several stored entries of one element (they add up) in any
    order. The sparse SGD kernels keep the squared norm of each row as the
    sum of its stored squares, which duplicates make wrong; and a row's sum
    in another order rounds differently. A canonical copy makes the model
    that of the matrix, whatever its storage; the caller's matrix is never
    changed (it may be read-only).
    """
    if X.has_canonical_format:
        return X
    X = X.copy()
    X.sum_duplicates()
    return X


def _decision(X, coef, intercept) -> np.ndarray:
    scores = X @ coef.T  # coef is sparse after sparsify()
    return (scores.toarray() if sp.issparse(scores) else np.asarray(scores)) + intercept


def _set_initial(params, coef_init, intercept_init, n_outputs: int, n_features: int) -> None:
    """Write ``coef_init`` and ``intercept_init`` (either may be None) into the flat ``params``."""
    n_coefs = n_outputs * n_features
    if coef_init is not None:
        coef = np.asarray(coef_init, dtype=np.float64)
        if coef.size != n_coefs or coef.ndim > 2 or (coef.ndim == 2 and coef.shape[1] != n_features):
            also = f" or ({n_features},)" if n_outputs == 1 else ""
            raise ValueError(f"Provided coef_init does not match dataset: it has shape {coef.shape}, the model "
                             f"needs ({n_outputs}, {n_features}){also}.")
        params[:n_coefs] = coef.reshape(-1)
    if intercept_init is not None:
        intercept = np.asarray(intercept_init, dtype=np.float64).reshape(-1)
        if intercept.size != n_outputs:
            raise ValueError(f"Provided intercept_init does not match dataset: it has {intercept.size} values, the "
                             f"model needs {n_outputs}.")
        params[n_coefs:] = intercept


def _copy_history(history: History) -> History:
    return History(loss_curve=list(history.loss_curve), validation_scores=list(history.validation_scores),
                   gradient_norms=list(history.gradient_norms), n_updates=history.n_updates,
                   n_samples_seen=history.n_samples_seen,
                   best_loss=history.best_loss, best_validation_score=history.best_validation_score,
                   n_epochs=history.n_epochs)


class LinearClassifier(ClassifierMixin, _LinearGD):
    __doc__ = f"""Linear classifier trained by gradient descent.

    Binary problems train one weight vector; with more than two classes,
    ``log_loss`` trains a multinomial (softmax) model and the other losses one
    weight vector per class (one-vs-rest), all in the same compiled epoch.

    Parameters
    ----------
    loss : {{"hinge", "log_loss", "squared_hinge", "modified_huber", "perceptron"}}, default="hinge"
        Loss of the margin ``y * f(x)`` with ``y`` in {{-1, +1}} (see
        :mod:`fastgd.kernels.losses`); ``log_loss`` with more than two classes
        is the softmax cross-entropy.
    {_LINEAR_DOC_PARAMETERS}
    class_weight : dict, "balanced" or None, default=None
        Non-negative weights of the classes, multiplying the sample weights;
        ``"balanced"`` uses ``n_samples / (n_classes * np.bincount(y))``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    {_LINEAR_DOC_ATTRIBUTES}

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastgd import LinearClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = LinearClassifier(loss="log_loss", max_iter=20, random_state=0).fit(X / 16, y)
    >>> clf.score(X / 16, y) > 0.9
    True
    """

    _parameter_constraints: dict = {
        **_LinearGD._parameter_constraints,
        "loss": [StrOptions(set(CLASSIFIER_LOSSES))],
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }
    _losses = CLASSIFIER_LOSSES
    _multi_output = False
    #: Whether ``log_loss`` over more than two classes is the softmax loss (else one-vs-rest logistic).
    _multinomial_log_loss = True

    def __init__(self, loss="hinge", *, penalty="l2", alpha=1e-4, l1_ratio=0.15, fit_intercept=True,
                 solver="sgd", learning_rate="optimal", learning_rate_init=0.01, power_t=0.25, batch_size=1,
                 max_iter=1000, tol=1e-3, n_iter_no_change=5, early_stopping=False, validation_fraction=0.1,
                 momentum=0.0, nesterovs_momentum=True, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 weight_decay=None, solver_options=None, clip_value=None, clip_norm=None, lazy_updates=False,
                 shuffle=True, random_state=None, warm_start=False, verbose=0, progress=False, on_nonfinite="warn",
                 callbacks=None, n_threads=None, device="cpu", class_weight=None):
        super().__init__(
            loss=loss, penalty=penalty, alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept, solver=solver,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
            batch_size=batch_size, max_iter=max_iter, tol=tol, n_iter_no_change=n_iter_no_change,
            early_stopping=early_stopping, validation_fraction=validation_fraction, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            weight_decay=weight_decay, solver_options=solver_options, clip_value=clip_value, clip_norm=clip_norm,
            lazy_updates=lazy_updates, shuffle=shuffle, random_state=random_state, warm_start=warm_start,
            verbose=verbose,
            progress=progress, on_nonfinite=on_nonfinite, callbacks=callbacks, n_threads=n_threads, device=device)
        self.class_weight = class_weight

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None) -> LinearClassifier:
        """Fit the model by gradient descent.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; float32 trains in float32, anything else in float64 (a
            warm start keeps the dtype of the fitted model). A dask array chunked
            by rows trains on the active ``distributed.Client``'s cluster, each
            block where it lies: full-batch GD (``batch_size=None``) and
            ``solver="lbfgs"`` sum every block's gradient per update, per-sample and
            mini-batch SGD train each block an epoch and average them
            (:class:`fastgd.dask.ClusterLocalSGDTrainer`); ``y`` and
            ``sample_weight`` then follow its row blocks.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the samples' losses (default: all 1). A
            negative weight raises ``ValueError``: gradient descent would climb
            that sample's loss (scikit-learn's SGD estimators accept them).

        Returns
        -------
        self : LinearClassifier
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_has_partial_fit)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None) -> LinearClassifier:
        """Train one epoch on ``(X, y)``, continuing from the current state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A batch of training data, converted to the dtype of the fitted model.
        y : array-like of shape (n_samples,)
            Its labels.
        classes : array-like of shape (n_classes,), optional
            All classes that can appear; required on the first call.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the samples' losses (default: all 1). A
            negative weight raises ``ValueError``: gradient descent would climb
            that sample's loss (scikit-learn's SGD estimators accept them).

        Returns
        -------
        self : LinearClassifier
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _encode(self, y, first_call, classes, incremental):
        if y.dtype.kind not in "iub":
            # validate_data made y 1-D, and 1-D integer labels are classification targets (binary or
            # multiclass), so the costlier type_of_target check (a np.unique of its own) is left out for them
            check_classification_targets(y)
        present, inverse = unique_labels_and_index(y)  # one pass over y serves every check below
        if first_call:
            if classes is None and incremental:
                raise ValueError("classes must be passed to the first call of partial_fit: a later batch may "
                                 "hold labels this one lacks.")
            self.classes_ = present if classes is None else unique_labels(np.asarray(classes))
            if self.classes_.size < 2:
                raise ValueError("LinearClassifier needs samples of at least 2 classes in the data, but the data "
                                 f"contain only one class: {self.classes_[0]!r}.")
        elif classes is not None and not np.array_equal(unique_labels(np.asarray(classes)), self.classes_):
            raise ValueError(f"classes={short_repr(classes)} differs from the classes of the first call, "
                             f"{short_repr(self.classes_)}.")
        unseen = np.setdiff1d(present, self.classes_)
        if unseen.size:
            raise ValueError(f"y contains labels not in classes_: {short_repr(unseen)}. Pass every class to the "
                             "first partial_fit call with classes=.")
        index = np.searchsorted(self.classes_, present)[inverse]
        n_classes = self.classes_.size
        if n_classes == 2:
            return np.where(index == 1, 1.0, -1.0).reshape(-1, 1), 1, int(LOSS_CODES[self.loss])
        if self.loss == "log_loss" and self._multinomial_log_loss:
            return index.astype(np.float64).reshape(-1, 1), n_classes, int(Loss.MULTINOMIAL)
        Y = np.full((y.shape[0], n_classes), -1.0)
        Y[np.arange(y.shape[0]), index] = 1.0
        return Y, n_classes, int(LOSS_CODES[self.loss])

    def _sample_weight(self, y, sample_weight, X, incremental):
        weights = check_sample_weight(sample_weight, X, X.dtype)
        per_class = self._class_weights(y, incremental)
        if per_class is None:
            return weights
        return weights * per_class[np.searchsorted(self.classes_, y)].astype(X.dtype)

    def _class_weights(self, y, incremental: bool) -> np.ndarray | None:
        """The weight of each class in ``classes_`` from ``class_weight`` (None without it)."""
        if self.class_weight is None:
            return None
        if self.class_weight == "balanced" and incremental:
            raise ValueError("class_weight='balanced' needs the whole data set; with partial_fit pass a dict "
                             "computed by sklearn.utils.compute_class_weight on all the labels.")
        per_class = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        if per_class.min() < 0:
            raise ValueError(f"class_weight must be non-negative; got min {float(per_class.min()):g}. A negative "
                             "weight makes gradient descent climb its samples' loss instead of descending it.")
        return per_class

    def _validation_score(self, y, scores):
        return float(np.mean(self._labels(scores) == y))

    def _labels(self, scores):
        if scores.shape[1] == 1:
            return self.classes_[(scores[:, 0] > 0).astype(np.intp)]
        return self.classes_[np.argmax(scores, axis=1)]

    def decision_function(self, X) -> np.ndarray:
        """Signed distance to the separating hyperplane(s).

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Samples; a dask array gives a dask array, computed block by block on the workers.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
            Scores; positive means ``classes_[1]`` in the binary case.
        """
        if is_dask_array(X):
            return self._on_row_blocks(self.decision_function, X)
        scores = self._raw_decision(self._validated(X))
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X) -> np.ndarray:
        """Predict class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Samples; a dask array gives a dask array, computed block by block on the workers.

        Returns
        -------
        ndarray of shape (n_samples,)
            Predicted labels.
        """
        if is_dask_array(X):
            return self._on_row_blocks(self.predict, X)
        return self._labels(self._raw_decision(self._validated(X)))

    def _has_proba(self) -> bool:
        return self.loss in ("log_loss", "modified_huber")

    @available_if(_has_proba)
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (``log_loss`` and ``modified_huber`` only).

        ``log_loss``: the logistic function of the score (binary) or the
        softmax of the scores; ``modified_huber``: ``(clip(score, -1, 1) + 1) / 2``
        per class, normalised over the classes (scikit-learn's rule).
        :class:`fastgd.SGDClassifier`'s one-vs-rest ``log_loss`` normalises
        the logistic function of each class's score the same way.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Samples; a dask array gives a dask array, computed block by block on the workers.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``.
        """
        if is_dask_array(X):
            return self._on_row_blocks(self.predict_proba, X)
        scores = self._raw_decision(self._validated(X)).astype(np.float64)
        if self.loss == "log_loss" and self._multinomial_log_loss and scores.shape[1] > 1:
            return softmax(scores)
        if self.loss == "log_loss":  # one logistic model per class, normalised over the classes
            prob = expit(scores)
        else:
            prob = (np.clip(scores, -1.0, 1.0) + 1.0) / 2.0
        if prob.shape[1] == 1:
            return np.column_stack([1.0 - prob[:, 0], prob[:, 0]])
        total = prob.sum(axis=1, keepdims=True)
        uniform = total[:, 0] == 0
        prob[uniform] = 1.0
        total[uniform] = prob.shape[1]
        return prob / total

    @available_if(_has_proba)
    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Samples; a dask array gives a dask array, computed block by block on the workers.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Log-probabilities.
        """
        if is_dask_array(X):
            return self._on_row_blocks(self.predict_log_proba, X)
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


class LinearRegressor(RegressorMixin, _LinearGD):
    __doc__ = f"""Linear regressor trained by gradient descent.

    A 2-D ``y`` trains one weight vector per target in the same compiled epoch.

    Parameters
    ----------
    loss : {{"squared_error", "huber", "epsilon_insensitive"}}, default="squared_error"
        ``squared_error`` is ``(f(x) - y)^2 / 2``; ``huber`` is quadratic within
        ``loss_epsilon`` of the target and linear beyond; ``epsilon_insensitive``
        ignores errors below ``loss_epsilon``.
    loss_epsilon : float, default=0.1
        Threshold of ``huber`` and ``epsilon_insensitive``, >= 0.
    {_LINEAR_DOC_PARAMETERS}

    Attributes
    ----------
    {_LINEAR_DOC_ATTRIBUTES}

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd import LinearRegressor
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> y = X @ [1.0, -2.0, 0.5] + 3.0
    >>> reg = LinearRegressor(alpha=0.0, max_iter=50, random_state=0).fit(X, y)
    >>> np.round(reg.coef_, 2), np.round(reg.intercept_, 2)
    (array([ 1. , -2. ,  0.5]), array([3.]))
    """

    _parameter_constraints: dict = {
        **_LinearGD._parameter_constraints,
        "loss": [StrOptions(set(REGRESSOR_LOSSES))],
        "loss_epsilon": [Interval(Real, 0, None, closed="left")],
    }
    _losses = REGRESSOR_LOSSES
    _multi_output = True

    def __init__(self, loss="squared_error", *, loss_epsilon=0.1, penalty="l2", alpha=1e-4, l1_ratio=0.15,
                 fit_intercept=True, solver="sgd", learning_rate="invscaling", learning_rate_init=0.01,
                 power_t=0.25, batch_size=1, max_iter=1000, tol=1e-3, n_iter_no_change=5, early_stopping=False,
                 validation_fraction=0.1, momentum=0.0, nesterovs_momentum=True, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, weight_decay=None, solver_options=None, clip_value=None, clip_norm=None,
                 lazy_updates=False, shuffle=True, random_state=None, warm_start=False, verbose=0, progress=False,
                 on_nonfinite="warn", callbacks=None, n_threads=None, device="cpu"):
        super().__init__(
            loss=loss, penalty=penalty, alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept, solver=solver,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
            batch_size=batch_size, max_iter=max_iter, tol=tol, n_iter_no_change=n_iter_no_change,
            early_stopping=early_stopping, validation_fraction=validation_fraction, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            weight_decay=weight_decay, solver_options=solver_options, clip_value=clip_value, clip_norm=clip_norm,
            lazy_updates=lazy_updates, shuffle=shuffle, random_state=random_state, warm_start=warm_start,
            verbose=verbose,
            progress=progress, on_nonfinite=on_nonfinite, callbacks=callbacks, n_threads=n_threads, device=device)
        self.loss_epsilon = loss_epsilon

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None) -> LinearRegressor:
        """Fit the model by gradient descent.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; float32 trains in float32, anything else in float64 (a
            warm start keeps the dtype of the fitted model). A dask array chunked
            by rows trains on the active ``distributed.Client``'s cluster, each
            block where it lies: full-batch GD (``batch_size=None``) and
            ``solver="lbfgs"`` sum every block's gradient per update, per-sample and
            mini-batch SGD train each block an epoch and average them
            (:class:`fastgd.dask.ClusterLocalSGDTrainer`); ``y`` and
            ``sample_weight`` then follow its row blocks.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the samples' losses (default: all 1). A
            negative weight raises ``ValueError``: gradient descent would climb
            that sample's loss (scikit-learn's SGD estimators accept them).

        Returns
        -------
        self : LinearRegressor
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_has_partial_fit)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None) -> LinearRegressor:
        """Train one epoch on ``(X, y)``, continuing from the current state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A batch of training data, converted to the dtype of the fitted model.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Its targets.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the samples' losses (default: all 1). A
            negative weight raises ``ValueError``: gradient descent would climb
            that sample's loss (scikit-learn's SGD estimators accept them).

        Returns
        -------
        self : LinearRegressor
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def _encode(self, y, first_call, classes, incremental):
        Y = y.reshape(y.shape[0], -1)
        if not first_call and Y.shape[1] != self.intercept_.size:
            raise ValueError(f"y has {Y.shape[1]} targets, but the model was fitted with {self.intercept_.size}.")
        return Y, Y.shape[1], int(LOSS_CODES[self.loss])

    def _coef_1d(self, y) -> bool:
        return y.ndim == 1

    def _validation_score(self, y, scores):
        return float(r2_score(y, scores[:, 0] if y.ndim == 1 else scores))

    def predict(self, X) -> np.ndarray:
        """Predict targets.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Samples; a dask array gives a dask array, computed block by block on the workers.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_targets)
            Predictions.
        """
        if is_dask_array(X):
            return self._on_row_blocks(self.predict, X)
        pred = self._raw_decision(self._validated(X))
        return pred[:, 0] if self.coef_.ndim == 1 else pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

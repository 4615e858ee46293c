"""Multi-layer perceptrons: drop-in replacements of scikit-learn's MLPClassifier and MLPRegressor."""

from __future__ import annotations

import warnings
from itertools import pairwise
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ..backends.cpu import make_update_rule
from ..backends.cpu_mlp import MLPTrainer, layer_offsets, one_blas_thread
from ..engine import History, LoopConfig, run_epochs
from ..kernels.activations import ACTIVATION_CODES
from ..kernels.dense import BINARY_LOG_LOSS, LOG_LOSS, SQUARED_ERROR, mlp_forward
from ..optim import OPTIMIZERS, Optimizer
from ..optim.schedules import Schedule
from ._base import (
    DEVICE_ATTRIBUTE_DOC,
    DEVICE_DOC,
    N_THREADS_DOC,
    announces_compiles,
    check_sample_weight,
    fit_device,
    keeps_attributes_on_error,
    nonfinite_hint,
    short_repr,
    train_only_on,
    unique_labels_and_index,
    validation_split,
)

#: Hidden activations: scikit-learn's four and fastgd's ``leaky_relu``.
HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "leaky_relu")
#: Solvers: scikit-learn's three (with its rules) and fastgd's additions (rules of :mod:`fastgd.optim`).
MLP_SOLVERS = ("lbfgs", "sgd", "adam", "rmsprop", "adamw", "adagrad")
_SKLEARN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")

_MLP_DOC_PARAMETERS = """
    hidden_layer_sizes : array-like of int, default=(100,)
        Width of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu", "leaky_relu"}, default="relu"
        Hidden-layer activation; ``leaky_relu`` has slope 0.01 below zero.
    solver : {"lbfgs", "sgd", "adam", "rmsprop", "adamw", "adagrad"}, default="adam"
        ``"sgd"`` (velocity-form momentum, :class:`fastgd.optim.VelocitySGD`) and
        ``"adam"`` (:class:`fastgd.optim.FoldedAdam`) follow scikit-learn's rules;
        ``"rmsprop"``, ``"adamw"`` and ``"adagrad"`` those of :mod:`fastgd.optim`;
        ``"lbfgs"`` runs scipy's L-BFGS-B on the compiled loss and gradient.
    alpha : float, default=1e-4
        L2 strength: the loss gains ``alpha / 2 * sum(W^2) / n_samples``.
    batch_size : int, "auto", "full" or None, default="auto"
        Samples per update: ``"auto"`` is ``min(200, n_samples)``, 1 per-sample
        SGD, ``None``/``"full"`` full-batch GD.
    learning_rate : {"constant", "invscaling", "adaptive", "step", "cosine"}, default="constant"
        Schedule of the rate; as in scikit-learn it is used by ``"sgd"`` only
        (and by fastgd's added solvers), not by ``"adam"``.
    learning_rate_init : float, default=1e-3
        Initial learning rate.
    power_t : float, default=0.5
        Exponent of ``invscaling``: ``lr = learning_rate_init / (t + 1) ** power_t``, ``t`` samples seen.
    max_iter : int, default=200
        Maximum epochs (iterations of L-BFGS).
    shuffle : bool, default=True
        Shuffle the samples before each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, the validation split and shuffling.
    tol : float, default=1e-4
        Improvement below which an epoch counts as no improvement.
    verbose : bool, default=False
        Print one line per epoch.
    warm_start : bool, default=False
        Continue from the current ``coefs_`` and ``intercepts_``.
    momentum : float, default=0.9
        Momentum of ``"sgd"``, in [0, 1]. At 1, as scikit-learn allows, the
        velocity never decays and training does not settle: fastgd warns
        (``UserWarning``).
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for ``"sgd"``.
    early_stopping : bool, default=False
        Stop on the score of a held-out ``validation_fraction`` and keep the best parameters.
        The held-out rows are those of scikit-learn's split (``train_test_split``
        with the same ``random_state``, stratified for single-label
        classification); only they are copied, and training visits the other
        rows where they are.
    validation_fraction : float, default=0.1
        Share of the data held out for early stopping.
    beta_1, beta_2 : float, default=0.9, 0.999
        Moment decays of ``"adam"``/``"adamw"`` (``beta_2`` is also RMSprop's smoothing constant).
    epsilon : float, default=1e-8
        Denominator term of the adaptive solvers.
    n_iter_no_change : int, default=10
        Training stops (or ``adaptive`` divides the rate by 5) after more than
        this many epochs without improvement.
    max_fun : int, default=15000
        Maximum loss evaluations of ``"lbfgs"``.
    clip_value : float or None, default=None
        Clip each gradient component to ``[-clip_value, clip_value]``.
    clip_norm : float or None, default=None
        Rescale each gradient to global L2 norm at most ``clip_norm``.
    progress : bool, default=False
        Show a tqdm progress bar over the epochs (needs the ``progress`` extra).
    on_nonfinite : {"warn", "raise"}, default="warn"
        A NaN or infinite loss stops training and restores the last finite
        epoch; then warn, or raise :class:`fastgd.NonFiniteTrainingError`.
    callbacks : list of callable or None, default=None
        Called with an :class:`fastgd.EpochRecord` after each epoch; returning
        ``True`` stops training.
""" + N_THREADS_DOC + DEVICE_DOC

_MLP_DOC_ATTRIBUTES = """
    loss_ : float
        Loss of the last epoch (or the L-BFGS optimum).
    best_loss_ : float or None
        Lowest training loss (None with early stopping).
    loss_curve_ : list of float
        Training loss of each epoch.
    validation_scores_ : list of float or None
        Validation score of each epoch (early stopping only).
    best_validation_score_ : float or None
        Best validation score (early stopping only).
    t_ : int
        Training samples seen (scikit-learn's meaning).
    n_updates_ : int
        Optimizer updates made (``ceil(n_samples / batch_size)`` per epoch).
    coefs_ : list of ndarray
        Weight matrix of each layer, shape (n_in, n_out).
    intercepts_ : list of ndarray
        Bias vector of each layer.
    gradient_norms_ : ndarray of shape (n_epochs, n_layers)
        Mean gradient norm of each layer over each epoch's updates.
    n_features_in_ : int
        Number of input features.
    n_iter_ : int
        Epochs run by the last call (L-BFGS iterations for ``"lbfgs"``).
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        Output activation.""" + DEVICE_ATTRIBUTE_DOC


def _scaled_init_bound(activation: str, fan_in: int, fan_out: int) -> float:
    if activation == "leaky_relu":  # He: variance 2 / fan_in
        return float(np.sqrt(6.0 / fan_in))
    factor = 2.0 if activation == "logistic" else 6.0  # Glorot, scikit-learn's factors
    return float(np.sqrt(factor / (fan_in + fan_out)))


class _BaseMLP(BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(HIDDEN_ACTIVATIONS))],
        "solver": [StrOptions(set(MLP_SOLVERS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto", "full"}), Interval(Integral, 1, None, closed="left"), None],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive", "step", "cosine"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "clip_value": [Interval(Real, 0, None, closed="neither"), None],
        "clip_norm": [Interval(Real, 0, None, closed="neither"), None],
        "progress": ["boolean"],
        "on_nonfinite": [StrOptions({"warn", "raise"})],
        "callbacks": [list, tuple, None],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=1e-4,
                 batch_size="auto", learning_rate="constant", learning_rate_init=1e-3, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, clip_value=None, clip_norm=None,
                 progress=False, on_nonfinite="warn", callbacks=None, n_threads=None, device="cpu"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.clip_value = clip_value
        self.clip_norm = clip_norm
        self.progress = progress
        self.on_nonfinite = on_nonfinite
        self.callbacks = callbacks
        self.n_threads = n_threads
        self.device = device

    # -- subclass hooks ----------------------------------------------------------------------
    def _encode_targets(self, y, first_call: bool, classes=None) -> np.ndarray:
        raise NotImplementedError

    def _score_predictions(self, X, y) -> float:
        raise NotImplementedError

    # -- model layout -----------------------------------------------------------------------
    def _units(self) -> np.ndarray:
        """Widths of the fitted network's layers, input and output included (not of ``hidden_layer_sizes``,
        which ``set_params`` may have changed since)."""
        return np.array([self.coefs_[0].shape[0], *(W.shape[1] for W in self.coefs_)], dtype=np.int64)

    def _hidden_sizes(self) -> list[int]:
        sizes = [self.hidden_layer_sizes] if np.isscalar(self.hidden_layer_sizes) else list(self.hidden_layer_sizes)
        if any(not isinstance(s, Integral | np.integer) or s <= 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}.")
        return [int(s) for s in sizes]

    def _pack(self, dtype) -> np.ndarray:
        """A new flat parameter vector (weights, then biases, per layer) in ``dtype``."""
        parts = []
        for W, b in zip(self.coefs_, self.intercepts_, strict=True):
            parts += [np.asarray(W, dtype=dtype).reshape(-1), np.asarray(b, dtype=dtype).reshape(-1)]
        return np.concatenate(parts)

    def _own_params(self, dtype) -> np.ndarray | None:
        """The flat parameter vector that ``coefs_`` and ``intercepts_`` view, if they still all do."""
        params = getattr(self, "_params", None)
        if params is None or params.dtype != dtype:
            return None
        if any(getattr(a, "base", None) is not params for a in (*self.coefs_, *self.intercepts_)):
            return None
        return params

    def _unpack(self, params: np.ndarray) -> None:
        """Make ``coefs_`` and ``intercepts_`` views of ``params``."""
        units = self._units()
        offsets = layer_offsets(units)
        self.coefs_, self.intercepts_ = [], []
        for layer in range(units.size - 1):
            n_in, n_out, lo = units[layer], units[layer + 1], offsets[layer]
            self.coefs_.append(params[lo:lo + n_in * n_out].reshape(n_in, n_out))
            self.intercepts_.append(params[lo + n_in * n_out:lo + (n_in + 1) * n_out])
        self._params = params

    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ returns __dict__ itself, not a copy
        state.pop("_params", None)  # coefs_ and intercepts_ carry the values
        return state

    def _initialize(self, y: np.ndarray, dtype, rng: np.random.RandomState) -> None:
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        units = np.array([self.n_features_in_, *self._hidden_sizes(), self.n_outputs_], dtype=np.int64)
        self.n_layers_ = units.size
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in pairwise(units):
            bound = _scaled_init_bound(self.activation, int(fan_in), int(fan_out))
            self.coefs_.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype, copy=False))
            self.intercepts_.append(rng.uniform(-bound, bound, fan_out).astype(dtype, copy=False))
        self.loss_curve_ = []
        self._history = History()
        self._optimizer_state = None
        self.gradient_norms_ = np.empty((0, units.size - 1))
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _make_optimizer(self) -> Optimizer:
        lr = self.learning_rate_init
        if self.solver == "sgd":
            if self.momentum == 1:
                warnings.warn("momentum=1.0 never lets the velocity decay: every gradient is added to every later "
                              "step and training does not settle. Use a momentum below 1 (0.9 is the default).",
                              UserWarning, stacklevel=4)
            return OPTIMIZERS["velocity_sgd"](lr=lr, momentum=self.momentum,
                                              nesterov=self.nesterovs_momentum and self.momentum > 0)
        if self.solver == "adam":
            return OPTIMIZERS["folded_adam"](lr=lr, betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        if self.solver == "adamw":
            return OPTIMIZERS["adamw"](lr=lr, betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        if self.solver == "rmsprop":
            return OPTIMIZERS["rmsprop"](lr=lr, alpha=self.beta_2, eps=self.epsilon)
        return OPTIMIZERS["adagrad"](lr=lr, eps=self.epsilon)

    def _codes(self) -> tuple[int, int, int]:
        loss_kind = {"identity": SQUARED_ERROR, "softmax": LOG_LOSS, "logistic": BINARY_LOG_LOSS}[self.out_activation_]
        return ACTIVATION_CODES[self.activation], ACTIVATION_CODES[self.out_activation_], loss_kind

    # -- fitting ----------------------------------------------------------------------------
    @announces_compiles
    @keeps_attributes_on_error
    def _fit(self, X, y, sample_weight=None, *, incremental: bool, classes=None):
        first_call = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        hidden = self._hidden_sizes()
        # Continuing trains in the dtype of the fitted parameters: casting them to float32 could overflow.
        X_dtype = [np.float64, np.float32] if first_call else self.coefs_[0].dtype
        X, y = validate_data(self, X, y, reset=first_call, accept_sparse="csr", dtype=X_dtype,
                             order="C", multi_output=True, y_numeric=not is_classifier(self))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # CSR rows are read in any order and their duplicate entries add up (kernels.dense.gather_rows): the
        # caller's matrix is used as it is, never sorted in place
        self.device_ = fit_device(self)
        Y = self._encode_targets(y, first_call, classes).astype(X.dtype, copy=False)
        sample_weight = check_sample_weight(sample_weight, X, X.dtype)
        rng = check_random_state(self.random_state) if first_call else self._rng
        if first_call:
            self._initialize(Y, X.dtype, rng)
        elif len(self.coefs_) != len(hidden) + 1 or [c.shape[1] for c in self.coefs_[:-1]] != hidden:
            raise ValueError("hidden_layer_sizes changed since the model was fitted; fit without warm_start.")
        if self.coefs_[-1].shape[1] != Y.shape[1]:
            raise ValueError(f"y has {Y.shape[1]} outputs, but the model was fitted with {self.coefs_[-1].shape[1]}.")
        self._rng = rng
        # partial_fit trains the model's own arrays in place (no copy of the model); fit with warm_start trains
        # a copy, so that a failed fit leaves the fitted model as it was
        params = self._own_params(X.dtype) if incremental and not first_call else None
        if params is None:
            params = self._pack(X.dtype)
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, Y, sample_weight, params)
        else:
            self._fit_stochastic(X, Y, y, sample_weight, params, rng, incremental)
        self._unpack(params)
        return self

    def _trainer(self, X, Y, sample_weight, params, state, rule, batch_size) -> MLPTrainer:
        hidden_code, out_code, loss_kind = self._codes()
        trainer_class = MLPTrainer
        if self.device_ == "cuda":
            from ..backends.cuda import CudaMLPTrainer as trainer_class
        return trainer_class(X, Y, sample_weight, params, state, rule, units=self._units(), hidden_code=hidden_code,
                          out_code=out_code, loss_kind=loss_kind, alpha=self.alpha, batch_size=batch_size,
                          n_threads=self.n_threads)

    def _fit_lbfgs(self, X, Y, sample_weight, params) -> None:
        optimizer = OPTIMIZERS["sgd"]()  # unused by L-BFGS; the trainer needs a rule
        state = optimizer.init(params)
        schedule = Schedule("constant", self.learning_rate_init, self.max_iter)
        rule = make_update_rule(optimizer, schedule, params.size, None, None)
        trainer = self._trainer(X, Y, sample_weight, params, state, rule, X.shape[0])
        # L-BFGS's own vector arithmetic on one BLAS thread: woken BLAS threads would spin on the cores
        # that the loss and gradient evaluations use (they set their own limits)
        with one_blas_thread():
            result = scipy.optimize.minimize(
                trainer.loss_and_gradient, params.astype(np.float64), method="L-BFGS-B", jac=True,
                options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol,
                         "iprint": self.verbose - 1 if self.verbose else -1})
        if result.status != 0 and result.nit >= self.max_iter:
            warnings.warn(f"lbfgs failed to converge after {result.nit} iterations: {result.message}. Increase "
                          "max_iter or scale the data.", ConvergenceWarning, stacklevel=3)
        params[:] = result.x
        self.n_iter_ = int(result.nit)
        self.n_updates_ = int(result.nit)
        self.loss_ = float(result.fun)

    def _fit_stochastic(self, X, Y, y, sample_weight, params, rng, incremental) -> None:
        optimizer = self._make_optimizer()
        state = self._optimizer_state if incremental else None
        if state is None or state.slots.shape != (optimizer.n_slots(), params.size) or state.slots.dtype != X.dtype:
            state = optimizer.init(params)
        validation_score = None
        train_rows = None  # early stopping on the CPU: the rows trained on, the others held out where they are
        hint = nonfinite_hint(X, None if is_classifier(self) else y)
        early_stopping = self.early_stopping and not incremental
        if early_stopping:
            stratify = y if is_classifier(self) and type_of_target(y) != "multilabel-indicator" else None
            train_rows, held_out = validation_split(X.shape[0], self.validation_fraction, rng, stratify)
            X_val, y_val = X[held_out], y[held_out]  # the only copy: validation_fraction of the data
            if self.device_ == "cuda":  # the device trainer draws its own orders over all its samples
                X, Y, sample_weight = X[train_rows], Y[train_rows], sample_weight[train_rows]
                train_rows = None

            def validation_score():
                self._unpack(params)
                return self._score_predictions(X_val, y_val)

        n_samples = X.shape[0] if train_rows is None else train_rows.size
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        elif self.batch_size is None or self.batch_size == "full":
            batch_size = n_samples
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                              stacklevel=3)
            batch_size = min(int(self.batch_size), n_samples)
        uses_schedule = self.solver != "adam"
        history = self._history
        epochs_before = history.n_epochs
        fresh = state is not self._optimizer_state
        schedule = Schedule(self.learning_rate if uses_schedule else "constant", self.learning_rate_init,
                            self.max_iter, power_t=self.power_t, per_update=False,
                            fresh_epoch=epochs_before if fresh else None)
        if (getattr(self, "_schedule_eta", None) is not None and not self.warm_start) or incremental:
            schedule.eta = getattr(self, "_schedule_eta", schedule.eta)
        rule = make_update_rule(optimizer, schedule, params.size, self.clip_value, self.clip_norm)
        trainer = self._trainer(X, Y, sample_weight, params, state, rule, batch_size)
        if train_rows is not None:
            train_only_on(trainer, train_rows)
        config = LoopConfig(
            max_iter=1 if incremental else self.max_iter, schedule=schedule, random_state=rng, shuffle=self.shuffle,
            tol=self.tol, n_iter_no_change=self.n_iter_no_change + 1, validation_score=validation_score,
            verbose=self.verbose, progress=self.progress, on_nonfinite=self.on_nonfinite,
            callbacks=tuple(self.callbacks or ()), epoch_offset=epochs_before, check_convergence=not incremental,
            rows=train_rows, nonfinite_hint=hint)
        with warnings.catch_warnings():
            if incremental:
                warnings.simplefilter("ignore", ConvergenceWarning)
            run_epochs(trainer, config, history)
        self._optimizer_state = state
        self._schedule_eta = schedule.eta
        self.n_iter_ = history.n_epochs - epochs_before
        self.t_ = history.n_samples_seen
        self.n_updates_ = history.n_updates
        self.loss_curve_ = list(history.loss_curve)
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else np.nan
        self.gradient_norms_ = np.array(history.gradient_norms).reshape(len(history.gradient_norms), len(self.coefs_))
        if early_stopping:
            self.validation_scores_ = list(history.validation_scores)
            self.best_validation_score_ = history.best_validation_score
        else:
            self.best_loss_ = history.best_loss

    # -- prediction ---------------------------------------------------------------------------
    @announces_compiles
    def _forward(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse="csr", dtype=[np.float64, np.float32], order="C")
        dtype = self.coefs_[0].dtype
        X = X.astype(dtype, copy=False)
        if sp.issparse(X):  # rows in any order, duplicates added: the caller's matrix is not sorted in place
            X_kernel = (X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64))
        else:
            X_kernel = X
        units = self._units()
        out = np.empty((X.shape[0], self.n_outputs_), dtype=dtype)
        hidden_code, out_code, _ = self._codes()
        params = self._own_params(dtype)
        params = self._pack(dtype) if params is None else params
        mlp_forward(X_kernel, params, units, layer_offsets(units), hidden_code, out_code, out, 1024)
        return out

    def _sklearn_params(self) -> dict[str, Any]:
        if self.activation not in _SKLEARN_ACTIVATIONS or self.solver not in ("lbfgs", "sgd", "adam"):
            raise ValueError(f"activation={self.activation!r} with solver={self.solver!r} has no scikit-learn "
                             "equivalent; scikit-learn offers activations identity/logistic/tanh/relu and solvers "
                             "lbfgs/sgd/adam.")
        names = ("hidden_layer_sizes", "activation", "solver", "alpha", "learning_rate_init", "power_t", "max_iter",
                 "shuffle", "random_state", "tol", "verbose", "warm_start", "momentum", "nesterovs_momentum",
                 "early_stopping", "validation_fraction", "beta_1", "beta_2", "epsilon", "n_iter_no_change",
                 "max_fun")
        params = {name: getattr(self, name) for name in names}
        params["batch_size"] = self.batch_size if isinstance(self.batch_size, Integral) else "auto"
        params["learning_rate"] = self.learning_rate if self.learning_rate in (
            "constant", "invscaling", "adaptive") else "constant"
        return params

    def _copy_fitted_to(self, other) -> None:
        for name in ("coefs_", "intercepts_"):
            setattr(other, name, [a.copy() for a in getattr(self, name)])
        for name in ("n_features_in_", "feature_names_in_", "n_iter_", "t_", "n_layers_", "n_outputs_",
                     "out_activation_", "loss_", "best_loss_", "loss_curve_", "validation_scores_",
                     "best_validation_score_"):
            if hasattr(self, name):
                setattr(other, name, getattr(self, name))

    @classmethod
    def _from_fitted(cls, est):
        model = cls(**{k: v for k, v in est.get_params().items() if k in cls().get_params()})
        _BaseMLP._copy_fitted_to(est, model)
        model._history = History(loss_curve=list(getattr(est, "loss_curve_", None) or []),
                                 n_samples_seen=int(getattr(est, "t_", 0)))
        model._optimizer_state = None
        model.gradient_norms_ = np.empty((0, len(model.coefs_)))
        model._rng = check_random_state(model.random_state)
        return model

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = f"""Multi-layer perceptron classifier, a drop-in for scikit-learn's ``MLPClassifier``.

    Forward and backward passes, the loss and the optimizer step run in one
    compiled epoch. Multiclass targets train a softmax output, binary and
    multilabel targets logistic outputs, with scikit-learn's log-losses.

    Parameters
    ----------
    {_MLP_DOC_PARAMETERS}

    Attributes
    ----------
    classes_ : ndarray or list of ndarray
        Class labels.
    {_MLP_DOC_ATTRIBUTES}

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastgd import MLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=30, random_state=0).fit(X / 16, y)
    >>> clf.score(X / 16, y) > 0.95
    True
    """

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None) -> MLPClassifier:
        """Fit the network.

        Parameters
        ----------
        X : {{array-like, sparse matrix}} of shape (n_samples, n_features)
            Training data; float32 trains in float32, anything else in float64 (a
            warm start keeps the dtype of the fitted model).
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a label indicator matrix for multilabel problems.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the samples' losses (default: all 1). A
            negative weight raises ``ValueError``: gradient descent would climb
            that sample's loss.

        Returns
        -------
        self : MLPClassifier
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _can_partial_fit(self) -> bool:
        return self.solver != "lbfgs"

    @available_if(_can_partial_fit)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None) -> MLPClassifier:
        """Train one epoch on ``(X, y)``, keeping the optimizer's state.

        Parameters
        ----------
        X : {{array-like, sparse matrix}} of shape (n_samples, n_features)
            A batch of training data, converted to the dtype of the fitted model.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Its labels.
        classes : array-like of shape (n_classes,), optional
            Every class; required on the first call.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the samples' losses (default: all 1). A
            negative weight raises ``ValueError``: gradient descent would climb
            that sample's loss.

        Returns
        -------
        self : MLPClassifier
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _encode_targets(self, y, first_call, classes=None):
        if y.dtype.kind not in "iub":
            # scikit-learn's short "Unknown label type: continuous" (LabelBinarizer would print all of y); integer
            # labels are classification targets, and LabelBinarizer checks their kind itself
            check_classification_targets(y)
        if first_call:
            self._label_binarizer = LabelBinarizer()
            if classes is not None:
                self._label_binarizer.fit(np.asarray(classes))
            else:
                self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
            if self._label_binarizer.y_type_ != "multilabel-indicator" and len(self.classes_) < 2:
                raise ValueError("MLPClassifier needs samples of at least 2 classes, but the data contain only "
                                 f"one class: {self.classes_[0]!r}.")
            self.out_activation_ = "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"
        elif classes is not None and not np.array_equal(unique_labels(np.asarray(classes)), self.classes_):
            raise ValueError(f"classes={short_repr(classes)} differs from the classes of the first call, "
                             f"{short_repr(self.classes_)}.")
        if not first_call and y.ndim == 1 and self._label_binarizer.y_type_ in ("binary", "multiclass"):
            return self._indicator(y)
        if self._label_binarizer.y_type_ != "multilabel-indicator":
            unseen = np.setdiff1d(unique_labels(y), self.classes_)
            if unseen.size:
                raise ValueError(f"y contains labels not in classes_: {short_repr(unseen)}.")
        return self._label_binarizer.transform(y).astype(np.float64)

    def _indicator(self, y: np.ndarray) -> np.ndarray:
        """``self._label_binarizer.transform(y).astype(float)`` for 1-D labels, in one ``np.unique`` (partial_fit)."""
        present, inverse = unique_labels_and_index(y)
        unseen = np.setdiff1d(present, self.classes_)
        if unseen.size:
            raise ValueError(f"y contains labels not in classes_: {short_repr(unseen)}.")
        index = np.searchsorted(self.classes_, present)[inverse]
        if self.classes_.size == 2:
            return (index == 1).astype(np.float64).reshape(-1, 1)
        Y = np.zeros((y.shape[0], self.classes_.size))
        Y[np.arange(y.shape[0]), index] = 1.0
        return Y

    def _fit(self, X, y, sample_weight=None, *, incremental, classes=None):
        if incremental and classes is None and not hasattr(self, "classes_"):
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return super()._fit(X, y, sample_weight, incremental=incremental, classes=classes)

    def _score_predictions(self, X, y):
        return float(accuracy_score(y, self.predict(X)))

    def predict(self, X) -> np.ndarray:
        """Predict class labels.

        Parameters
        ----------
        X : {{array-like, sparse matrix}} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_labels)
            Predicted labels.
        """
        proba = self._forward(X)
        if self.n_outputs_ == 1:
            proba = proba.ravel()
        return self._label_binarizer.inverse_transform(proba)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : {{array-like, sparse matrix}} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``.
        """
        proba = self._forward(X)
        if self.n_outputs_ == 1 and self._label_binarizer.y_type_ != "multilabel-indicator":
            proba = proba.ravel()
            return np.column_stack([1 - proba, proba])
        return proba

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : {{array-like, sparse matrix}} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Log-probabilities.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def to_sklearn(self):
        """An equivalent fitted ``sklearn.neural_network.MLPClassifier``.

        Returns
        -------
        sklearn.neural_network.MLPClassifier
            Same parameters and weights: it predicts what this model predicts.
        """
        from sklearn.neural_network import MLPClassifier as SkMLPClassifier

        model = SkMLPClassifier(**self._sklearn_params())
        self._copy_fitted_to(model)
        model.classes_ = self.classes_
        model._label_binarizer = self._label_binarizer
        return model

    @classmethod
    def from_sklearn(cls, est) -> MLPClassifier:
        """Take over a fitted ``sklearn.neural_network.MLPClassifier``.

        Parameters
        ----------
        est : sklearn.neural_network.MLPClassifier
            A fitted estimator.

        Returns
        -------
        MLPClassifier
            A fastgd estimator with the same parameters and weights.
        """
        check_is_fitted(est)
        model = cls._from_fitted(est)
        model.classes_ = est.classes_
        model._label_binarizer = est._label_binarizer
        return model

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = f"""Multi-layer perceptron regressor, a drop-in for scikit-learn's ``MLPRegressor``.

    Trains an identity output with half the mean squared error; a 2-D ``y``
    gives one output per target.

    Parameters
    ----------
    {_MLP_DOC_PARAMETERS}
    loss : {{"squared_error"}}, default="squared_error"
        Half the mean squared error.

    Attributes
    ----------
    {_MLP_DOC_ATTRIBUTES}

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd import MLPRegressor
    >>> X = np.random.default_rng(0).uniform(-1, 1, size=(500, 2))
    >>> y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2
    >>> reg = MLPRegressor(hidden_layer_sizes=(32, 32), max_iter=300, random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.9
    True
    """

    _parameter_constraints: dict = {**_BaseMLP._parameter_constraints, "loss": [StrOptions({"squared_error"})]}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=1e-4,
                 batch_size="auto", learning_rate="constant", learning_rate_init=1e-3, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, clip_value=None, clip_norm=None,
                 progress=False, on_nonfinite="warn", callbacks=None, n_threads=None, device="cpu",
                 loss="squared_error"):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun, clip_value=clip_value,
            clip_norm=clip_norm, progress=progress, on_nonfinite=on_nonfinite, callbacks=callbacks,
            n_threads=n_threads, device=device)
        self.loss = loss

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None) -> MLPRegressor:
        """Fit the network.

        Parameters
        ----------
        X : {{array-like, sparse matrix}} of shape (n_samples, n_features)
            Training data; float32 trains in float32, anything else in float64 (a
            warm start keeps the dtype of the fitted model).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the samples' losses (default: all 1). A
            negative weight raises ``ValueError``: gradient descent would climb
            that sample's loss.

        Returns
        -------
        self : MLPRegressor
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _can_partial_fit(self) -> bool:
        return self.solver != "lbfgs"

    @available_if(_can_partial_fit)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None) -> MLPRegressor:
        """Train one epoch on ``(X, y)``, keeping the optimizer's state.

        Parameters
        ----------
        X : {{array-like, sparse matrix}} of shape (n_samples, n_features)
            A batch of training data, converted to the dtype of the fitted model.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Its targets.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the samples' losses (default: all 1). A
            negative weight raises ``ValueError``: gradient descent would climb
            that sample's loss.

        Returns
        -------
        self : MLPRegressor
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def _encode_targets(self, y, first_call, classes=None):
        if first_call:
            self.out_activation_ = "identity"
        return y.reshape(y.shape[0], -1).astype(np.float64)

    def _score_predictions(self, X, y):
        return float(r2_score(y, self.predict(X)))

    def predict(self, X) -> np.ndarray:
        """Predict targets.

        Parameters
        ----------
        X : {{array-like, sparse matrix}} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_targets)
            Predictions.
        """
        pred = self._forward(X)
        return pred.ravel() if pred.shape[1] == 1 else pred

    def to_sklearn(self):
        """An equivalent fitted ``sklearn.neural_network.MLPRegressor``.

        Returns
        -------
        sklearn.neural_network.MLPRegressor
            Same parameters and weights: it predicts what this model predicts.
        """
        from sklearn.neural_network import MLPRegressor as SkMLPRegressor

        model = SkMLPRegressor(**self._sklearn_params())
        self._copy_fitted_to(model)
        return model

    @classmethod
    def from_sklearn(cls, est) -> MLPRegressor:
        """Take over a fitted ``sklearn.neural_network.MLPRegressor``.

        Parameters
        ----------
        est : sklearn.neural_network.MLPRegressor
            A fitted estimator.

        Returns
        -------
        MLPRegressor
            A fastgd estimator with the same parameters and weights.
        """
        check_is_fitted(est)
        if getattr(est, "loss", "squared_error") != "squared_error":
            raise ValueError(f"only loss='squared_error' can be taken over, got {est.loss!r}.")
        return cls._from_fitted(est)

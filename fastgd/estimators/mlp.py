"""Multi-layer perceptrons: drop-in replacements of scikit-learn's MLPClassifier and MLPRegressor."""

from __future__ import annotations

import warnings
from itertools import pairwise
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    type_of_target,
    unique_labels,
)
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ..backends.cpu import make_update_rule
from ..backends.cpu_mlp import MLPTrainer, layer_offsets
from ..engine import SKLEARN_NONFINITE, History, LoopConfig, NonFiniteTrainingError, run_epochs, with_hint_and_cures
from ..kernels.activations import ACTIVATION_CODES
from ..kernels.dense import mlp_forward
from ..kernels.losses import OutputLoss
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
    minimize_lbfgs,
    nonfinite_hint,
    reusable_state,
    short_repr,
    train_only_on,
    unique_labels_and_index,
    validation_split,
)

#: The loss that goes with each output activation.
OUTPUT_LOSSES = {"identity": OutputLoss.SQUARED_ERROR, "softmax": OutputLoss.LOG_LOSS,
                 "logistic": OutputLoss.BINARY_LOG_LOSS, "exp": OutputLoss.POISSON}

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
        Seeds initialisation, the validation split and shuffling. As in
        scikit-learn, every ``fit`` and ``partial_fit`` call draws from
        ``check_random_state(random_state)`` afresh.
    tol : float, default=1e-4
        Improvement below which an epoch counts as no improvement.
    verbose : bool, default=False
        Print scikit-learn's lines: ``Iteration N, loss = X`` per epoch
        (followed on the same line by fastgd's learning rate and samples/s),
        ``Validation score: S`` with early stopping, and why training stopped
        or the adaptive rate changed.
    warm_start : bool, default=False
        Continue from the current ``coefs_`` and ``intercepts_``.
    momentum : float, default=0.9
        Momentum of ``"sgd"``, in [0, 1]. At 1, as scikit-learn allows, the
        velocity never decays and training does not settle: fastgd warns
        (``UserWarning``).
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for ``"sgd"``.
    early_stopping : bool, default=False
        Stop on the score of a held-out ``validation_fraction`` (weighted by
        ``sample_weight`` when given) and keep the best parameters. The
        held-out rows are those of scikit-learn's split (``train_test_split``
        with the same ``random_state``, stratified when there is one output,
        as there); only they are copied, and training visits the other rows
        where they are. A validation set of fewer than 2 samples raises
        ``ValueError``, as does ``partial_fit``.
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
        epoch; then warn (:class:`fastgd.NonFiniteTrainingWarning`), or raise
        :class:`fastgd.NonFiniteTrainingError` (a ``ValueError``). When no
        epoch finished with finite values on freshly initialised weights (or
        L-BFGS ends on a non-finite loss), ``NonFiniteTrainingError`` is raised
        either way, starting with scikit-learn's message: there is no model to
        give back. A loss that stays finite but exceeds 1000 times its best
        value warns :class:`fastgd.engine.DivergingTrainingWarning` once.
    callbacks : list of callable or None, default=None
        Called with an :class:`fastgd.EpochRecord` after each epoch; returning
        ``True`` stops training.
""" + N_THREADS_DOC + DEVICE_DOC

_MLP_DOC_ATTRIBUTES = """
    loss_ : numpy.float64
        Loss of the last epoch (or the L-BFGS optimum).
    best_loss_ : numpy.float64 or None
        Lowest training loss (None with early stopping; not set by L-BFGS).
    loss_curve_ : list of numpy.float64
        Training loss of each epoch (empty after L-BFGS).
    validation_scores_ : list of float or None
        Validation score of each epoch (early stopping only; not set by L-BFGS).
    best_validation_score_ : float or None
        Best validation score (early stopping only; not set by L-BFGS).
    t_ : int
        Training samples seen (scikit-learn's meaning; the linear estimators' ``t_`` counts updates).
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


#: Label arrays up to this long are printed whole in errors, as scikit-learn prints them; longer ones by their
#: first few labels and their number (:func:`fastgd.estimators._base.short_repr`).
_LABELS_PRINTED_WHOLE = 20


def _many_labels(*arrays) -> bool:
    return any(np.size(a) > _LABELS_PRINTED_WHOLE for a in arrays)


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
    def _encode_targets(self, y, incremental: bool, classes=None) -> np.ndarray:
        raise NotImplementedError

    def _out_activation(self) -> str:
        raise NotImplementedError

    def _predict(self, X, check_input: bool = True) -> np.ndarray:
        raise NotImplementedError

    #: The score of early stopping's validation set (``accuracy_score``, ``r2_score``).
    _score_function = None

    # -- model layout -----------------------------------------------------------------------
    def _units(self) -> np.ndarray:
        """Widths of the fitted network's layers, input and output included (not of ``hidden_layer_sizes``,
        which ``set_params`` may have changed since)."""
        return np.array([self.coefs_[0].shape[0], *(W.shape[1] for W in self.coefs_)], dtype=np.int64)

    def _hidden_sizes(self) -> list[int]:
        sizes = [self.hidden_layer_sizes] if np.isscalar(self.hidden_layer_sizes) else list(self.hidden_layer_sizes)
        if np.any(np.array(sizes) <= 0):  # scikit-learn's check and words
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        if any(not isinstance(s, Integral | np.integer) for s in sizes):
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
        self.out_activation_ = self._out_activation()
        units = np.array([self.n_features_in_, *self._hidden_sizes(), self.n_outputs_], dtype=np.int64)
        self.n_layers_ = units.size
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in pairwise(units):
            bound = _scaled_init_bound(self.activation, int(fan_in), int(fan_out))
            self.coefs_.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype, copy=False))
            self.intercepts_.append(rng.uniform(-bound, bound, fan_out).astype(dtype, copy=False))
        self._history = History()
        self._optimizer_state = None
        self._schedule_eta = None
        self.gradient_norms_ = np.empty((0, units.size - 1))
        self.loss_curve_ = []  # L-BFGS too (empty): fastgd's plots and tools read it; scikit-learn sets none
        if self.solver == "lbfgs":  # as in scikit-learn: no best loss or validation scores
            for name in ("best_loss_", "validation_scores_", "best_validation_score_"):
                vars(self).pop(name, None)
            return
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _adopt(self) -> None:
        """Bookkeeping that continuing needs, for a model whose fitted attributes were set elsewhere.

        A model fitted here has it all; one whose ``coefs_``, ``intercepts_``,
        ``n_outputs_``, ``n_layers_`` and ``out_activation_`` were set by hand (as
        scikit-learn's MLPs allow before ``partial_fit``) gets a history from its
        ``loss_curve_`` and ``t_`` (when set), no optimizer state, and no
        gradient norms so far.
        """
        if getattr(self, "_history", None) is None:
            curve = list(getattr(self, "loss_curve_", None) or [])
            self._history = History(loss_curve=curve, n_samples_seen=int(getattr(self, "t_", 0) or 0))
            best = getattr(self, "best_loss_", None)
            if best is not None:
                self._history.best_loss = float(best)
            if curve and best is None and not getattr(self, "early_stopping", False):
                self._history.best_loss = float(min(curve))
            scores = getattr(self, "validation_scores_", None)
            if scores:
                self._history.validation_scores = list(scores)
            best_score = getattr(self, "best_validation_score_", None)
            if best_score is not None:
                self._history.best_validation_score = float(best_score)
        if not hasattr(self, "_optimizer_state"):
            self._optimizer_state = None
        if not hasattr(self, "gradient_norms_"):
            self.gradient_norms_ = np.empty((0, len(self.coefs_)))
        if not hasattr(self, "n_layers_"):
            self.n_layers_ = len(self.coefs_) + 1
        if not hasattr(self, "n_outputs_"):
            self.n_outputs_ = int(np.shape(self.coefs_[-1])[1])
        if not hasattr(self, "out_activation_"):
            self.out_activation_ = self._out_activation()

    def _make_optimizer(self) -> Optimizer:
        """The optimizer of ``solver`` (any but ``"lbfgs"``), configured from this estimator.

        ``"sgd"`` and ``"adam"`` follow scikit-learn's rules (:class:`~fastgd.optim.VelocitySGD`,
        :class:`~fastgd.optim.FoldedAdam`), the other solvers PyTorch's.
        """
        if self.solver == "sgd" and self.momentum == 1:
            warnings.warn("momentum=1.0 never lets the velocity decay: every gradient is added to every later "
                          "step and training does not settle. Use a momentum below 1 (0.9 is the default).",
                          UserWarning, stacklevel=4)
        lr, betas, eps = self.learning_rate_init, (self.beta_1, self.beta_2), self.epsilon
        optimizer_and_arguments = {
            "sgd": ("velocity_sgd", {"momentum": self.momentum,
                                     "nesterov": self.nesterovs_momentum and self.momentum > 0}),
            "adam": ("folded_adam", {"betas": betas, "eps": eps}),
            "adamw": ("adamw", {"betas": betas, "eps": eps}),
            "rmsprop": ("rmsprop", {"alpha": self.beta_2, "eps": eps}),
            "adagrad": ("adagrad", {"eps": eps}),
        }
        if self.solver not in optimizer_and_arguments:
            raise ValueError(f"solver={self.solver!r} trains with no optimizer of fastgd.optim; choose one of "
                             f"{sorted(optimizer_and_arguments)} (or 'lbfgs').")
        name, arguments = optimizer_and_arguments[self.solver]
        return OPTIMIZERS[name](lr=lr, **arguments)

    def _codes(self) -> tuple[int, int, int]:
        """Hidden activation, output activation and output loss, as ints (the kernels' argument type)."""
        out = self.out_activation_
        return int(ACTIVATION_CODES[self.activation]), int(ACTIVATION_CODES[out]), int(OUTPUT_LOSSES[out])

    # -- fitting ----------------------------------------------------------------------------
    @announces_compiles
    @keeps_attributes_on_error
    def _fit(self, X, y, sample_weight=None, *, incremental: bool, classes=None):
        hidden = self._hidden_sizes()
        first_call = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        # Continuing trains in the dtype of the fitted parameters: casting them to float32 could overflow.
        X_dtype = [np.float64, np.float32] if first_call else np.asarray(self.coefs_[0]).dtype
        X, y = validate_data(self, X, y, reset=first_call, accept_sparse="csr", dtype=X_dtype,
                             order="C", multi_output=True, y_numeric=not is_classifier(self))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # CSR rows are read in any order and their duplicate entries add up (kernels.dense.gather_rows): the
        # caller's matrix is used as it is, never sorted in place
        self.device_ = fit_device(self)
        Y = self._encode_targets(y, incremental, classes).astype(X.dtype, copy=False)
        weighted = sample_weight is not None
        sample_weight = check_sample_weight(sample_weight, X, X.dtype)
        # scikit-learn's rule: every call draws from check_random_state(random_state) afresh (an int seed
        # gives each warm-started fit and each partial_fit call the same shuffles as a first fit would)
        rng = check_random_state(self.random_state)
        if first_call:
            self._initialize(Y, X.dtype, rng)
        else:
            self._adopt()
            if len(self.coefs_) != len(hidden) + 1 or [np.shape(c)[1] for c in self.coefs_[:-1]] != hidden:
                raise ValueError("hidden_layer_sizes changed since the model was fitted; fit without warm_start.")
        if np.shape(self.coefs_[-1])[1] != Y.shape[1]:
            raise ValueError(f"y has {Y.shape[1]} outputs, but the model was fitted with "
                             f"{np.shape(self.coefs_[-1])[1]}.")
        # partial_fit trains the model's own arrays in place (no copy of the model); fit with warm_start trains
        # a copy, so that a failed fit leaves the fitted model as it was
        params = self._own_params(X.dtype) if incremental and not first_call else None
        if params is None:
            params = self._pack(X.dtype)
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, Y, sample_weight, params, y)
        else:
            self._fit_stochastic(X, Y, y, sample_weight if weighted else None, sample_weight, params, rng,
                                 incremental, first_call)
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

    def _fit_lbfgs(self, X, Y, sample_weight, params, y) -> None:
        optimizer = OPTIMIZERS["sgd"]()  # unused by L-BFGS; the trainer needs a rule
        state = optimizer.init(params)
        schedule = Schedule("constant", self.learning_rate_init, self.max_iter)
        rule = make_update_rule(optimizer, schedule, params.size, None, None)
        trainer = self._trainer(X, Y, sample_weight, params, state, rule, X.shape[0])
        result = minimize_lbfgs(trainer.loss_and_gradient, params.astype(np.float64), max_iter=self.max_iter,
                                max_fun=self.max_fun, tol=self.tol, verbose=bool(self.verbose))
        if not (np.isfinite(result.fun) and np.isfinite(result.x).all()):
            # scikit-learn's error (it raises for non-finite weights; for a NaN loss at the start it returns the
            # initial weights with loss_ NaN): no finite model to give back, whatever on_nonfinite says
            hint = nonfinite_hint(X, None if is_classifier(self) else y)()
            raise NonFiniteTrainingError(with_hint_and_cures(
                f"{SKLEARN_NONFINITE} L-BFGS ended on a NaN or infinite loss after {int(result.nit)} iterations: "
                "there is no model to give back. ", hint))
        # scikit-learn's check: a ConvergenceWarning whenever L-BFGS stopped without converging (max_iter,
        # max_fun, a failed line search), with its message; n_iter_ at most max_iter
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        params[:] = result.x
        self.n_updates_ = int(result.nit)
        self.loss_ = np.float64(result.fun)

    def _fit_stochastic(self, X, Y, y, given_weight, sample_weight, params, rng, incremental, first_call) -> None:
        if self.early_stopping and incremental:  # scikit-learn's rule and words
            raise ValueError("partial_fit does not support early_stopping=True")
        optimizer = self._make_optimizer()
        state = self._optimizer_state if incremental else None
        if not reusable_state(state, optimizer, params.size, X.dtype):  # none yet, or another solver's
            state = optimizer.init(params)
        validation_score = None
        train_rows = None  # early stopping on the CPU: the rows trained on, the others held out where they are
        hint = nonfinite_hint(X, None if is_classifier(self) else y)
        early_stopping = self.early_stopping
        if early_stopping:
            # scikit-learn stratifies when there is one output (binary classification), on its boolean
            # indicator column, whose classes it names 'False' and 'True'
            binary = is_classifier(self) and Y.shape[1] == 1
            stratify = (Y[:, 0] > 0.5).view(np.int8) if binary else None
            train_rows, held_out = validation_split(
                X.shape[0], self.validation_fraction, rng, stratify,
                stratify_names=lambda: np.where(stratify > 0, "True", "False"))
            if held_out.size < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                                 "your dataset.")
            X_val, y_val = X[held_out], y[held_out]  # the only copy: validation_fraction of the data
            weight_val = None if given_weight is None else given_weight[held_out]
            if self.device_ == "cuda":  # the device trainer draws its own orders over all its samples
                X, Y, sample_weight = X[train_rows], Y[train_rows], sample_weight[train_rows]
                train_rows = None

            def validation_score():
                self._unpack(params)
                return self._validation_score(X_val, y_val, weight_val)

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
        if incremental and not fresh and getattr(self, "_schedule_eta", None) is not None:
            schedule.eta = self._schedule_eta  # partial_fit continues scikit-learn's optimizer, rate included
        rule = make_update_rule(optimizer, schedule, params.size, self.clip_value, self.clip_norm)
        trainer = self._trainer(X, Y, sample_weight, params, state, rule, batch_size)
        if train_rows is not None:
            train_only_on(trainer, train_rows)
        config = LoopConfig(
            max_iter=1 if incremental else self.max_iter, schedule=schedule, random_state=rng, shuffle=self.shuffle,
            tol=self.tol, n_iter_no_change=self.n_iter_no_change + 1, validation_score=validation_score,
            verbose=self.verbose, progress=self.progress, on_nonfinite=self.on_nonfinite,
            callbacks=tuple(self.callbacks or ()), epoch_offset=epochs_before, check_convergence=not incremental,
            rows=train_rows, nonfinite_hint=hint, fresh_start=first_call,
            reported_n_iter_no_change=self.n_iter_no_change, carry_no_improvement=True)
        with warnings.catch_warnings():
            if incremental:
                warnings.simplefilter("ignore", ConvergenceWarning)
            run_epochs(trainer, config, history)
        self._optimizer_state = state
        self._schedule_eta = schedule.eta
        self.n_iter_ = history.n_epochs - epochs_before
        self.t_ = history.n_samples_seen
        self.n_updates_ = history.n_updates
        # scikit-learn's types: NumPy floats for the losses, Python floats for the validation scores
        self.loss_curve_ = [np.float64(loss) for loss in history.loss_curve]
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else np.nan
        self.gradient_norms_ = np.array(history.gradient_norms).reshape(len(history.gradient_norms), len(self.coefs_))
        if early_stopping:
            self.validation_scores_ = list(history.validation_scores)
            self.best_validation_score_ = history.best_validation_score
            self.best_loss_ = None
        else:
            self.best_loss_ = np.float64(history.best_loss) if history.loss_curve else np.inf

    # -- prediction ---------------------------------------------------------------------------
    @announces_compiles
    def _forward(self, X, check_input: bool = True) -> np.ndarray:
        if check_input:
            check_is_fitted(self)
            X = validate_data(self, X, reset=False, accept_sparse="csr", dtype=[np.float64, np.float32], order="C")
        dtype = np.asarray(self.coefs_[0]).dtype
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

    def _validation_score(self, X, y, sample_weight) -> float:
        """scikit-learn's early-stopping score: no input validation (the names are kept), NaN for non-finite output."""
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return self._score_function(y, y_pred, sample_weight=sample_weight)

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
        history = getattr(self, "_history", None)
        if history is not None and hasattr(self, "best_loss_"):  # what scikit-learn's warm start reads
            other._no_improvement_count = history.no_improvement

    @classmethod
    def _from_fitted(cls, est):
        model = cls(**{k: v for k, v in est.get_params().items() if k in cls().get_params()})
        _BaseMLP._copy_fitted_to(est, model)
        model._adopt()
        model._history.no_improvement = int(getattr(est, "_no_improvement_count", 0))  # its count carries on
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

    def _check_solver(self) -> bool:
        if self.solver == "lbfgs":  # scikit-learn's words
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True

    @available_if(_check_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None) -> MLPClassifier:
        """Train one epoch on ``(X, y)``, keeping the optimizer's state.

        Parameters
        ----------
        X : {{array-like, sparse matrix}} of shape (n_samples, n_features)
            A batch of training data, converted to the dtype of the fitted model.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Its labels.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the samples' losses (default: all 1). A
            negative weight raises ``ValueError``: gradient descent would climb
            that sample's loss.
        classes : array-like of shape (n_classes,), optional
            Every class; required on the first call (for a multilabel
            indicator ``y``, its columns' labels), and if passed again it must
            be the same. As in scikit-learn, it comes after ``sample_weight``.

        Returns
        -------
        self : MLPClassifier
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _encode_targets(self, y, incremental, classes=None):
        if y.dtype.kind not in "iub":
            # scikit-learn's short "Unknown label type: continuous" (LabelBinarizer would print all of y); integer
            # labels are classification targets, and LabelBinarizer checks their kind itself
            check_classification_targets(y)
        # scikit-learn's rules (MLPClassifier.partial_fit and _validate_input), with its messages where they are
        # short; labels by the hundred are named by their first few (fastgd's short_repr)
        refit = False
        if incremental and classes is not None and hasattr(self, "classes_") and _many_labels(classes, self.classes_):
            if not np.array_equal(self.classes_, unique_labels(np.asarray(classes))):
                raise ValueError(f"`classes` is not the same as on last call to partial_fit: classes="
                                 f"{short_repr(classes)} differs from the classes of the first call, "
                                 f"{short_repr(self.classes_)}.")
        if incremental and _check_partial_fit_first_call(self, classes):  # sets classes_ from classes
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if type_of_target(y).startswith("multilabel") else np.asarray(classes))
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
            refit = True
        else:
            present = unique_labels(y)
            many = _many_labels(present, self.classes_)
            before, now = (short_repr(self.classes_), short_repr(present)) if many else (self.classes_, present)
            if self.warm_start:
                if set(present) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                                     f"call to fit. Previously got {before}, `y` has {now}")
            else:
                unseen = np.setdiff1d(present, self.classes_, assume_unique=True)
                if len(unseen):
                    tail = f"; labels not in classes_: {short_repr(unseen)}." if many else "."
                    raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {before}. "
                                     f"'y' has {now}{tail}")
        if not refit and y.ndim == 1 and self._label_binarizer.y_type_ in ("binary", "multiclass"):
            return self._indicator(y)
        return self._label_binarizer.transform(y).astype(np.float64)

    def _indicator(self, y: np.ndarray) -> np.ndarray:
        """``self._label_binarizer.transform(y).astype(float)`` for 1-D labels, in one ``np.unique`` (partial_fit)."""
        classes = self._label_binarizer.classes_
        present, inverse = unique_labels_and_index(y)
        unseen = np.setdiff1d(present, classes)
        if unseen.size:
            raise ValueError(f"y contains labels not in classes_: {short_repr(unseen)}.")
        index = np.searchsorted(classes, present)[inverse]
        if classes.size <= 2:  # one column: the second class's (all zeros with a single class)
            return (index == 1).astype(np.float64).reshape(-1, 1)
        Y = np.zeros((y.shape[0], classes.size))
        Y[np.arange(y.shape[0]), index] = 1.0
        return Y

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    _score_function = staticmethod(accuracy_score)

    def _predict(self, X, check_input=True):
        proba = self._forward(X, check_input)
        if self.n_outputs_ == 1:
            proba = proba.ravel()
        return self._label_binarizer.inverse_transform(proba)

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
        check_is_fitted(self)
        return self._predict(X)

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
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)  # as scikit-learn: a probability of 0 warns (divide by zero) and is -inf

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

    Trains an identity output with half the mean squared error, or with
    ``loss="poisson"`` an exponential output (log link) with half the Poisson
    deviance; a 2-D ``y`` gives one output per target.

    Parameters
    ----------
    {_MLP_DOC_PARAMETERS}
    loss : {{"squared_error", "poisson"}}, default="squared_error"
        ``"squared_error"``: half the mean squared error, identity output.
        ``"poisson"``: half the Poisson deviance, ``mean(xlogy(y, y / p) - y + p)``
        summed over the outputs, with the output ``p = exp(z)`` (scikit-learn
        1.7's option, ``out_activation_ == "exp"``); targets must be
        non-negative (a negative one raises ``ValueError``, where scikit-learn
        would train to a NaN loss). Unlike scikit-learn, ``loss`` comes last
        among the positional parameters (after ``activation``): pass it by
        keyword.

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

    _parameter_constraints: dict = {**_BaseMLP._parameter_constraints,
                                    "loss": [StrOptions({"squared_error", "poisson"})]}

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

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None) -> MLPRegressor:
        """Train one epoch on ``(X, y)``, keeping the optimizer's state.

        As in scikit-learn's ``MLPRegressor`` (unlike its classifier), the
        method exists with ``solver="lbfgs"`` too, and then runs L-BFGS from
        the current weights for up to ``max_iter`` iterations.

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

    def _encode_targets(self, y, incremental, classes=None):
        if self.loss == "poisson" and y.size and np.min(y) < 0:
            raise ValueError(f"loss='poisson' needs non-negative targets y, got min(y) = {np.min(y)!r}: the Poisson "
                             "deviance of a negative count is not defined.")
        return y.reshape(y.shape[0], -1).astype(np.float64)

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    _score_function = staticmethod(r2_score)

    def _predict(self, X, check_input=True):
        pred = self._forward(X, check_input)
        return pred.ravel() if pred.shape[1] == 1 else pred

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
        check_is_fitted(self)
        return self._predict(X)

    def to_sklearn(self):
        """An equivalent fitted ``sklearn.neural_network.MLPRegressor``.

        Returns
        -------
        sklearn.neural_network.MLPRegressor
            Same parameters and weights: it predicts what this model predicts.
        """
        from sklearn.neural_network import MLPRegressor as SkMLPRegressor

        model = SkMLPRegressor(loss=self.loss, **self._sklearn_params())
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
        return cls._from_fitted(est)

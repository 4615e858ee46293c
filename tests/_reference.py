"""Plain NumPy reference implementations used by the test-suite.

Everything here is written from published rules, independently of fastgd's
code, and favours obviousness over speed: whole-array NumPy expressions, one
call per step, no in-place tricks. Sections are separated by ``# --- name ---``
headers so that references for other parts of fastgd can be added later.
"""

from __future__ import annotations

import math

import numpy as np

# --- optimizers ---
#
# Transcriptions of the update rules documented for PyTorch's optimizers
# (https://pytorch.org/docs/stable/optim.html, the "Algorithm" box of each
# class). Each reference is a function
#
#     reference(params, grads, state, *, lr, <hyperparameters>) -> new_params
#
# where ``params`` and ``grads`` are 1-D arrays (not modified), ``state`` is a
# dict that starts empty (``{}``) for a new parameter vector and is updated in
# place, as PyTorch's per-parameter ``optimizer.state[p]``. Keyword names and
# defaults are those of the PyTorch constructors; state keys are PyTorch's
# (``momentum_buffer``, ``square_avg``, ``grad_avg``, ``exp_avg``,
# ``exp_avg_sq``, ``max_exp_avg_sq``, ``sum``) plus ``step``, the number of
# updates applied so far (1-based ``t`` during an update).
#
# The gradient handed to a reference is the one the optimizer sees, i.e. after
# :func:`scale_and_clip_grads` (fastgd's ``grad_scale``/``clip_norm``/
# ``clip_value`` pre-processing).


def _next_step(state: dict) -> int:
    state["step"] = state.get("step", 0) + 1
    return state["step"]


def scale_and_clip_grads(grads: np.ndarray, grad_scale: float = 1.0, clip_value: float | None = None,
                         clip_norm: float | None = None) -> np.ndarray:
    """The gradient an optimizer sees, per ``fastgd.optim.Optimizer.step``'s documentation.

    1. ``g = grads * grad_scale``;
    2. with ``clip_norm``: ``torch.nn.utils.clip_grad_norm_``'s rule,
       ``g *= min(1, clip_norm / (||g||_2 + 1e-6))``;
    3. with ``clip_value``: ``torch.nn.utils.clip_grad_value_``'s rule, each
       component clamped to ``[-clip_value, clip_value]``.
    """
    g = grads * grad_scale
    if clip_norm is not None:
        total_norm = math.sqrt(float(np.sum(g * g)))
        clip_coef = clip_norm / (total_norm + 1e-6)
        g = g * min(1.0, clip_coef)
    if clip_value is not None:
        g = np.clip(g, -clip_value, clip_value)
    return g


def sgd(params, grads, state, *, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """``torch.optim.SGD``.

    ::

        g_t <- g_t + lambda * theta_{t-1}                       (weight_decay != 0)
        b_t <- g_t if t == 1 else mu * b_{t-1} + (1 - tau) * g_t  (momentum != 0)
        g_t <- g_t + mu * b_t if nesterov else b_t              (momentum != 0)
        theta_t <- theta_{t-1} - gamma * g_t
    """
    t = _next_step(state)
    g = grads
    if weight_decay != 0:
        g = g + weight_decay * params
    if momentum != 0:
        if t > 1:
            b = momentum * state["momentum_buffer"] + (1 - dampening) * g
        else:
            b = g.copy()
        state["momentum_buffer"] = b
        g = g + momentum * b if nesterov else b
    return params - lr * g


def lerp(start, end, weight):
    """``torch.lerp``'s formula: from the start below weight 0.5, from the end above (exact at weight 1)."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1 - weight)


def rmsprop(params, grads, state, *, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
            centered=False):
    """``torch.optim.RMSprop``.

    ::

        g_t <- g_t + lambda * theta_{t-1}                       (weight_decay != 0)
        v_t <- alpha * v_{t-1} + (1 - alpha) * g_t^2
        centered:  g_ave_t <- lerp(g_ave_{t-1}, g_t, 1 - alpha)       (torch.lerp's formula)
                   v~_t <- v_t - g_ave_t^2
        otherwise  v~_t <- v_t
        momentum > 0:  b_t <- mu * b_{t-1} + g_t / (sqrt(v~_t) + eps);  theta_t <- theta_{t-1} - gamma * b_t
        otherwise      theta_t <- theta_{t-1} - gamma * g_t / (sqrt(v~_t) + eps)
    """
    _next_step(state)
    zeros = np.zeros_like(params)
    g = grads
    if weight_decay != 0:
        g = g + weight_decay * params
    v = alpha * state.get("square_avg", zeros) + (1 - alpha) * g * g
    state["square_avg"] = v
    if centered:
        g_ave = state.get("grad_avg", zeros)
        g_ave = lerp(g_ave, g, 1 - alpha)
        state["grad_avg"] = g_ave
        avg = np.sqrt(v - g_ave * g_ave) + eps
    else:
        avg = np.sqrt(v) + eps
    if momentum > 0:
        b = momentum * state.get("momentum_buffer", zeros) + g / avg
        state["momentum_buffer"] = b
        return params - lr * b
    return params - lr * (g / avg)


def adam(params, grads, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
         _decoupled=False):
    """``torch.optim.Adam`` (coupled weight decay), with ``amsgrad``.

    ::

        g_t <- g_t + lambda * theta_{t-1}                       (weight_decay != 0)
        m_t <- lerp(m_{t-1}, g_t, 1 - beta1)                     (torch.lerp's formula)
        v_t <- beta2 * v_{t-1} + (1 - beta2) * g_t^2
        vmax_t <- max(vmax_{t-1}, v_t)                          (amsgrad; denominator uses vmax_t)
        step_size <- gamma / (1 - beta1^t)
        denom <- sqrt(v_t) / sqrt(1 - beta2^t) + eps
        theta_t <- theta_{t-1} - step_size * m_t / denom
    """
    beta1, beta2 = betas
    t = _next_step(state)
    zeros = np.zeros_like(params)
    g = grads
    if _decoupled:
        params = params * (1 - lr * weight_decay)
    elif weight_decay != 0:
        g = g + weight_decay * params
    m = state.get("exp_avg", zeros)
    m = lerp(m, g, 1 - beta1)
    v = beta2 * state.get("exp_avg_sq", zeros) + (1 - beta2) * g * g
    state["exp_avg"] = m
    state["exp_avg_sq"] = v
    if amsgrad:
        v = np.maximum(state.get("max_exp_avg_sq", zeros), v)
        state["max_exp_avg_sq"] = v
    step_size = lr / (1 - beta1**t)
    denom = np.sqrt(v) / math.sqrt(1 - beta2**t) + eps
    return params - step_size * (m / denom)


def adamw(params, grads, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
    """``torch.optim.AdamW``: decoupled weight decay.

    ::

        theta_{t-1} <- theta_{t-1} * (1 - gamma * lambda)
        then Adam's update above without adding lambda * theta to the gradient.
    """
    return adam(params, grads, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                _decoupled=True)


def adagrad(params, grads, state, *, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
            eps=1e-10):
    """``torch.optim.Adagrad``.

    ::

        state_sum_0 <- initial_accumulator_value
        gamma~ <- gamma / (1 + (t - 1) * eta)
        g_t <- g_t + lambda * theta_{t-1}                       (weight_decay != 0)
        state_sum_t <- state_sum_{t-1} + g_t^2
        theta_t <- theta_{t-1} - gamma~ * g_t / (sqrt(state_sum_t) + eps)
    """
    t = _next_step(state)
    if "sum" not in state:
        state["sum"] = np.full_like(params, initial_accumulator_value)
    clr = lr / (1 + (t - 1) * lr_decay)
    g = grads
    if weight_decay != 0:
        g = g + weight_decay * params
    s = state["sum"] + g * g
    state["sum"] = s
    return params - clr * (g / (np.sqrt(s) + eps))


# Scikit-learn's MLP rules (``sklearn/neural_network/_stochastic_optimizers.py``: ``SGDOptimizer`` and
# ``AdamOptimizer._get_updates``), which ``MLPClassifier``/``MLPRegressor`` apply as ``params += update``.
# Keyword names follow fastgd's constructors (sklearn's ``learning_rate_init``, ``beta_1``, ``beta_2`` and
# ``epsilon`` are ``lr``, ``betas`` and ``eps``); state keys are sklearn's attribute names, singular.


def velocity_sgd(params, grads, state, *, lr=0.1, momentum=0.9, nesterov=True):
    """Scikit-learn's ``SGDOptimizer``: momentum in the velocity form, lr inside the velocity.

    ::

        v_t <- mu * v_{t-1} - gamma_t * g_t                     (v_0 = 0)
        update <- mu * v_t - gamma_t * g_t if nesterov else v_t
        theta_t <- theta_{t-1} + update
    """
    _next_step(state)
    v = momentum * state.get("velocity", np.zeros_like(params)) - lr * grads
    state["velocity"] = v
    update = momentum * v - lr * grads if nesterov else v
    return params + update


def folded_adam(params, grads, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    """Scikit-learn's ``AdamOptimizer``: the bias corrections folded into the step size.

    ::

        m_t <- beta1 * m_{t-1} + (1 - beta1) * g_t
        v_t <- beta2 * v_{t-1} + (1 - beta2) * g_t^2
        gamma_t <- gamma * sqrt(1 - beta2^t) / (1 - beta1^t)
        theta_t <- theta_{t-1} - gamma_t * m_t / (sqrt(v_t) + eps)
    """
    beta1, beta2 = betas
    t = _next_step(state)
    zeros = np.zeros_like(params)
    m = beta1 * state.get("m", zeros) + (1 - beta1) * grads
    v = beta2 * state.get("v", zeros) + (1 - beta2) * grads**2
    state["m"] = m
    state["v"] = v
    step_size = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    return params + -step_size * m / (np.sqrt(v) + eps)


# --- linear models ---
#
# Per-sample SGD of a linear model, written from the textbook: for each sample
# in turn, the gradient of its weighted loss plus the L2 term, clipped, one
# plain SGD step (PyTorch's rule, with coupled weight decay), then the
# cumulative L1 penalty of Tsuruoka, Tsujii and Ananiadou (2009): the total
# penalty u every weight could have had so far, q what each has had; a weight
# moves toward zero by the difference and stops there. Targets are coded as fastgd's linear estimators code them:
# +/-1 per output for the margin losses, the class index for the multinomial
# log loss, real values for the regression losses.


def margin_loss_derivative(loss: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d loss / dz of a classification loss for targets ``y`` in {-1, +1}."""
    m = y * z
    if loss == "log_loss":
        return -y / (1.0 + np.exp(m))
    if loss == "hinge":
        return np.where(m < 1.0, -y, 0.0)
    if loss == "squared_hinge":
        return np.where(m < 1.0, -2.0 * y * (1.0 - m), 0.0)
    if loss == "modified_huber":
        return np.where(m >= 1.0, 0.0, np.where(m >= -1.0, -2.0 * y * (1.0 - m), -4.0 * y))
    if loss == "perceptron":
        return np.where(m <= 0.0, -y, 0.0)
    raise ValueError(loss)


def residual_loss_derivative(loss: str, z: np.ndarray, y: np.ndarray, epsilon: float) -> np.ndarray:
    """d loss / dz of a regression loss."""
    r = z - y
    if loss == "squared_error":
        return r
    if loss == "huber":
        return np.clip(r, -epsilon, epsilon)
    if loss == "epsilon_insensitive":
        return np.where(np.abs(r) <= epsilon, 0.0, np.sign(r))
    raise ValueError(loss)


def output_loss_derivative(loss: str, z: np.ndarray, y: np.ndarray, epsilon: float) -> np.ndarray:
    """d loss / dz of one sample's outputs ``z``; ``"multinomial"``: softmax cross-entropy, ``y[0]`` the class."""
    if loss == "multinomial":
        p = np.exp(z - z.max())
        dz = p / p.sum()
        dz[int(y[0])] -= 1.0
        return dz
    if loss in ("squared_error", "huber", "epsilon_insensitive"):
        return residual_loss_derivative(loss, z, y, epsilon)
    return margin_loss_derivative(loss, z, y)


def clipped_by_norm(grad_W, grad_b, clip_norm):
    """``(grad_W, grad_b)`` rescaled to global norm ``clip_norm`` (``/ (norm + 1e-6)``) when above it."""
    if clip_norm is not None:
        norm = math.sqrt(np.sum(grad_W**2) + np.sum(grad_b**2))
        if norm > clip_norm:
            return grad_W * (clip_norm / (norm + 1e-6)), grad_b * (clip_norm / (norm + 1e-6))
    return grad_W, grad_b


def cumulative_l1_penalty(W, q, cols, u):
    """Tsuruoka et al.'s (2009) cumulative L1 penalty on the columns ``cols`` of ``W``, in place.

    ``u`` is the penalty every weight could have received so far, ``q`` what
    each has received: a weight moves toward zero by what it is owed, and
    stops at zero.
    """
    w = W[:, cols]
    new = np.where(w > 0, np.maximum(0.0, w - (u + q[:, cols])),
                   np.where(w < 0, np.minimum(0.0, w + (u - q[:, cols])), w))
    q[:, cols] += new - w
    W[:, cols] = new


def sparse_step_training(X, Y, sample_weight, *, loss, epochs, batch_size, lr_at, optimizer, l2=0.0, l1=0.0,
                         clip_value=None, clip_norm=None, fit_intercept=True, epsilon=0.1, **hyperparameters):
    """Weights and intercepts after unshuffled epochs in which a batch steps only its nonzero features' coordinates.

    PyTorch's ``SparseAdam`` semantics for any optimizer: each batch of
    ``batch_size`` consecutive rows takes its mean weighted loss gradient
    plus ``l2 * W`` (the intercepts' mean), keeps only the coordinates of the
    columns its rows store (every output's, and the intercepts), clips that
    vector by norm and by value, and hands it to ``optimizer`` (a reference
    of this module, e.g. :func:`adam`) with the state of those coordinates
    only; the others keep their parameters and state. With ``l1`` the
    cumulative penalty then reaches the weights just stepped. The state
    starts as the optimizer makes it, and ``t`` counts every step. ``X`` is
    dense; its zeros are the absent features. Computed in float64.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    n_outputs = int(Y[:, 0].max()) + 1 if loss == "multinomial" else Y.shape[1]
    n_features = X.shape[1]
    n_coefs = n_outputs * n_features
    params = np.zeros(n_coefs + n_outputs)
    state: dict = {}
    optimizer(params, np.zeros_like(params), state, lr=0.0, **hyperparameters)  # the state as it starts
    state["step"] = 0
    q = np.zeros((n_outputs, n_features))
    u = 0.0
    for _ in range(epochs):
        for start in range(0, X.shape[0], batch_size):
            rows = slice(start, start + batch_size)
            W, b = params[:n_coefs].reshape(n_outputs, n_features), params[n_coefs:]
            dz = np.array([output_loss_derivative(loss, W @ x + b, y, epsilon) * weight
                           for x, y, weight in zip(X[rows], Y[rows], sample_weight[rows], strict=True)])
            grad = np.concatenate([(dz.T @ X[rows] / len(dz) + l2 * W).ravel(),
                                   dz.mean(axis=0) if fit_intercept else np.zeros(n_outputs)])
            cols = np.flatnonzero((X[rows] != 0).any(axis=0))
            coords = np.concatenate([(np.arange(n_outputs)[:, None] * n_features + cols).ravel(),
                                     n_coefs + np.arange(n_outputs)])
            g = scale_and_clip_grads(grad[coords], clip_value=clip_value, clip_norm=clip_norm)
            sub = {key: value[coords] if isinstance(value, np.ndarray) else value for key, value in state.items()}
            lr = lr_at(state["step"] + 1)
            params[coords] = optimizer(params[coords], g, sub, lr=lr, **hyperparameters)
            for key, value in sub.items():
                if isinstance(value, np.ndarray):
                    state[key][coords] = value
                else:
                    state[key] = value
            if l1 > 0.0:
                u += lr * l1
                W = params[:n_coefs].reshape(n_outputs, n_features)  # a view: the penalty lands in params
                cumulative_l1_penalty(W, q, cols, u)
    return params[:n_coefs].reshape(n_outputs, n_features), params[n_coefs:]


def mini_batch_sgd(X, Y, sample_weight, *, loss, epochs, batch_size, lr_at, l2=0.0, weight_decay=0.0,
                   clip_norm=None, fit_intercept=True, intercept_decay=1.0, epsilon=0.1):
    """Weights ``(n_outputs, n_features)`` and intercepts after ``epochs`` unshuffled epochs of mini-batch SGD.

    Each batch of ``batch_size`` consecutive rows (the last may be shorter)
    makes one step on its mean weighted loss gradient plus ``l2 * W``,
    clipped to norm ``clip_norm``; the intercepts' gradient is then
    multiplied by ``intercept_decay``. ``lr_at(t)`` and the losses are those
    of :func:`per_sample_sgd`. Computed in float64.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    n_outputs = int(Y[:, 0].max()) + 1 if loss == "multinomial" else Y.shape[1]
    W = np.zeros((n_outputs, X.shape[1]))
    b = np.zeros(n_outputs)
    t = 0
    for _ in range(epochs):
        for start in range(0, X.shape[0], batch_size):
            rows = slice(start, start + batch_size)
            dz = np.array([output_loss_derivative(loss, W @ x + b, y, epsilon) * weight
                           for x, y, weight in zip(X[rows], Y[rows], sample_weight[rows], strict=True)])
            grad_W = dz.T @ X[rows] / len(dz) + l2 * W
            grad_b = dz.mean(axis=0) if fit_intercept else np.zeros(n_outputs)
            grad_W, grad_b = clipped_by_norm(grad_W, grad_b, clip_norm)
            grad_b = grad_b * intercept_decay
            t += 1
            lr = lr_at(t)
            W = W - lr * (grad_W + weight_decay * W)
            b = b - lr * (grad_b + weight_decay * b)
    return W, b


def per_sample_sgd(X, Y, sample_weight, *, loss, epochs, lr_at, l2=0.0, l1=0.0, weight_decay=0.0,
                   clip_value=None, clip_norm=None, fit_intercept=True, epsilon=0.1, l1_on_nonzeros=False,
                   intercept_decay=1.0, average_from=0):
    """Weights ``(n_outputs, n_features)`` and intercepts after ``epochs`` unshuffled epochs of per-sample SGD.

    The L1 penalty reaches every weight after each step, or with
    ``l1_on_nonzeros`` only those of the sample's nonzero features (the weights
    a sparse step moves). The intercepts' gradient is multiplied by
    ``intercept_decay`` after clipping. With ``average_from = n > 0``, also
    returns the mean of the weights and of the intercepts after each update
    from the ``n``-th on (averaged SGD): ``(W, b, W_mean, b_mean)``.

    ``lr_at(t)`` is the learning rate of update ``t`` (1-based). ``loss ==
    "multinomial"`` is the softmax cross-entropy with ``Y[:, 0]`` the class
    index and ``n_outputs`` classes (``Y.shape[1]`` otherwise). Computed in
    float64.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    n_outputs = int(Y[:, 0].max()) + 1 if loss == "multinomial" else Y.shape[1]
    W = np.zeros((n_outputs, X.shape[1]))
    b = np.zeros(n_outputs)
    u, q = 0.0, np.zeros_like(W)
    W_mean, b_mean = np.zeros_like(W), np.zeros_like(b)
    t = 0
    for _ in range(epochs):
        for x, y, weight in zip(X, Y, sample_weight, strict=True):
            dz = output_loss_derivative(loss, W @ x + b, y, epsilon) * weight
            grad_W = np.outer(dz, x) + l2 * W
            grad_b = dz if fit_intercept else np.zeros(n_outputs)
            grad_W, grad_b = clipped_by_norm(grad_W, grad_b, clip_norm)
            if clip_value is not None:
                grad_W, grad_b = np.clip(grad_W, -clip_value, clip_value), np.clip(grad_b, -clip_value, clip_value)
            grad_b = grad_b * intercept_decay
            t += 1
            lr = lr_at(t)
            W = W - lr * (grad_W + weight_decay * W)
            b = b - lr * (grad_b + weight_decay * b)
            if l1 > 0.0:
                u += lr * l1
                cumulative_l1_penalty(W, q, np.flatnonzero(x) if l1_on_nonzeros else np.arange(x.size), u)
            if 0 < average_from <= t:
                n = t - average_from + 1
                W_mean, b_mean = W_mean + (W - W_mean) / n, b_mean + (b - b_mean) / n
    return (W, b, W_mean, b_mean) if average_from else (W, b)

"""Activations of hidden and output layers, applied in place, with their derivatives.

Derivatives are taken from the activation's *output* ``A`` (as scikit-learn's
MLP does), so the pre-activations need not be kept:
``logistic: A (1 - A)``, ``tanh: 1 - A^2``, ``relu: [A > 0]``,
``leaky_relu: 1 if A > 0 else LEAKY_SLOPE``.
"""

from __future__ import annotations

import math

from .._config import jit

IDENTITY = 0
LOGISTIC = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4
SOFTMAX = 5

#: Activation codes by name.
ACTIVATION_CODES = {
    "identity": IDENTITY,
    "logistic": LOGISTIC,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "softmax": SOFTMAX,
}

#: Slope of ``leaky_relu`` for negative inputs.
LEAKY_SLOPE = 0.01


@jit(inline="always")
def activate(code, z):
    """The activation ``code`` of one pre-activation value (not softmax)."""
    if code == RELU:
        return z if z > 0 else z * 0
    if code == LOGISTIC:
        # scipy.special.expit's formula, stable for large |z|
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)
    if code == TANH:
        return math.tanh(z)
    if code == LEAKY_RELU:
        return z if z > 0 else z * LEAKY_SLOPE
    return z


@jit(inline="always")
def derivative(code, a):
    """Derivative of activation ``code`` expressed through its output ``a``."""
    if code == RELU:
        return 1.0 if a > 0 else 0.0
    if code == LOGISTIC:
        return a * (1.0 - a)
    if code == TANH:
        return 1.0 - a * a
    if code == LEAKY_RELU:
        return 1.0 if a > 0 else LEAKY_SLOPE
    return 1.0


@jit
def add_bias_and_activate(Z, bias, code):
    """``Z = act(Z + bias)`` row by row, in place; ``SOFTMAX`` normalises each row."""
    n_rows, n_cols = Z.shape
    for i in range(n_rows):
        row = Z[i]
        if code == SOFTMAX:
            zmax = row[0] + bias[0]
            for j in range(n_cols):
                row[j] += bias[j]
                zmax = max(zmax, row[j])
            total = row[0] * 0
            for j in range(n_cols):
                e = math.exp(row[j] - zmax)
                row[j] = e
                total += e
            inv = 1 / total
            for j in range(n_cols):
                row[j] *= inv
        else:
            for j in range(n_cols):
                row[j] = activate(code, row[j] + bias[j])


@jit
def multiply_by_derivative(delta, A, code):
    """``delta *= act'(A)`` in place (nothing to do for ``IDENTITY``)."""
    if code == IDENTITY:
        return
    n_rows, n_cols = delta.shape
    for i in range(n_rows):
        for j in range(n_cols):
            delta[i, j] *= derivative(code, A[i, j])

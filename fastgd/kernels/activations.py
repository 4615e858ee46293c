"""Activations of hidden and output layers, applied in place, with their derivatives.

Derivatives are taken from the activation's *output* ``A`` (as scikit-learn's
MLP does), so the pre-activations need not be kept:
``logistic: A (1 - A)``, ``tanh: 1 - A^2``, ``relu: [A > 0]``,
``leaky_relu: 1 if A > 0 else LEAKY_SLOPE``, ``exp: A``. ``exp`` is an output
activation only (the log link of the Poisson loss), as in scikit-learn.
"""

from __future__ import annotations

import math
from enum import IntEnum

import numpy as np

from .._config import jit
from .._numeric.cast import cast_like


class Activation(IntEnum):
    """Activation of a layer; the kernels receive ``int(Activation.X)``."""

    IDENTITY = 0
    LOGISTIC = 1
    TANH = 2
    RELU = 3
    LEAKY_RELU = 4
    SOFTMAX = 5
    EXP = 6


#: Activation codes by name.
ACTIVATION_CODES = {
    "identity": Activation.IDENTITY,
    "logistic": Activation.LOGISTIC,
    "tanh": Activation.TANH,
    "relu": Activation.RELU,
    "leaky_relu": Activation.LEAKY_RELU,
    "softmax": Activation.SOFTMAX,
    "exp": Activation.EXP,
}

#: Slope of ``leaky_relu`` for negative inputs.
LEAKY_SLOPE = 0.01


@jit(inline="always")
def activate(code, z, one, slope):
    """The activation ``code`` of one pre-activation value (not softmax).

    ``one`` and ``slope`` (``1`` and :data:`LEAKY_SLOPE`) come in the dtype of
    ``z``: a float64 constant would turn float32 arithmetic into float64.
    """
    if code == Activation.RELU:
        return z if z > 0 else one - one
    if code == Activation.LOGISTIC:
        # scipy.special.expit's formula, stable for large |z|
        if z >= 0:
            return one / (one + math.exp(-z))
        e = math.exp(z)
        return e / (one + e)
    if code == Activation.TANH:
        return math.tanh(z)
    if code == Activation.LEAKY_RELU:
        return z if z > 0 else z * slope
    if code == Activation.EXP:
        return math.exp(z)
    return z


@jit(inline="always")
def derivative(code, a, one, slope):
    """Derivative of activation ``code`` expressed through its output ``a`` (constants in ``a``'s dtype)."""
    if code == Activation.RELU:
        return one if a > 0 else one - one
    if code == Activation.LOGISTIC:
        return a * (one - a)
    if code == Activation.TANH:
        return one - a * a
    if code == Activation.LEAKY_RELU:
        return one if a > 0 else slope
    if code == Activation.EXP:
        return a
    return one


@jit(inlined=True)
def add_bias_and_activate(Z, bias, code):
    """``Z = act(Z + bias)`` row by row, in place; ``Activation.SOFTMAX`` normalises each row."""
    one = cast_like(1.0, Z)
    zero = cast_like(0.0, Z)
    slope = cast_like(LEAKY_SLOPE, Z)
    n_rows, n_cols = Z.shape
    for i in range(n_rows):
        row = Z[i]
        if code == Activation.SOFTMAX:
            zmax = row[0] + bias[0]
            for j in range(n_cols):
                row[j] += bias[j]
                zmax = max(zmax, row[j])
            total = zero
            # Overflowed logits (a finite model on extreme inputs): exp would give inf / inf = NaN, so the
            # largest logits share the probability instead, which is the limit of the softmax.
            overflowed = math.isinf(zmax)
            for j in range(n_cols):
                if overflowed:
                    e = one if row[j] == zmax else zero
                else:
                    e = math.exp(row[j] - zmax)
                row[j] = e
                total += e
            inv = one / total
            for j in range(n_cols):
                row[j] *= inv
        elif code == Activation.RELU:
            for j in range(np.uint64(n_cols)):
                z = row[j] + bias[j]
                row[j] = z if z > 0 else zero
        else:
            for j in range(np.uint64(n_cols)):
                row[j] = activate(code, row[j] + bias[j], one, slope)


@jit(inlined=True)
def multiply_by_derivative(delta, A, code):
    """``delta *= act'(A)`` in place (nothing to do for ``Activation.IDENTITY``)."""
    if code == Activation.IDENTITY:
        return
    one = cast_like(1.0, delta)
    slope = cast_like(LEAKY_SLOPE, delta)
    n_rows, n_cols = delta.shape
    for i in range(n_rows):
        for j in range(np.uint64(n_cols)):
            delta[i, j] *= derivative(code, A[i, j], one, slope)

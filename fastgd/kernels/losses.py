"""Losses of linear and output layers: value and derivative from one evaluation.

Each loss is identified by an integer code (the estimators map names to codes
through :data:`LOSS_CODES`). :func:`margin_loss` and :func:`residual_loss`
return ``(loss, dloss/dz)`` for one output; :func:`softmax_loss` handles the
multinomial case over a row of ``K`` decision values. Binary classification
targets are coded ``-1/+1``.

They run once per sample inside the epoch loops, which LLVM inlines them into
(:data:`fastgd._config.INLINE_OPTIONS`). They are compiled with the loops'
fast-math flags (``reduction=True``), as when Numba inlined them before, so
that the losses keep their bits.
"""

from __future__ import annotations

import math
from enum import IntEnum

from .._config import jit


class Loss(IntEnum):
    """Loss of a linear model's decision values; the kernels receive ``int(Loss.X)``."""

    LOG_LOSS = 0
    HINGE = 1
    SQUARED_HINGE = 2
    MODIFIED_HUBER = 3
    PERCEPTRON = 4
    SQUARED_ERROR = 5
    HUBER = 6
    EPSILON_INSENSITIVE = 7
    #: ``log_loss`` over more than two classes: softmax of the decision values.
    MULTINOMIAL = 8
    SQUARED_EPSILON_INSENSITIVE = 9


class OutputLoss(IntEnum):
    """Loss of an MLP's output layer, named after the output activation it goes with."""

    #: Half the squared error, with the ``identity`` output.
    SQUARED_ERROR = 0
    #: Cross-entropy, with the ``softmax`` output.
    LOG_LOSS = 1
    #: Binary cross-entropy per output, with the ``logistic`` output.
    BINARY_LOG_LOSS = 2
    #: Half the Poisson deviance, with the ``exp`` output activation (scikit-learn's ``loss="poisson"``).
    POISSON = 3


#: Loss codes by name (``log_loss`` with more than two classes becomes ``Loss.MULTINOMIAL``).
LOSS_CODES = {
    "log_loss": Loss.LOG_LOSS,
    "hinge": Loss.HINGE,
    "squared_hinge": Loss.SQUARED_HINGE,
    "modified_huber": Loss.MODIFIED_HUBER,
    "perceptron": Loss.PERCEPTRON,
    "squared_error": Loss.SQUARED_ERROR,
    "huber": Loss.HUBER,
    "epsilon_insensitive": Loss.EPSILON_INSENSITIVE,
    "squared_epsilon_insensitive": Loss.SQUARED_EPSILON_INSENSITIVE,
}


@jit(reduction=True, inlined=True)
def margin_loss(code, z, y):
    """Loss and derivative in ``z`` of a classification loss for ``y`` in {-1, +1}.

    ``log_loss``: ``log(1 + exp(-yz))``, one ``exp`` feeding both values;
    ``hinge``: ``max(0, 1 - yz)``; ``squared_hinge``: ``max(0, 1 - yz)^2``;
    ``modified_huber``: ``max(0, 1 - yz)^2`` for ``yz >= -1``, else ``-4yz``;
    ``perceptron``: ``max(0, -yz)``.
    """
    m = y * z
    if code == Loss.LOG_LOSS:
        if m > 0.0:
            e = math.exp(-m)
            return math.log1p(e), -y * e / (1.0 + e)
        e = math.exp(m)
        return math.log1p(e) - m, -y / (1.0 + e)
    if code == Loss.HINGE:
        if m < 1.0:
            return 1.0 - m, -y
        return 0.0, 0.0
    if code == Loss.SQUARED_HINGE:
        if m < 1.0:
            r = 1.0 - m
            return r * r, -2.0 * y * r
        return 0.0, 0.0
    if code == Loss.MODIFIED_HUBER:
        if m >= 1.0:
            return 0.0, 0.0
        if m >= -1.0:
            r = 1.0 - m
            return r * r, -2.0 * y * r
        return -4.0 * m, -4.0 * y
    # Loss.PERCEPTRON
    if m <= 0.0:
        return -m, -y
    return 0.0, 0.0


@jit(reduction=True, inlined=True)
def residual_loss(code, z, y, epsilon):
    """Loss and derivative in ``z`` of a regression loss.

    ``squared_error``: ``(z - y)^2 / 2``; ``huber``: quadratic within
    ``epsilon`` of the target, linear beyond; ``epsilon_insensitive``:
    ``max(0, |z - y| - epsilon)``; ``squared_epsilon_insensitive``: its square.
    """
    r = z - y
    if code == Loss.SQUARED_ERROR:
        return 0.5 * r * r, r
    a = abs(r)
    if code == Loss.HUBER:
        if a <= epsilon:
            return 0.5 * r * r, r
        return epsilon * a - 0.5 * epsilon * epsilon, epsilon if r > 0.0 else -epsilon
    if a <= epsilon:
        return 0.0, 0.0
    if code == Loss.SQUARED_EPSILON_INSENSITIVE:
        e = a - epsilon
        return e * e, 2.0 * e if r > 0.0 else -2.0 * e
    # Loss.EPSILON_INSENSITIVE
    return a - epsilon, 1.0 if r > 0.0 else -1.0


@jit(reduction=True, inlined=True)
def output_loss(code, z, y_row, dz, epsilon):
    """Loss of one sample over its ``K`` outputs; writes ``dloss/dz`` into ``dz``.

    ``z`` holds the ``K`` decision values. For :data:`Loss.MULTINOMIAL`,
    ``y_row[0]`` is the class index and the loss is the softmax cross-entropy;
    otherwise each output ``k`` has its own target ``y_row[k]`` and the
    losses add up.
    """
    n_out = z.shape[0]
    if code == Loss.MULTINOMIAL:
        zmax = z[0]
        for k in range(1, n_out):
            zmax = max(zmax, z[k])
        total = 0.0
        for k in range(n_out):
            e = math.exp(z[k] - zmax)
            dz[k] = e
            total += e
        target = int(y_row[0])
        inv = 1.0 / total
        for k in range(n_out):
            dz[k] *= inv
        dz[target] -= 1.0
        return math.log(total) + zmax - z[target]
    loss = 0.0
    if code >= Loss.SQUARED_ERROR:
        for k in range(n_out):
            value, d = residual_loss(code, z[k], y_row[k], epsilon)
            loss += value
            dz[k] = d
    else:
        for k in range(n_out):
            value, d = margin_loss(code, z[k], y_row[k])
            loss += value
            dz[k] = d
    return loss

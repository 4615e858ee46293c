"""Two-dimensional test surfaces and optimizer trajectories on them.

Each surface is a function ``value_and_gradient(point) -> (float, ndarray)``
with a suggested start, a plotting window and its minimum. The trajectories
are driven by :mod:`fastgd.optim` itself, so what the figures show is what the
estimators do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .optim import Optimizer


@dataclass(frozen=True)
class Surface:
    """A 2-D loss surface.

    Attributes
    ----------
    name : str
        Display name.
    value_and_gradient : callable
        ``f(point) -> (value, gradient)`` for a point of shape (2,).
    start : tuple of float
        A starting point that shows the optimizers' differences.
    window : tuple of float
        ``(xmin, xmax, ymin, ymax)`` for plotting.
    minimum : tuple of float or None
        A minimiser, if the surface has one.
    """

    name: str
    value_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]]
    start: tuple[float, float]
    window: tuple[float, float, float, float]
    minimum: tuple[float, float] | None


def _rosenbrock(p: np.ndarray) -> tuple[float, np.ndarray]:
    x, y = p
    value = (1 - x) ** 2 + 100 * (y - x * x) ** 2
    return value, np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


def _beale(p: np.ndarray) -> tuple[float, np.ndarray]:
    x, y = p
    a = 1.5 - x + x * y
    b = 2.25 - x + x * y * y
    c = 2.625 - x + x * y**3
    value = a * a + b * b + c * c
    dx = 2 * a * (y - 1) + 2 * b * (y * y - 1) + 2 * c * (y**3 - 1)
    dy = 2 * a * x + 2 * b * 2 * x * y + 2 * c * 3 * x * y * y
    return value, np.array([dx, dy])


def _saddle(p: np.ndarray) -> tuple[float, np.ndarray]:
    x, y = p
    return x * x - y * y, np.array([2 * x, -2 * y])


def _ravine(p: np.ndarray) -> tuple[float, np.ndarray]:
    x, y = p
    return 0.5 * (x * x + 50 * y * y), np.array([x, 50 * y])


#: The surfaces by name.
SURFACES: dict[str, Surface] = {
    "rosenbrock": Surface("Rosenbrock", _rosenbrock, (-1.5, 2.0), (-2.0, 2.0, -1.0, 3.0), (1.0, 1.0)),
    "beale": Surface("Beale", _beale, (1.0, 1.4), (-1.0, 4.0, -1.5, 2.0), (3.0, 0.5)),
    "saddle": Surface("Saddle point", _saddle, (-1.5, 1e-3), (-2.0, 2.0, -2.0, 2.0), None),
    "ravine": Surface("Ill-conditioned ravine", _ravine, (-9.0, 1.0), (-10.0, 2.0, -1.5, 1.5), (0.0, 0.0)),
}


def trajectory(optimizer: Optimizer, surface: Surface | str, *, steps: int = 200,
               start: tuple[float, float] | None = None) -> np.ndarray:
    """Points visited by ``optimizer`` descending ``surface``.

    Parameters
    ----------
    optimizer : Optimizer
        A :mod:`fastgd.optim` optimizer (its learning rate is used as is).
    surface : Surface or str
        The surface, or its name in :data:`SURFACES`.
    steps : int, default=200
        Number of updates.
    start : tuple of float, optional
        Starting point (default: the surface's).

    Returns
    -------
    ndarray of shape (n_points, 2)
        The start and every point reached; it stops early if a point leaves
        the finite range.
    """
    surface = SURFACES[surface] if isinstance(surface, str) else surface
    point = np.array(surface.start if start is None else start, dtype=np.float64)
    state = optimizer.init(point)
    points = [point.copy()]
    for _ in range(steps):
        _, grad = surface.value_and_gradient(point)
        optimizer.step(point, np.ascontiguousarray(grad, dtype=np.float64), state)
        if not np.isfinite(point).all():
            break
        points.append(point.copy())
    return np.array(points)

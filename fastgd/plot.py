"""Figures of training runs (needs the ``plot`` extra: ``pip install "fastgd[plot]"``).

Every function returns the matplotlib ``(figure, axes)`` and saves a PNG when
given ``path``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .optim import SGD, Adam, Optimizer, RMSprop
from .surfaces import SURFACES, trajectory


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError('fastgd.plot needs matplotlib: pip install "fastgd[plot]" (or pip install matplotlib).'
                          ) from None
    return plt


def _finish(fig, path: str | Path | None):
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def plot_loss_curves(estimators: Mapping[str, Any], *, ax=None, log: bool = True, path: str | Path | None = None):
    """Training loss per epoch of several fitted estimators on one axes.

    Parameters
    ----------
    estimators : mapping of str to fitted estimator
        Label and estimator (anything with ``loss_curve_``).
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure otherwise.
    log : bool, default=True
        Logarithmic loss axis.
    path : str or Path, optional
        Save the figure there as PNG.

    Returns
    -------
    (Figure, Axes)
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0)) if ax is None else (ax.figure, ax)
    for label, est in estimators.items():
        curve = np.asarray(est.loss_curve_)
        ax.plot(np.arange(1, curve.size + 1), curve, label=label)
    ax.set(xlabel="epoch", ylabel="training loss", title="Loss curves")
    if log:
        ax.set_yscale("log")
    ax.legend()
    return _finish(fig, path), ax


def plot_gradient_norms(estimator: Any, *, ax=None, title: str | None = None, path: str | Path | None = None):
    """Per-layer gradient norms over epochs: vanishing and exploding gradients made visible.

    Parameters
    ----------
    estimator : fitted estimator
        Anything with ``gradient_norms_`` of shape (n_epochs, n_layers).
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure otherwise.
    title : str, optional
        Axes title.
    path : str or Path, optional
        Save the figure there as PNG.

    Returns
    -------
    (Figure, Axes)
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0)) if ax is None else (ax.figure, ax)
    norms = np.asarray(estimator.gradient_norms_)
    epochs = np.arange(1, norms.shape[0] + 1)
    colors = plt.cm.viridis(np.linspace(0, 1, norms.shape[1]))
    for layer in range(norms.shape[1]):
        ax.plot(epochs, norms[:, layer], color=colors[layer], label=f"layer {layer + 1}")
    ax.set(xlabel="epoch", ylabel="mean gradient norm", yscale="log",
           title=title or "Gradient norm per layer (layer 1 = input side)")
    ax.legend(fontsize="small", ncol=2)
    return _finish(fig, path), ax


def default_trajectory_optimizers() -> dict[str, Optimizer]:
    """SGD, Momentum, Nesterov, RMSprop and Adam with rates that show their character."""
    return {
        "SGD": SGD(lr=1e-3),
        "Momentum": SGD(lr=1e-3, momentum=0.9),
        "Nesterov": SGD(lr=1e-3, momentum=0.9, nesterov=True),
        "RMSprop": RMSprop(lr=1e-2),
        "Adam": Adam(lr=5e-2),
    }


def plot_trajectories(surfaces: Sequence[str] = ("rosenbrock", "beale", "saddle", "ravine"),
                      optimizers: Mapping[str, Optimizer] | None = None, *, steps: int = 300,
                      path: str | Path | None = None):
    """Paths of optimizers on 2-D surfaces, one panel per surface.

    Parameters
    ----------
    surfaces : sequence of str, default=all four
        Names in :data:`fastgd.surfaces.SURFACES`.
    optimizers : mapping of str to Optimizer, optional
        Default: :func:`default_trajectory_optimizers`.
    steps : int, default=300
        Updates per optimizer.
    path : str or Path, optional
        Save the figure there as PNG.

    Returns
    -------
    (Figure, ndarray of Axes)
    """
    plt = _pyplot()
    optimizers = default_trajectory_optimizers() if optimizers is None else optimizers
    fig, axes = plt.subplots(1, len(surfaces), figsize=(4.2 * len(surfaces), 4.0), squeeze=False)
    for ax, name in zip(axes[0], surfaces, strict=True):
        surface = SURFACES[name]
        x0, x1, y0, y1 = surface.window
        xs, ys = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
        zs = np.vectorize(lambda a, b, f=surface.value_and_gradient: f(np.array([a, b]))[0])(xs, ys)
        shifted = zs - zs.min() + 1e-3
        ax.contour(xs, ys, np.log(shifted), levels=30, cmap="Greys", linewidths=0.6)
        for label, optimizer in optimizers.items():
            fresh = type(optimizer)(**optimizer.get_params())
            points = trajectory(fresh, surface, steps=steps)
            ax.plot(points[:, 0], points[:, 1], lw=1.4, label=label)
        if surface.minimum is not None:
            ax.plot(*surface.minimum, "k*", ms=10)
        ax.set(xlim=(x0, x1), ylim=(y0, y1), title=surface.name)
    axes[0, 0].legend(fontsize="small")
    fig.tight_layout()
    return _finish(fig, path), axes

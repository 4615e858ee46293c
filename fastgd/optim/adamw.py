"""AdamW: Adam with decoupled weight decay."""

from __future__ import annotations

from .adam import Adam


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter).

    The rule is PyTorch's ``torch.optim.AdamW``: the parameters are first
    shrunk, :math:`\theta \leftarrow \theta (1 - \gamma \lambda)`, then updated
    by :class:`Adam` without adding :math:`\lambda \theta` to the gradient.
    It shares Adam's fused kernel.

    Parameters
    ----------
    lr : float, default=1e-3
        Learning rate :math:`\gamma`, >= 0.
    betas : tuple of (float, float), default=(0.9, 0.999)
        Decay rates of the moment estimates, each in [0, 1).
    eps : float, default=1e-8
        Term added to the denominator, > 0.
    weight_decay : float, default=1e-2
        Decoupled decay :math:`\lambda`, >= 0.
    amsgrad : bool, default=False
        Use the maximum of past second moments (AMSGrad).
    """

    name = "adamw"
    _decoupled = True

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

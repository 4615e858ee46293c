"""Fused optimizers usable without any estimator.

>>> import numpy as np
>>> from fastgd.optim import Adam
>>> params = np.zeros(3)
>>> opt = Adam(lr=0.1)
>>> state = opt.init(params)
>>> opt.step(params, np.array([1.0, -2.0, 0.0]), state)
>>> params
array([-0.1,  0.1,  0. ])
"""

from ._base import Optimizer, OptimizerState, StateMaker
from ._registry import OPTIMIZERS, SOLVERS
from .adagrad import Adagrad
from .adam import Adam
from .adamw import AdamW
from .folded_adam import FoldedAdam
from .rmsprop import RMSprop
from .sgd import SGD
from .velocity_sgd import VelocitySGD

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "SOLVERS",
    "Adagrad",
    "Adam",
    "AdamW",
    "FoldedAdam",
    "Optimizer",
    "OptimizerState",
    "RMSprop",
    "StateMaker",
    "VelocitySGD",
]

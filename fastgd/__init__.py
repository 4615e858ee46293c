"""fastgd: gradient-descent training compiled with Numba, behind scikit-learn estimators.

Importing fastgd compiles nothing: kernels compile on first use and load from
Numba's cache afterwards.

This module also connects two floors that do not import each other:
:mod:`fastgd.optim` handles CUDA device arrays through the path that
:mod:`fastgd.cuda.optim` registers, and is told here how to load it on the
first device array (numba.cuda is imported only then).
"""

from ._compile_notice import set_compile_notice
from .engine import DivergingTrainingWarning, EpochRecord, NonFiniteTrainingError, NonFiniteTrainingWarning
from .estimators.linear import LinearClassifier, LinearRegressor
from .estimators.mlp import MLPClassifier, MLPRegressor
from .estimators.sgd import SGDClassifier, SGDRegressor
from .optim._base import set_device_path_loader


def _load_cuda_device_path() -> None:
    """Import :mod:`fastgd.cuda.optim`, which registers the optimizers' device path."""
    from .cuda import optim  # noqa: F401


set_device_path_loader(_load_cuda_device_path)

__version__ = "0.1.0"

__all__ = [
    "DivergingTrainingWarning",
    "EpochRecord",
    "LinearClassifier",
    "LinearRegressor",
    "MLPClassifier",
    "MLPRegressor",
    "NonFiniteTrainingError",
    "NonFiniteTrainingWarning",
    "SGDClassifier",
    "SGDRegressor",
    "__version__",
    "set_compile_notice",
]

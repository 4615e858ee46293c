"""fastgd: gradient-descent training compiled with Numba, behind scikit-learn estimators.

Importing fastgd compiles nothing: kernels compile on first use and load from
Numba's cache afterwards.
"""

from ._compile_notice import set_compile_notice
from .engine import DivergingTrainingWarning, EpochRecord, NonFiniteTrainingError, NonFiniteTrainingWarning
from .estimators.linear import LinearClassifier, LinearRegressor
from .estimators.mlp import MLPClassifier, MLPRegressor

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
    "__version__",
    "set_compile_notice",
]

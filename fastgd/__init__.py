"""fastgd: gradient-descent training compiled with Numba, behind scikit-learn estimators."""

__version__ = "0.1.0"

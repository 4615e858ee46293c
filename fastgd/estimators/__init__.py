"""scikit-learn estimators: parameters, validation and fitted attributes; no Numba here."""

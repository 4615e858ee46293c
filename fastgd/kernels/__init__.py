"""Compiled kernels: plain arrays and scalars in, arrays out; no estimator logic."""

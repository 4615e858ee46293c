"""Backends: where a model's compiled epochs run (the CPU here; CUDA later, loaded only on request)."""

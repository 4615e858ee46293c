"""Tests of the fused optimizers in :mod:`fastgd.optim` against plain NumPy references.

The references (``tests/_reference.py``) transcribe PyTorch's documented update
rules (``sgd``, ``rmsprop``, ``adam``, ``adamw``, ``adagrad``) and scikit-learn's
MLP rules (``velocity_sgd``, ``folded_adam``). Every optimizer of the registry :data:`fastgd.optim.OPTIMIZERS` must
have an entry in :data:`CASES`, so that a newly registered optimizer without a
reference makes the suite fail.

Tolerances
----------
float64 parameters are compared with ``rtol = 1e-12``, float32 parameters with
``rtol = 1e-5``. The reference always runs in float64 (float32 inputs are
promoted exactly), so the float32 comparison also checks that fastgd's float32
arithmetic keeps float32 accuracy (e.g. bias corrections are not computed in
float32). Entries close to zero (a parameter crossing zero, a first moment
averaging to zero) carry the rounding error of the larger entries around them,
so each array is compared with ``atol = rtol * max(1, max|reference|)``.
"""

from __future__ import annotations

import inspect
import itertools
import math
import os
import pickle
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import _reference as ref
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgd._config import PARALLEL_CHUNK, PARALLEL_MIN_SIZE
from fastgd.optim import (
    OPTIMIZERS,
    SGD,
    Adagrad,
    Adam,
    AdamW,
    FoldedAdam,
    OptimizerState,
    RMSprop,
    StateMaker,
    VelocitySGD,
)
from fastgd.optim._registry import KERNELS, fused_step

RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
DTYPES = [np.float64, np.float32]
N_STEPS = 200

#: Examples per hypothesis test; raise it (environment variable) for a deeper search.
#: Fewer under NUMBA_DISABLE_JIT=1 (the coverage run of .ci/run), where the kernels run as plain Python.
_NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0").strip() not in ("", "0")
MAX_EXAMPLES = int(os.environ.get("FASTGD_TEST_MAX_EXAMPLES", "3" if _NO_JIT else "25"))
SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- hyperparameter strategies -------------------------------------------------------------------------------


def _zero_or(strategy: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    """Exactly 0.0 (the "feature off" branch) or a draw from ``strategy``."""
    return st.one_of(st.just(0.0), strategy)


LR = st.one_of(st.just(0.0), st.floats(1e-4, 0.1))
WEIGHT_DECAY = _zero_or(st.floats(1e-4, 0.1))
EPS = st.one_of(st.sampled_from([1e-10, 1e-8, 1e-6]), st.floats(1e-8, 1e-2))


@st.composite
def sgd_kwargs(draw) -> dict[str, Any]:
    nesterov = draw(st.booleans())
    if nesterov:  # needs momentum > 0 and no dampening
        momentum, dampening = draw(st.floats(0.05, 0.99)), 0.0
    else:
        momentum = draw(_zero_or(st.floats(0.05, 0.99)))
        dampening = draw(_zero_or(st.floats(0.0, 1.0)))
    return {"lr": draw(LR), "momentum": momentum, "dampening": dampening,
            "weight_decay": draw(WEIGHT_DECAY), "nesterov": nesterov}


@st.composite
def rmsprop_kwargs(draw) -> dict[str, Any]:
    centered = draw(st.booleans())
    # alpha = 0 divides by the current |g_t| (v_t = g_t^2; with centered=True v_t - g_avg_t^2 is even exactly
    # 0): g_t / (|g_t| + eps) is ill-conditioned where |g_t| ~ eps, so a float32 run legitimately drifts from
    # the float64 reference. It has its own float64 test below.
    # With centered=True, v_t - g_avg_t^2 cancels after a run of equal gradients (clip_value makes them common):
    # after k equal steps it is alpha^k (1 - alpha^k) g^2, so keep alpha^k from vanishing in such runs.
    alpha = draw(st.floats(0.8 if centered else 0.5, 0.999))
    return {"lr": draw(LR), "alpha": alpha, "eps": draw(EPS), "weight_decay": draw(WEIGHT_DECAY),
            "momentum": draw(_zero_or(st.floats(0.05, 0.9))), "centered": centered}


@st.composite
def adam_kwargs(draw, weight_decay=WEIGHT_DECAY) -> dict[str, Any]:
    # beta2 = 0 makes the denominator the current |g_t| (sign descent when beta1 = 0 too): the update
    # m_t / |g_t| is then ill-conditioned wherever g_t = noise + weight_decay * theta nearly cancels, and a
    # float32 run legitimately drifts from the float64 reference. It has its own float64 test below.
    beta1 = draw(_zero_or(st.floats(0.5, 0.99)))
    beta2 = draw(st.floats(0.5, 0.9999))
    betas = (beta1, beta2)
    return {"lr": draw(LR), "betas": betas, "eps": draw(EPS), "weight_decay": draw(weight_decay),
            "amsgrad": draw(st.booleans())}


@st.composite
def folded_adam_kwargs(draw) -> dict[str, Any]:
    kwargs = draw(adam_kwargs(weight_decay=st.just(0.0)))  # same betas and eps; no decay, no amsgrad
    return {"lr": kwargs["lr"], "betas": kwargs["betas"], "eps": kwargs["eps"]}


@st.composite
def velocity_sgd_kwargs(draw) -> dict[str, Any]:
    return {"lr": draw(LR), "momentum": draw(_zero_or(st.floats(0.05, 1.0))), "nesterov": draw(st.booleans())}


@st.composite
def adagrad_kwargs(draw) -> dict[str, Any]:
    return {"lr": draw(st.one_of(st.just(0.0), st.floats(1e-4, 0.5))), "lr_decay": draw(_zero_or(st.floats(1e-4, 0.1))),
            "weight_decay": draw(WEIGHT_DECAY), "initial_accumulator_value": draw(_zero_or(st.floats(1e-3, 1.0))),
            "eps": draw(EPS)}


# --- the registry of test cases ------------------------------------------------------------------------------


class OptimizerCase(NamedTuple):
    """How to test one registered optimizer."""

    #: NumPy reference ``reference(params, grads, state, **kwargs) -> new_params`` (see ``_reference.py``).
    reference: Callable[..., np.ndarray]
    #: Strategy drawing constructor keyword arguments (the same names for fastgd and the reference).
    kwargs: st.SearchStrategy[dict[str, Any]]
    #: Reference state keys stored in fastgd's state rows, in row order, for given kwargs.
    slot_names: Callable[[dict[str, Any]], list[str]]


CASES: dict[str, OptimizerCase] = {
    "sgd": OptimizerCase(ref.sgd, sgd_kwargs(),
                         lambda kw: ["momentum_buffer"] if kw["momentum"] > 0 else []),
    "rmsprop": OptimizerCase(ref.rmsprop, rmsprop_kwargs(),
                             lambda kw: ["square_avg"] + ["momentum_buffer"] * (kw["momentum"] > 0)
                             + ["grad_avg"] * kw["centered"]),
    "adam": OptimizerCase(ref.adam, adam_kwargs(),
                          lambda kw: ["exp_avg", "exp_avg_sq"] + ["max_exp_avg_sq"] * kw["amsgrad"]),
    "adamw": OptimizerCase(ref.adamw, adam_kwargs(weight_decay=st.one_of(st.just(1e-2), WEIGHT_DECAY)),
                           lambda kw: ["exp_avg", "exp_avg_sq"] + ["max_exp_avg_sq"] * kw["amsgrad"]),
    "adagrad": OptimizerCase(ref.adagrad, adagrad_kwargs(), lambda kw: ["sum"]),
    # scikit-learn's MLP rules
    "velocity_sgd": OptimizerCase(ref.velocity_sgd, velocity_sgd_kwargs(), lambda kw: ["velocity"]),
    "folded_adam": OptimizerCase(ref.folded_adam, folded_adam_kwargs(), lambda kw: ["m", "v"]),
}

NAMES = sorted(OPTIMIZERS)


def _case(name: str) -> OptimizerCase:
    if name not in CASES:
        pytest.fail(f"optimizer {name!r} is registered in fastgd.optim.OPTIMIZERS but has no reference in "
                    "tests/test_optim.py::CASES; add one (tests/_reference.py) before registering it.")
    return CASES[name]


def assert_close(actual: np.ndarray, desired: np.ndarray, rtol: float, what: str) -> None:
    """``assert_allclose`` with ``atol = rtol * max(1, max|desired|)`` (see the module docstring)."""
    assert actual.shape == desired.shape, what
    scale = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale, err_msg=what)


def run_both(name: str, kwargs: dict[str, Any], dtype, rng: np.random.Generator, n: int, n_steps: int,
             step_options: Callable[[int], dict[str, Any]] | None = None):
    """Run fastgd and the reference side by side on the same random gradients.

    ``step_options(t)`` gives the keyword arguments of update ``t`` (``lr``,
    ``grad_scale``, ``clip_value``, ``clip_norm``), shared by both sides.
    Returns ``(params, state, ref_params, ref_state)``.
    """
    case = _case(name)
    opt = OPTIMIZERS[name](**kwargs)
    params = rng.standard_normal(n).astype(dtype)
    ref_params = params.astype(np.float64)
    state = opt.init(params)
    ref_state: dict[str, Any] = {}
    for t in range(1, n_steps + 1):
        grads = rng.standard_normal(n).astype(dtype)
        grads_before = grads.copy()
        options = step_options(t) if step_options is not None else {}
        opt.step(params, grads, state, **options)
        np.testing.assert_array_equal(grads, grads_before, err_msg="step modified grads")
        g = ref.scale_and_clip_grads(grads.astype(np.float64), options.get("grad_scale", 1.0),
                                     options.get("clip_value"), options.get("clip_norm"))
        ref_kwargs = {**kwargs, "lr": options.get("lr", kwargs["lr"])}
        ref_params = case.reference(ref_params, g, ref_state, **ref_kwargs)
    return opt, params, state, ref_params, ref_state


def assert_matches_reference(name, kwargs, params, state, ref_params, ref_state, dtype, n_steps):
    dtype = np.dtype(dtype)
    rtol = RTOL[dtype]
    assert params.dtype == dtype
    assert state.slots.dtype == dtype, "state rows must keep the dtype of the parameters"
    assert state.step == n_steps == ref_state["step"]
    assert_close(params, ref_params, rtol, f"{name} params")
    names = _case(name).slot_names(kwargs)
    assert state.slots.shape == (len(names), params.size)
    for row, key in zip(state.slots, names, strict=True):
        assert_close(row, ref_state[key], rtol, f"{name} state {key!r}")


# --- update rules ----------------------------------------------------------------------------------------------


def test_every_registered_optimizer_has_a_reference():
    missing = set(OPTIMIZERS) - set(CASES)
    assert not missing, f"no reference in tests/test_optim.py::CASES for {sorted(missing)}"
    assert not set(CASES) - set(OPTIMIZERS), "CASES names optimizers that are not registered"
    for name, cls in OPTIMIZERS.items():
        assert cls.name == name


@pytest.mark.parametrize("kernel_id", range(len(KERNELS)))
def test_the_compiled_dispatch_runs_each_registered_kernel(kernel_id):
    """Branch ``kernel_id`` of ``update_range`` runs ``KERNELS[kernel_id]``: the dispatch follows the registry."""
    rng = np.random.default_rng(kernel_id)
    params, grads = rng.normal(size=40), rng.normal(size=40)
    hyper = np.array([0.9, 0.5, 0.0, 0.01, 0.0, 0.0])  # a valid vector of every kernel's hyperparameters
    slots = np.abs(rng.normal(size=(3, 40)))
    start, direct_params, direct_slots = params.copy(), params.copy(), slots.copy()
    KERNELS[kernel_id](direct_params, grads, direct_slots, hyper, 2, 0.1, 1.0, math.inf, 0, 40)
    assert not np.array_equal(direct_params, start)  # the kernel moves the parameters
    fused_step(kernel_id, params, grads, slots, hyper, 2, 0.1, 1.0, math.inf, False)
    np.testing.assert_array_equal(params, direct_params)
    np.testing.assert_array_equal(slots, direct_slots)


def test_an_unregistered_update_kernel_is_refused():
    class Unregistered(SGD):
        update_kernel = staticmethod(lambda *args: None)

    with pytest.raises(NotImplementedError, match=r"not registered in fastgd\.optim\._registry\.KERNELS"):
        Unregistered().kernel_id  # noqa: B018


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_update_rule_matches_reference(name, dtype, data):
    """>= 200 steps on random gradients; params and every state row match the reference."""
    kwargs = data.draw(_case(name).kwargs, label="kwargs")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    n = data.draw(st.integers(1, 40), label="n")
    rng = np.random.default_rng(seed)
    _, params, state, ref_params, ref_state = run_both(name, kwargs, dtype, rng, n, N_STEPS)
    assert_matches_reference(name, kwargs, params, state, ref_params, ref_state, dtype, N_STEPS)


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("beta1", [0.0, 0.5])
@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_without_second_moment_averaging_matches_reference_in_float64(name, beta1, amsgrad):
    """beta2 = 0 (left out of the hypothesis draws, see adam_kwargs); betas = (0, 0) is sign descent."""
    kwargs = {"lr": 0.01, "betas": (beta1, 0.0), "eps": 1e-8, "weight_decay": 0.05, "amsgrad": amsgrad}
    _, params, state, ref_params, ref_state = run_both(name, kwargs, np.float64, np.random.default_rng(3), 20,
                                                       N_STEPS)
    assert_matches_reference(name, kwargs, params, state, ref_params, ref_state, np.float64, N_STEPS)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rmsprop_without_averaging_matches_reference_in_float64(momentum):
    """alpha = 0 (left out of the hypothesis draws, see rmsprop_kwargs): the update is g / (|g| + eps)."""
    kwargs = {"lr": 0.01, "alpha": 0.0, "eps": 1e-8, "weight_decay": 0.05, "momentum": momentum,
              "centered": False}
    _, params, state, ref_params, ref_state = run_both("rmsprop", kwargs, np.float64, np.random.default_rng(4),
                                                       20, N_STEPS)
    assert_matches_reference("rmsprop", kwargs, params, state, ref_params, ref_state, np.float64, N_STEPS)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_scheduled_lr_scaling_and_clipping_match_reference(name, dtype, data):
    """Per-step ``lr=``, ``grad_scale``, ``clip_norm`` and ``clip_value`` follow the documented order."""
    kwargs = data.draw(_case(name).kwargs, label="kwargs")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    n = data.draw(st.integers(1, 40), label="n")
    decay = data.draw(st.sampled_from([1.0, 0.99, 0.9]), label="lr decay per step")
    grad_scale = data.draw(st.sampled_from([1.0, 0.5, 2.0, -1.0, 1 / 3]), label="grad_scale")
    clip_value = data.draw(st.one_of(st.none(), st.floats(0.1, 3.0)), label="clip_value")
    clip_norm = data.draw(st.one_of(st.none(), st.floats(1.0, 20.0)), label="clip_norm")
    base_lr = kwargs["lr"] if kwargs["lr"] > 0 else 0.01

    def options(t: int) -> dict[str, Any]:
        return {"lr": base_lr * decay ** (t - 1), "grad_scale": grad_scale, "clip_value": clip_value,
                "clip_norm": clip_norm}

    rng = np.random.default_rng(seed)
    opt, params, state, ref_params, ref_state = run_both(name, kwargs, dtype, rng, n, N_STEPS, options)
    assert opt.lr == kwargs["lr"], "the lr= override must not change the optimizer's lr"
    assert_matches_reference(name, kwargs, params, state, ref_params, ref_state, dtype, N_STEPS)


def _seen_gradient(grads, **options) -> np.ndarray:
    """The gradient fastgd's optimizers see: one plain SGD step with lr=1 from params = 0 gives -g."""
    params = np.zeros_like(grads)
    SGD(lr=1.0).step(params, grads, SGD().init(params), **options)
    return -params


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@SETTINGS
@given(data=st.data())
def test_gradient_scaling_and_clipping_match_reference(dtype, data):
    """``grad_scale``, then ``clip_norm`` (clip_grad_norm_'s rule), then ``clip_value``, on any scale."""
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    n = data.draw(st.integers(1, 100), label="n")
    magnitude = data.draw(st.sampled_from([1e-6, 1e-2, 1.0, 1e3]), label="gradient magnitude")
    grad_scale = data.draw(st.one_of(st.just(1.0), st.floats(-100.0, 100.0)), label="grad_scale")
    clip_value = data.draw(st.one_of(st.none(), st.floats(1e-3, 10.0)), label="clip_value")
    clip_norm = data.draw(st.one_of(st.none(), st.floats(1e-3, 100.0)), label="clip_norm")
    grads = (np.random.default_rng(seed).standard_normal(n) * magnitude).astype(dtype)
    seen = _seen_gradient(grads, grad_scale=grad_scale, clip_value=clip_value, clip_norm=clip_norm)
    expected = ref.scale_and_clip_grads(grads.astype(np.float64), grad_scale, clip_value, clip_norm)
    assert seen.dtype == np.dtype(dtype)
    assert_close(seen, expected, RTOL[np.dtype(dtype)], "gradient after scaling and clipping")
    if clip_value is not None:
        assert np.all(np.abs(seen) <= np.asarray(clip_value, dtype=dtype))


def test_clip_norm_is_applied_before_clip_value():
    grads = np.array([3.0, 4.0])  # norm 5
    # clip_norm first: (3, 4) * 1/(5 + 1e-6) -> (0.6, 0.8); then clip_value 0.7 -> (0.6, 0.7).
    np.testing.assert_allclose(_seen_gradient(grads, clip_norm=1.0, clip_value=0.7),
                               [3 / (5 + 1e-6), 0.7], rtol=1e-15)
    # The norm is that of the scaled gradient: 2 * (3, 4) has norm 10.
    np.testing.assert_allclose(_seen_gradient(grads, grad_scale=2.0, clip_norm=1.0),
                               [6 / (10 + 1e-6), 8 / (10 + 1e-6)], rtol=1e-15)
    # Below the threshold nothing changes, bitwise.
    np.testing.assert_array_equal(_seen_gradient(grads, clip_norm=100.0), grads)
    np.testing.assert_array_equal(_seen_gradient(grads, clip_value=10.0), grads)
    np.testing.assert_array_equal(_seen_gradient(grads, clip_value=3.5), [3.0, 3.5])
    np.testing.assert_array_equal(_seen_gradient(-grads, clip_value=3.5), [-3.0, -3.5])


def test_clip_norm_does_not_hide_non_finite_gradients():
    seen = _seen_gradient(np.array([np.nan, 1.0, 2.0]), clip_norm=1.0)
    assert np.isnan(seen[0])


# --- threads ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_threaded_and_serial_updates_are_bitwise_identical(name, dtype, data):
    """``fused_step(..., threaded=True)`` chunks the vector; the result must not depend on it."""
    kwargs = data.draw(_case(name).kwargs, label="kwargs")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    clip_value = data.draw(st.sampled_from([math.inf, 0.5]), label="clip_value")
    n = 3 * PARALLEL_CHUNK + 17  # several chunks and a ragged last one
    rng = np.random.default_rng(seed)
    opt = OPTIMIZERS[name](**kwargs)
    params = {flag: rng.standard_normal(n).astype(dtype) for flag in (False, True)}
    params[True][:] = params[False]
    slots = {flag: opt.init(params[flag]).slots for flag in (False, True)}
    hyper = opt.hyperparameters()
    for step in range(1, 4):
        grads = rng.standard_normal(n).astype(dtype)
        for threaded in (False, True):
            fused_step(opt.kernel_id, params[threaded], grads, slots[threaded], hyper, step, 0.05, 0.75,
                       clip_value, threaded)
        np.testing.assert_array_equal(params[True], params[False])
        np.testing.assert_array_equal(slots[True], slots[False])
    assert params[True].dtype == np.dtype(dtype) and slots[True].dtype == np.dtype(dtype)


def test_large_vectors_take_the_threaded_path_and_match_the_reference():
    n = PARALLEL_MIN_SIZE + 5
    _, params, state, ref_params, ref_state = run_both(
        "adam", {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01, "amsgrad": True},
        np.float64, np.random.default_rng(0), n, 3)
    assert_matches_reference("adam", {"amsgrad": True}, params, state, ref_params, ref_state, np.float64, 3)


# --- state, lr override ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_init_makes_state_in_the_params_dtype(name, dtype):
    opt = OPTIMIZERS[name]()
    params = np.arange(5, dtype=dtype)
    state = opt.init(params)
    assert isinstance(state, OptimizerState)
    assert state.step == 0
    assert state.slots.dtype == np.dtype(dtype)
    assert state.slots.shape == (opt.n_slots(), 5)
    assert state.slots.flags.c_contiguous
    np.testing.assert_array_equal(state.slots, opt.initial_slot_value())
    np.testing.assert_array_equal(params, np.arange(5), err_msg="init must not touch params")


def test_adagrad_state_starts_at_initial_accumulator_value():
    state = Adagrad(initial_accumulator_value=0.25).init(np.zeros(3, dtype=np.float32))
    np.testing.assert_array_equal(state.slots, np.full((1, 3), 0.25, dtype=np.float32))


@pytest.mark.parametrize("name", NAMES)
def test_state_counts_steps(name):
    opt = OPTIMIZERS[name]()
    params = np.ones(4)
    state = opt.init(params)
    for k in range(1, 6):
        assert opt.step(params, np.full(4, 0.5), state) is None  # in place
        assert state.step == k
    # A failed step changes nothing.
    before = params.copy(), state.slots.copy()
    with pytest.raises(ValueError, match="grads must match"):
        opt.step(params, np.ones(3), state)
    assert state.step == 5
    np.testing.assert_array_equal(params, before[0])
    np.testing.assert_array_equal(state.slots, before[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_lr_override_equals_an_optimizer_built_with_that_lr(name, dtype):
    rng = np.random.default_rng(1)
    start = rng.standard_normal(7).astype(dtype)
    grads = [rng.standard_normal(7).astype(dtype) for _ in range(5)]
    base = OPTIMIZERS[name](lr=0.5)
    other = OPTIMIZERS[name](lr=0.03)
    p1, p2 = start.copy(), start.copy()
    s1, s2 = base.init(p1), other.init(p2)
    for g in grads:
        base.step(p1, g, s1, lr=0.03)
        other.step(p2, g, s2)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(s1.slots, s2.slots)
    assert base.lr == 0.5
    # lr=0 freezes the parameters (AdamW's decoupled decay is scaled by the lr too).
    p3 = start.copy()
    s3 = base.init(p3)
    base.step(p3, grads[0], s3, lr=0.0)
    np.testing.assert_array_equal(p3, start)
    assert s3.step == 1


@pytest.mark.parametrize("name", NAMES)
def test_get_params_round_trips(name):
    opt = OPTIMIZERS[name]()
    clone = type(opt)(**opt.get_params())
    assert clone.get_params() == opt.get_params()
    assert np.array_equal(clone.hyperparameters(), opt.hyperparameters())
    assert type(opt).__name__ in repr(opt)


# --- validation ------------------------------------------------------------------------------------------------


INVALID_HYPERPARAMETERS = [
    (SGD, {"lr": -0.1}, "lr"),
    (SGD, {"lr": math.nan}, "lr"),
    (SGD, {"momentum": -0.5}, "momentum"),
    (SGD, {"momentum": 1.5}, r"momentum must be a finite real number in \[0, 1\]"),
    (SGD, {"dampening": -0.1}, "dampening"),
    (SGD, {"dampening": 1.5}, "dampening"),
    (SGD, {"weight_decay": -1e-3}, "weight_decay"),
    (SGD, {"nesterov": True}, "nesterov"),
    (SGD, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "nesterov"),
    (RMSprop, {"lr": -1.0}, "lr"),
    (RMSprop, {"alpha": 1.5}, "alpha"),
    (RMSprop, {"alpha": -0.1}, "alpha"),
    (RMSprop, {"eps": 0.0}, "eps"),
    (RMSprop, {"eps": -1e-8}, "eps"),
    (RMSprop, {"momentum": -0.9}, "momentum"),
    (RMSprop, {"momentum": 1.5}, r"momentum must be a finite real number in \[0, 1\]"),
    (RMSprop, {"weight_decay": -1.0}, "weight_decay"),
    (Adam, {"lr": -1e-3}, "lr"),
    (Adam, {"betas": (1.0, 0.999)}, r"betas\[0\] must be a finite real number in \[0, 1\)"),
    (Adam, {"betas": (-0.1, 0.999)}, r"betas\[0\]"),
    (Adam, {"betas": (0.9, 1.0)}, r"betas\[1\]"),
    (Adam, {"betas": (0.9, 1.5)}, r"betas\[1\]"),
    (Adam, {"betas": (0.9, math.nan)}, r"betas\[1\]"),
    (Adam, {"betas": (0.9,)}, "betas"),
    (Adam, {"betas": (0.9, 0.99, 0.999)}, "betas"),
    (Adam, {"betas": 0.9}, "betas"),
    (Adam, {"eps": 0.0}, r"eps must be a finite real number in \(0, inf\)"),
    (Adam, {"weight_decay": -0.1}, "weight_decay"),
    (AdamW, {"betas": (0.9, 1.0)}, r"betas\[1\]"),
    (AdamW, {"eps": -1.0}, "eps"),
    (AdamW, {"weight_decay": -0.01}, "weight_decay"),
    (Adagrad, {"lr": -0.01}, "lr"),
    (Adagrad, {"lr_decay": -0.1}, "lr_decay"),
    (Adagrad, {"weight_decay": -0.1}, "weight_decay"),
    (Adagrad, {"initial_accumulator_value": -1.0}, "initial_accumulator_value"),
    (Adagrad, {"eps": 0.0}, "eps"),
    (VelocitySGD, {"lr": -0.1}, "lr"),
    (VelocitySGD, {"momentum": -0.1}, "momentum"),
    (VelocitySGD, {"momentum": 1.5}, "momentum"),
    (FoldedAdam, {"betas": (1.0, 0.999)}, r"betas\[0\]"),
    (FoldedAdam, {"betas": (0.9, 1.0)}, r"betas\[1\]"),
    (FoldedAdam, {"betas": (0.9,)}, "betas"),
    (FoldedAdam, {"eps": 0.0}, "eps"),
]


@pytest.mark.parametrize(("cls", "kwargs", "match"), INVALID_HYPERPARAMETERS,
                         ids=[f"{c.__name__}-{kw}" for c, kw, _ in INVALID_HYPERPARAMETERS])
def test_invalid_hyperparameters_raise_value_error(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


NON_REAL_HYPERPARAMETERS = [
    (SGD, {"lr": "0.1"}, "lr"),
    (SGD, {"lr": None}, "lr"),
    (SGD, {"lr": True}, "lr"),
    (SGD, {"momentum": "0.9"}, "momentum"),
    (RMSprop, {"alpha": [0.9]}, "alpha"),
    (RMSprop, {"eps": 1e-8 + 0j}, "eps"),
    (Adam, {"betas": ("0.9", 0.999)}, r"betas\[0\]"),
    (Adam, {"betas": (0.9, None)}, r"betas\[1\]"),
    (AdamW, {"weight_decay": "0.01"}, "weight_decay"),
    (Adagrad, {"lr_decay": np.array([0.1])}, "lr_decay"),
    (Adagrad, {"initial_accumulator_value": False}, "initial_accumulator_value"),
    (VelocitySGD, {"momentum": "0.9"}, "momentum"),
    (FoldedAdam, {"eps": None}, "eps"),
]


@pytest.mark.parametrize(("cls", "kwargs", "match"), NON_REAL_HYPERPARAMETERS,
                         ids=[f"{c.__name__}-{kw}" for c, kw, _ in NON_REAL_HYPERPARAMETERS])
def test_non_real_hyperparameters_raise_type_error(cls, kwargs, match):
    with pytest.raises(TypeError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_optimizer_validates_lr_and_weight_decay(name):
    cls = OPTIMIZERS[name]
    with pytest.raises(ValueError, match="lr"):
        cls(lr=-1.0)
    with pytest.raises(TypeError, match="lr"):
        cls(lr="fast")
    if "weight_decay" in inspect.signature(cls).parameters:
        with pytest.raises(ValueError, match="weight_decay"):
            cls(weight_decay=-1.0)
    # NumPy scalars are real numbers too.
    assert cls(lr=np.float32(0.5)).lr == 0.5
    assert isinstance(cls(lr=np.float64(0.5)).lr, float)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_params_raise_clear_errors(name):
    opt = OPTIMIZERS[name]()
    with pytest.raises(TypeError, match=r"numpy\.ndarray"):
        opt.init([1.0, 2.0])
    with pytest.raises(TypeError, match="float32 or float64"):
        opt.init(np.arange(3))
    with pytest.raises(TypeError, match="float32 or float64"):
        opt.init(np.ones(3, dtype=np.float16))
    with pytest.raises(ValueError, match="1-D C-contiguous"):
        opt.init(np.ones((2, 3)))
    with pytest.raises(ValueError, match="C-contiguous"):
        opt.init(np.ones(6)[::2])

    params = np.ones(3)
    state = opt.init(params)
    with pytest.raises(TypeError, match="params must have dtype"):
        opt.step(np.arange(3), np.ones(3), state)
    with pytest.raises(ValueError, match="C-contiguous"):
        opt.step(np.ones(6)[::2], np.ones(3), state)
    with pytest.raises(ValueError, match="1-D"):
        opt.step(np.ones((1, 3)), np.ones((1, 3)), state)
    frozen = np.ones(3)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        opt.step(frozen, np.ones(3), state)

    with pytest.raises(ValueError, match="grads must match params"):
        opt.step(params, np.ones(4), state)
    with pytest.raises(ValueError, match="grads must match params"):
        opt.step(params, np.ones(3, dtype=np.float32), state)
    with pytest.raises(TypeError, match="grads must have dtype"):
        opt.step(params, np.ones(3, dtype=np.int64), state)
    with pytest.raises(TypeError, match=r"grads must be a numpy\.ndarray"):
        opt.step(params, [1.0, 1.0, 1.0], state)
    with pytest.raises(ValueError, match="grads must be a 1-D C-contiguous"):
        opt.step(params, np.ones(6)[::2], state)

    with pytest.raises(ValueError, match="state does not belong"):
        opt.step(params, np.ones(3), opt.init(np.ones(4)))
    with pytest.raises(ValueError, match="state does not belong"):
        opt.step(params, np.ones(3), opt.init(np.ones(3, dtype=np.float32)))

    assert state.step == 0
    np.testing.assert_array_equal(params, 1.0)


def test_state_of_another_configuration_is_rejected():
    params = np.ones(3)
    with pytest.raises(ValueError, match="state does not belong"):
        Adam(amsgrad=True).step(params, np.ones(3), Adam().init(params))
    with pytest.raises(ValueError, match="state does not belong"):
        SGD(momentum=0.9).step(params, np.ones(3), SGD().init(params))
    with pytest.raises(ValueError, match="state does not belong"):
        RMSprop(centered=True).step(params, np.ones(3), RMSprop().init(params))
    # Same class, same number of rows, rows that mean other things: (square_avg, momentum_buffer) is not
    # (square_avg, grad_avg).
    state = RMSprop(momentum=0.9).init(params)
    with pytest.raises(ValueError, match=r"made by RMSprop\(.*momentum=0\.9.*square_avg, momentum_buffer"):
        RMSprop(centered=True).step(params, np.ones(3), state)
    assert state.step == 0
    np.testing.assert_array_equal(state.slots, 0.0)


# --- which optimizer made a state --------------------------------------------------------------------------------

#: Configurations of each optimizer by number of state rows, so that a foreign state can be offered with the
#: shape the stepping optimizer expects (the case that a shape check alone lets through).
SLOT_CONFIGS: dict[str, list[dict[str, Any]]] = {
    "sgd": [{}, {"momentum": 0.9}],
    "rmsprop": [{}, {"momentum": 0.9}, {"centered": True}, {"momentum": 0.9, "centered": True}],
    "adam": [{}, {"amsgrad": True}],
    "adamw": [{}, {"amsgrad": True}],
    "adagrad": [{}],
    "velocity_sgd": [{}],
    "folded_adam": [{}],
}
PAIRS = list(itertools.permutations(NAMES, 2))


def _configs_alike(maker: str, stepper: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments of ``maker`` and ``stepper`` with the same number of state rows (defaults if none)."""
    for kw_maker, kw_stepper in itertools.product(SLOT_CONFIGS.get(maker, [{}]), SLOT_CONFIGS.get(stepper, [{}])):
        if OPTIMIZERS[maker](**kw_maker).n_slots() == OPTIMIZERS[stepper](**kw_stepper).n_slots():
            return kw_maker, kw_stepper
    return {}, {}


@pytest.mark.parametrize("name", NAMES)
def test_state_records_the_optimizer_that_made_it(name):
    for kwargs in SLOT_CONFIGS.get(name, [{}]):
        opt = OPTIMIZERS[name](**kwargs)
        state = opt.init(np.zeros(4))
        maker = state.made_by
        assert isinstance(maker, StateMaker)
        assert maker.optimizer == type(opt).__name__
        assert maker.hyperparameters == tuple(opt.get_params().items())
        assert maker.rows == opt.slot_names()
        assert len(maker.rows) == opt.n_slots() == state.slots.shape[0]
        assert type(opt).__name__ in str(maker)


@pytest.mark.parametrize(("maker", "stepper"), PAIRS, ids=[f"{a}-state-to-{b}" for a, b in PAIRS])
def test_a_state_made_by_another_optimizer_is_refused(maker, stepper):
    kw_maker, kw_stepper = _configs_alike(maker, stepper)
    foreign, opt = OPTIMIZERS[maker](**kw_maker), OPTIMIZERS[stepper](**kw_stepper)
    params = np.linspace(-1.0, 1.0, 5)
    state = foreign.init(params)
    state.slots[:] = 0.25
    message = (rf"state does not belong to this optimizer: it was made by {type(foreign).__name__}\(.*"
               rf"this optimizer is {type(opt).__name__}\(.*Make a state for this optimizer with its init: "
               r"state = opt\.init\(params\)")
    with pytest.raises(ValueError, match=message):
        opt.step(params, np.ones(5), state)
    # Nothing changed.
    assert state.step == 0
    np.testing.assert_array_equal(state.slots, 0.25)
    np.testing.assert_array_equal(params, np.linspace(-1.0, 1.0, 5))
    # The optimizer's own state works.
    opt.step(params, np.ones(5), opt.init(params))


def test_adam_refuses_a_centered_rmsprop_state_and_other_look_alikes():
    """The example of the bug: Adam's step used to accept a centered RMSprop's state (2 rows each)."""
    assert OPTIMIZERS["rmsprop"](**_configs_alike("rmsprop", "adam")[0]).n_slots() == Adam().n_slots()
    params = np.ones(4)
    with pytest.raises(ValueError, match=r"made by RMSprop\(.*centered=True.*this optimizer is Adam\("):
        Adam().step(params, np.ones(4), RMSprop(centered=True).init(params))
    with pytest.raises(ValueError, match=r"made by Adam\(.*this optimizer is AdamW\("):  # even with the same kernel
        AdamW().step(params, np.ones(4), Adam().init(params))
    with pytest.raises(ValueError, match=r"made by SGD\(.*this optimizer is VelocitySGD\("):
        VelocitySGD().step(params, np.ones(4), SGD(momentum=0.9).init(params))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_a_state_from_the_same_optimizer_with_other_step_sizes_still_works(name, dtype):
    """Hyperparameters that leave the rows' meaning alone may change (a run continued with another lr)."""
    rng = np.random.default_rng(3)
    start = rng.standard_normal(6).astype(dtype)
    grads = [rng.standard_normal(6).astype(dtype) for _ in range(4)]
    first, second = OPTIMIZERS[name](lr=0.05), OPTIMIZERS[name](lr=0.01)
    p1, p2 = start.copy(), start.copy()
    s1, s2 = first.init(p1), first.init(p2)
    for g in grads[:2]:
        first.step(p1, g, s1)
        first.step(p2, g, s2)
    for g in grads[2:]:
        second.step(p1, g, s1)              # a state that `first` made
        first.step(p2, g, s2, lr=0.01)      # the same update through the lr override
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(s1.slots, s2.slots)
    assert s1.step == s2.step == 4


@pytest.mark.parametrize("name", NAMES)
def test_a_state_of_unknown_maker_is_accepted(name):
    """``made_by=None``: a state built directly (as the estimators copy theirs) steps as one from init."""
    opt = OPTIMIZERS[name]()
    rng = np.random.default_rng(4)
    p1 = rng.standard_normal(5)
    p2 = p1.copy()
    s1 = opt.init(p1)
    s2 = OptimizerState(slots=opt.init(p2).slots.copy())
    assert s2.made_by is None
    for _ in range(3):
        g = rng.standard_normal(5)
        opt.step(p1, g, s1)
        opt.step(p2, g, s2)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(s1.slots, s2.slots)


@pytest.mark.parametrize("name", NAMES)
def test_states_pickle_with_their_maker(name):
    opt = OPTIMIZERS[name]()
    rng = np.random.default_rng(5)
    params = rng.standard_normal(6)
    state = opt.init(params)
    opt.step(params, rng.standard_normal(6), state)
    params_copy = params.copy()
    restored = pickle.loads(pickle.dumps(state))
    assert restored.made_by == state.made_by
    assert restored.step == state.step == 1
    np.testing.assert_array_equal(restored.slots, state.slots)
    g = rng.standard_normal(6)
    opt.step(params, g, state)
    opt.step(params_copy, g, restored)
    np.testing.assert_array_equal(params, params_copy)
    np.testing.assert_array_equal(restored.slots, state.slots)
    # The record survives pickling: another optimizer still refuses it.
    other = OPTIMIZERS[next(n for n in NAMES if n != name)]()
    with pytest.raises(ValueError, match=f"made by {type(opt).__name__}"):
        other.step(params_copy, g, restored)
    # A state pickled before states recorded their maker unpickles as "maker unknown" and steps.
    old = opt.init(params)
    del old.__dict__["made_by"]
    old = pickle.loads(pickle.dumps(old))
    assert old.made_by is None
    opt.step(params, g, old)
    assert old.step == 1


# --- non-finite and out-of-range hyperparameters ------------------------------------------------------------------


def _real_hyperparameters() -> list[tuple[str, str, str]]:
    """(optimizer name, constructor argument, name in the error) for every real-valued hyperparameter.

    Read from the constructors' signatures, so a newly registered optimizer is covered: floats, and
    tuples of floats (``betas``) element by element.
    """
    cases = []
    for name in NAMES:
        for pname, param in inspect.signature(OPTIMIZERS[name].__init__).parameters.items():
            default = param.default
            if isinstance(default, float):
                cases.append((name, pname, pname))
            elif isinstance(default, tuple):
                cases.extend((name, pname, f"{pname}[{i}]") for i in range(len(default)))
    return cases


REAL_HYPERPARAMETERS = _real_hyperparameters()
NON_FINITE = [math.inf, -math.inf, math.nan, np.float64(np.inf), np.float32(np.nan)]


def test_every_optimizer_has_real_hyperparameters_to_check():
    found = {name for name, _, _ in REAL_HYPERPARAMETERS}
    assert found == set(NAMES)
    assert ("adam", "betas", "betas[1]") in REAL_HYPERPARAMETERS
    assert ("rmsprop", "alpha", "alpha") in REAL_HYPERPARAMETERS


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
@pytest.mark.parametrize(("name", "argument", "label"), REAL_HYPERPARAMETERS,
                         ids=[f"{n}-{label}" for n, _, label in REAL_HYPERPARAMETERS])
def test_non_finite_hyperparameters_are_rejected(name, argument, label, value):
    cls = OPTIMIZERS[name]
    default = inspect.signature(cls.__init__).parameters[argument].default
    if isinstance(default, tuple):
        index = int(label[len(argument) + 1:-1])
        bad = tuple(value if i == index else v for i, v in enumerate(default))
    else:
        bad = value
    message = rf"^{re.escape(label)} must be a finite real number in [\[(]\S+, \S+[\])], got "
    with pytest.raises(ValueError, match=message):
        cls(**{argument: bad})


#: The allowed range of each hyperparameter, as the error message states it.
RANGES = {
    ("sgd", "lr"): "[0, inf)", ("sgd", "momentum"): "[0, 1]", ("sgd", "dampening"): "[0, 1]",
    ("sgd", "weight_decay"): "[0, inf)",
    ("rmsprop", "alpha"): "[0, 1]", ("rmsprop", "eps"): "(0, inf)", ("rmsprop", "momentum"): "[0, 1]",
    ("adam", "betas[0]"): "[0, 1)", ("adam", "betas[1]"): "[0, 1)", ("adam", "eps"): "(0, inf)",
    ("adamw", "weight_decay"): "[0, inf)",
    ("adagrad", "lr_decay"): "[0, inf)", ("adagrad", "initial_accumulator_value"): "[0, inf)",
    ("adagrad", "eps"): "(0, inf)",
    ("velocity_sgd", "momentum"): "[0, 1]",
    ("folded_adam", "betas[0]"): "[0, 1)", ("folded_adam", "eps"): "(0, inf)",
}


@pytest.mark.parametrize(("name", "label"), list(RANGES), ids=[f"{n}-{label}" for n, label in RANGES])
def test_error_states_the_allowed_range(name, label):
    cls = OPTIMIZERS[name]
    argument = label.split("[")[0]
    default = inspect.signature(cls.__init__).parameters[argument].default
    bad = (math.inf, default[1]) if label.endswith("[0]") else (default[0], math.inf) if "[" in label else math.inf
    with pytest.raises(ValueError, match=re.escape(f"{label} must be a finite real number in {RANGES[name, label]}")):
        cls(**{argument: bad})


def test_infinite_clip_bounds_clip_nothing():
    rng = np.random.default_rng(6)
    start, g = rng.standard_normal(5), 10.0 * rng.standard_normal(5)
    p1, p2 = start.copy(), start.copy()
    opt = Adam(lr=0.1)
    s1, s2 = opt.init(p1), opt.init(p2)
    opt.step(p1, g, s1)
    opt.step(p2, g, s2, clip_value=math.inf, clip_norm=math.inf)
    np.testing.assert_array_equal(p1, p2)


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"lr": -0.1}, ValueError, "lr"),
    ({"lr": math.nan}, ValueError, "lr"),
    ({"lr": math.inf}, ValueError, "lr must be a finite"),
    ({"lr": "0.1"}, TypeError, "lr"),
    ({"grad_scale": math.nan}, ValueError, "grad_scale"),
    ({"grad_scale": math.inf}, ValueError, "grad_scale must be a finite"),
    ({"grad_scale": -math.inf}, ValueError, "grad_scale must be a finite"),
    ({"grad_scale": "2"}, TypeError, "grad_scale"),
    ({"clip_value": 0.0}, ValueError, "clip_value"),
    ({"clip_value": -1.0}, ValueError, "clip_value"),
    ({"clip_value": "1"}, TypeError, "clip_value"),
    ({"clip_norm": 0.0}, ValueError, "clip_norm"),
    ({"clip_norm": -1.0}, ValueError, "clip_norm"),
    ({"clip_norm": [1.0]}, TypeError, "clip_norm"),
])
def test_invalid_step_options_raise(options, error, match):
    opt = Adam()
    params = np.ones(3)
    state = opt.init(params)
    with pytest.raises(error, match=match):
        opt.step(params, np.ones(3), state, **options)
    assert state.step == 0
    np.testing.assert_array_equal(params, 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_first_moment_follows_torch_lerp_exactly_when_beta1_is_small(dtype):
    """torch.lerp switches formula at weight 0.5, which makes m_t = g_t exactly when beta1 = 0."""
    from fastgd.optim import Adam

    optimizer = Adam(lr=0.0, betas=(0.0, 0.999))
    params = np.zeros(1, dtype=dtype)
    state = optimizer.init(params)
    optimizer.step(params, np.ones(1, dtype=dtype), state)
    optimizer.step(params, np.full(1, 1e-8, dtype=dtype), state)
    assert state.slots[0, 0] == dtype(1e-8)


# --- subnormal numbers -----------------------------------------------------------------------------------------
#
# Every optimizer kernel flushes the values it stores (parameters and state rows) to zero when their magnitude is
# below the dtype's smallest normal number (fastgd._numeric.cast.flush_subnormal): arithmetic on subnormal numbers
# is slow on many CPUs, and a parameter that stops receiving gradient decays into that range and stays there. The
# reference rules do not flush; these tests compare one step with the reference applied to the same stored state,
# its outputs flushed.

#: Constructor arguments that decay parameters and moments quickly, every state row in use.
SUBNORMAL_KWARGS = {
    "sgd": {"lr": 0.5, "momentum": 0.9, "weight_decay": 0.5},
    "rmsprop": {"lr": 1e-2, "weight_decay": 0.1, "momentum": 0.5, "centered": True},
    "adam": {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True},
    "adamw": {"lr": 0.5, "weight_decay": 0.5},
    "adagrad": {"lr": 0.1, "weight_decay": 0.1, "eps": 1.0},  # eps = 1 keeps the steps at the scale of the values
    "velocity_sgd": {"lr": 0.1, "momentum": 0.9},
    "folded_adam": {"lr": 1e-2},
}


def _flushed(values: np.ndarray, dtype) -> np.ndarray:
    """``values`` with every entry below the smallest normal number of ``dtype`` in magnitude set to 0."""
    return np.where(np.abs(values) < np.finfo(dtype).tiny, 0.0, values)


def _assert_no_subnormal(values: np.ndarray, what: str) -> None:
    magnitude = np.abs(values)
    subnormal = (magnitude > 0) & (magnitude < np.finfo(values.dtype).tiny)
    assert not subnormal.any(), f"{what}: subnormal values stored at {np.flatnonzero(subnormal)[:5]}"


def test_every_registered_optimizer_has_subnormal_test_arguments():
    assert set(SUBNORMAL_KWARGS) == set(OPTIMIZERS)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_values_below_the_smallest_normal_number_are_stored_as_zero(name, dtype):
    """Parameters and gradients from 1e-4 to 1e4 times the smallest normal number, three steps.

    Each step is compared with the reference rule applied to fastgd's stored parameters and state: outputs the
    reference puts below half the smallest normal number must be exactly 0, outputs above twice it must match
    (outputs in between round either way), and no stored value may be subnormal.
    """
    dtype = np.dtype(dtype)
    tiny = float(np.finfo(dtype).tiny)
    rtol = RTOL[dtype]
    case, kwargs = _case(name), SUBNORMAL_KWARGS[name]
    rng = np.random.default_rng(7)
    magnitudes = np.logspace(-4, 4, 41)
    params = (tiny * magnitudes * rng.choice([-1.0, 1.0], magnitudes.size)).astype(dtype)
    assert np.count_nonzero(np.abs(params) < tiny) > 5, "the test must start from subnormal parameters too"
    opt = OPTIMIZERS[name](**kwargs)
    state = opt.init(params)
    ref_state: dict[str, Any] = {}
    names = case.slot_names(opt.get_params())
    checked_zero = checked_normal = 0
    for t in range(1, 4):
        grads = (tiny * rng.permutation(magnitudes) * rng.choice([-1.0, 1.0], magnitudes.size)).astype(dtype)
        if t > 1:
            grads[::2] = 0.0  # half the entries stop receiving gradient and decay
            ref_state.update({key: row.astype(np.float64) for key, row in zip(names, state.slots, strict=True)})
        expected = case.reference(params.astype(np.float64), grads.astype(np.float64), ref_state, **kwargs)
        opt.step(params, grads, state)
        outputs = [("params", params, expected)]
        outputs += [(f"state {key!r}", row, ref_state[key]) for key, row in zip(names, state.slots, strict=True)]
        for what, actual, reference in outputs:
            what = f"{name} step {t} {what}"
            _assert_no_subnormal(actual, what)
            flushed = _flushed(reference, dtype)
            below = np.abs(reference) < tiny / 2
            above = np.abs(reference) > 2 * tiny
            np.testing.assert_array_equal(actual[below], 0.0, err_msg=what)
            scale = float(np.max(np.abs(reference)))
            np.testing.assert_allclose(actual[above], flushed[above], rtol=rtol, atol=rtol * scale, err_msg=what)
            checked_zero += int(np.count_nonzero(below & (reference != 0)))
            checked_normal += int(np.count_nonzero(above))
    assert checked_zero > 0 and checked_normal > 0, (checked_zero, checked_normal)


@pytest.mark.parametrize(("name", "kwargs"), [("rmsprop", {"lr": 1e-2, "weight_decay": 1e-2}),
                                              ("adamw", {"lr": 1e-2, "weight_decay": 1e-1}),
                                              ("adam", {"lr": 1e-2})])
def test_parameters_that_stop_receiving_gradient_decay_to_exact_zeros(name, kwargs):
    """The case of benchmarks/denormals.py: float32, gradients stop after 10 steps, 2500 steps of decay.

    Without the flush, RMSprop's parameters (and AdamW's and Adam's first moments) end up subnormal and stay
    there, as the NumPy reference rule shows; fastgd must store exact zeros instead and leave the other state
    rows as the reference has them.
    """
    rng = np.random.default_rng(0)
    n, dtype = 8, np.float32
    opt = OPTIMIZERS[name](**kwargs)
    params = rng.standard_normal(n).astype(dtype)
    ref_params = params.copy()
    state = opt.init(params)
    ref_state: dict[str, Any] = {}
    for t in range(1, 2501):
        grads = rng.standard_normal(n).astype(dtype) if t <= 10 else np.zeros(n, dtype)
        opt.step(params, grads, state)
        ref_params = CASES[name].reference(ref_params, grads, ref_state, **kwargs).astype(dtype)
        ref_state.update({k: v.astype(dtype) for k, v in ref_state.items() if isinstance(v, np.ndarray)})
    reference_rows = [ref_params] + [ref_state[key] for key in CASES[name].slot_names(opt.get_params())]
    tiny = np.finfo(dtype).tiny
    assert any(np.any((np.abs(row) > 0) & (np.abs(row) < tiny)) for row in reference_rows), \
        "the reference no longer reaches the subnormal range: the test lost its point"
    for actual, reference in zip([params, *state.slots], reference_rows, strict=True):
        _assert_no_subnormal(actual, name)
        dead = np.abs(reference) < tiny
        np.testing.assert_array_equal(actual[dead], 0.0)
        np.testing.assert_allclose(actual[~dead], reference[~dead], rtol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_flush_subnormal_keeps_normal_numbers_zero_nan_and_infinities(dtype):
    from fastgd._config import jit
    from fastgd._numeric.cast import flush_subnormal, tiny_like

    @jit(cache=False)
    def flush_all(values):
        tiny = tiny_like(values)
        out = np.empty_like(values)
        for i in range(values.size):
            out[i] = flush_subnormal(values[i], tiny)
        return out

    info = np.finfo(dtype)
    smallest_subnormal = np.nextafter(dtype(0), dtype(1))
    values = np.array([info.tiny, -info.tiny, np.nextafter(info.tiny, dtype(0)), -smallest_subnormal,
                       smallest_subnormal, 0.0, -0.0, 1.0, -info.max, np.inf, -np.inf, np.nan], dtype=dtype)
    expected = np.array([info.tiny, -info.tiny, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, -info.max, np.inf, -np.inf, np.nan],
                        dtype=dtype)
    out = flush_all(values)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(getattr(flush_all, "py_func", flush_all)(values), expected)  # plain Python too


@pytest.mark.skipif(_NO_JIT, reason="inspects Numba's type inference, which NUMBA_DISABLE_JIT=1 turns off")
@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam", "adagrad", "velocity_sgd", "folded_adam"])
def test_float32_kernels_compute_in_float32(name):
    """No loop variable of a float32 kernel is promoted to float64 (it would halve the vector width).

    Only the scalar set-up before the loop (step-size and bias-correction arithmetic) may use float64.
    """
    import numba

    kernel = OPTIMIZERS[name].update_kernel
    compiled = numba.njit(kernel.py_func)
    params = np.zeros(8, np.float32)
    compiled(params, np.ones(8, np.float32), np.zeros((3, 8), np.float32), OPTIMIZERS[name]().hyperparameters(),
             1, 0.01, 1.0, np.inf, 0, 8)
    typemap = compiled.overloads[compiled.signatures[0]].type_annotation.typemap
    promoted = {var.split(".")[0] for var, typ in typemap.items()
                if typ == numba.float64 and not var.startswith(("$", "arg."))}
    assert promoted <= {"lr", "grad_scale", "clip_value", "beta1", "beta2", "bias_correction1",
                        "bias_correction2_sqrt"}, promoted

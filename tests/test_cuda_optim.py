"""Tests of the fused CUDA optimizer kernels (:mod:`fastgd.cuda.optim`) and of device arrays in :mod:`fastgd.optim`.

Every optimizer of the registry :data:`fastgd.optim.OPTIMIZERS` runs the same
steps on the device and on the CPU (``opt.step`` on NumPy arrays) from the same
start, in several hyperparameter configurations (:data:`CONFIGS`; a newly
registered optimizer without an entry fails), and one configuration each is
checked against the NumPy references of ``tests/_reference.py``.

Without a GPU, ``tests/conftest.py`` turns on numba's CUDA simulator, which runs
each CUDA thread as a Python thread (with the small launches of
:data:`fastgd.cuda.optim.THREADS_PER_BLOCK`): sizes here stay in the hundreds.

Tolerances
----------
Device against CPU, each array with ``atol = rtol * max(1, max|cpu|)`` (as in
``tests/test_optim.py``):

* on a GPU, float64 ``rtol = 1e-10`` and float32 ``rtol = 1e-5``: NVVM contracts
  multiply-adds into fused multiply-adds, and the CPU kernels evaluate a few
  float32 expressions in float64 (Numba's type unification), so the last bits
  differ and the differences are carried through 20 steps;
* in the simulator, which computes like the CPU, float64 ``rtol = 1e-13`` and
  float32 ``rtol = 1e-6``. It agrees bit for bit without ``clip_norm``; with it
  the gradient norm is summed in another order (and in float64 for float32
  gradients), and the largest difference seen is 1.5e-16 (float64) and 1.1e-7
  (float32).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from typing import Any

import _reference as ref
import numpy as np
import pytest

import fastgd.cuda
from fastgd.optim import OPTIMIZERS, SGD, Adagrad, Adam, OptimizerState
from fastgd.optim._base import clip_coefficient
from fastgd.optim._registry import KERNELS

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not fastgd.cuda.is_available(), reason=f"CUDA backend unavailable: "
                       f"{fastgd.cuda.unavailable_reason()}"),
]

cuda = pytest.importorskip("numba.cuda")
cuda_optim = pytest.importorskip("fastgd.cuda.optim")

if fastgd.cuda.simulated():
    RTOL = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 1e-6}
else:
    RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
DTYPES = [np.float64, np.float32]
N_PARAMS = 200
N_STEPS = 20


def scheduled(lr: float, grad_scale: float = 1.0, clip_value: float | None = None,
              clip_norm: float | None = None) -> dict[str, Any]:
    """Step options: a learning rate that changes every step, and the given scaling and clipping."""
    return {"lr": lr, "grad_scale": grad_scale, "clip_value": clip_value, "clip_norm": clip_norm}


#: Per registered optimizer: (constructor kwargs, step options) configurations run on device and CPU.
#: Together they take every branch of every kernel.
CONFIGS: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {
    "sgd": [
        ({"lr": 0.05, "weight_decay": 0.01}, scheduled(0.05, clip_value=1.0)),
        ({"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}, scheduled(0.05, grad_scale=0.5)),
        ({"lr": 0.05, "momentum": 0.8, "nesterov": True}, scheduled(0.05, clip_norm=3.0)),
    ],
    "rmsprop": [
        ({"lr": 0.01}, scheduled(0.01, grad_scale=2.0)),
        ({"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
         scheduled(0.01, clip_value=1.5)),
        ({"lr": 0.01, "alpha": 0.3, "centered": True, "eps": 1e-6}, scheduled(0.01, clip_norm=5.0)),
    ],
    "adam": [
        ({"lr": 0.01}, scheduled(0.01, grad_scale=0.25)),
        ({"lr": 0.01, "betas": (0.2, 0.99), "weight_decay": 0.05, "amsgrad": True},
         scheduled(0.01, clip_value=1.0)),
        ({"lr": 0.01, "betas": (0.0, 0.9), "eps": 1e-6}, scheduled(0.01, clip_norm=4.0)),
    ],
    "adamw": [
        ({"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}, scheduled(0.01, grad_scale=3.0, clip_value=2.0)),
        ({"lr": 0.01, "betas": (0.3, 0.95)}, scheduled(0.01, clip_norm=2.0)),
    ],
    "adagrad": [
        ({"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01, "initial_accumulator_value": 0.5},
         scheduled(0.1, clip_value=1.0)),
        ({"lr": 0.1, "eps": 1e-6}, scheduled(0.1, grad_scale=0.5, clip_norm=3.0)),
    ],
    "velocity_sgd": [
        ({"lr": 0.05, "momentum": 0.9, "nesterov": True}, scheduled(0.05, grad_scale=0.5)),
        ({"lr": 0.05, "momentum": 0.7, "nesterov": False}, scheduled(0.05, clip_value=0.8)),
    ],
    "folded_adam": [
        ({"lr": 0.01}, scheduled(0.01, clip_value=1.0)),
        ({"lr": 0.01, "betas": (0.5, 0.9), "eps": 1e-6}, scheduled(0.01, grad_scale=2.0, clip_norm=6.0)),
    ],
}

NAMES = sorted(OPTIMIZERS)
CONFIG_IDS = [(name, i) for name in NAMES for i in range(len(CONFIGS.get(name, [None])))]


def _configs(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    if name not in CONFIGS:
        pytest.fail(f"optimizer {name!r} is registered in fastgd.optim.OPTIMIZERS but has no configuration in "
                    "tests/test_cuda_optim.py::CONFIGS (nor, perhaps, a CUDA kernel in fastgd.cuda.optim).")
    return CONFIGS[name]


def step_options(options: dict[str, Any], t: int) -> dict[str, Any]:
    """Options of update ``t``: the learning rate follows a schedule (the ``lr`` override of each step)."""
    return {**options, "lr": options["lr"] * (1.0 + 0.5 * math.sin(t))}


def assert_close(actual: np.ndarray, desired: np.ndarray, rtol: float, what: str) -> None:
    """``assert_allclose`` with ``atol = rtol * max(1, max|desired|)``."""
    assert actual.shape == desired.shape, what
    scale = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale, err_msg=what)


def gradient_sequence(rng: np.random.Generator, dtype, n: int, n_steps: int) -> list[np.ndarray]:
    """Gradients of varied magnitude (so that clipping bites on some components and not others)."""
    return [(rng.standard_normal(n) * (1.0 + 2.0 * rng.random(n))).astype(dtype) for _ in range(n_steps)]


# --- the registry ---------------------------------------------------------------------------------------------


def test_every_registered_optimizer_has_a_cuda_kernel_and_configurations():
    for name in NAMES:
        _configs(name)
        opt = OPTIMIZERS[name]()
        assert cuda_optim.has_cuda_kernel(opt.kernel_id), f"{name} has no CUDA kernel"
    for kernel_id, kernel in enumerate(KERNELS):
        assert cuda_optim.has_cuda_kernel(kernel_id), f"CPU kernel {kernel.__name__} has no CUDA counterpart"
    assert not cuda_optim.has_cuda_kernel(len(KERNELS))
    with pytest.raises(NotImplementedError, match="no CUDA implementation"):
        cuda_optim.device_step(len(KERNELS), None, None, None, np.zeros(0), 1, 0.1, 1.0, math.inf)


# --- device against CPU ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "index"), CONFIG_IDS, ids=[f"{n}-{i}" for n, i in CONFIG_IDS])
def test_device_steps_match_cpu_steps(name, index, dtype):
    kwargs, options = _configs(name)[index]
    rng = np.random.default_rng(100 + index)
    opt = OPTIMIZERS[name](**kwargs)
    params = rng.standard_normal(N_PARAMS).astype(dtype)
    d_params = cuda.to_device(params)
    state = opt.init(params)
    d_state = opt.init(d_params)
    for t, grads in enumerate(gradient_sequence(rng, dtype, N_PARAMS, N_STEPS), start=1):
        d_grads = cuda.to_device(grads)
        opt.step(params, grads, state, **step_options(options, t))
        opt.step(d_params, d_grads, d_state, **step_options(options, t))
        np.testing.assert_array_equal(d_grads.copy_to_host(), grads, err_msg="the device step modified grads")
    rtol = RTOL[np.dtype(dtype)]
    assert d_state.step == state.step == N_STEPS
    device_params = d_params.copy_to_host()
    device_slots = d_state.slots.copy_to_host()
    assert device_params.dtype == device_slots.dtype == np.dtype(dtype)
    assert device_slots.shape == state.slots.shape
    assert_close(device_params, params, rtol, f"{name} params")
    for row in range(state.slots.shape[0]):
        assert_close(device_slots[row], state.slots[row], rtol, f"{name} state row {row}")
    assert np.all(np.isfinite(device_params))


#: One configuration per optimizer for the comparison with the NumPy references (the reference's keyword names).
REFERENCE_CONFIG_INDEX = {"sgd": 1, "rmsprop": 1, "adam": 1, "adamw": 0, "adagrad": 0, "velocity_sgd": 0,
                          "folded_adam": 1}


@pytest.mark.parametrize("name", NAMES)
def test_device_steps_match_the_numpy_reference(name):
    """float64 on the device against tests/_reference.py (PyTorch's and scikit-learn's published rules)."""
    kwargs, options = _configs(name)[REFERENCE_CONFIG_INDEX.get(name, 0)]
    reference = getattr(ref, name)
    rng = np.random.default_rng(7)
    opt = OPTIMIZERS[name](**kwargs)
    ref_params = rng.standard_normal(N_PARAMS)
    d_params = cuda.to_device(ref_params)
    d_state = opt.init(d_params)
    ref_state: dict[str, Any] = {}
    for t, grads in enumerate(gradient_sequence(rng, np.float64, N_PARAMS, N_STEPS), start=1):
        step = step_options(options, t)
        opt.step(d_params, cuda.to_device(grads), d_state, **step)
        g = ref.scale_and_clip_grads(grads, step["grad_scale"], step["clip_value"], step["clip_norm"])
        ref_params = reference(ref_params, g, ref_state, **{**kwargs, "lr": step["lr"]})
    assert ref_state["step"] == d_state.step == N_STEPS
    assert_close(d_params.copy_to_host(), ref_params, RTOL[np.dtype(np.float64)], f"{name} params vs the reference")


# --- dtypes, initial state, scale_ref, slices ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_float32_kernels_get_float32_scalars(name):
    """float32 stays float32 on the device: every float scalar handed to a float32 kernel is an np.float32."""
    for kwargs, _ in _configs(name):
        opt = OPTIMIZERS[name](**kwargs)
        scalars_of = cuda_optim.SCALARS[type(opt).update_kernel]
        for step in (1, 2, 50):
            for dtype in (np.float32, np.float64):
                scalars = scalars_of(opt.hyperparameters(), step, 0.01, np.dtype(dtype))
                floats = [s for s in scalars if not isinstance(s, bool)]
                assert floats, f"{name}: no float scalar"
                assert all(type(s) is dtype for s in floats), (name, [type(s).__name__ for s in scalars])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_device_init_makes_state_on_the_device_like_the_cpu(name, dtype):
    for kwargs, _ in _configs(name):
        opt = OPTIMIZERS[name](**kwargs)
        params = np.linspace(-1, 1, 37, dtype=dtype)
        d_state = opt.init(cuda.to_device(params))
        assert isinstance(d_state, OptimizerState)
        assert d_state.step == 0
        assert not isinstance(d_state.slots, np.ndarray)
        slots = d_state.slots.copy_to_host()
        np.testing.assert_array_equal(slots, opt.init(params).slots)
        assert slots.dtype == np.dtype(dtype)


def test_adagrad_device_state_starts_at_initial_accumulator_value():
    d_state = Adagrad(initial_accumulator_value=0.75).init(cuda.to_device(np.zeros(50, dtype=np.float32)))
    slots = d_state.slots.copy_to_host()
    assert slots.shape == (1, 50) and slots.dtype == np.float32
    np.testing.assert_array_equal(slots, np.float32(0.75))


def test_plain_sgd_has_no_state_rows_on_the_device():
    params = np.ones(40)
    d_params = cuda.to_device(params)
    d_state = SGD(lr=0.5).init(d_params)
    assert tuple(d_state.slots.shape) == (0, 40)
    SGD(lr=0.5).step(d_params, cuda.to_device(np.full(40, 0.25)), d_state)
    np.testing.assert_array_equal(d_params.copy_to_host(), np.full(40, 1.0 - 0.5 * 0.25))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_scale_ref_multiplies_grad_scale_on_the_device(dtype):
    """device_step(grad_scale=4, scale_ref=[0.125]) is opt.step(grad_scale=0.5) on the CPU."""
    opt = Adam(lr=0.01, amsgrad=True)
    rng = np.random.default_rng(3)
    params = rng.standard_normal(150).astype(dtype)
    d_params = cuda.to_device(params)
    state, d_state = opt.init(params), opt.init(d_params)
    scale_ref = cuda.to_device(np.array([0.125]))
    for t in range(1, 6):
        grads = rng.standard_normal(150).astype(dtype)
        opt.step(params, grads, state, grad_scale=0.5, clip_value=0.3)
        cuda_optim.device_step(opt.kernel_id, d_params, cuda.to_device(grads), d_state.slots,
                               opt.hyperparameters(), t, opt.lr, 4.0, 0.3, scale_ref=scale_ref)
    assert_close(d_params.copy_to_host(), params, RTOL[np.dtype(dtype)], "params")
    assert_close(d_state.slots.copy_to_host(), state.slots, RTOL[np.dtype(dtype)], "state")


def test_device_step_updates_a_slice_and_nothing_else():
    """params and grads may be slices of larger device arrays (the trainers' per-layer views)."""
    opt = SGD(lr=0.1, momentum=0.9)
    whole = np.arange(300, dtype=np.float64) / 100
    d_whole = cuda.to_device(whole)
    d_grads_whole = cuda.to_device(np.ones(300))
    d_view = d_whole[100:250]
    state = opt.init(d_view)
    opt.step(d_view, d_grads_whole[50:200], state)
    opt.step(d_view, d_grads_whole[50:200], state)
    expected = whole.copy()
    expected[100:250] -= 0.1 * 1.0 + 0.1 * (0.9 * 1.0 + 1.0)
    result = d_whole.copy_to_host()
    np.testing.assert_array_equal(result[:100], whole[:100])
    np.testing.assert_array_equal(result[250:], whole[250:])
    np.testing.assert_allclose(result[100:250], expected[100:250], rtol=1e-15)


def test_zero_length_params_are_a_no_op():
    opt = Adam()
    d_params = cuda.device_array(0)
    state = opt.init(d_params)
    opt.step(d_params, cuda.device_array(0), state, clip_norm=1.0)
    assert state.step == 1


# --- reductions ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("n", [1, 7, 129])
def test_squared_norm_accumulates_in_float64(n, dtype):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 10).astype(dtype)
    out = cuda.to_device(np.array([0.0, 2.5, 0.0]))
    cuda_optim.squared_norm(cuda.to_device(x), out, 1)
    cuda_optim.squared_norm(cuda.to_device(x), out, 1)
    expected = 2.5 + 2 * float(np.sum(x.astype(np.float64) ** 2))
    result = out.copy_to_host()
    assert result[0] == 0.0 and result[2] == 0.0
    np.testing.assert_allclose(result[1], expected, rtol=1e-13)


@pytest.mark.parametrize(("sq_norm", "weight_sum", "clip_norm"), [
    (400.0, 4.0, 1.0),      # norm 20 / 4 = 5 > 1: clipped
    (400.0, 4.0, 10.0),     # 5 < 10: only the 1/weight_sum factor
    (1e-20, 1.0, 1.0),      # tiny gradient
    (math.inf, 2.0, 1.0),   # non-finite norm: coefficient 1
    (math.nan, 2.0, 1.0),
])
def test_clip_norm_scale_follows_clip_coefficient(sq_norm, weight_sum, clip_norm):
    d_sq = cuda.to_device(np.array([123.0, sq_norm]))
    out = cuda.to_device(np.zeros(1))
    cuda_optim.clip_norm_scale(d_sq, 1, cuda.to_device(np.array([weight_sum])), clip_norm, out)
    s = 1.0 / weight_sum
    expected = s * clip_coefficient(math.sqrt(sq_norm) * s, clip_norm)
    np.testing.assert_allclose(out.copy_to_host()[0], expected, rtol=1e-15)


def test_clip_norm_on_device_matches_torch_rule_with_negative_grad_scale():
    opt = SGD(lr=1.0)
    grads = np.array([3.0, -4.0] * 50)
    d_params = cuda.to_device(np.zeros(100))
    state = opt.init(d_params)
    opt.step(d_params, cuda.to_device(grads), state, grad_scale=-2.0, clip_norm=1.0)
    g = ref.scale_and_clip_grads(grads, -2.0, None, 1.0)
    np.testing.assert_allclose(d_params.copy_to_host(), -g, rtol=1e-14)
    opt.step(d_params, cuda.to_device(grads), state, grad_scale=-2.0, clip_norm=1.0)  # scratch was reset
    np.testing.assert_allclose(d_params.copy_to_host(), -2 * g, rtol=1e-14)


# --- bad input ------------------------------------------------------------------------------------------------


def test_host_and_device_arrays_cannot_be_mixed():
    opt = Adam()
    params = np.ones(20)
    d_params = cuda.to_device(params)
    with pytest.raises(TypeError, match="grads is a device array and params is not"):
        opt.step(params, cuda.to_device(np.ones(20)), opt.init(params))
    with pytest.raises(TypeError, match="params is a device array and grads is not"):
        opt.step(d_params, np.ones(20), opt.init(d_params))
    with pytest.raises(ValueError, match=r"state does not belong to these params \(the state is on the host"):
        opt.step(d_params, cuda.to_device(np.ones(20)), opt.init(params))
    with pytest.raises(ValueError, match=r"state does not belong to these params \(the state is on the host"):
        opt.step(params, np.ones(20), opt.init(d_params))


@pytest.mark.parametrize("name", NAMES)
def test_wrong_device_arrays_raise_clear_errors(name):
    opt = OPTIMIZERS[name]()
    with pytest.raises(TypeError, match="float32 or float64"):
        opt.init(cuda.to_device(np.ones(5, dtype=np.float16)))
    with pytest.raises(TypeError, match="float32 or float64"):
        opt.init(cuda.to_device(np.arange(5)))
    with pytest.raises(ValueError, match="1-D C-contiguous"):
        opt.init(cuda.to_device(np.ones((2, 3))))
    with pytest.raises(ValueError, match="C-contiguous"):
        opt.init(cuda.to_device(np.ones(10))[::2])

    d_params = cuda.to_device(np.ones(6))
    state = opt.init(d_params)
    with pytest.raises(ValueError, match="grads must match params"):
        opt.step(d_params, cuda.to_device(np.ones(7)), state)
    with pytest.raises(ValueError, match="grads must match params"):
        opt.step(d_params, cuda.to_device(np.ones(6, dtype=np.float32)), state)
    with pytest.raises(TypeError, match="grads must have dtype float32 or float64"):
        opt.step(d_params, cuda.to_device(np.ones(6, dtype=np.int32)), state)
    with pytest.raises(ValueError, match="grads must be a 1-D C-contiguous"):
        opt.step(d_params, cuda.to_device(np.ones(12))[::2], state)
    with pytest.raises(ValueError, match="state does not belong"):
        opt.step(d_params, cuda.to_device(np.ones(6)), opt.init(cuda.to_device(np.ones(5))))
    with pytest.raises(ValueError, match="state does not belong"):
        opt.step(d_params, cuda.to_device(np.ones(6)), opt.init(cuda.to_device(np.ones(6, dtype=np.float32))))
    with pytest.raises(TypeError, match="OptimizerState"):
        opt.step(d_params, cuda.to_device(np.ones(6)), {"slots": state.slots})
    with pytest.raises(ValueError, match="lr"):
        opt.step(d_params, cuda.to_device(np.ones(6)), state, lr=-1.0)
    with pytest.raises(ValueError, match="clip_norm"):
        opt.step(d_params, cuda.to_device(np.ones(6)), state, clip_norm=0.0)
    assert state.step == 0
    np.testing.assert_array_equal(d_params.copy_to_host(), 1.0)


def test_state_of_another_configuration_is_rejected_on_the_device():
    d_params = cuda.to_device(np.ones(8))
    with pytest.raises(ValueError, match="state does not belong"):
        Adam(amsgrad=True).step(d_params, cuda.to_device(np.ones(8)), Adam().init(d_params))
    with pytest.raises(ValueError, match="state does not belong"):
        SGD(momentum=0.9).step(d_params, cuda.to_device(np.ones(8)), SGD().init(d_params))


@pytest.mark.skipif(fastgd.cuda.simulated(), reason="the simulator has no __cuda_array_interface__ import")
def test_any_cuda_array_interface_object_is_accepted():
    """CuPy arrays and PyTorch CUDA tensors come in through __cuda_array_interface__ (a plain wrapper here)."""

    class Foreign:
        def __init__(self, array):
            self._array = array
            self.__cuda_array_interface__ = array.__cuda_array_interface__

    opt = Adam(lr=0.1)
    params = np.linspace(-1, 1, 64)
    d_params = cuda.to_device(params)
    state = opt.init(Foreign(d_params))
    opt.step(Foreign(d_params), Foreign(cuda.to_device(np.ones(64))), state)
    cpu_state = opt.init(params)
    opt.step(params, np.ones(64), cpu_state)
    assert_close(d_params.copy_to_host(), params, 1e-10, "params")


def test_import_fastgd_does_not_import_numba_cuda():
    code = ("import sys, fastgd, fastgd.optim\n"
            "loaded = [m for m in sys.modules if m.startswith(('numba.cuda', 'numba_cuda'))]\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True)


#: Compiles every kernel to PTX for a compute capability 8.0 GPU (NVVM only, no GPU needed) and checks
#: that the float32 kernels compute in float32: their only float64 instructions are the four of the
#: gradient-scaling factor, computed once per thread as on the CPU (``grad_scale * scale_ref[0]`` cast to float32).
PTX_CHECK = textwrap.dedent("""
    import re, types
    import numba
    import numpy as np
    from numba import cuda
    if not cuda.is_available():  # no driver: device functions ask the current device for its compute capability
        import numba.cuda.dispatcher as dispatcher
        dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(8, 0))
    from fastgd.cuda import optim as cuda_optim
    from fastgd.optim import OPTIMIZERS
    for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
        for cls in OPTIMIZERS.values():
            opt = cls()
            scalars = cuda_optim.SCALARS[cls.update_kernel](opt.hyperparameters(), 3, 0.01, dtype)
            vector = np.zeros(4, dtype=dtype)
            args = (vector, vector, np.zeros((2, 4), dtype=dtype), np.ones(1), np.float64(1.0), dtype.type(1.0),
                    *scalars)
            kernel = cuda_optim.update_kernels(dtype)[cls.update_kernel]
            ptx, _ = cuda.compile_ptx(kernel.py_func, tuple(numba.typeof(a) for a in args), cc=(8, 0))
            f64 = sorted(line.split()[0] for line in ptx.splitlines() if re.search(r"[.]f64[\\s;]", line)
                         and not line.strip().startswith(("//", ".")))
            if dtype == np.float32:
                assert f64 == ["cvt.rn.f32.f64", "ld.global.f64", "ld.param.f64", "mul.f64"], (cls.__name__, f64)
            else:
                assert f64, cls.__name__
    f8, f4 = numba.float64, numba.float32
    for kernel, signature in [(cuda_optim.squared_norm_cuda, (f4[::1], f8[::1], numba.int64)),
                              (cuda_optim.clip_norm_scale_cuda, (f8[::1], numba.int64, f8[::1], f8, f8[::1])),
                              (cuda_optim.step_clip_coefficient_cuda, (f8[::1], f8, f8)),
                              (cuda_optim.fill_cuda, (f4[::1], f4))]:
        cuda.compile_ptx(kernel.py_func, signature, cc=(8, 0))
    print("ptx ok")
""")


def _nvvm_and_nvrtc_found() -> bool:
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib
    except ImportError:
        return False
    try:
        load_nvidia_dynamic_lib("nvvm")
        load_nvidia_dynamic_lib("nvrtc")
    except Exception:  # the finder raises its own error types
        return False
    return True


@pytest.mark.skipif(not _nvvm_and_nvrtc_found(), reason="NVVM/NVRTC libraries not found: cannot compile to PTX")
def test_kernels_compile_for_the_gpu_and_float32_stays_float32():
    """The simulator does not type-check CUDA code: compile every kernel for a real GPU target."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    result = subprocess.run([sys.executable, "-c", PTX_CHECK], env=env, capture_output=True, text=True)
    assert result.returncode == 0 and "ptx ok" in result.stdout, result.stderr[-3000:]

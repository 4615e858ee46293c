"""Each loss's derivative against central finite differences of its value."""

import numpy as np
import pytest

from fastgd._config import jit
from fastgd.kernels.losses import LOSS_CODES, Loss, output_loss

CLASSIFICATION = ["log_loss", "hinge", "squared_hinge", "modified_huber", "perceptron"]
REGRESSION = ["squared_error", "huber", "epsilon_insensitive"]


@jit
def loss_and_gradient(code, z, y, epsilon):
    dz = np.empty_like(z)
    loss = output_loss(code, z, y, dz, epsilon)
    return loss, dz


def _check_against_finite_differences(code, z, y, epsilon, h=1e-6):
    _, grad = loss_and_gradient(code, z, y, epsilon)
    for k in range(z.size):
        up, down = z.copy(), z.copy()
        up[k] += h
        down[k] -= h
        numeric = (loss_and_gradient(code, up, y, epsilon)[0] - loss_and_gradient(code, down, y, epsilon)[0]) / (2 * h)
        np.testing.assert_allclose(grad[k], numeric, rtol=1e-5, atol=1e-7)


def _away_from_kinks(values, kinks, margin=1e-3):
    return all(abs(v - k) > margin for v in values for k in kinks)


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_margin_losses(name):
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(200):
        z = rng.normal(scale=3.0, size=2)
        y = rng.choice([-1.0, 1.0], size=2)
        if not _away_from_kinks(y * z, [-1.0, 0.0, 1.0]):
            continue
        _check_against_finite_differences(LOSS_CODES[name], z, y, 0.0)
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("name", REGRESSION)
def test_residual_losses(name):
    rng = np.random.default_rng(1)
    epsilon = 0.3
    checked = 0
    for _ in range(200):
        z = rng.normal(size=3)
        y = rng.normal(size=3)
        if not _away_from_kinks(np.abs(z - y), [0.0, epsilon]):
            continue
        _check_against_finite_differences(LOSS_CODES[name], z, y, epsilon)
        checked += 1
    assert checked > 100


def test_softmax_cross_entropy():
    rng = np.random.default_rng(2)
    for _ in range(50):
        z = rng.normal(scale=4.0, size=5)
        target = rng.integers(5)
        _check_against_finite_differences(Loss.MULTINOMIAL, z, np.array([float(target)]), 0.0)
        loss, _ = loss_and_gradient(Loss.MULTINOMIAL, z, np.array([float(target)]), 0.0)
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        np.testing.assert_allclose(loss, -np.log(p[target]), rtol=1e-12)


def test_log_loss_is_stable_for_large_margins():
    loss, grad = loss_and_gradient(LOSS_CODES["log_loss"], np.array([-800.0, 800.0]), np.array([1.0, 1.0]), 0.0)
    np.testing.assert_allclose(loss, 800.0)
    np.testing.assert_allclose(grad, [-1.0, 0.0], atol=1e-300)


def test_textbook_values():
    code = LOSS_CODES
    z, y = np.array([0.25]), np.array([1.0])
    assert loss_and_gradient(code["hinge"], z, y, 0.0)[0] == pytest.approx(0.75)
    assert loss_and_gradient(code["squared_hinge"], z, y, 0.0)[0] == pytest.approx(0.75**2)
    assert loss_and_gradient(code["modified_huber"], np.array([-3.0]), y, 0.0)[0] == pytest.approx(12.0)
    assert loss_and_gradient(code["perceptron"], np.array([-0.5]), y, 0.0)[0] == pytest.approx(0.5)
    assert loss_and_gradient(code["log_loss"], z, y, 0.0)[0] == pytest.approx(np.log1p(np.exp(-0.25)))
    assert loss_and_gradient(code["squared_error"], np.array([3.0]), y, 0.0)[0] == pytest.approx(2.0)
    assert loss_and_gradient(code["huber"], np.array([3.0]), y, 0.5)[0] == pytest.approx(0.5 * 2 - 0.125)
    assert loss_and_gradient(code["epsilon_insensitive"], np.array([3.0]), y, 0.5)[0] == pytest.approx(1.5)

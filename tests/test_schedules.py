"""Learning-rate schedules against their formulas."""

import math

import pytest

from fastgd.optim.schedules import Schedule


def test_epoch_schedules():
    assert Schedule("constant", 0.1, 10).epoch_lr(7) == 0.1
    step = Schedule("step", 0.1, 100, step_size=10, gamma=0.5)
    assert [step.epoch_lr(e) for e in (0, 9, 10, 25)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    cosine = Schedule("cosine", 0.2, 10, eta_min=0.02)
    assert cosine.epoch_lr(0) == pytest.approx(0.2)
    assert cosine.epoch_lr(5) == pytest.approx(0.02 + 0.18 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert cosine.epoch_lr(10) == pytest.approx(0.02)


def test_adaptive_divides_by_five_until_tiny():
    adaptive = Schedule("adaptive", 0.1, 10)
    assert adaptive.on_plateau() and adaptive.epoch_lr(3) == pytest.approx(0.02)
    while adaptive.on_plateau():
        pass
    assert adaptive.eta <= 1e-6
    assert not Schedule("constant", 0.1, 10).on_plateau()


def test_unknown_schedule():
    with pytest.raises(ValueError, match="learning_rate"):
        Schedule("linear", 0.1, 10)


def test_per_update_schedules_in_a_fit():
    """invscaling: eta0 / t**power_t per update, checked through one unshuffled per-sample epoch."""
    import numpy as np

    from fastgd import LinearRegressor

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 2)), rng.normal(size=20)
    eta0, power_t = 0.1, 0.5
    reg = LinearRegressor(alpha=0.0, learning_rate="invscaling", learning_rate_init=eta0, power_t=power_t,
                          max_iter=1, tol=None, shuffle=False).fit(X, y)
    w, b = np.zeros(2), 0.0
    for t, (xi, yi) in enumerate(zip(X, y, strict=True), start=1):
        lr = eta0 / t**power_t
        r = xi @ w + b - yi
        w, b = w - lr * r * xi, b - lr * r
    np.testing.assert_allclose(reg.coef_, w, rtol=1e-12)

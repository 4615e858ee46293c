"""Diagnostics: gradient norms, the non-finite guard, callbacks, progress, plots and the lecture."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

from fastgd import LinearClassifier, MLPClassifier, MLPRegressor, NonFiniteTrainingError, NonFiniteTrainingWarning
from fastgd.__main__ import main
from fastgd.optim import SGD, Adam
from fastgd.surfaces import SURFACES, trajectory

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:400] / 16).astype(np.float32), y[:400]


def test_deep_sigmoid_gradients_vanish_toward_the_input_and_relu_ones_do_not(digits):
    X, y = digits
    norms = {}
    for act in ("logistic", "relu"):
        clf = MLPClassifier((16,) * 8, activation=act, solver="sgd", learning_rate_init=0.05, max_iter=2,
                            random_state=0).fit(X, y)
        norms[act] = clf.gradient_norms_[0]
    sigmoid, relu = norms["logistic"], norms["relu"]
    assert sigmoid[0] < 1e-3 * sigmoid[-1]  # shrinks by orders of magnitude toward the input
    assert np.all(np.diff(np.log(sigmoid[:6])) < 2.0)
    assert relu[0] > 0.1 * relu[-1]  # keeps its size


def test_guard_restores_exactly_the_last_good_epoch(digits):
    X, y = digits
    reg = MLPRegressor((8,), activation="identity", solver="sgd", momentum=0.0, learning_rate_init=1e-4,
                       max_iter=2, warm_start=True, random_state=0).fit(X, y.astype(np.float32))
    good = [c.copy() for c in reg.coefs_ + reg.intercepts_]
    with pytest.warns(NonFiniteTrainingWarning, match=r"epoch 3.*learning_rate_init.*clip_norm"):
        reg.set_params(learning_rate_init=50.0).fit(X, y.astype(np.float32) * 1e6)
    for a, b in zip(reg.coefs_ + reg.intercepts_, good, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(reg.predict(X)).all()
    with pytest.raises(NonFiniteTrainingError, match="epoch"):
        MLPRegressor((8,), activation="identity", solver="sgd", learning_rate_init=50.0, on_nonfinite="raise",
                     random_state=0).fit(X, y.astype(np.float32) * 1e6)


def test_clip_norm_bounds_every_applied_gradient():
    """Adam's first step moves each coordinate by about lr * g / |g|; with SGD the step is lr * clipped g."""
    rng = np.random.default_rng(0)
    clip, lr = 0.25, 1.0
    optimizer = SGD(lr=lr)
    for _ in range(20):
        params = np.zeros(50)
        grads = rng.normal(scale=rng.uniform(0.01, 10.0), size=50)
        optimizer.step(params, grads, optimizer.init(params), clip_norm=clip)
        applied = -params / lr
        assert np.linalg.norm(applied) <= clip + 1e-9
        np.testing.assert_allclose(applied, grads * min(1.0, clip / (np.linalg.norm(grads) + 1e-6)))


def test_callbacks_see_records_and_can_stop(digits):
    X, y = digits
    seen = []

    def stop_after_three(record):
        seen.append(record)
        return record.epoch >= 3

    clf = MLPClassifier((8,), max_iter=50, callbacks=[stop_after_three], random_state=0).fit(X, y)
    assert clf.n_iter_ == 3 and [r.epoch for r in seen] == [1, 2, 3]
    assert seen[0].gradient_norms.shape == (2,) and seen[0].learning_rate == pytest.approx(1e-3)
    lin = LinearClassifier(max_iter=50, tol=None, callbacks=[lambda r: r.epoch == 2]).fit(X, y)
    assert lin.n_iter_ == 2


def test_verbose_and_progress(digits, capsys):
    X, y = digits
    MLPClassifier((8,), max_iter=2, verbose=True, progress=True, random_state=0).fit(X, y)
    out = capsys.readouterr()
    assert "Iteration 1, loss = " in out.out and "samples/s" in out.out  # scikit-learn's line, then fastgd's extras
    assert "epoch" in out.err  # tqdm writes to stderr


def test_trajectories_descend():
    for name, surface in SURFACES.items():
        points = trajectory(Adam(lr=0.05), surface, steps=200)
        start, end = surface.value_and_gradient(points[0])[0], surface.value_and_gradient(points[-1])[0]
        assert end < start, name


def test_plots_write_png_files(tmp_path, digits):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from fastgd import plot

    X, y = digits
    a = MLPClassifier((8,), max_iter=3, random_state=0).fit(X, y)
    b = MLPClassifier((8,), solver="sgd", max_iter=3, random_state=0).fit(X, y)
    figures = {
        "loss.png": lambda p: plot.plot_loss_curves({"adam": a, "sgd": b}, path=p),
        "norms.png": lambda p: plot.plot_gradient_norms(a, path=p),
        "traj.png": lambda p: plot.plot_trajectories(("ravine", "saddle"), steps=20, path=p),
    }
    for name, draw in figures.items():
        fig, _ = draw(tmp_path / name)
        image = imread(tmp_path / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        plot._pyplot().close(fig)


def test_the_lecture_runs_end_to_end(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteTrainingWarning)  # the lecture must catch its own warning
        assert main(["--epochs", "2", "--hidden", "8", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for heading in ("1. Full-batch GD", "2. Optimizers", "3. Vanishing", "4. Exploding", "5. Optimizer trajectories"):
        assert heading in out
    assert "raised: The training loss became NaN or infinite in epoch 1" in out  # linear units, no clipping
    pngs = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in pngs] == ["gradient_norms_logistic.png", "gradient_norms_relu.png", "loss_curves.png",
                                      "trajectories.png"]
    for png in pngs:
        assert imread(png).shape[0] > 100
    assert main(["--part", "trajectories", "--no-plots"]) == 0

"""The package's floors: imports flow one way, and ``fastgd.optim`` stands without the CUDA package.

The layers contract itself lives in pyproject.toml (``[tool.importlinter]``); ``lint-imports`` checks it,
counting imports inside functions too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastgd.optim import Adam, _base

ROOT = Path(__file__).resolve().parents[1]


def test_imports_flow_one_way():
    lint_imports = shutil.which("lint-imports")
    assert lint_imports is not None, "import-linter is part of the test extra: pip install \".[test]\""
    result = subprocess.run([lint_imports, "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_optim_trains_without_loading_the_cuda_package():
    code = ("import sys\n"
            "import numpy as np\n"
            "from fastgd.optim import Adam\n"
            "params = np.zeros(8); opt = Adam(lr=0.5); state = opt.init(params)\n"
            "opt.step(params, params - 1.0, state)\n"
            "assert np.allclose(params, 0.5), params\n"
            "loaded = [m for m in sys.modules if m.startswith(('fastgd.cuda', 'numba.cuda', 'numba_cuda'))]\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True)


class DeviceLike:
    """Any object with ``__cuda_array_interface__`` counts as a device array."""

    __cuda_array_interface__ = {"shape": (4,), "typestr": "<f8", "data": (0, False), "version": 3}


def test_device_arrays_without_a_device_path_get_a_clear_error(monkeypatch):
    monkeypatch.setattr(_base, "_device_path", None)
    monkeypatch.setattr(_base, "_device_path_loader", None)
    with pytest.raises(RuntimeError, match=r"import fastgd\.cuda\.optim"):
        Adam().init(DeviceLike())
    state = Adam().init(np.zeros(4))
    with pytest.raises(RuntimeError, match=r"import fastgd\.cuda\.optim"):
        Adam().step(DeviceLike(), DeviceLike(), state)


def test_the_loader_registers_the_device_path_once(monkeypatch):
    calls = []

    def fake_init(optimizer, params):
        return ("device state", type(optimizer).__name__)

    def loader():
        calls.append(1)
        _base.register_device_path(_base.DevicePath(init_state=fake_init, step=None, state_belongs=None))

    monkeypatch.setattr(_base, "_device_path", None)
    monkeypatch.setattr(_base, "_device_path_loader", loader)
    assert Adam().init(DeviceLike()) == ("device state", "Adam")
    assert Adam().init(DeviceLike()) == ("device state", "Adam")
    assert calls == [1]

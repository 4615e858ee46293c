"""README.md's Python examples run as written.

Every ```python block of README.md runs as its own script, in a fresh Python
process (this interpreter, ``sys.executable``) whose working folder is an empty
temporary one: a block must make its own data and files. The blocks that need
an NVIDIA GPU (``device="cuda"``, ``fastgd.cuda``, numba.cuda device arrays)
are skipped here; ``tests/test_cuda_*.py`` cover what they show.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

import fastgd

README = Path(__file__).resolve().parents[1] / "README.md"
#: Seconds a block may run (the first run in a fresh Numba cache also compiles the kernels it uses).
TIMEOUT = 300
#: What marks a block that needs a GPU.
GPU_WORDS = ('device="cuda"', "fastgd.cuda", "from numba import cuda", "numba.cuda")
#: Blocks that start a Dask cluster take more than 10 s (worker processes start and import fastgd).
SLOW_WORDS = ("distributed", "dask")


class Block(NamedTuple):
    """A ```python block of the README."""

    code: str
    line: int      # line of the opening fence
    heading: str   # the section it is in


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    heading = "top"
    in_block, start, lines = False, 0, []
    fence = False  # inside a non-Python fence (```bash, ```text): its lines are no headings
    for number, line in enumerate(text.splitlines(), start=1):
        if in_block:
            if line.strip() == "```":
                blocks.append(Block("\n".join(lines) + "\n", start, heading))
                in_block = False
            else:
                lines.append(line)
        elif line.strip() == "```python":
            in_block, start, lines = True, number, []
        elif line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            heading = line.lstrip("#").strip()
    assert not in_block, f"README.md: the ```python block opened on line {start} is not closed"
    return blocks


BLOCKS = readme_blocks()


def block_id(index: int, block: Block) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", block.heading.lower()).strip("-")
    return f"block{index}-{slug}"


def block_params() -> list:
    params = []
    for index, block in enumerate(BLOCKS, start=1):
        marks = []
        if any(word in block.code for word in GPU_WORDS):
            marks.append(pytest.mark.skip(reason="needs an NVIDIA GPU; tests/test_cuda_*.py cover the CUDA backend"))
        if any(re.search(rf"^\s*(import|from) {word}\b", block.code, re.MULTILINE) for word in SLOW_WORDS):
            marks.append(pytest.mark.slow)
        params.append(pytest.param(block, id=block_id(index, block), marks=marks))
    return params


def test_readme_has_the_python_examples():
    assert len(BLOCKS) >= 7, f"found {len(BLOCKS)} ```python blocks in README.md"
    assert sum(not any(word in b.code for word in GPU_WORDS) for b in BLOCKS) >= 5


def _missing_modules(code: str) -> list[str]:
    """Top-level modules that the block imports and this environment lacks (optional extras)."""
    names = re.findall(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", code, re.MULTILINE)
    return sorted({name for name in names if importlib.util.find_spec(name) is None})


def _warm_numba_cache(code: str) -> None:
    """Compile, in this process, the kernels that a block's worker processes would compile at once.

    Numba's on-disk cache has no lock (README, Known limitations): the Dask block's workers would
    otherwise race to write the same entries. The subprocess shares this process's cache folder.
    """
    if "Incremental" not in code:
        return
    import numpy as np

    from fastgd import LinearClassifier, MLPClassifier

    X = np.random.default_rng(0).standard_normal((40, 20))
    y = (X[:, 0] > 0).astype(np.int64)
    MLPClassifier((8,), max_iter=1).partial_fit(X, y, classes=[0, 1])
    LinearClassifier(max_iter=1).fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("block", block_params())
def test_readme_block_runs_as_written(block: Block, tmp_path: Path):
    missing = _missing_modules(block.code)
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (an optional extra of fastgd)")
    _warm_numba_cache(block.code)
    script = tmp_path / "example.py"
    script.write_text(block.code, encoding="utf-8")
    env = dict(os.environ)
    # The fastgd under test, wherever the working folder is (a source checkout run with python -m pytest).
    source_root = str(Path(fastgd.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([source_root, *filter(None, [env.get("PYTHONPATH")])])
    result = subprocess.run([sys.executable, script.name], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT, check=False)
    assert result.returncode == 0, (
        f"README.md's python block at line {block.line} ({block.heading}) failed with exit code "
        f"{result.returncode}:\n--- code ---\n{block.code}--- stderr ---\n{result.stderr}"
        f"--- stdout ---\n{result.stdout}")

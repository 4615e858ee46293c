"""The stale-cache guard of :mod:`fastgd._config`: cached kernels are dropped when any compiled source changes."""

import hashlib
from pathlib import Path

import pytest
from numba.core import config as numba_config

from fastgd import _config

PACKAGE = Path(_config.__file__).resolve().parent
STAMP = "fastgd-kernels.sha256"
#: Every folder holding sources of compiled code.
SOURCE_DIRS = [PACKAGE, PACKAGE / "_numeric", PACKAGE / "kernels", PACKAGE / "optim"]


def _expected_digest() -> str:
    """SHA-256 over the relative path and bytes of every source of compiled code, in sorted path order."""
    sources = sorted(p for folder in SOURCE_DIRS for p in folder.glob("*.py"))
    digest = hashlib.sha256()
    for path in sources:
        digest.update(str(path.relative_to(PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """Numba's cache folder for fastgd's kernels under a fresh ``NUMBA_CACHE_DIR``."""
    monkeypatch.setattr(numba_config, "CACHE_DIR", str(tmp_path))
    found = [d for d in _config._cache_dirs(SOURCE_DIRS)
             if tmp_path in d.parents]
    assert found, "Numba's locators do not place fastgd's cache under NUMBA_CACHE_DIR"
    folder = found[0]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_changed_source_drops_the_cached_kernels_and_stamps_the_new_digest(cache_dir):
    for name in ("update-1.nbi", "update-1.py311.nbc"):
        (cache_dir / name).write_bytes(b"machine code of older sources")
    (cache_dir / STAMP).write_text("digest of older sources")
    _config._clear_stale_kernel_cache()
    assert not list(cache_dir.glob("*.nbi")) and not list(cache_dir.glob("*.nbc"))
    assert (cache_dir / STAMP).read_text() == _expected_digest()


def test_unchanged_sources_keep_the_cached_kernels(cache_dir):
    (cache_dir / STAMP).write_text(_expected_digest())
    (cache_dir / "update-1.nbi").write_bytes(b"current machine code")
    _config._clear_stale_kernel_cache()
    assert (cache_dir / "update-1.nbi").read_bytes() == b"current machine code"


def test_a_cache_without_stamp_is_treated_as_stale(cache_dir):
    (cache_dir / "update-1.nbi").write_bytes(b"unknown origin")
    _config._clear_stale_kernel_cache()
    assert not (cache_dir / "update-1.nbi").exists()
    assert (cache_dir / STAMP).read_text() == _expected_digest()

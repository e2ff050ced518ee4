"""Fixtures for integration tests that run rendered containers as local processes.

Run with the test venv:  .cache/venvs/test/bin/python -m pytest tests/integration
(provision first: bash tests/integration/provision.sh)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import localrun


def pytest_configure(config):
    missing = [str(p) for p in (localrun.EG_VENV, localrun.FE_VENV) if not (p / "bin" / "jupyter").exists()]
    if missing:
        raise pytest.UsageError(f"venvs missing: {missing}; run: bash tests/integration/provision.sh")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A LocalStack whose processes are stopped (reverse start order) when the module ends,
    even if a test failed."""
    with localrun.LocalStack(tmp_path_factory.mktemp("localrun")) as st:
        yield st


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    d = localrun.REPO / "test-output" / "integration"
    d.mkdir(parents=True, exist_ok=True)
    return d

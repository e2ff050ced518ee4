"""Fixtures of the kernel-pod suite: one KernelStack (control plane, gateway, node, notebook)
per module, and the figures the suite measures (printed at the end, and written to
test-output/kernels/figures.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "e2e", HERE.parent / "integration"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import stack as ks  # noqa: E402

OUTPUT = ks.OUTPUT
FIGURES: dict[str, object] = {}


@pytest.fixture(scope="session")
def figures() -> dict[str, object]:
    return FIGURES


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / "figures.json").write_text(json.dumps(FIGURES, indent=1, sort_keys=True))
        terminalreporter.write_sep("-", "kernel pods: figures measured")
        for key, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{key}: {value}")

"""Fixtures of the kernel-pod suite: one KernelStack (control plane, gateway, node, notebook)
per module, and the figures the suite measures (printed at the end, and written to
test-output/kernels/figures.json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "e2e", HERE.parent / "integration"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import stack as ks  # noqa: E402
from controlplane import BUILD_SCRIPT  # noqa: E402

OUTPUT = ks.REPO / "test-output" / "kernels"
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


def start_stack(name: str, gateway_spec: dict, notebook_spec: dict) -> ks.KernelStack:
    missing = ks.missing_parts()
    if missing:
        pytest.fail("the kernel-pod suite needs: " + "; ".join(missing))
    if not os.environ.get("E2E_SKIP_BUILD"):  # a no-op when the binaries are built
        res = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True)
        if res.returncode != 0:
            pytest.fail(f"{BUILD_SCRIPT} failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    workdir = OUTPUT / time.strftime(f"{name}-%Y%m%d-%H%M%S")
    return ks.KernelStack(workdir, gateway_spec, notebook_spec)

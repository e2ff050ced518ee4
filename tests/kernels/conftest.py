"""Fixtures of the kernel-pod suite: one KernelStack (a real single-node cluster, the gateway,
the notebooks) per module, and the figures the suite measures (printed at the end, and written to
test-output/kernels/figures.json).

Where the machine cannot run a node (not root, no CAP_SYS_ADMIN/CAP_NET_ADMIN, no containerd, no
built images), the tests marked ``node`` are left out and the run says loudly what is missing.
"""

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
from controlplane import DEFAULT_BIN_DIR  # noqa: E402
from leftout import announce, deselect  # noqa: E402

OUTPUT = ks.OUTPUT
FIGURES: dict[str, object] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect(config, items, "node", lambda: ks.node_missing(DEFAULT_BIN_DIR))


@pytest.fixture(scope="session")
def figures() -> dict[str, object]:
    return FIGURES


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    announce(terminalreporter, config)
    if FIGURES:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / "figures.json").write_text(json.dumps(FIGURES, indent=1, sort_keys=True))
        terminalreporter.write_sep("-", "kernel pods: figures measured")
        for key, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{key}: {value}")

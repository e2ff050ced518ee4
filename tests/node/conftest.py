"""Fixtures of the real-node suite: a NodeCluster (tests/e2e/node.py) per module, importing the
test image (testimage.py).

Where the machine cannot run a node (not root, no CAP_SYS_ADMIN/CAP_NET_ADMIN, no containerd...),
the suite is left out and the run says loudly what is missing; it is not counted as passed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))

import testimage  # noqa: E402
from controlplane import DEFAULT_BIN_DIR, REPO_ROOT  # noqa: E402
from leftout import announce, deselect  # noqa: E402
from node import NodeCluster, can_run_node, leftovers  # noqa: E402

FIGURES: dict[str, float] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect(config, items, "node", lambda: [*can_run_node(DEFAULT_BIN_DIR), *testimage.missing()])


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    announce(terminalreporter, config)
    if FIGURES:
        terminalreporter.write_sep("-", "real node: figures measured")
        for key, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{key}: {value}")


@pytest.fixture(scope="session")
def figures() -> dict[str, float]:
    return FIGURES


@pytest.fixture(scope="session")
def workdir() -> Path:
    return Path(
        os.environ.get("NODE_WORKDIR") or REPO_ROOT / "test-output" / "node" / time.strftime("run-%Y%m%d-%H%M%S")
    )


@pytest.fixture(scope="session")
def test_image(workdir: Path) -> Path:
    return testimage.build(workdir / "busybox.tar")


@pytest.fixture(scope="module")
def node_cluster(workdir: Path, test_image: Path, figures: dict) -> Iterator[NodeCluster]:
    started = time.monotonic()
    with NodeCluster(workdir / "cluster", images=[test_image], cached=["pause"], gpus=1) as nc:
        figures["node_start_to_ready_s"] = round(time.monotonic() - started, 1)
        yield nc
    left = leftovers()
    assert not left, f"the node left on the host: {left}"

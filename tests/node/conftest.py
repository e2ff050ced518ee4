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
from node import NodeCluster, can_run_node, leftovers  # noqa: E402

LEFT_OUT = pytest.StashKey[list[str]]()
FIGURES: dict[str, float] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if item.get_closest_marker("node")]
    lacks = [*can_run_node(DEFAULT_BIN_DIR), *testimage.missing()] if ours else []
    if lacks:
        config.hook.pytest_deselected(items=ours)
        items[:] = [item for item in items if not item.get_closest_marker("node")]
        config.stash[LEFT_OUT] = [f"{len(ours)} real-node tests left out; this machine lacks:", *lacks]


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    left_out = config.stash.get(LEFT_OUT, [])
    if left_out:
        terminalreporter.write_sep("=", left_out[0], red=True, bold=True)
        for line in left_out[1:]:
            terminalreporter.write_line(f"  - {line}")
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

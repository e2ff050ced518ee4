"""Suites this machine cannot run are left out loudly, never counted as passed: the real-node
tests (tests/node, and tests/kernels' KernelStack) where there is no root, no CAP_SYS_ADMIN or
CAP_NET_ADMIN, no containerd or no built images."""

from __future__ import annotations

from collections.abc import Callable

import pytest

LEFT_OUT = pytest.StashKey[list[str]]()


def deselect(config: pytest.Config, items: list[pytest.Item], marker: str, lacks: Callable[[], list[str]]) -> None:
    """Deselect the items marked ``marker`` when ``lacks()`` names anything; remember what and why."""
    ours = [item for item in items if item.get_closest_marker(marker)]
    missing = lacks() if ours else []
    if missing:
        config.hook.pytest_deselected(items=ours)
        items[:] = [item for item in items if not item.get_closest_marker(marker)]
        config.stash[LEFT_OUT] = [f"{len(ours)} real-node tests left out; this machine lacks:", *missing]


def announce(terminalreporter, config: pytest.Config) -> None:
    left_out = config.stash.get(LEFT_OUT, [])
    if left_out:
        terminalreporter.write_sep("=", left_out[0], red=True, bold=True)
        for line in left_out[1:]:
            terminalreporter.write_line(f"  - {line}")

"""pytest fixtures for the e2e suite: one real control plane per session.

Workdir (certs, kubeconfig, etcd data, every component's log):
$E2E_WORKDIR, or test-output/e2e/run-<timestamp>/ under the repo root.

Tests marked `metacontroller` need the upstream Metacontroller release, which is not part of
the repository: without METACONTROLLER_BIN and METACONTROLLER_CRDS they are left out and the
run says how many and how to give them (`-m metacontroller` alone runs them anyway, and they
fail saying what is missing).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from controlplane import (
    BUILD_SCRIPT,
    DEFAULT_BIN_DIR,
    METACONTROLLER_HOWTO,
    REPO_ROOT,
    ControlPlane,
    metacontroller_given,
)

LEFT_OUT = pytest.StashKey[int]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the Metacontroller scenarios when no Metacontroller release is given."""
    if metacontroller_given() or config.getoption("markexpr") == "metacontroller":
        return
    left_out = [item for item in items if item.get_closest_marker("metacontroller")]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker("metacontroller")]
    config.stash[LEFT_OUT] = len(left_out)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    left_out = config.stash.get(LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_sep("=", f"{left_out} Metacontroller scenarios left out", yellow=True)
        terminalreporter.write_line(METACONTROLLER_HOWTO)


def _build() -> None:
    """Run build.sh (a no-op when everything is built at the pinned versions).

    A failed build is reported but not fatal here: the harness then fails each test that
    needs a missing binary with a message naming the build script.
    """
    res = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(f"\n{BUILD_SCRIPT} failed ({res.returncode}):\n{res.stdout}{res.stderr}\n")


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    if not os.environ.get("E2E_SKIP_BUILD"):
        _build()
    workdir = Path(
        os.environ.get("E2E_WORKDIR") or REPO_ROOT / "test-output" / "e2e" / time.strftime("run-%Y%m%d-%H%M%S")
    )
    with ControlPlane(workdir, DEFAULT_BIN_DIR) as cp:
        yield cp


@pytest.fixture
def metacontroller(control_plane: ControlPlane) -> Iterator:
    """A running Metacontroller (started for the test, stopped after it)."""
    proc = control_plane.start_metacontroller()
    try:
        yield proc
    finally:
        control_plane.stop_metacontroller()


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane) -> ControlPlane:
    """`kubectl apply -k` of everything but the CompositeControllers, whose kind only exists
    once Metacontroller's CRDs are installed (Metacontroller cannot be fetched here)."""
    overlay = control_plane.workdir / "overlay-without-metacontroller"
    overlay.mkdir(exist_ok=True)
    delete = [
        {
            "patch": json.dumps(
                {
                    "apiVersion": "metacontroller.k8s.io/v1alpha1",
                    "kind": "CompositeController",
                    "metadata": {"name": name},
                    "$patch": "delete",
                }
            )
        }
        for name in ("jupytergateway-controller", "jupyternotebook-controller")
    ]
    manifests = os.path.relpath(REPO_ROOT / "manifests", overlay)
    (overlay / "kustomization.yaml").write_text(json.dumps({"resources": [manifests], "patches": delete}))
    control_plane.kubectl("apply", "-k", str(overlay))
    for crd in ("jupytergateways", "jupyternotebooks"):
        control_plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}.kubeflow.tkestack.io", "--timeout=60s")
        control_plane.wait_for_resource(f"{crd}.kubeflow.tkestack.io")
    restricted = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}
    control_plane.create_namespace("e2e-restricted", restricted)
    return control_plane

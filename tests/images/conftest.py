"""The images `make images` builds, checked without a node (root: namespaces, chroot).

The session builds what is missing first (`images/build.py`, cached: seconds when nothing
changed), then unpacks each archive once into a temporary root filesystem, removed at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from . import oci

ROOT = Path(__file__).resolve().parent.parent.parent
IMAGES = ROOT / ".cache" / "images"
# What each archive must be named, as containerd's CRI looks it up (the references the CRs use).
REFS = {
    "pause": "registry.k8s.io/pause:3.6",
    "hooks": "ghcr.io/elastic-jupyter/hooks:0.1.0",
    "enterprise-gateway": "docker.io/elyra/enterprise-gateway:3.3.0",
    "kernel-py": "docker.io/elyra/kernel-py:3.3.0",
    "base-notebook": "quay.io/jupyter/base-notebook:2025-03-14",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.images)


@pytest.fixture(scope="session")
def built() -> dict[str, Path]:
    """Every archive, built (or found up to date) by the project's own entry point."""
    subprocess.run([sys.executable, ROOT / "images/build.py", *REFS], check=True, timeout=3600)
    return {name: IMAGES / f"{name}.tar" for name in REFS}


@pytest.fixture(scope="session")
def archives(built) -> dict[str, oci.Archive]:
    return {name: oci.Archive.read(path) for name, path in built.items()}


@pytest.fixture(scope="session")
def scratch():
    path = Path(tempfile.mkdtemp(prefix="images-test-", dir=ROOT / ".cache"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def rootfs(archives, scratch):
    """name -> the unpacked root filesystem of that image (unpacked on first use)."""
    unpacked: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in unpacked:
            unpacked[name] = oci.unpack(archives[name], scratch / name)
        return unpacked[name]

    return get

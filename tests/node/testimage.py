"""The real-node tests' image: busybox alone (Debian's busybox-static), run as nobody, packed into
an OCI archive by images/ocipack.py. A shell, httpd, wget and nc are all the test pods need."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from controlplane import REPO_ROOT

BUSYBOX = Path("/bin/busybox")
OCIPACK = Path(os.environ.get("NODE_OCIPACK") or REPO_ROOT / "images" / "ocipack.py")
TEST_IMAGE = "localhost/node-tests/busybox:1"
CONFIG = '{"Entrypoint": ["/bin/busybox"], "User": "65534:65534"}'


def missing() -> list[str]:
    lacks = []
    if not os.access(BUSYBOX, os.X_OK):
        lacks.append(f"{BUSYBOX} (the test image's only file: apt-get install busybox-static)")
    if not OCIPACK.is_file():
        lacks.append(f"{OCIPACK} (the OCI packer of the images build)")
    return lacks


def build(archive: Path) -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    pack = [sys.executable, OCIPACK, "--out", archive, "--name", TEST_IMAGE]
    subprocess.run(
        [*pack, "--file", f"/bin/busybox={BUSYBOX}:755", "--config", CONFIG], check=True, capture_output=True
    )
    return archive

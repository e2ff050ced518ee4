"""The real-node tests' image: busybox alone (Debian's busybox-static), run as nobody, packed into
an OCI archive by images/ocipack.py. A shell, httpd, wget and nc are all the test pods need."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from controlplane import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "images"))
import ocipack

BUSYBOX = Path("/bin/busybox")
TEST_IMAGE = "localhost/node-tests/busybox:1"
CONFIG = {"Entrypoint": ["/bin/busybox"], "User": "65534:65534"}


def missing() -> list[str]:
    lacks = []
    if not os.access(BUSYBOX, os.X_OK):
        lacks.append(f"{BUSYBOX} (the test image's only file: apt-get install busybox-static)")
    return lacks


def build(archive: Path) -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    layer = ocipack.layer_tar([ocipack.Entry("/bin/busybox", BUSYBOX.read_bytes(), 0o755)])
    history = [{"created": ocipack.EPOCH, "created_by": "busybox-static's /bin/busybox"}]
    ocipack.write_archive(archive, [layer], CONFIG, TEST_IMAGE, history)
    return archive

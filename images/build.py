"""Build the images a local node runs, as OCI archives in .cache/images/<name>.tar (`make images`).

Each image is rebuilt only when the content hash of its inputs (files, build steps, the images
it is built from) differs from the one recorded next to its archive. Progress lines carry the
seconds elapsed since the start. `ctr -n k8s.io images import .cache/images/<name>.tar` loads one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".cache" / "images"
WORK = OUT / "build"
START = time.monotonic()


def progress(msg: str) -> None:
    print(f"images: [{time.monotonic() - START:6.1f}s] {msg}", flush=True)


def run(*cmd: str | Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


@dataclass
class Image:
    """One archive: its reference, the files its content depends on, and how to build it."""

    name: str
    ref: str
    inputs: list[str]
    build: Callable[[Image, Path], None]
    after: list[str] = field(default_factory=list)

    @property
    def archive(self) -> Path:
        return OUT / f"{self.name}.tar"


def input_hash(image: Image, done: dict[str, str]) -> str:
    h = hashlib.sha256(image.ref.encode())
    for rel in sorted(image.inputs):
        for path in sorted((ROOT / rel).rglob("*")) if (ROOT / rel).is_dir() else [ROOT / rel]:
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    for dep in image.after:
        h.update(done[dep].encode())
    return h.hexdigest()


def build_pause(image: Image, out: Path) -> None:
    binary = WORK / "pause"
    WORK.mkdir(parents=True, exist_ok=True)
    run("gcc", "-static", "-Os", "-Wall", "-Wextra", "-Werror", "-s", "-o", binary, ROOT / "images/pause/pause.c")
    config = {"Entrypoint": ["/pause"], "User": "65535:65535"}
    run(
        sys.executable,
        ROOT / "images/ocipack.py",
        "--out",
        out,
        "--name",
        image.ref,
        "--file",
        f"/pause={binary}:755",
        "--config",
        json.dumps(config),
    )


IMAGES = [
    Image(
        "pause",
        os.environ.get("PAUSE_IMAGE", "registry.k8s.io/pause:3.6"),
        ["images/pause", "images/ocipack.py"],
        build_pause,
    ),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="images to build (default: all): " + ", ".join(i.name for i in IMAGES))
    p.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    args = p.parse_args()
    wanted = set(args.names or [i.name for i in IMAGES])
    unknown = wanted - {i.name for i in IMAGES}
    if unknown:
        p.error(f"unknown images: {', '.join(sorted(unknown))}")
    OUT.mkdir(parents=True, exist_ok=True)
    done: dict[str, str] = {}
    for image in IMAGES:
        if image.name not in wanted and not any(image.name in i.after for i in IMAGES if i.name in wanted):
            continue
        digest = input_hash(image, done)
        stamp = OUT / f"{image.name}.inputs"
        fresh = image.archive.exists() and stamp.exists() and stamp.read_text().strip() == digest
        if fresh and not args.force:
            progress(f"{image.name}: up to date ({image.ref}, {image.archive.stat().st_size / 1e6:.1f} MB)")
        else:
            progress(f"{image.name}: building {image.ref}")
            t = time.monotonic()
            stamp.unlink(missing_ok=True)
            image.build(image, image.archive)
            stamp.write_text(digest + "\n")
            size = image.archive.stat().st_size / 1e6
            progress(f"{image.name}: built {image.archive.relative_to(ROOT)} in {time.monotonic() - t:.0f}s ({size:.1f} MB)")
        done[image.name] = digest


if __name__ == "__main__":
    main()

"""Build the images a local node runs, as OCI archives in .cache/images/<name>.tar (`make images`).

No registry is reachable: the pause image is a static binary packed by images/ocipack.py; every
other image starts from a Debian root filesystem made by debootstrap (images/python/rootfs.sh,
from the mirror apt uses on this machine) and is built by buildah from a Dockerfile, each FROM
a local image named like the public one it stands for. An image is rebuilt only when the content
hash of its inputs (files, references, the images under it) differs from the one recorded next to
its archive. Progress lines carry the seconds since the start. Load an archive into a node with
`ctr -n k8s.io images import .cache/images/<name>.tar` (the index names the full reference).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ocipack

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".cache" / "images"
WORK = OUT / "build"
START = time.monotonic()
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Part of every input hash: raise it when what this script writes into an archive changes.
ARCHIVE_FORMAT = 2


def progress(msg: str) -> None:
    print(f"images: [{time.monotonic() - START:6.1f}s] {msg}", flush=True)


def run(*cmd: str | Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def buildah(*args: str | Path, log: Path | None = None, name: str = "") -> str:
    """Run buildah on our own storage under .cache; with ``log``, stream its output there and
    turn its STEP lines into progress lines."""
    cmd = ["buildah", "--root", WORK / "storage", "--runroot", WORK / "run", "--storage-driver", "overlay", *args]
    if log is None:
        return run(*cmd, capture_output=True, text=True).stdout
    with log.open("w") as out:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if re.match(r"(\[\d+/\d+\] )?STEP ", line):
                progress(f"{name}: {line.strip()[:110]}")
        if proc.wait() != 0:
            out.flush()
            tail = log.read_text().splitlines()[-25:]
            sys.exit(f"images: {name} failed (buildah {args[0]}); last lines of {log}:\n" + "\n".join(tail))
    return ""


@dataclass
class Image:
    """One image: its reference, the files its content depends on, how to build it, the images
    it is built from, and whether it is exported for the node (the bases stay in buildah's storage)."""

    name: str
    ref: str
    inputs: list[str]
    build: Callable[[Image], None]
    after: list[str] = field(default_factory=list)
    export: bool = True
    extra: dict = field(default_factory=dict)
    kept: str = ""  # not exported: the file under .cache/images/build that stands for the image

    @property
    def archive(self) -> Path:
        return OUT / f"{self.name}.tar" if self.export else WORK / (self.kept or f"{self.name}.ref")

    @property
    def stamp(self) -> Path:
        return self.archive.parent / f"{self.name}.inputs"


def input_hash(image: Image, done: dict[str, str]) -> str:
    h = hashlib.sha256(json.dumps([ARCHIVE_FORMAT, image.ref, image.extra], sort_keys=True).encode())
    for rel in sorted(image.inputs):
        for path in sorted((ROOT / rel).rglob("*")) if (ROOT / rel).is_dir() else [ROOT / rel]:
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    for dep in image.after:
        h.update(done[dep].encode())
    return h.hexdigest()


def fresh(image: Image, digest: str) -> bool:
    if not (image.archive.exists() and image.stamp.exists() and image.stamp.read_text().strip() == digest):
        return False
    # A base must also still be in buildah's storage (it is what the others are built FROM).
    return image.export or image.kept != "" or bool(buildah("images", "-q", image.ref).strip())


def apt_mirrors(sources: Path = Path("/etc/apt")) -> dict[str, str]:
    """The Debian mirrors apt uses here, by suite ("bookworm", "bookworm-security"), read from
    apt's sources (deb822 .sources and one-line .list files)."""
    found: dict[str, str] = {}
    files = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file() or path.suffix not in (".list", ".sources"):
            continue
        text = path.read_text()
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([\w-]+):\s*(.*)$", stanza, re.M))
                if fields.get("Enabled", "yes") == "no" or "deb" not in fields.get("Types", "").split():
                    continue
                for suite in fields.get("Suites", "").split():
                    for uri in fields.get("URIs", "").split():
                        found.setdefault(suite, uri)
        else:
            for line in text.splitlines():
                words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb":
                    found.setdefault(words[2], words[1])
    missing = {"bookworm", "bookworm-security"} - found.keys()
    if missing:
        sys.exit(f"images: apt's sources name no mirror for {', '.join(sorted(missing))} (debootstrap needs them)")
    return {suite: found[suite] for suite in ("bookworm", "bookworm-security")}


def build_pause(image: Image) -> None:
    binary = WORK / "pause"
    run("gcc", "-static", "-Os", "-Wall", "-Wextra", "-Werror", "-s", "-o", binary, ROOT / "images/pause/pause.c")
    entries = [ocipack.Entry("/pause", binary.read_bytes(), 0o755)]
    history = [{"created": ocipack.EPOCH, "created_by": "gcc -static images/pause/pause.c -o /pause"}]
    config = {"Entrypoint": ["/pause"], "User": "65535:65535"}
    ocipack.write_archive(image.archive, [ocipack.layer_tar(entries)], config, image.ref, history)


def build_rootfs(image: Image) -> None:
    mirrors = image.extra["mirrors"]
    env = {**os.environ, "LC_ALL": "C"}
    script = ROOT / "images/python/rootfs.sh"
    run("bash", script, image.archive, mirrors["bookworm"], mirrors["bookworm-security"], env=env)


def build_with_buildah(image: Image) -> None:
    """buildah bud of the image's Dockerfile (context: the repository, or the rootfs for the
    python base), then, for the node's images, an OCI archive named with the full reference."""
    dockerfile = image.extra["dockerfile"]
    context = ROOT
    if image.name == "python":
        context = WORK / "python-context"
        shutil.rmtree(context, ignore_errors=True)
        context.mkdir()
        os.link(IMAGES_BY_NAME["rootfs"].archive, context / "bookworm-python.tar.gz")
    args = ["bud", "--isolation", "chroot", "--pull-never", "--layers", "-f", ROOT / dockerfile, "-t", image.ref]
    if "target" in image.extra:
        args += ["--target", image.extra["target"]]
    if HOST_CA_BUNDLE.is_file():
        # The host's trust (a proxy's CA, say) for the RUN steps that reach PyPI; not in the image.
        args += ["-v", f"{HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro"]
    buildah(*args, context, log=WORK / f"{image.name}.log", name=image.name)
    if image.export:
        part = image.archive.with_suffix(".tar.part")
        part.unlink(missing_ok=True)
        buildah("push", image.ref, f"oci-archive:{part}:{image.ref}")
        name_archive(part, image.ref)
        part.replace(image.archive)
    else:
        image.archive.write_text(image.ref + "\n")  # the image itself lives in buildah's storage


def name_archive(path: Path, ref: str) -> None:
    """Put containerd's name annotation (the full reference) and the platform (from the image's
    config) on the manifest descriptor of the archive buildah wrote."""
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    files = {m.name.removeprefix("./"): data for m, data in members}

    def blob(digest: str) -> dict:
        return json.loads(files["blobs/sha256/" + digest.removeprefix("sha256:")])

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in members:
            if member.name.removeprefix("./") == "index.json":
                index = json.loads(data)
                for descriptor in index["manifests"]:
                    config = blob(blob(descriptor["digest"])["config"]["digest"])
                    descriptor["platform"] = {"architecture": config["architecture"], "os": config["os"]}
                    descriptor.setdefault("annotations", {}).update(ocipack.ref_annotations(ref))
                data = json.dumps(index, sort_keys=True).encode()
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)


def dockerfile(name: str, ref: str, inputs: list[str], after: list[str], path: str, **extra) -> Image:
    """An image buildah builds from a Dockerfile (``extra``: its ``target``; ``export=False``)."""
    export = extra.pop("export", True)
    files = sorted({path, *inputs})
    return Image(name, ref, files, build_with_buildah, after, export, {"dockerfile": path, **extra})


FOUNDATION = "quay.io/jupyter/docker-stacks-foundation:2025-03-14"
ELYRA = ["images/elyra", "tests/integration/requirements-eg.lock"]
IMAGES = [
    Image(
        "pause",
        os.environ.get("PAUSE_IMAGE", "registry.k8s.io/pause:3.6"),
        ["images/pause", "images/ocipack.py"],
        build_pause,
    ),
    Image(
        "rootfs",
        "debootstrap bookworm minbase + python3",
        ["images/python/rootfs.sh"],
        build_rootfs,
        export=False,
        kept="bookworm-python.tar.gz",
    ),
    dockerfile(
        "python", "docker.io/library/python:3.11-slim", [], ["rootfs"], "images/python/Dockerfile", export=False
    ),
    dockerfile(
        "docker-stacks-foundation",
        FOUNDATION,
        ["images/docker-stacks-foundation"],
        ["python"],
        "images/docker-stacks-foundation/Dockerfile",
        export=False,
    ),
    dockerfile(
        "hooks",
        os.environ.get("HOOKS_IMAGE", "ghcr.io/elastic-jupyter/hooks:0.1.0"),
        ["pyproject.toml", "README.md", "hooks"],
        ["python"],
        "Dockerfile",
    ),
    dockerfile(
        "enterprise-gateway",
        "docker.io/elyra/enterprise-gateway:3.3.0",
        ELYRA,
        ["python", "docker-stacks-foundation"],
        "images/elyra/Dockerfile",
        target="enterprise-gateway",
    ),
    dockerfile(
        "kernel-py",
        "docker.io/elyra/kernel-py:3.3.0",
        ELYRA,
        ["python", "docker-stacks-foundation"],
        "images/elyra/Dockerfile",
        target="kernel-py",
    ),
    dockerfile(
        "base-notebook",
        "quay.io/jupyter/base-notebook:2025-03-14",
        ["images/base-notebook", "tests/integration/requirements-fe.lock"],
        ["docker-stacks-foundation"],
        "images/base-notebook/Dockerfile",
    ),
]
IMAGES_BY_NAME = {i.name: i for i in IMAGES}


def needed(names: set[str]) -> list[Image]:
    """The images named and every image they are built from, in build order."""
    todo, stack = set(), list(names)
    while stack:
        name = stack.pop()
        if name not in todo:
            todo.add(name)
            stack += IMAGES_BY_NAME[name].after
    return [i for i in IMAGES if i.name in todo]


def release_storage() -> None:
    """Leave no working container or mount of buildah's behind: a failed build keeps its container
    (mounted), and containers/storage keeps its overlay directory bind-mounted."""
    storage = WORK / "storage"
    if not storage.exists():
        return
    buildah("rm", "--all")
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for target in sorted((m for m in mounts if m.startswith(f"{storage}/")), reverse=True):
        run("umount", target)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="images to build (default: all): " + ", ".join(IMAGES_BY_NAME))
    p.add_argument("--force", action="store_true", help="rebuild the named images even when their inputs are unchanged")
    args = p.parse_args()
    unknown = set(args.names) - IMAGES_BY_NAME.keys()
    if unknown:
        p.error(f"unknown images: {', '.join(sorted(unknown))}")
    WORK.mkdir(parents=True, exist_ok=True)
    todo = needed(set(args.names or IMAGES_BY_NAME))
    if any(i.name == "rootfs" for i in todo):
        IMAGES_BY_NAME["rootfs"].extra["mirrors"] = apt_mirrors()
    try:
        build_all(todo, args)
    finally:
        release_storage()


def build_all(todo: list[Image], args: argparse.Namespace) -> None:
    done: dict[str, str] = {}
    for image in todo:
        digest = input_hash(image, done)
        if fresh(image, digest) and not (args.force and image.name in args.names):
            progress(f"{image.name}: up to date ({image.ref})")
        else:
            progress(f"{image.name}: building {image.ref}")
            t = time.monotonic()
            image.stamp.unlink(missing_ok=True)
            image.build(image)
            image.stamp.write_text(digest + "\n")
            size = f", {image.archive.stat().st_size / 1e6:.1f} MB" if image.export else ""
            progress(f"{image.name}: built in {time.monotonic() - t:.0f}s{size}")
        done[image.name] = digest
    ready = [i for i in todo if i.export]
    for image in ready:
        progress(f"ready: {image.archive.relative_to(ROOT)}  {image.ref}  {image.archive.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

"""images/build.py and images/ocipack.py as pure functions: the cache key, the mirrors read from
apt's sources, and the archives (names, platform, digests) a runtime reads. The images themselves
are built and run by tests/images."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest

from tests.images import oci

ROOT = Path(__file__).resolve().parent.parent.parent


def _load_build():
    """images/build.py (a script, not a package: "build" is also PyPI's build frontend)."""
    spec = importlib.util.spec_from_file_location("images_build", ROOT / "images" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


build = _load_build()
ocipack = build.ocipack


def _archive(path: Path, name: str = "registry.k8s.io/pause:3.6") -> Path:
    entries = [ocipack.Entry("/pause", b"\x7fELF not really", 0o755), ocipack.Entry("/etc/x/y", b"y")]
    ocipack.write_archive(path, [ocipack.layer_tar(entries)], {"Entrypoint": ["/pause"]}, name, [])
    return path


def test_ocipack_archives_are_deterministic_and_read_as_a_runtime_does(tmp_path):
    first, second = _archive(tmp_path / "a.tar"), _archive(tmp_path / "b.tar")
    assert first.read_bytes() == second.read_bytes()
    archive = oci.Archive.read(first)  # every blob checked against its digest
    assert archive.name == "registry.k8s.io/pause:3.6"
    assert archive.index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "3.6"
    assert archive.config["config"] == {"Entrypoint": ["/pause"]}
    with tarfile.open(fileobj=io.BytesIO(archive.layers()[0])) as layer:
        members = {m.name: m for m in layer.getmembers()}
    assert sorted(members) == ["etc", "etc/x", "etc/x/y", "pause"]
    assert members["pause"].mode == 0o755 and members["etc/x"].isdir()
    assert {(m.uid, m.gid, m.mtime) for m in members.values()} == {(0, 0, 0)}


@pytest.mark.parametrize(
    ("name", "tag"),
    [("docker.io/elyra/kernel-py:3.3.0", "3.3.0"), ("localhost:5000/x", "latest"), ("a/b:c", "c")],
)
def test_reference_annotations(name, tag):
    assert ocipack.ref_annotations(name) == {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}


def test_name_archive_adds_the_full_name_and_the_platform(tmp_path):
    """What buildah's oci-archive lacks (no platform, only the tag) is added; blobs are untouched."""
    path = _archive(tmp_path / "x.tar", "elyra/kernel-py:3.3.0")
    with tarfile.open(path) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    index = json.loads(files["index.json"])
    index["manifests"][0].pop("platform")
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "3.3.0"}
    with tarfile.open(path, "w") as tar:
        for name, data in {**files, "index.json": json.dumps(index).encode()}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    build.name_archive(path, "docker.io/elyra/kernel-py:3.3.0")
    archive = oci.Archive.read(path)
    assert archive.name == "docker.io/elyra/kernel-py:3.3.0"
    assert archive.index["manifests"][0]["platform"] == {"architecture": "amd64", "os": "linux"}


def test_apt_mirrors_from_deb822_and_one_line_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm-security\nComponents: main\n"
    )
    (tmp_path / "sources.list.d" / "other.list.disabled").write_text("deb http://no.example/ bookworm-security main\n")
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://sec.example/debian-security bookworm-security main\n"
    )
    assert build.apt_mirrors(tmp_path) == {
        "bookworm": "http://mirror.example/debian",
        "bookworm-security": "http://sec.example/debian-security",
    }
    (tmp_path / "sources.list").unlink()
    with pytest.raises(SystemExit, match="bookworm-security"):
        build.apt_mirrors(tmp_path)


def test_the_cache_key_follows_every_input_and_the_images_underneath(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "ROOT", tmp_path)
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM base\n")
    (tmp_path / "lock.txt").write_text("a==1\n")
    image = build.dockerfile("x", "example/x:1", ["ctx", "lock.txt"], ["base"], "ctx/Dockerfile")
    key = build.input_hash(image, {"base": "b1"})
    assert key == build.input_hash(image, {"base": "b1"})
    changes = []
    (tmp_path / "lock.txt").write_text("a==2\n")
    changes.append(build.input_hash(image, {"base": "b1"}))
    (tmp_path / "ctx" / "new-file").write_text("")
    changes.append(build.input_hash(image, {"base": "b1"}))
    changes.append(build.input_hash(image, {"base": "b2"}))
    renamed = build.dockerfile("x", "example/x:2", ["ctx", "lock.txt"], ["base"], "ctx/Dockerfile")
    changes.append(build.input_hash(renamed, {"base": "b2"}))
    assert len({key, *changes}) == 5, "an input changed and the key did not"

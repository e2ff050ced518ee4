"""Pack files into an OCI image archive (an OCI image layout in one tar), as `ctr images import` reads it.

Used for the images built without a builder (the static pause image) and to name archives: the
index carries `io.containerd.image.name`, the fully qualified reference containerd's CRI looks up.
Everything is deterministic (sorted entries, mtime 0, root owner, gzip without a timestamp), so
the same inputs give the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class Entry:
    """One file of a layer: where it goes in the image, its bytes and its mode."""

    path: str
    data: bytes
    mode: int = 0o644


def layer_tar(entries: list[Entry]) -> bytes:
    """An uncompressed layer tar holding the entries and their parent directories (0755)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(p) for e in entries for p in Path(e.path.strip("/")).parents if str(p) != "."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for e in sorted(entries, key=lambda e: e.path):
            info = tarfile.TarInfo(e.path.strip("/"))
            info.size, info.mode = len(e.data), e.mode
            tar.addfile(info, io.BytesIO(e.data))
    return out.getvalue()


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def write_archive(out: Path, layers: list[bytes], image_config: dict, name: str, history: list[dict]) -> str:
    """Write the archive with the given uncompressed layers; return the manifest digest."""
    blobs: dict[str, bytes] = {}
    layer_descs, diff_ids = [], []
    for layer in layers:
        diff_ids.append("sha256:" + hashlib.sha256(layer).hexdigest())
        digest, data = _blob(gzip.compress(layer, compresslevel=9, mtime=0))
        blobs[digest] = data
        layer_descs.append({"mediaType": LAYER, "digest": digest, "size": len(data)})
    config = {
        "created": EPOCH,
        "architecture": "amd64",
        "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    config_digest, config_data = _blob(json.dumps(config, sort_keys=True).encode())
    blobs[config_digest] = config_data
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": config_digest, "size": len(config_data)},
        "layers": layer_descs,
    }
    manifest_digest, manifest_data = _blob(json.dumps(manifest, sort_keys=True).encode())
    blobs[manifest_digest] = manifest_data
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest_data),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": ref_annotations(name),
            }
        ],
    }
    tmp = out.with_suffix(out.suffix + ".part")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(tar, "index.json", json.dumps(index, sort_keys=True).encode())
        for digest in sorted(blobs):
            _add(tar, "blobs/sha256/" + digest.removeprefix("sha256:"), blobs[digest])
    tmp.replace(out)
    return manifest_digest


def ref_annotations(name: str) -> dict[str, str]:
    """containerd's import takes `io.containerd.image.name` as the image's full reference."""
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    return {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}

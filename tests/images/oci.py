"""Read the OCI archives `make images` writes and run their root filesystems without a node.

``Archive`` checks every blob against its digest and reads the index, manifest and config as a
runtime does. ``unpack`` applies the layers in order with their whiteouts. ``start`` runs a
command of an unpacked image the way a container runtime would, as far as these tests need:
private mount, PID and network namespaces (no route out), /proc and /dev, chroot, the image's
user, working directory and environment, and bind mounts for a pod's volumes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

OPAQUE = ".wh..wh..opq"
POD_IP, HOSTNAME = "10.0.0.2", "pod"


@dataclass
class Archive:
    index: dict
    manifest: dict
    config: dict
    blobs: dict[str, bytes]

    @classmethod
    def read(cls, path: Path) -> Archive:
        with tarfile.open(path) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        blobs = {}
        for name, data in files.items():
            if name.startswith("blobs/sha256/"):
                digest = "sha256:" + name.removeprefix("blobs/sha256/")
                assert hashlib.sha256(data).hexdigest() == digest.removeprefix("sha256:"), f"{path}: {name} corrupt"
                blobs[digest] = data
        assert json.loads(files["oci-layout"])["imageLayoutVersion"] == "1.0.0"
        index = json.loads(files["index.json"])
        assert len(index["manifests"]) == 1, index
        manifest = json.loads(blobs[index["manifests"][0]["digest"]])
        config = json.loads(blobs[manifest["config"]["digest"]])
        return cls(index, manifest, config, blobs)

    @property
    def name(self) -> str:
        return self.index["manifests"][0]["annotations"]["io.containerd.image.name"]

    def layers(self) -> list[bytes]:
        """The uncompressed layers, each checked against the config's diff_ids."""
        out = []
        for desc, diff_id in zip(self.manifest["layers"], self.config["rootfs"]["diff_ids"], strict=True):
            data = self.blobs[desc["digest"]]
            data = gzip.decompress(data) if desc["mediaType"].endswith("gzip") else data
            assert "sha256:" + hashlib.sha256(data).hexdigest() == diff_id
            out.append(data)
        return out


def unpack(archive: Archive, dest: Path) -> Path:
    """The image's root filesystem: each layer's whiteouts applied, then its files (GNU tar,
    numeric owners and modes kept, as a runtime's snapshotter does)."""
    dest.mkdir(parents=True, exist_ok=True)
    for layer in archive.layers():
        layer_path = dest.parent / f"{dest.name}.layer.tar"
        layer_path.write_bytes(layer)
        with tarfile.open(layer_path) as tar:
            names = [m.name.removeprefix("./") for m in tar.getmembers()]
        for name in names:
            parent, base = os.path.split(name)
            if base == OPAQUE:
                for child in (dest / parent).iterdir() if (dest / parent).is_dir() else []:
                    _remove(child)
            elif base.startswith(".wh."):
                _remove(dest / parent / base.removeprefix(".wh."))
        subprocess.run(
            ["tar", "-xpf", layer_path, "-C", dest, "--numeric-owner", "--exclude=.wh.*", "--exclude=*/.wh.*"],
            check=True,
        )
        layer_path.unlink()
    return dest


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def start(
    rootfs: Path,
    argv: list[str],
    *,
    env: dict[str, str],
    user: str,
    workdir: str = "/",
    mounts: dict[str, Path] | None = None,
    join_net_of: int | None = None,
    log: Path | None = None,
) -> subprocess.Popen:
    """``argv`` in ``rootfs`` as ``user`` ("uid:gid"), in ``workdir``, with exactly ``env``, and
    each host directory of ``mounts`` bind-mounted at its path (a pod's volumes).

    New mount and PID namespaces (``argv``'s first process is PID 1 there; ``stop`` kills them
    all) and a new network namespace (loopback, and 10.0.0.2 on a veth pair
    of its own), unless ``join_net_of`` names a process whose network namespace to share.
    Output goes to ``log`` (or a pipe)."""
    uid, _, gid = user.partition(":")
    gid = gid or uid
    q = shlex.quote
    setup = ["set -e", "mount --make-rprivate /", f"mount -t proc proc {q(f'{rootfs}/proc')}"]
    setup += [f"mount --rbind /dev {q(f'{rootfs}/dev')}"]
    if join_net_of is None:  # loopback, and an address besides it, as a pod has (EG needs one)
        setup += ["ip link set lo up", "ip link add eth0 type veth peer name eth1"]
        setup += [f"ip addr add {POD_IP}/24 dev eth0", "ip link set eth1 up", "ip link set eth0 up"]
    # The kubelet's /etc/hosts names the pod's address after its hostname (how jupyter_client
    # finds a public address in an image without ip, ifconfig or netifaces).
    hosts = rootfs.parent / f"{rootfs.name}.hosts"
    hosts.write_text(f"127.0.0.1\tlocalhost\n{POD_IP}\t{HOSTNAME}\n")
    target = q(f"{rootfs}/etc/hosts")
    setup += [f"hostname {HOSTNAME}", f"touch {target}", f"mount --bind {q(str(hosts))} {target}"]
    for target, source in (mounts or {}).items():
        setup.append(f"mkdir -p {q(f'{rootfs}{target}')} && mount --bind {q(str(source))} {q(f'{rootfs}{target}')}")
    chroot = ["chroot", f"--userspec={uid}:{gid}", f"--groups={gid}", str(rootfs)]
    inner = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *chroot, "/bin/sh", "-c", 'cd "$0" && exec "$@"']
    setup.append("exec " + " ".join(q(w) for w in [*inner, workdir, *argv]))
    cmd = ["unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child"]
    if join_net_of is None:
        cmd.append("--net")
    else:
        cmd = ["nsenter", f"--net=/proc/{join_net_of}/ns/net", "--", *cmd]
    out = log.open("wb") if log else subprocess.PIPE
    return subprocess.Popen([*cmd, "--", "sh", "-c", "\n".join(setup)], stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    """Kill what ``start`` (or ``unshare --pid --fork``) started: SIGKILL to the PID namespace's
    first process kills every process in it (unshare ignores SIGTERM, and a process that changed
    its user has lost --kill-child's parent-death signal)."""
    if proc.poll() is None:
        for pid in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
            os.kill(int(pid), signal.SIGKILL)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def in_net_of(pid: int, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a host command (e.g. an HTTP client) in the network namespace of ``pid``."""
    return subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "--", *argv], capture_output=True, text=True, timeout=timeout
    )


def image_env(config: dict, **extra: str) -> dict[str, str]:
    """The environment a runtime gives the container: the image's Env, then the pod's."""
    env = dict(e.split("=", 1) for e in config["config"].get("Env", []))
    return {**env, **extra}


def image_command(config: dict) -> list[str]:
    """ENTRYPOINT + CMD, as a runtime runs them when the pod sets neither."""
    c = config["config"]
    return [*(c.get("Entrypoint") or []), *(c.get("Cmd") or [])]


def resolve_user(rootfs: Path, user: str) -> str:
    """An image's "user[:group]" as "uid:gid", names looked up in its own /etc/passwd and /etc/group."""
    name, _, group = user.partition(":")
    passwd = {f[0]: f for f in (line.split(":") for line in (rootfs / "etc/passwd").read_text().splitlines())}
    groups = {f[0]: f[2] for f in (line.split(":") for line in (rootfs / "etc/group").read_text().splitlines())}
    uid = passwd[name][2] if name in passwd else name
    gid = groups.get(group, group) if group else (passwd[name][3] if name in passwd else uid)
    return f"{uid}:{gid}"

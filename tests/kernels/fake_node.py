"""The ONE stand-in of the kernel-pod tests: a node (kubelet and container runtime).

The local control plane has no node. ``FakeNode`` plays one for the kernel pods Enterprise
Gateway creates (label ``component=kernel``) in the namespaces it is given, doing what a
scheduler and a kubelet do and nothing else:

1. binds each new pod to the Node ``fake-node`` (the pods/binding subresource);
2. starts the pod's only container as a local process in its own session: the container's
   command and args, or the image's default command (``IMAGES``), with the pod's env, its
   workingDir and its volumes mapped to local directories (a PersistentVolumeClaim to the
   directory registered for it, shared with the Jupyter Server's root_dir);
3. reports the pod Running with podIP 127.0.0.1 (the pods/status subresource);
4. when the pod is deleted, or gets a deletionTimestamp, stops the process (SIGTERM, then
   SIGKILL) and finalizes the pod (delete with grace 0); when the process exits on its own,
   reports Succeeded or Failed.

Admission, quota, RBAC and the pod spec itself are the real API server's. Whatever the node
cannot run (an unknown image, a hostPath or other volume it has no directory for, init
containers) it reports as the pod's container status with a reason, never guessed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from kubeapi import ApiError, KubeApi
from localrun import map_path

NODE = "fake-node"
POD_IP = "127.0.0.1"
KERNEL_SELECTOR = "component=kernel"
# The stand-in for the gateway's in-cluster configuration (tests/kernels/incluster, and the
# KUBECONFIG its launcher gets); a kernel container gets the pod's env, which EG's launcher
# copies from its own environment.
SHIM_ENV = ("PYTHONPATH", "LOCALRUN_INCLUSTER_DIR", "KUBECONFIG")
# Directories EG's environment points at (copied into the pod env by launch_kubernetes.py):
# in a cluster they are paths inside the gateway's container; here each pod gets its own.
PRIVATE_DIRS = ("HOME", "IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR")


@dataclass(frozen=True)
class Image:
    """What a kernel image contributes: its default command, ENV, WORKDIR and files."""

    command: tuple[str, ...]
    env: dict[str, str]
    workdir: str
    files: dict[str, Path]  # path in the image -> local path (longest prefix wins)


def kernel_images(sdist: Path) -> dict[str, Image]:
    """Enterprise Gateway's Python kernel images (etc/docker/kernel-py and kernel-tf-gpu-py in the
    sdist): CMD /usr/local/bin/bootstrap-kernel.sh, ENV KERNEL_LANGUAGE=python, the launchers
    under /usr/local/bin/kernel-launchers. Here: the same files from the sdist."""
    launchers = sdist / "etc" / "kernel-launchers"
    python = Image(
        command=("bash", "/usr/local/bin/bootstrap-kernel.sh"),
        env={"KERNEL_LANGUAGE": "python", "KERNEL_LAUNCHERS_DIR": "/usr/local/bin/kernel-launchers"},
        workdir="/home/jovyan",
        files={
            "/usr/local/bin/bootstrap-kernel.sh": launchers / "bootstrap" / "bootstrap-kernel.sh",
            "/usr/local/bin/kernel-launchers": launchers,
        },
    )
    return {"elyra/kernel-py": python, "elyra/kernel-tf-py": python, "elyra/kernel-tf-gpu-py": python}


def image_repository(image: str) -> str:
    name = image.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    name = head if head and "/" not in tail else name
    return name.removeprefix("docker.io/")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodRecord:
    """One pod as the node saw it; times are time.time() (wall clock, comparable with EG's)."""

    namespace: str
    name: str
    uid: str
    spec: dict
    seen: float = 0.0
    running: float | None = None
    deleted: float | None = None  # the node saw the deletion (timestamp or DELETED event)
    stopped: float | None = None
    proc: subprocess.Popen | None = None
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    log: Path | None = None
    problem: str = ""
    exit_code: int | None = None


class FakeNode:
    def __init__(
        self,
        api: KubeApi,
        namespaces: set[str],
        workdir: Path,
        images: dict[str, Image],
        venv: Path,
        claims: dict[tuple[str, str], Path] | None = None,
    ):
        self.api, self.namespaces, self.images, self.venv = api, set(namespaces), images, Path(venv)
        self.workdir = Path(workdir)
        self.claims = claims if claims is not None else {}  # (namespace, claimName) -> local dir; shared
        self.pods: dict[str, PodRecord] = {}  # by uid
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeNode:
        self.workdir.mkdir(parents=True, exist_ok=True)
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux"}},
        }
        with contextlib.suppress(ApiError):
            self.api.post("/api/v1/nodes", node)
        capacity = {"cpu": "2", "memory": "8Gi", "pods": "110", "nvidia.com/gpu": "1"}
        self.api.patch(
            f"/api/v1/nodes/{NODE}/status",
            {
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "addresses": [{"type": "InternalIP", "address": POD_IP}],
                }
            },
        )
        for target in (self._watch_loop, self._reap_loop):
            thread = threading.Thread(target=target, name=f"fake-node-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[int]:
        """Stop watching and kill every process still running; returns the PIDs it had to kill."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        killed = []
        with self._lock:
            records = list(self.pods.values())
        for rec in records:
            if rec.proc and rec.proc.poll() is None:
                killed.append(rec.proc.pid)
            self._kill(rec)
        return killed

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def running(self) -> list[PodRecord]:
        with self._lock:
            return [r for r in self.pods.values() if r.proc and r.proc.poll() is None]

    def record(self, namespace: str, name: str) -> PodRecord | None:
        with self._lock:
            found = [r for r in self.pods.values() if (r.namespace, r.name) == (namespace, name)]
        return found[-1] if found else None

    # ------------------------------------------------------------------ watch
    def _watch_loop(self) -> None:
        path = f"/api/v1/pods?labelSelector={KERNEL_SELECTOR}"
        while not self._stop.is_set():
            try:
                listing = self.api.get(path)
                version = listing["metadata"]["resourceVersion"]
                for pod in listing["items"]:
                    self._handle("ADDED", pod)
                listed = {pod["metadata"]["uid"] for pod in listing["items"]}
                with self._lock:
                    gone = [r for r in self.pods.values() if r.uid not in listed and r.deleted is None]
                for rec in gone:  # deleted while no watch was open
                    rec.deleted = time.time()
                    self._kill(rec)
                for event in self.api.watch(path, version, timeout_seconds=5):
                    if self._stop.is_set():
                        return
                    if event["type"] == "ERROR":
                        break  # e.g. 410 Gone: list again
                    if event["type"] != "BOOKMARK":
                        self._handle(event["type"], event["object"])
            except Exception as exc:
                self.errors.append(f"watch: {exc!r}")
                time.sleep(0.2)

    def _handle(self, kind: str, pod: dict) -> None:
        meta = pod["metadata"]
        if meta.get("namespace") not in self.namespaces:
            return
        uid = meta["uid"]
        with self._lock:
            rec = self.pods.get(uid)
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            if rec and rec.deleted is None:
                rec.deleted = time.time()
                self._kill(rec)
            if kind != "DELETED":  # the kubelet's part of a graceful delete: finalize it
                with contextlib.suppress(ApiError):
                    self.api.delete(self._pod_path(meta["namespace"], meta["name"]), grace_seconds=0)
            return
        if rec is not None:
            return
        rec = PodRecord(meta["namespace"], meta["name"], uid, pod["spec"], seen=time.time())
        with self._lock:
            self.pods[uid] = rec
        try:
            if not pod["spec"].get("nodeName"):
                self.api.post(
                    self._pod_path(rec.namespace, rec.name) + "/binding",
                    {
                        "apiVersion": "v1",
                        "kind": "Binding",
                        "metadata": {"name": rec.name},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
                    },
                )
            self._start(rec, pod)
        except Exception as exc:
            self.errors.append(f"{rec.namespace}/{rec.name}: {exc!r}")

    # ------------------------------------------------------------------ running a pod
    def _start(self, rec: PodRecord, pod: dict) -> None:
        spec = pod["spec"]
        containers = spec.get("containers") or []
        if spec.get("initContainers") or len(containers) != 1:
            return self._cannot_run(rec, "FakeNodeUnsupported", "only pods with exactly one container and no init")
        container = containers[0]
        image = self.images.get(image_repository(container.get("image", "")))
        if image is None:
            return self._cannot_run(rec, "ErrImagePull", f"fake node has no image {container.get('image')!r}")
        poddir = self.workdir / f"{rec.namespace}.{rec.name}"
        paths, problem = self._volumes(rec, spec, container, poddir)
        if problem:
            return self._cannot_run(rec, "FailedMount", problem)
        paths.update({k: str(v) for k, v in image.files.items()})
        home = poddir / "home"
        home.mkdir(parents=True, exist_ok=True)
        paths.setdefault(image.workdir, str(home))

        def local(value: str) -> str:
            return map_path(value, paths)

        env = {"LANG": "C.UTF-8", **image.env}
        for var in container.get("env") or []:
            env[var["name"]] = self._env_value(var, pod)
        for name in SHIM_ENV:
            env.pop(name, None)
        env = {k: local(v) for k, v in env.items()}
        for name in PRIVATE_DIRS:
            env[name] = str(home) if name == "HOME" else str(home / f".{name.lower()}")
        env["PATH"] = f"{self.venv}/bin:/usr/bin:/bin"  # the image's conda python -> the EG venv's
        argv = [local(a) for a in (container.get("command") or list(image.command)) + (container.get("args") or [])]
        cwd = local(container.get("workingDir") or image.workdir)
        Path(cwd).mkdir(parents=True, exist_ok=True)
        rec.argv, rec.env, rec.cwd = argv, env, cwd
        rec.log = poddir / "container.log"
        with open(rec.log, "ab") as out:
            rec.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = now_rfc3339()
        self._status(
            rec,
            {
                "phase": "Running",
                "hostIP": POD_IP,
                "hostIPs": [{"ip": POD_IP}],
                "podIP": POD_IP,
                "podIPs": [{"ip": POD_IP}],
                "startTime": started,
                "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": started}
                    for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
                ],
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "image": container.get("image", ""),
                        "imageID": "",
                        "ready": True,
                        "started": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": started}},
                    }
                ],
            },
        )
        rec.running = time.time()

    def _volumes(self, rec: PodRecord, spec: dict, container: dict, poddir: Path) -> tuple[dict[str, str], str]:
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        paths = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"]) or {}
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                local = self.claims.get((rec.namespace, claim))
                if local is None:
                    return {}, f"no local directory for PersistentVolumeClaim {rec.namespace}/{claim}"
            elif "emptyDir" in volume:
                local = poddir / "volumes" / mount["name"]
            else:
                kinds = sorted(set(volume) - {"name"})
                return {}, f"volume {mount['name']} of kind {kinds} is not supported by the fake node"
            if mount.get("subPath"):
                local = local / mount["subPath"]
            local.mkdir(parents=True, exist_ok=True)
            paths[mount["mountPath"]] = str(local)
        return paths, ""

    @staticmethod
    def _env_value(var: dict, pod: dict) -> str:
        if "valueFrom" not in var:
            return str(var.get("value", ""))
        field_path = (var["valueFrom"].get("fieldRef") or {}).get("fieldPath")
        values = {
            "metadata.name": pod["metadata"]["name"],
            "metadata.namespace": pod["metadata"]["namespace"],
            "status.podIP": POD_IP,
            "status.hostIP": POD_IP,
            "spec.nodeName": NODE,
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        }
        if field_path not in values:
            raise ValueError(f"env {var['name']}: the fake node resolves no {var['valueFrom']}")
        return values[field_path]

    def _cannot_run(self, rec: PodRecord, reason: str, message: str) -> None:
        rec.problem = f"{reason}: {message}"
        self.errors.append(f"{rec.namespace}/{rec.name}: {rec.problem}")
        name = rec.spec["containers"][0]["name"] if rec.spec.get("containers") else "kernel"
        self._status(
            rec,
            {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": name,
                        "image": "",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": reason, "message": message}},
                    }
                ],
            },
        )

    def _status(self, rec: PodRecord, status: dict) -> None:
        with contextlib.suppress(ApiError):  # the pod may be gone already
            self.api.patch(self._pod_path(rec.namespace, rec.name) + "/status", {"status": status})

    @staticmethod
    def _pod_path(namespace: str, name: str) -> str:
        return f"/api/v1/namespaces/{namespace}/pods/{name}"

    # ------------------------------------------------------------------ stopping
    def _kill(self, rec: PodRecord) -> None:
        proc = rec.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything the kernel left in its session
        if rec.stopped is None:
            rec.stopped = time.time()
            rec.exit_code = proc.returncode

    def _reap_loop(self) -> None:
        """A container that exits while its pod lives: report Succeeded/Failed (restartPolicy Never)."""
        while not self._stop.wait(0.2):
            with self._lock:
                records = list(self.pods.values())
            for rec in records:
                if rec.proc and rec.stopped is None and rec.deleted is None and rec.proc.poll() is not None:
                    rec.stopped, rec.exit_code = time.time(), rec.proc.returncode
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(rec.proc.pid, signal.SIGKILL)
                    finished = now_rfc3339()
                    self._status(
                        rec,
                        {
                            "phase": "Succeeded" if rec.exit_code == 0 else "Failed",
                            "containerStatuses": [
                                {
                                    "name": rec.spec["containers"][0]["name"],
                                    "image": "",
                                    "imageID": "",
                                    "ready": False,
                                    "restartCount": 0,
                                    "state": {
                                        "terminated": {
                                            "exitCode": rec.exit_code,
                                            "startedAt": finished,
                                            "finishedAt": finished,
                                        }
                                    },
                                }
                            ],
                        },
                    )

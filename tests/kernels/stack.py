"""Everything the kernel-pod tests run, on a real single-node cluster, wired as the hooks render it.

- NodeCluster (tests/e2e/node.py): etcd, kube-apiserver, kube-controller-manager (with its
  resourcequota, PV binder and job controllers), kube-scheduler, containerd, runc, a CNI bridge,
  kubelet, kube-proxy and cluster DNS; the node advertises one nvidia.com/gpu; images are the
  OCI archives of .cache/images (`make images`), imported, never pulled;
- our CRDs and RBAC (manifests/crds, manifests/rbac); namespace GATEWAY_NS holding the
  JupyterGateway, NOTEBOOK_NS holding the JupyterNotebook, both enforcing Pod Security
  ``restricted``, NOTEBOOK_NS with a ResourceQuota;
- the children the pure sync hooks render for them, applied with kubectl, as Metacontroller
  would: the gateway's Deployment runs as a pod (its init containers, Enterprise Gateway 3.3.0
  on the pod's loopback and the front door beside it), each notebook's Deployment as a pod
  (Jupyter Server), reaching the gateway through its Service (kube-proxy, cluster DNS) with its
  projected ServiceAccount token; EG creates each kernel pod in the notebook's namespace, the
  kube-scheduler places it and the kubelet runs it; the workspace claim is bound to a local
  PersistentVolume, mounted in the notebook's pod and in its kernels' pods;
- the tests reach EG itself (what any holder of the gateway's internal token could do) through
  `kubectl port-forward` to the gateway pod's loopback port, and read its log with `kubectl logs`.

The one difference from a cluster: the GPU profile's image elyra/kernel-tf-gpu-py:3.3.0 is the
locally built kernel-py image under that name (tagged on the node; see README, "Images").
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import localrun as lr
import rendered
from controlplane import Process, wait_for
from kubeapi import KubeApi
from node import IMAGES_DIR, NodeCluster, can_run_node, mounts_under

from hooks.gateway import CLUSTER_ROLES, INTERNAL_PORT, KERNEL_ROLE_LABEL, METRICS_PORT, access_name, sync_gateway
from hooks.models import API_VERSION
from hooks.notebook import GATEWAYS, sync_notebook
from tests import eg_launcher

REPO = lr.REPO
OUTPUT = REPO / "test-output" / "kernels"
GATEWAY_NS, NOTEBOOK_NS = "gateways", "team-a"
GATEWAY, NOTEBOOK = "gw", "alice"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}
QUOTA = {"requests.cpu": "2", "requests.memory": "4Gi", "requests.nvidia.com/gpu": "1", "pods": "10"}
KERNEL_IMAGE = "elyra/kernel-py:3.3.0"
GPU_IMAGE = "elyra/kernel-tf-gpu-py:3.3.0"  # the kernel-py image under the GPU profile's name
GPU_LABEL = "nvidia.com/gpu.present"
PREEMPTIBLE = "kernels-preemptible"
NOW = rendered.NOW
IMAGES = ("pause", "enterprise-gateway", "kernel-py", "base-notebook")
# How often the kubelet syncs each pod, and so refreshes its ConfigMap volumes (the front door's
# access list): 5 s here so that test waits on it briefly; a cluster keeps the default (1 min).
KUBELET = {"syncFrequency": "5s"}


def missing_parts() -> list[str]:
    """What the local-process front-door suite needs that is not there, each with how to get it."""
    missing = []
    try:
        eg_launcher.sdist()  # fetched by tests/integration/provision.sh; else here (hash pinned)
    except RuntimeError as exc:
        missing.append(str(exc))
    for venv in (lr.EG_VENV, lr.FE_VENV):
        if not (venv / "bin" / "jupyter").exists():
            missing.append(f"{venv} (run: bash tests/integration/provision.sh)")
    return missing


def node_missing(bin_dir) -> list[str]:
    """What the machine lacks to run KernelStack (a real node and the built images)."""
    images = [n for n in IMAGES if not (IMAGES_DIR / f"{n}.tar").is_file()]
    return can_run_node(bin_dir) + ([f"{', '.join(images)} in {IMAGES_DIR} (run: make images)"] if images else [])


def cr(kind: str, name: str, namespace: str, spec: dict) -> dict:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def secret_token(children: list[dict], name: str, key: str = "token") -> str:
    secret = next(c for c in children if c["kind"] == "Secret" and c["metadata"]["name"] == name)
    return base64.b64decode(secret["data"][key]).decode()


class PodServer:
    """A Jupyter server (or the front door) in a container of a pod, reached at the pod's IP (the
    node's bridge is the host's); ``restarts`` and ``log`` read the container's status and log."""

    def __init__(self, stack: KernelStack, namespace: str, selector: str, container: str, token: str = ""):
        self.stack, self.namespace, self.selector, self.container = stack, namespace, selector, container
        self.token = token

    def pod(self) -> dict:
        pods = [
            p for p in self.stack.api.pods(self.namespace, self.selector) if not p["metadata"].get("deletionTimestamp")
        ]
        assert len(pods) == 1, f"{len(pods)} pods {self.selector} in {self.namespace}"
        return pods[0]

    @property
    def url(self) -> str:
        return f"http://{self.pod()['status']['podIP']}:8888"

    def status(self) -> dict:
        return next(c for c in self.pod()["status"]["containerStatuses"] if c["name"] == self.container)

    @property
    def restarts(self) -> tuple[str, int]:
        """(pod uid, the container's restart count): changes when anything restarts."""
        return self.pod()["metadata"]["uid"], self.status()["restartCount"]

    def api(self, method: str, path: str, body: Any = None, *, auth: bool = True, timeout: float = 30):
        headers = {"Authorization": f"token {self.token}"} if auth and self.token else {}
        return lr.http(method, self.url + path, headers=headers, body=body, timeout=timeout)

    def log(self, previous: bool = False) -> str:
        args = ["logs", self.pod()["metadata"]["name"], "-n", self.namespace, "-c", self.container]
        return self.stack.cp.kubectl(*args, *(["--previous"] if previous else []), check=False).stdout

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def wait_for_log(self, pattern: str, timeout: float = 15) -> re.Match:
        return wait_for(lambda: re.search(pattern, self.log()), timeout=timeout, what=f"a log line /{pattern}/")

    def kill(self) -> None:
        """The container's processes killed from the node (a crash): the kubelet restarts it in the same pod."""
        container_id = self.status()["containerID"].split("://", 1)[1]
        self.stack.cp.ctr("tasks", "kill", "--all", "--signal=SIGKILL", container_id)

    def wait_ready(self, after: tuple[str, int] | None = None, timeout: float = 120) -> None:
        """Until one pod of ours is Ready (and, given ``after``, is another pod or restarted since)."""

        def ready() -> bool:
            try:
                pod, status = self.pod(), self.status()
            except (AssertionError, KeyError, StopIteration):
                return False
            changed = after is None or (pod["metadata"]["uid"], status["restartCount"]) != after
            return changed and status.get("ready") is True

        wait_for(ready, timeout=timeout, what=f"{self.container} in {self.namespace} ready")


class Gateway(PodServer):
    """Enterprise Gateway in the gateway pod, on the pod's loopback: reached through a
    `kubectl port-forward` (kube-apiserver -> kubelet -> containerd) to its internal and metrics
    ports, restarted when the pod is replaced, with the gateway Secret's internal token."""

    def __init__(self, stack: KernelStack, token: str):
        super().__init__(stack, GATEWAY_NS, f"kubeflow.tkestack.io/jupytergateway={GATEWAY}", "gateway", token)
        self.forward: Process | None = None
        self.forwarded: str | None = None
        self.ports: dict[int, int] = {}

    def _forward(self) -> None:
        name = self.pod()["metadata"]["name"]
        if self.forward and self.forward.alive() and self.forwarded == name:
            return
        if self.forward:
            self.forward.stop()
        cp = self.stack.cp
        # kubectl exits when the pod resets a forwarded connection ("lost connection to pod"); the
        # next call starts another, whose log goes on in the same file: read only its own lines,
        # not the dead one's ports (a stale port failed every later test once).
        log = cp.workdir / f"port-forward-{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        self.forward = cp._spawn(
            f"port-forward-{name}",
            [cp.binary("kubectl"), f"--kubeconfig={cp.kubeconfig}", "port-forward", "-n", GATEWAY_NS,
             f"pod/{name}", f":{INTERNAL_PORT}", f":{METRICS_PORT}"],
        )  # fmt: skip
        self.forwarded = name

        def ports():
            self.forward.check_alive()
            text = self.forward.log.read_bytes()[offset:].decode(errors="replace")
            found = re.findall(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", text)
            return len(found) >= 2 and {int(remote): int(local) for local, remote in found}

        self.ports = wait_for(ports, timeout=30, what=f"kubectl port-forward to {name}")

    @property
    def url(self) -> str:
        self._forward()
        return f"http://127.0.0.1:{self.ports[INTERNAL_PORT]}"

    def metrics_url(self) -> str:
        self._forward()
        return f"http://127.0.0.1:{self.ports[METRICS_PORT]}/metrics"

    def forward_lost(self) -> bool:
        """Whether kubectl port-forward has exited (within 5 s): it does when the pod resets any
        forwarded connection (a kernel's websocket closed as it dies, seen here), and a request in
        flight through it fails."""
        if self.forward is None:
            return False
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.forward.popen.wait(timeout=5)
        return not self.forward.alive()

    def _once_more(self, send: Callable[[], Any], resendable: Callable[[OSError], bool]) -> Any:
        """``send()``; if it failed because the forward ended and ``resendable`` says so, once more
        through a new forward (``url`` and ``metrics_url`` start one)."""
        try:
            return send()
        except OSError as exc:
            if not resendable(exc) or not self.forward_lost():
                raise
        return send()

    def api(self, method: str, path: str, body: Any = None, *, auth: bool = True, timeout: float = 30):
        """As PodServer.api, sent once more after a lost forward if it is a GET or was refused
        before it was sent."""
        return self._once_more(
            lambda: super(Gateway, self).api(method, path, body, auth=auth, timeout=timeout),
            lambda exc: method == "GET" or isinstance(getattr(exc, "reason", exc), ConnectionRefusedError),
        )

    def metrics(self) -> str:
        """The text of EG's metrics port (hooks/kernel_metrics.py), read once more after a lost forward."""

        def read() -> str:
            with urllib.request.urlopen(self.metrics_url(), timeout=10) as response:
                return response.read().decode()

        return self._once_more(read, lambda exc: True)


class KernelStack:
    def __init__(
        self, workdir: Path, gateway_spec: dict, notebook_spec: dict, others: dict[str, tuple[str, dict]] | None = None
    ):
        """``others``: more notebooks sharing the gateway, name -> (namespace, spec)."""
        self.workdir = Path(workdir)
        self.gateway_spec, self.notebook_spec = gateway_spec, notebook_spec
        self.others = dict(others or {})
        self.cp: NodeCluster | None = None
        self.api: KubeApi | None = None
        self.eg: Gateway | None = None
        self.door: PodServer | None = None
        self.jupyter: PodServer | None = None
        self.notebooks: dict[str, PodServer] = {}
        self.timings: dict[str, float] = {}
        self.gateway_children: list[dict] = []
        self.notebook_children: list[dict] = []
        self.other_children: dict[str, list[dict]] = {}

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        t0 = time.monotonic()
        controllers = ["resourcequota-controller", "job-controller"]
        self.cp = NodeCluster(
            self.workdir / "cluster", extra_controllers=controllers, cached=IMAGES, gpus=1, kubelet_config=KUBELET
        )
        self.cp.start()
        self.cp.ctr("images", "tag", f"docker.io/{KERNEL_IMAGE}", f"docker.io/{GPU_IMAGE}")
        # The label NVIDIA's GPU feature discovery puts on a node with GPUs (the GPU profile's nodeSelector).
        self.cp.kubectl("label", "node", self.cp.node_name, f"{GPU_LABEL}=true")
        self.api = KubeApi(self.cp.server, self.cp.ssl_context())
        self.timings["node_ready_s"] = round(time.monotonic() - t0, 2)
        self._install()
        self._render_and_apply()
        self._provide_volumes()
        token = secret_token(self.gateway_children, f"{GATEWAY}-gateway-auth")
        self.eg = Gateway(self, token)
        self.door = PodServer(self, GATEWAY_NS, self.eg.selector, "front-door")
        self.jupyter = self._notebook(NOTEBOOK, NOTEBOOK_NS, self.notebook_children)
        for name, (namespace, _) in self.others.items():
            self.notebooks[name] = self._notebook(name, namespace, self.other_children[name])
        for server in (self.eg, self.door, self.jupyter, *self.notebooks.values()):
            server.wait_ready(timeout=180)
        self.timings["pods_ready_s"] = round(time.monotonic() - t0, 2)
        for server in (self.jupyter, *self.notebooks.values()):
            wait_for(  # the gateway's Service routed (kube-proxy) and resolved (cluster DNS) from the notebook
                lambda server=server: server.api("GET", "/api/kernelspecs")[0] == 200,
                timeout=60,
                what=f"the notebook in {server.namespace} to list the gateway's kernelspecs",
            )
        self.timings["stack_s"] = round(time.monotonic() - t0, 2)

    def stop(self) -> None:
        """The node deletes every pod through the API, then stops everything it started; then its
        image store (1.2 GB unpacked) goes, the logs stay."""
        if self.cp:
            self.cp.stop()
            if not mounts_under(self.cp.node_dir):
                shutil.rmtree(self.cp.node_dir / "containerd", ignore_errors=True)

    # ------------------------------------------------------------------ cluster
    def _install(self) -> None:
        cp = self.cp
        cp.kubectl("apply", "-f", str(REPO / "manifests/crds"), "-f", str(REPO / "manifests/rbac"))
        for crd in ("jupytergateways", "jupyternotebooks"):
            cp.kubectl("wait", "--for=condition=Established", f"crd/{crd}.kubeflow.tkestack.io", "--timeout=60s")
        cp.kubectl("apply", "-f", str(REPO / "manifests/rbac/token-review.yaml"))
        for ns in sorted({GATEWAY_NS, NOTEBOOK_NS, *(ns for ns, _ in self.others.values())}):
            cp.create_namespace(ns, RESTRICTED)
        # A low priority lets higher-priority work preempt idle kernels (kernel profiles may name it).
        cp.apply(
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": PREEMPTIBLE},
                "value": -10,
                "preemptionPolicy": "Never",
            }
        )
        cp.apply(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "team", "namespace": NOTEBOOK_NS},
                "spec": {"hard": QUOTA},
            }
        )
        wait_for(
            lambda: self.api.get(f"/api/v1/namespaces/{NOTEBOOK_NS}/resourcequotas/team").get("status", {}).get("hard"),
            timeout=60,
            what="the ResourceQuota's status (resourcequota controller)",
        )

    def _render_and_apply(self) -> None:
        """Apply both CRs (the schema must accept them), then the children the hooks render for
        the objects the API server returns, as Metacontroller would."""
        cp = self.cp
        cp.apply(
            [
                cr("JupyterGateway", GATEWAY, GATEWAY_NS, self.gateway_spec),
                cr("JupyterNotebook", NOTEBOOK, NOTEBOOK_NS, self.notebook_spec),
                *(cr("JupyterNotebook", name, ns, spec) for name, (ns, spec) in self.others.items()),
            ]
        )
        gateway = cp.kubectl_json("get", "jupytergateway", GATEWAY, "-n", GATEWAY_NS)
        role = cp.kubectl_json("get", "clusterrole", gateway["spec"].get("clusterRole", "jupyter-gateway-kernels"))
        assert role["metadata"]["labels"][KERNEL_ROLE_LABEL] == "true"
        result = sync_gateway(gateway, {}, {CLUSTER_ROLES: {role["metadata"]["name"]: role}}, NOW, "t" * 48)
        assert result["children"], result["status"]
        self.gateway_children = result["children"]
        self.apply_children(self.gateway_children)
        # The notebook's hook reads the gateway (Ready, as its controller would report) and its Secret.
        gateway["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": ""}]}
        secret = next(c for c in self.gateway_children if c["kind"] == "Secret")
        related = {
            GATEWAYS: {f"{GATEWAY_NS}/{GATEWAY}": gateway},
            "Secret.v1": {f"{GATEWAY_NS}/{secret['metadata']['name']}": secret},
        }
        related[CLUSTER_ROLES] = {role["metadata"]["name"]: role}
        for name, namespace in [(NOTEBOOK, NOTEBOOK_NS), *((n, ns) for n, (ns, _) in self.others.items())]:
            notebook = cp.kubectl_json("get", "jupyternotebook", name, "-n", namespace)
            result = sync_notebook(notebook, {}, related, NOW, "n" * 48)
            assert result["children"], result["status"]
            self.apply_children(result["children"])
            if name == NOTEBOOK:
                self.notebook_children = result["children"]
            else:
                self.other_children[name] = result["children"]

    def apply_children(self, children: list[dict]) -> str:
        items = json.dumps({"apiVersion": "v1", "kind": "List", "items": children})
        res = self.cp.kubectl("apply", "--server-side", "--field-manager=kernel-tests", "-f", "-", input=items)
        return res.stdout + res.stderr

    def deployment(self, children: list[dict]) -> dict:
        return next(c for c in children if c["kind"] == "Deployment")

    def _provide_volumes(self) -> None:
        """A local PersistentVolume on the node for each workspace claim, as a cluster's
        provisioner would make; the real PV binder binds them."""
        children = [self.notebook_children, *self.other_children.values()]
        claims = [c for each in children for c in each if c["kind"] == "PersistentVolumeClaim"]
        for claim in claims:
            meta, size = claim["metadata"], claim["spec"]["resources"]["requests"]["storage"]
            self.cp.local_volume(f"{meta['namespace']}-{meta['name']}", size)
        for claim in claims:
            meta = claim["metadata"]
            wait_for(
                lambda meta=meta: self.workspace(meta["namespace"], meta["name"]),
                timeout=60,
                what=f"claim {meta['name']} bound (persistentvolume-binder-controller)",
            )

    def workspace(self, namespace: str, claim: str) -> Path | None:
        """The node directory of the local volume bound to ``claim`` (None until bound)."""
        pvc = self.api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
        if pvc.get("status", {}).get("phase") != "Bound":
            return None
        pv = self.api.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
        return Path(pv["spec"]["local"]["path"])

    def _notebook(self, name: str, namespace: str, children: list[dict]) -> PodServer:
        token = secret_token(children, f"{name}-notebook-auth")
        return PodServer(self, namespace, f"kubeflow.tkestack.io/jupyternotebook={name}", "notebook", token)

    # ------------------------------------------------------------------ the gateway's restarts
    def kill_gateway(self, sig: int) -> dict:
        """SIGTERM: the gateway pod deleted (a rollout; the Deployment makes a new pod, whose init
        containers run); SIGKILL: EG's container killed from the node (a crash; the kubelet
        restarts it in the same pod, without init containers). Returns once the old EG is gone."""
        before = self.eg.restarts
        t0 = time.monotonic()
        if sig == signal.SIGKILL:
            self.eg.kill()
            wait_for(lambda: self.eg.restarts != before, timeout=60, what="the gateway container's restart")
        else:
            old = self.eg.pod()["metadata"]["name"]
            self.api.delete(f"/api/v1/namespaces/{GATEWAY_NS}/pods/{old}")
            wait_for(
                lambda: old not in [p["metadata"]["name"] for p in self.api.pods(GATEWAY_NS)],
                timeout=60,
                what=f"the gateway pod {old} gone",
            )
        return {"signal": sig, "seconds": round(time.monotonic() - t0, 2), "before": before}

    def wait_gateway(self, after: tuple[str, int]) -> None:
        """Until the gateway pod that replaced ``after`` (or its restarted container) is Ready."""
        self.eg.wait_ready(after=after, timeout=180)
        self.door.wait_ready(timeout=60)

    def access_list(self) -> list[str]:
        """The namespaces in the gateway's access ConfigMap, as the API server has it."""
        configmap = self.api.get(f"/api/v1/namespaces/{GATEWAY_NS}/configmaps/{access_name(GATEWAY)}")
        return json.loads(next(iter(configmap["data"].values())))

    def token(self, service_account: str, namespace: str, audience: str | None = None) -> str:
        args = ["create", "token", service_account, "-n", namespace, "--duration=1h"]
        return self.cp.kubectl(*args, *([f"--audience={audience}"] if audience else [])).stdout.strip()

    # ------------------------------------------------------------------ observations
    def kernel_pods(self, namespace: str | None = None) -> list[dict]:
        return self.api.pods(namespace, "component=kernel")

    def kernel_pod(self, kernel_id: str) -> dict | None:
        pods = self.api.pods(None, f"kernel_id={kernel_id}")
        return pods[0] if pods else None

    def eg_post(self, body: dict) -> tuple[int, Any]:
        return self.eg.api("POST", "/api/kernels", body, timeout=120)


def start_stack(name: str, gateway_spec: dict, notebook_spec: dict, others=None) -> KernelStack:
    workdir = OUTPUT / time.strftime(f"{name}-%Y%m%d-%H%M%S")
    return KernelStack(workdir, gateway_spec, notebook_spec, others)
